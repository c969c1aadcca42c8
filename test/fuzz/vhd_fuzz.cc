// libFuzzer target for the VHD decoders: the dynamic decoder, and the raw
// decoder behind the fixed-VHD footer check.
//
// Input layout: byte 0 selects options (bit 4: the raw/fixed path), byte 1
// seeds the chunk sizes, the rest is the image. The image is fed in chunks of varying odd sizes to
// a sink that checks the GuestWriter contract; any violation aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "formats/decoder.h"
#include "formats/vhd/fixed_footer.h"
#include "formats/vhd/vhd_decoder.h"
#include "test/support/guest_coverage.h"

namespace {

using cdi::Status;
using cdi::formats::GuestWriter;
using cdi::formats::ImageDescription;

// Aborts the run on a broken contract.
void Check(const std::string& violation) {
  if (violation.empty()) return;
  fprintf(stderr, "GuestWriter contract violated: %s\n", violation.c_str());
  abort();
}

// Checks the contract (test/support/guest_coverage.h: Begin first, bounds,
// exactly-once coverage); keeps no data.
class SinkWriter : public GuestWriter {
 public:
  Status Begin(const ImageDescription& image) override {
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
  cdi::test::GuestCoverage coverage_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  uint32_t rng = 0x9e3779b9u * (data[1] + 1u);
  std::span<const uint8_t> image(data + 2, size - 2);

  cdi::formats::DecoderOptions options;
  // A small budget refuses large tables.
  options.memory_budget = (flags & 1) ? 4096 : (6u << 20);
  if (flags & 4) options.container_size = image.size();
  const uint32_t max_chunk = (flags & 8) ? 7 : 4099;

  SinkWriter writer;
  auto decoder = (flags & 16) ? cdi::formats::MakeRawOrFixedVhdDecoder(&writer, options)
                              : cdi::formats::MakeVhdDecoder(&writer, options);
  Status status;
  while (!image.empty() && status.ok()) {
    rng = rng * 1103515245u + 12345u;
    size_t chunk = 1 + (rng >> 8) % max_chunk;
    if (chunk > image.size()) chunk = image.size();
    status = decoder->Feed(image.first(chunk));
    image = image.subspan(chunk);
  }
  if (status.ok()) {
    status = decoder->Finish();
    if (status.ok()) writer.CheckComplete();
  }
  if (!status.ok() && status.message().empty()) Check("an error without a message");
  if (status.code() == cdi::ErrorCode::kInternal) {
    fprintf(stderr, "internal error: %s\n", status.ToString().c_str());
    abort();
  }
  return 0;
}
