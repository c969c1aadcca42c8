// Captures what the library logs (its own logger, common/log.h) into a string
// for the life of the object, then puts the previous logger back.
//
// Thread-safety: the library may log from any thread while a test reads
// text(); both take the sink's lock.
#ifndef CDI_TEST_SUPPORT_LOG_CAPTURE_H_
#define CDI_TEST_SUPPORT_LOG_CAPTURE_H_

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string>

#include "common/log.h"

namespace cdi::test {

class LogCapture {
 public:
  // `pattern` is spdlog's: by default "[warning] message".
  explicit LogCapture(const std::string& pattern = "[%l] %v") {
    sink_ = std::make_shared<StringSink>();
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_pattern(pattern);
    logger->set_level(spdlog::level::trace);
    previous_ = SetLogger(std::move(logger));
  }
  ~LogCapture() { SetLogger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() { return sink_->text(); }

 private:
  // Appends each formatted line to a string, under the sink's own lock.
  class StringSink : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::string text() {
      std::lock_guard<std::mutex> lock(mutex_);
      return text_;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      spdlog::memory_buf_t formatted;
      formatter_->format(msg, formatted);
      text_.append(formatted.data(), formatted.size());
    }
    void flush_() override {}

   private:
    std::string text_;
  };

  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<StringSink> sink_;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_LOG_CAPTURE_H_
