#include "formats/vmdk/vmdk_decoder.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/vmdk/extent_body.h"
#include "formats/vmdk/vmdk_format.h"
#include "formats/vmdk/vmdk_header.h"
#include "formats/vmdk/vmdk_sparse_decoder.h"
#include "formats/vmdk/vmdk_stream_decoder.h"

namespace cdi::formats {
namespace {

using vmdk::kSectorSize;

class VmdkDecoder final : public Decoder {
 public:
  VmdkDecoder(GuestWriter* writer, DecoderOptions options)
      : writer_(writer), options_(std::move(options)) {
    description_.format = "vmdk";
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!status_.ok()) return status_;
    if (finished_) return status_ = InternalError("the vmdk decoder was fed after Finish()");
    status_ = FeedHead(bytes);
    return status_;
  }

  Status Finish() override {
    if (!status_.ok()) return status_;
    if (finished_) return status_ = InternalError("the vmdk decoder was finished twice");
    finished_ = true;
    if (body_ == nullptr) {
      status_ = vmdk::TruncatedError(
          position_, header_ ? "the end of its embedded descriptor" : "the end of its header");
    } else {
      status_ = body_->Finish();
    }
    return status_;
  }

  ImageDescription Describe() const override {
    ImageDescription description = description_;
    if (body_ != nullptr) body_->AddDetails(description);
    return description;
  }

 private:
  // Reads the header and the descriptor, then hands the rest to the body.
  Status FeedHead(std::span<const uint8_t> bytes) {
    while (!bytes.empty() && body_ == nullptr) {
      size_t n;
      if (!header_) {
        n = std::min(vmdk::kHeaderSize - buffer_.size(), bytes.size());
        buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
        if (buffer_.size() == vmdk::kHeaderSize) {
          CDI_ASSIGN_OR_RETURN(header_, vmdk::ParseHeader(buffer_, options_.container_size));
          buffer_.clear();
          if (header_->descriptor_size * kSectorSize > options_.memory_budget) {
            return vmdk::MemoryBudgetError("the embedded descriptor",
                                           header_->descriptor_size * kSectorSize,
                                           options_.memory_budget);
          }
        }
      } else if (uint64_t start = header_->descriptor_offset * kSectorSize; position_ < start) {
        n = static_cast<size_t>(std::min<uint64_t>(start - position_, bytes.size()));
      } else {
        size_t size = static_cast<size_t>(header_->descriptor_size * kSectorSize);
        n = std::min(size - buffer_.size(), bytes.size());
        buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
        position_ += n;
        bytes = bytes.subspan(n);
        if (buffer_.size() == size) CDI_RETURN_IF_ERROR(StartBody());
        continue;
      }
      position_ += n;
      bytes = bytes.subspan(n);
    }
    if (body_ != nullptr && !bytes.empty()) return body_->Feed(bytes);
    return Status::Ok();
  }

  Status StartBody() {
    std::string_view text(reinterpret_cast<const char*>(buffer_.data()), buffer_.size());
    CDI_ASSIGN_OR_RETURN(vmdk::Descriptor descriptor, vmdk::ParseDescriptor(text, *header_));
    buffer_ = {};
    const vmdk::Header& h = *header_;
    description_.virtual_size = h.capacity_bytes();
    description_.details = {
        {"subformat", descriptor.create_type},
        {"version", std::to_string(h.version)},
        {"grain size", std::to_string(h.grain_bytes())},
        {"virtual size", std::to_string(h.capacity_bytes())},
        {"compressed", h.compressed() ? "yes" : "no"},
    };
    if (descriptor.subformat == vmdk::Subformat::kStreamOptimized) {
      CDI_ASSIGN_OR_RETURN(body_, vmdk::MakeStreamBody(writer_, h, options_, position_));
    } else {
      CDI_ASSIGN_OR_RETURN(body_, vmdk::MakeSparseBody(writer_, h, options_, position_));
    }
    return writer_->Begin(description_);
  }

  GuestWriter* writer_;
  DecoderOptions options_;
  ImageDescription description_;
  std::optional<vmdk::Header> header_;
  std::vector<uint8_t> buffer_;  // the header, then the descriptor
  uint64_t position_ = 0;        // offset of the next byte fed
  std::unique_ptr<vmdk::ExtentBody> body_;
  Status status_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<Decoder> MakeVmdkDecoder(GuestWriter* writer, const DecoderOptions& options) {
  return std::make_unique<VmdkDecoder>(writer, options);
}

}  // namespace cdi::formats
