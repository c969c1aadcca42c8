#include "cmd/cli/library_log.h"

#include <string_view>

#include "cdi/import.h"
#include "common/log.h"

namespace cdi::cli {

void ForwardLibraryLogs(spdlog::level::level_enum level) {
  SetLogHandler(
      [](LogLevel line_level, std::string_view line) {
        spdlog::default_logger_raw()->log(ToSpdlogLevel(line_level), "{}", line);
      },
      FromSpdlogLevel(level));
}

}  // namespace cdi::cli
