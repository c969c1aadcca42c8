// For a program that logs with spdlog: the library's LogLevel in spdlog's
// terms and back, and one call that sends the library's log lines into the
// program's own spdlog default logger. Header-only and optional: include it
// only where spdlog is used. The library itself never touches spdlog's default
// logger or registry; lines reach the program only through SetLogHandler.
#ifndef CDI_SPDLOG_H_
#define CDI_SPDLOG_H_

#include <spdlog/spdlog.h>

#include <string_view>

#include "cdi/import.h"

namespace cdi {

inline spdlog::level::level_enum ToSpdlogLevel(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarning: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// trace counts as debug; critical and off as error.
inline LogLevel FromSpdlogLevel(spdlog::level::level_enum level) {
  if (level <= spdlog::level::debug) return LogLevel::kDebug;
  if (level == spdlog::level::info) return LogLevel::kInfo;
  if (level == spdlog::level::warn) return LogLevel::kWarning;
  return LogLevel::kError;
}

// Sends the library's lines at `level` and above to whatever logger is
// spdlog's default when each line is logged, at the matching spdlog level.
inline void ForwardLogsToSpdlog(spdlog::level::level_enum level) {
  SetLogHandler(
      [](LogLevel line_level, std::string_view line) {
        spdlog::default_logger_raw()->log(ToSpdlogLevel(line_level), "{}", line);
      },
      FromSpdlogLevel(level));
}

}  // namespace cdi

#endif  // CDI_SPDLOG_H_
