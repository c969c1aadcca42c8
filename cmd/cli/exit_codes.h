// Exit codes of the command-line tools: one per error class, documented in
// README.md and in --help. Values are stable.
#ifndef CDI_CMD_CLI_EXIT_CODES_H_
#define CDI_CMD_CLI_EXIT_CODES_H_

#include <string_view>

#include "cdi/status.h"

namespace cdi::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,       // a bug or an unexpected failure
  kExitUsage = 2,          // bad flags or values, a target in the way
  kExitUnsupported = 3,    // a format or feature we do not handle
  kExitCorrupt = 4,        // the image is damaged or malformed
  kExitNetwork = 5,        // the server could not be reached or answered an error
  kExitTls = 6,            // certificate or handshake problem
  kExitTooSmall = 7,       // the image does not fit the target
  kExitIo = 8,             // reading a local file or writing the target failed
  kExitChecksum = 9,       // the download does not match the expected checksum
  kExitCancelled = 130,    // interrupted (SIGINT or SIGTERM)
};

int ExitCodeFor(ErrorCode code);

// Reports a failure: "error: MESSAGE" on stderr and, with `json`, the event
// {"event":"error","code":NAME,"exit_code":N,"message":...} on stdout.
// Returns the exit code.
int ReportError(const Status& status, bool json);

// The table for --help and README: "  0  success\n  1  ...".
std::string_view ExitCodeTable();

}  // namespace cdi::cli

#endif  // CDI_CMD_CLI_EXIT_CODES_H_
