#include "formats/raw_decoder.h"

#include <optional>
#include <string>
#include <utility>

namespace cdi::formats {
namespace {

class RawDecoder final : public Decoder {
 public:
  RawDecoder(GuestWriter* writer, const DecoderOptions& options, RawContent content)
      : writer_(writer),
        container_size_(options.container_size),
        guest_offset_(options.start_offset) {
    description_.format = "raw";
    description_.virtual_size = container_size_;
    if (content == RawContent::kIso9660) description_.details.emplace_back("content", "iso");
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (bytes.empty()) return Status::Ok();
    CDI_RETURN_IF_ERROR(BeginOnce());
    if (container_size_.has_value() && bytes.size() > *container_size_ - guest_offset_) {
      return CorruptImageError(
          "the raw image is longer than the " + std::to_string(*container_size_) +
          " bytes its source announced (more than " + std::to_string(guest_offset_ + bytes.size()) +
          " bytes arrived); the source changed during the import or reports a wrong length: "
          "retry the import, and check the source");
    }
    CDI_RETURN_IF_ERROR(writer_->Write(guest_offset_, bytes));
    guest_offset_ += bytes.size();
    return Status::Ok();
  }

  Status Finish() override {
    CDI_RETURN_IF_ERROR(BeginOnce());
    if (container_size_.has_value() && guest_offset_ != *container_size_) {
      return CorruptImageError("the raw image ends early, after " + std::to_string(guest_offset_) +
                               " of the " + std::to_string(*container_size_) +
                               " bytes its source announced; the download was cut short or the "
                               "source changed: retry the import");
    }
    description_.virtual_size = guest_offset_;
    return Status::Ok();
  }

  ImageDescription Describe() const override { return description_; }

 private:
  Status BeginOnce() {
    if (begun_) return Status::Ok();
    begun_ = true;
    if (container_size_.has_value() && guest_offset_ > *container_size_) {
      return InternalError("a raw image of " + std::to_string(*container_size_) +
                           " bytes resumed at offset " + std::to_string(guest_offset_));
    }
    return writer_->Begin(description_);
  }

  GuestWriter* writer_;
  std::optional<uint64_t> container_size_;
  ImageDescription description_;
  bool begun_ = false;
  uint64_t guest_offset_;  // the next Write() goes here: start_offset + bytes fed
};

}  // namespace

std::unique_ptr<Decoder> MakeRawDecoder(GuestWriter* writer, const DecoderOptions& options,
                                        RawContent content) {
  return std::make_unique<RawDecoder>(writer, options, content);
}

}  // namespace cdi::formats
