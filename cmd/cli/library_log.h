// The faces log through spdlog's default logger, which they own; the library
// logs through a logger of its own (common/log.h). This sends the library's
// lines into the face's logger, at the face's level, so both read alike.
#ifndef CDI_CMD_CLI_LIBRARY_LOG_H_
#define CDI_CMD_CLI_LIBRARY_LOG_H_

#include <spdlog/spdlog.h>

namespace cdi::cli {

// Forwards the library's log lines at `level` and above to spdlog's current
// default logger.
void ForwardLibraryLogs(spdlog::level::level_enum level);

}  // namespace cdi::cli

#endif  // CDI_CMD_CLI_LIBRARY_LOG_H_
