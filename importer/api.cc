// The small public functions of cdi/import.h: Inspect, quantities, logging, version.
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <vector>

#include "cdi/import.h"
#include "formats/pipeline.h"
#include "importer/sources/source.h"
#include "pvc/capacity.h"

namespace cdi {
namespace {

// A GuestWriter that keeps the image's description and stops the stream there.
class DescribeOnly : public formats::GuestWriter {
 public:
  Status Begin(const formats::ImageDescription& image) override {
    image_ = image;
    return Status(ErrorCode::kCancelled, "described");
  }
  Status Write(uint64_t, std::span<const uint8_t>) override { return Stop(); }
  Status Zero(uint64_t, uint64_t) override { return Stop(); }
  const std::optional<formats::ImageDescription>& image() const { return image_; }

 private:
  static Status Stop() { return Status(ErrorCode::kCancelled, "described"); }
  std::optional<formats::ImageDescription> image_;
};

// Forwards spdlog records to a user callback.
class CallbackSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CallbackSink(std::function<void(LogLevel, std::string_view)> callback)
      : callback_(std::move(callback)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    LogLevel level = LogLevel::kInfo;
    if (msg.level <= spdlog::level::debug) level = LogLevel::kDebug;
    if (msg.level == spdlog::level::warn) level = LogLevel::kWarning;
    if (msg.level >= spdlog::level::err) level = LogLevel::kError;
    callback_(level, std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::function<void(LogLevel, std::string_view)> callback_;
};

// Standard output belongs to the application: until SetLogHandler says
// otherwise, the library logs to standard error.
const bool kLogsToStandardError = [] {
  auto logger = spdlog::stderr_color_mt("cdi");
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [cdi] [%l] %v");
  spdlog::set_default_logger(std::move(logger));
  return true;
}();

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarning: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

Result<ImageInfo> Inspect(const SourceSpec& source_spec, const ImportHooks& hooks) {
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<importer::ByteSource> source,
                       importer::OpenSource(source_spec, hooks.cancel));
  DescribeOnly writer;
  formats::PipelineOptions options;
  options.decoder.container_size = source->size();
  formats::ImagePipeline pipeline(&writer, options);
  std::vector<uint8_t> buffer(256 * 1024);
  Status status;
  while (!writer.image()) {
    if (hooks.cancel != nullptr && hooks.cancel->cancelled()) return CancelledError("cancelled");
    CDI_ASSIGN_OR_RETURN(size_t n, source->Read(buffer));
    status = n == 0 ? pipeline.Finish() : pipeline.Feed(std::span<const uint8_t>(buffer.data(), n));
    if (!status.ok() || n == 0) break;
  }
  if (!writer.image()) {
    if (!status.ok()) return status;
    return CorruptImageError("the source ended before its image could be identified");
  }
  ImageInfo info;
  info.format_chain = pipeline.format_chain();
  info.virtual_size = writer.image()->virtual_size;
  info.container_size = source->size();
  info.details = writer.image()->details;
  return info;
}

Result<uint64_t> ParseQuantity(std::string_view quantity) { return pvc::ParseQuantity(quantity); }

void SetLogHandler(std::function<void(LogLevel, std::string_view)> sink, LogLevel level) {
  auto logger = std::make_shared<spdlog::logger>("cdi", std::make_shared<CallbackSink>(std::move(sink)));
  logger->set_level(ToSpdlog(level));
  spdlog::set_default_logger(std::move(logger));
}

std::string_view Version() { return CDI_VERSION; }

}  // namespace cdi
