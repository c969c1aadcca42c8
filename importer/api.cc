// The small public functions of cdi/import.h: Inspect, quantities, version.
#include <mutex>
#include <vector>

#include "cdi/import.h"
#include "formats/pipeline.h"
#include "importer/image_input.h"

namespace cdi {
namespace {

// A GuestWriter that keeps the image's description and then either stops the
// stream (InspectDepth::kHeader) or takes in and drops the whole image.
class Inspector : public formats::GuestWriter {
 public:
  explicit Inspector(InspectDepth depth) : depth_(depth) {}
  Status Begin(const formats::ImageDescription& image) override {
    image_ = image;
    return depth_ == InspectDepth::kHeader ? Stop() : Status::Ok();
  }
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    return Cover(guest_offset, data.size());
  }
  Status Zero(uint64_t guest_offset, uint64_t length) override { return Cover(guest_offset, length); }
  // A fixed VHD of known length lowers its size to the footer's at the end.
  bool CanShrink() const override { return true; }
  Status Shrink(uint64_t virtual_size) override {
    if (image_) image_->virtual_size = virtual_size;
    return Status::Ok();
  }

  const std::optional<formats::ImageDescription>& image() const { return image_; }
  uint64_t covered_end() const { return covered_end_; }
  static bool IsStop(const Status& status) {
    return status.code() == ErrorCode::kCancelled && status.message() == kStopMessage;
  }

 private:
  static constexpr const char* kStopMessage = "inspected";
  static Status Stop() { return Status(ErrorCode::kCancelled, kStopMessage); }
  Status Cover(uint64_t guest_offset, uint64_t length) {
    if (depth_ == InspectDepth::kHeader) return Stop();
    covered_end_ = std::max(covered_end_, guest_offset + length);
    return Status::Ok();
  }

  InspectDepth depth_;
  std::optional<formats::ImageDescription> image_;
  uint64_t covered_end_ = 0;
};

}  // namespace

Result<ImageInfo> Inspect(const SourceSpec& source_spec, const ImportHooks& hooks,
                          InspectDepth depth) {
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<importer::ImageInput> source,
                       importer::OpenImageInput(source_spec, hooks.cancel, {}));
  Inspector inspector(depth);
  formats::PipelineOptions options;
  options.decoder.container_size = source->image_size();
  formats::ImagePipeline pipeline(&inspector, options);
  Result<uint64_t> fed = source->FeedTo(pipeline, hooks.cancel, [](uint64_t) {});
  Status status = fed.ok() ? pipeline.Finish() : fed.status();
  if (!status.ok() && !Inspector::IsStop(status)) return status;
  if (!inspector.image()) {
    return CorruptImageError("the source ended before its image could be identified");
  }
  ImageInfo info;
  info.format_chain = pipeline.format_chain();
  info.virtual_size = inspector.image()->virtual_size;
  info.container_size = source->image_size();
  info.details = inspector.image()->details;
  if (!info.virtual_size) {
    // A raw image has no header of its own; a zstd frame's may say its size.
    info.virtual_size = pipeline.DeclaredRawSize();
    if (info.virtual_size) info.details.emplace_back("size declared by", "the zstd frame header");
  }
  if (depth == InspectDepth::kFull) {
    if (!info.virtual_size) info.virtual_size = inspector.covered_end();
    if (auto described = pipeline.Describe()) info.details = described->details;
  }
  return info;
}


std::string_view Version() { return CDI_VERSION; }

}  // namespace cdi
