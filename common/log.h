// The library's own logger. Every module logs through Logger(), never through
// spdlog's process-wide default logger, so that a host program that links the
// library and uses spdlog keeps its own default logger and its settings.
// Until SetLogHandler (cdi/import.h) says otherwise, the library logs to
// standard error; standard output belongs to the application.
#ifndef CDI_COMMON_LOG_H_
#define CDI_COMMON_LOG_H_

#include <spdlog/spdlog.h>

#include <memory>

#include "cdi/import.h"
#include "cdi/spdlog.h"  // the level mapping

namespace cdi {

// The logger named "cdi". It is not registered with spdlog (spdlog::get("cdi")
// finds nothing), so the host's registry is left as it is.
std::shared_ptr<spdlog::logger> Logger();

// Replaces the library's logger (tests capture what it logs); returns the
// previous one. A null logger restores the standard-error default.
std::shared_ptr<spdlog::logger> SetLogger(std::shared_ptr<spdlog::logger> logger);

}  // namespace cdi

#endif  // CDI_COMMON_LOG_H_
