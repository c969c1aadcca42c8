// Captures what the library logs (its own logger, common/log.h) into a string
// for the life of the object, then puts the previous logger back.
#ifndef CDI_TEST_SUPPORT_LOG_CAPTURE_H_
#define CDI_TEST_SUPPORT_LOG_CAPTURE_H_

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

#include "common/log.h"

namespace cdi::test {

class LogCapture {
 public:
  // `pattern` is spdlog's: by default "[warning] message".
  explicit LogCapture(const std::string& pattern = "[%l] %v") {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_pattern(pattern);
    logger->set_level(spdlog::level::trace);
    previous_ = SetLogger(std::move(logger));
  }
  ~LogCapture() { SetLogger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() {
    sink_->flush();
    return stream_.str();
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_LOG_CAPTURE_H_
