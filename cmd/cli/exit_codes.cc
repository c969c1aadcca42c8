#include "cmd/cli/exit_codes.h"

#include <cstdio>

#include "cdi/text.h"

namespace cdi::cli {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return kExitOk;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kUnsupported: return kExitUnsupported;
    case ErrorCode::kCorruptImage: return kExitCorrupt;
    case ErrorCode::kNetwork: return kExitNetwork;
    case ErrorCode::kTls: return kExitTls;
    case ErrorCode::kTooSmall: return kExitTooSmall;
    case ErrorCode::kIo: return kExitIo;
    case ErrorCode::kChecksumMismatch: return kExitChecksum;
    case ErrorCode::kCancelled: return kExitCancelled;
    case ErrorCode::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

int ReportError(const Status& status, bool json) {
  const int code = ExitCodeFor(status.code());
  if (json) {
    std::printf("{\"event\":\"error\",\"code\":%s,\"exit_code\":%d,\"message\":%s}\n",
                JsonString(ErrorCodeName(status.code())).c_str(), code,
                JsonString(status.message()).c_str());
    std::fflush(stdout);
  }
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return code;
}

std::string_view ExitCodeTable() {
  return "Exit codes:\n"
         "    0  success\n"
         "    1  internal error\n"
         "    2  usage: bad flags or values, or the target already exists or is being\n"
         "       written by another import\n"
         "    3  unsupported image format or feature\n"
         "    4  corrupt or truncated image\n"
         "    5  network or HTTP error\n"
         "    6  TLS error (certificate, handshake)\n"
         "    7  the image does not fit the target (a larger volume is required)\n"
         "    8  I/O error reading the source file or writing the target\n"
         "    9  checksum mismatch\n"
         "  130  cancelled (SIGINT or SIGTERM)\n";
}

}  // namespace cdi::cli
