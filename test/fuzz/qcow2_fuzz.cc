// libFuzzer target for the streaming qcow2 decoder.
//
// Input layout: byte 0 selects options, byte 1 seeds the chunk sizes, the
// rest is the image. The image is fed in chunks of varying odd sizes to a
// sink that checks the GuestWriter contract; any violation aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <span>

#include "formats/decoder.h"
#include "formats/qcow2/qcow2_decoder.h"

namespace {

using cdi::Status;
using cdi::formats::GuestWriter;
using cdi::formats::ImageDescription;

[[noreturn]] void Violation(const char* what) {
  fprintf(stderr, "GuestWriter contract violated: %s\n", what);
  abort();
}

// Checks Begin-first, bounds, and exactly-once coverage; keeps no data.
class SinkWriter : public GuestWriter {
 public:
  Status Begin(const ImageDescription& image) override {
    if (begun_) Violation("Begin twice");
    if (!image.virtual_size) Violation("no virtual size");
    begun_ = true;
    size_ = *image.virtual_size;
    return Status::Ok();
  }
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    if (data.empty()) Violation("empty Write");
    // Touch every byte so that a span into freed memory shows up under ASan.
    volatile uint8_t sum = 0;
    for (uint8_t byte : data) sum = static_cast<uint8_t>(sum + byte);
    (void)sum;
    Cover(guest_offset, data.size());
    return Status::Ok();
  }
  Status Zero(uint64_t guest_offset, uint64_t length) override {
    if (length == 0) Violation("empty Zero");
    Cover(guest_offset, length);
    return Status::Ok();
  }
  void CheckComplete() const {
    if (size_ == 0) return;
    if (covered_.size() != 1 || covered_.begin()->first != 0 || covered_.begin()->second != size_) {
      Violation("virtual disk not fully covered after a successful Finish");
    }
  }

 private:
  void Cover(uint64_t start, uint64_t length) {
    if (!begun_) Violation("Write or Zero before Begin");
    if (start > size_ || length > size_ - start) Violation("range outside the virtual disk");
    uint64_t end = start + length;
    auto next = covered_.lower_bound(start);
    if (next != covered_.end() && next->first < end) Violation("range covered twice");
    if (next != covered_.begin()) {
      auto prev = std::prev(next);
      if (prev->second > start) Violation("range covered twice");
      if (prev->second == start) {
        start = prev->first;
        covered_.erase(prev);
      }
    }
    if (next != covered_.end() && next->first == end) {
      end = next->second;
      covered_.erase(next);
    }
    covered_[start] = end;
  }

  bool begun_ = false;
  uint64_t size_ = 0;
  std::map<uint64_t, uint64_t> covered_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  uint32_t rng = 0x9e3779b9u * (data[1] + 1u);
  std::span<const uint8_t> image(data + 2, size - 2);

  cdi::formats::DecoderOptions options;
  // Small budgets make the spool spill to its scratch file.
  options.memory_budget = (flags & 1) ? (768u << 10) : (6u << 20);
  options.threads = (flags & 2) ? 2 : 1;
  if (flags & 4) options.container_size = image.size();
  const uint32_t max_chunk = (flags & 8) ? 7 : 4099;

  SinkWriter writer;
  auto decoder = cdi::formats::MakeQcow2Decoder(&writer, options);
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
  if (!status.ok() && status.message().empty()) Violation("an error without a message");
  if (status.code() == cdi::ErrorCode::kInternal) {
    fprintf(stderr, "internal error: %s\n", status.ToString().c_str());
    abort();
  }
  return 0;
}
