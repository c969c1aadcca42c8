// What every decoder's fuzz target does with one input, written once: a
// GuestWriter that checks the contract (test/support/guest_coverage.h) and
// keeps no data, and the loop that feeds the image in chunks of varying odd
// sizes, finishes, and aborts on a broken contract, an internal error or an
// error without a message.
#ifndef CDI_TEST_FUZZ_DECODER_FUZZING_H_
#define CDI_TEST_FUZZ_DECODER_FUZZING_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "formats/decoder.h"
#include "test/support/guest_coverage.h"

namespace cdi::fuzz {

// Aborts the run when `violation` is not empty.
inline void Check(const std::string& violation) {
  if (violation.empty()) return;
  fprintf(stderr, "GuestWriter contract violated: %s\n", violation.c_str());
  abort();
}

class ContractWriter : public formats::GuestWriter {
 public:
  enum class Size { kRequired, kOptional };  // must Begin() name a virtual size?
  explicit ContractWriter(Size size = Size::kRequired) : size_(size) {}

  Status Begin(const formats::ImageDescription& image) override {
    if (size_ == Size::kRequired && !image.virtual_size) Check("no virtual size");
    Check(coverage_.Begin(image));
    return Status::Ok();
  }
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    // Touch every byte so that a span into freed memory shows up under ASan.
    volatile uint8_t sum = 0;
    for (uint8_t byte : data) sum = static_cast<uint8_t>(sum + byte);
    (void)sum;
    Check(coverage_.Range(guest_offset, data.size()));
    return Status::Ok();
  }
  Status Zero(uint64_t guest_offset, uint64_t length) override {
    Check(coverage_.Range(guest_offset, length));
    return Status::Ok();
  }
  // After a successful Finish: the whole virtual disk covered.
  void CheckComplete() const { Check(coverage_.Complete()); }

 private:
  Size size_;
  test::GuestCoverage coverage_;
};

// Feeds `image` to `decoder` (which writes to `writer`) in chunks of 1 to
// `max_chunk` bytes drawn from `seed`, then finishes it.
inline void RunDecoder(formats::Decoder& decoder, const ContractWriter& writer,
                       std::span<const uint8_t> image, uint8_t seed, uint32_t max_chunk) {
  uint32_t rng = 0x9e3779b9u * (seed + 1u);
  Status status;
  while (!image.empty() && status.ok()) {
    rng = rng * 1103515245u + 12345u;
    size_t chunk = 1 + (rng >> 8) % max_chunk;
    if (chunk > image.size()) chunk = image.size();
    status = decoder.Feed(image.first(chunk));
    image = image.subspan(chunk);
  }
  if (status.ok()) {
    status = decoder.Finish();
    if (status.ok()) writer.CheckComplete();
  }
  if (!status.ok() && status.message().empty()) Check("an error without a message");
  if (status.code() == ErrorCode::kInternal) {
    fprintf(stderr, "internal error: %s\n", status.ToString().c_str());
    abort();
  }
}

}  // namespace cdi::fuzz

#endif  // CDI_TEST_FUZZ_DECODER_FUZZING_H_
