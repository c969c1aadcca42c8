// libFuzzer target for the streaming qcow2 decoder.
//
// Input layout: byte 0 selects options, byte 1 seeds the chunk sizes, the
// rest is the image. The image is fed in chunks of varying odd sizes to a
// sink that checks the GuestWriter contract; any violation aborts.
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/qcow2/qcow2_decoder.h"
#include "test/fuzz/decoder_fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  std::span<const uint8_t> image(data + 2, size - 2);

  cdi::formats::DecoderOptions options;
  // Small budgets make the spool spill to its scratch file.
  options.memory_budget = (flags & 1) ? (768u << 10) : (6u << 20);
  options.threads = (flags & 2) ? 2 : 1;
  if (flags & 4) options.container_size = image.size();
  const uint32_t max_chunk = (flags & 8) ? 7 : 4099;

  cdi::fuzz::ContractWriter writer;
  auto decoder = cdi::formats::MakeQcow2Decoder(&writer, options);
  cdi::fuzz::RunDecoder(*decoder, writer, image, data[1], max_chunk);
  return 0;
}
