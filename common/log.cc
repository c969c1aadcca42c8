#include "common/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <utility>

namespace cdi {
namespace {

std::shared_ptr<spdlog::logger> StandardErrorLogger() {
  auto logger = std::make_shared<spdlog::logger>(
      "cdi", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [cdi] [%l] %v");
  return logger;
}

struct LoggerSlot {
  std::mutex mutex;
  std::shared_ptr<spdlog::logger> logger;
};

LoggerSlot& Slot() {
  static LoggerSlot* slot = new LoggerSlot{.logger = StandardErrorLogger()};  // never destroyed:
  return *slot;  // threads may still log while static objects are torn down
}

// Forwards the library's records to a user callback.
class CallbackSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CallbackSink(std::function<void(LogLevel, std::string_view)> callback)
      : callback_(std::move(callback)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    callback_(FromSpdlogLevel(msg.level), std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::function<void(LogLevel, std::string_view)> callback_;
};

}  // namespace

std::shared_ptr<spdlog::logger> Logger() {
  LoggerSlot& slot = Slot();
  std::lock_guard<std::mutex> lock(slot.mutex);
  return slot.logger;
}

std::shared_ptr<spdlog::logger> SetLogger(std::shared_ptr<spdlog::logger> logger) {
  if (!logger) logger = StandardErrorLogger();
  LoggerSlot& slot = Slot();
  std::lock_guard<std::mutex> lock(slot.mutex);
  return std::exchange(slot.logger, std::move(logger));
}

void SetLogHandler(std::function<void(LogLevel, std::string_view)> sink, LogLevel level) {
  if (!sink) {
    SetLogger(nullptr);
    return;
  }
  auto logger = std::make_shared<spdlog::logger>("cdi", std::make_shared<CallbackSink>(std::move(sink)));
  logger->set_level(ToSpdlogLevel(level));
  SetLogger(std::move(logger));
}

}  // namespace cdi
