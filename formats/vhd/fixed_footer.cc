#include "formats/vhd/fixed_footer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>

#include "formats/foreign.h"
#include "formats/vhd/vhd_format.h"

namespace cdi::formats {
namespace {

using vhd::kFooterSize;

// Passes a sequential stream of writes on, holding back its last 512 bytes.
class TailHoldingWriter final : public GuestWriter {
 public:
  // `start` is the guest offset of the first write (a resumed stream's).
  TailHoldingWriter(GuestWriter* writer, uint64_t start) : writer_(writer), end_(start) {}

  Status Begin(const ImageDescription& image) override {
    announced_size_ = image.virtual_size;
    return writer_->Begin(image);
  }

  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    if (guest_offset != end_) {
      return InternalError("the raw decoder wrote out of order (at " +
                           std::to_string(guest_offset) + ", expected " + std::to_string(end_) +
                           ")");
    }
    end_ += data.size();
    if (tail_size_ + data.size() <= kFooterSize) {
      std::memcpy(tail_.data() + tail_size_, data.data(), data.size());
      tail_size_ += data.size();
      return Status::Ok();
    }
    // Everything but the last 512 bytes of tail + data goes out.
    const size_t out = tail_size_ + data.size() - kFooterSize;
    const size_t from_tail = std::min(out, tail_size_);
    const uint64_t tail_offset = end_ - data.size() - tail_size_;
    if (from_tail > 0) {
      CDI_RETURN_IF_ERROR(writer_->Write(tail_offset, std::span(tail_.data(), from_tail)));
    }
    const size_t from_data = out - from_tail;
    if (from_data > 0) {
      CDI_RETURN_IF_ERROR(writer_->Write(tail_offset + from_tail, data.first(from_data)));
    }
    // The new tail: what is left of the old one, then the rest of data.
    const size_t kept = tail_size_ - from_tail;
    std::memmove(tail_.data(), tail_.data() + from_tail, kept);
    std::memcpy(tail_.data() + kept, data.data() + from_data, data.size() - from_data);
    tail_size_ = kFooterSize;
    return Status::Ok();
  }

  Status Zero(uint64_t, uint64_t) override {
    return InternalError("the raw decoder zeroed a range");
  }

  bool CanShrink() const override { return writer_->CanShrink(); }

  std::span<const uint8_t> tail() const { return std::span(tail_.data(), tail_size_); }
  uint64_t end() const { return end_; }
  const std::optional<uint64_t>& announced_size() const { return announced_size_; }

  Status WriteTail() {
    return tail_size_ == 0 ? Status::Ok() : writer_->Write(end_ - tail_size_, tail());
  }
  Status ZeroTail() { return writer_->Zero(end_ - tail_size_, tail_size_); }
  // The image ends where the tail starts.
  Status DropTail() { return writer_->Shrink(end_ - tail_size_); }

 private:
  GuestWriter* writer_;
  std::optional<uint64_t> announced_size_;
  std::array<uint8_t, kFooterSize> tail_{};
  size_t tail_size_ = 0;
  uint64_t end_;  // end of the bytes written to this writer so far
};

class RawOrFixedVhdDecoder final : public Decoder {
 public:
  RawOrFixedVhdDecoder(GuestWriter* writer, const DecoderOptions& options, RawContent content)
      : tail_writer_(writer, options.start_offset),
        raw_(MakeRawDecoder(&tail_writer_, options, content)) {}

  Status Feed(std::span<const uint8_t> bytes) override { return raw_->Feed(bytes); }

  Status Finish() override {
    CDI_RETURN_IF_ERROR(raw_->Finish());
    if (std::optional<ForeignFormat> foreign = DetectForeignTrailer(tail_writer_.tail())) {
      return UnsupportedError(ForeignFormatMessage(*foreign));
    }
    std::optional<vhd::Footer> footer = FixedFooter();
    if (!footer) return tail_writer_.WriteTail();
    fixed_ = ImageDescription{};
    fixed_->format = "vhd";
    fixed_->details = {{"subformat", "fixed"},
                       {"current size", std::to_string(footer->current_size)},
                       {"creator", footer->creator}};
    if (tail_writer_.announced_size() && tail_writer_.CanShrink()) {
      // The size was announced before the footer showed: lowered to the
      // footer's current size.
      fixed_->virtual_size = footer->current_size;
      return tail_writer_.DropTail();
    }
    if (tail_writer_.announced_size()) {
      // The size was announced before the footer showed, and the writer
      // cannot lower it: the footer's bytes read as zero.
      fixed_->virtual_size = tail_writer_.announced_size();
      fixed_->details.emplace_back("footer", "512 bytes zeroed at the end of the guest");
      return tail_writer_.ZeroTail();
    }
    fixed_->virtual_size = footer->current_size;
    return Status::Ok();
  }

  ImageDescription Describe() const override { return fixed_ ? *fixed_ : raw_->Describe(); }

 private:
  // The held-back bytes as a fixed VHD footer for the bytes before them.
  std::optional<vhd::Footer> FixedFooter() const {
    std::span<const uint8_t> tail = tail_writer_.tail();
    if (!vhd::LooksLikeFooter(tail)) return std::nullopt;
    Result<vhd::Footer> footer = vhd::ParseFooter(tail, "footer");
    if (!footer.ok() || footer.value().disk_type != vhd::kDiskTypeFixed ||
        footer.value().current_size != tail_writer_.end() - kFooterSize) {
      return std::nullopt;
    }
    return footer.value();
  }

  TailHoldingWriter tail_writer_;
  std::unique_ptr<Decoder> raw_;
  std::optional<ImageDescription> fixed_;
};

}  // namespace

std::unique_ptr<Decoder> MakeRawOrFixedVhdDecoder(GuestWriter* writer,
                                                  const DecoderOptions& options,
                                                  RawContent content) {
  return std::make_unique<RawOrFixedVhdDecoder>(writer, options, content);
}

}  // namespace cdi::formats
