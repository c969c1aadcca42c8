// The decoder's one way out to its GuestWriter.
//
// Data goes to GuestWriter::Write as it is: finding zero blocks in it is the
// writer's job. Zero ranges that touch are coalesced first, so that an empty
// stretch of many clusters is one Zero. Every byte handed on is counted, for
// the check at the end that the image was covered exactly. Errors from the
// writer come back unchanged. Single-threaded.
#ifndef CDI_FORMATS_QCOW2_GUEST_OUTPUT_H_
#define CDI_FORMATS_QCOW2_GUEST_OUTPUT_H_

#include <cstdint>
#include <span>

#include "cdi/status.h"
#include "formats/decoder.h"

namespace cdi::formats::qcow2 {

class GuestOutput {
 public:
  // `writer` must outlive the output.
  explicit GuestOutput(GuestWriter* writer) : writer_(writer) {}
  GuestOutput(const GuestOutput&) = delete;
  GuestOutput& operator=(const GuestOutput&) = delete;

  Status Begin(const ImageDescription& image) { return writer_->Begin(image); }

  // Guest bytes at `guest_offset`; nothing for an empty span.
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) {
    if (data.empty()) return Status::Ok();
    covered_ += data.size();
    return writer_->Write(guest_offset, data);
  }

  // Guest bytes an earlier import wrote (a continued image): counted, not written.
  Status Kept(uint64_t guest_offset, uint64_t length) {
    if (length == 0) return Status::Ok();
    covered_ += length;
    return writer_->Kept(guest_offset, length);
  }

  // Guest bytes that read as zeros; held back while the next range may touch them.
  Status Zero(uint64_t guest_offset, uint64_t length) {
    if (length == 0) return Status::Ok();
    if (zero_length_ > 0 && zero_start_ + zero_length_ == guest_offset) {
      zero_length_ += length;
      return Status::Ok();
    }
    CDI_RETURN_IF_ERROR(Flush());
    zero_start_ = guest_offset;
    zero_length_ = length;
    return Status::Ok();
  }

  // Hands on the zero range held back, if any.
  Status Flush() {
    if (zero_length_ == 0) return Status::Ok();
    const uint64_t start = zero_start_;
    const uint64_t length = zero_length_;
    zero_length_ = 0;
    covered_ += length;
    return writer_->Zero(start, length);
  }

  // Bytes handed on so far, written or zero.
  uint64_t covered() const { return covered_; }

 private:
  GuestWriter* writer_;
  uint64_t zero_start_ = 0;
  uint64_t zero_length_ = 0;
  uint64_t covered_ = 0;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_GUEST_OUTPUT_H_
