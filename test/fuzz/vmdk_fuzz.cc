// libFuzzer target for the streaming VMDK decoder (monolithicSparse and
// streamOptimized).
//
// Input layout: byte 0 selects options, byte 1 seeds the chunk sizes, the
// rest is the image. The image is fed in chunks of varying odd sizes to a
// sink that checks the GuestWriter contract; any violation aborts, as does
// an internal error or an error without a message.
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/vmdk/vmdk_decoder.h"
#include "test/fuzz/decoder_fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  std::span<const uint8_t> image(data + 2, size - 2);

  cdi::formats::DecoderOptions options;
  // A small budget refuses large grain tables and grains; a large one lets them through.
  options.memory_budget = (flags & 1) ? 4096u : (6u << 20);
  if (flags & 4) options.container_size = image.size();
  const uint32_t max_chunk = (flags & 8) ? 7 : 4099;

  cdi::fuzz::ContractWriter writer;
  auto decoder = cdi::formats::MakeVmdkDecoder(&writer, options);
  cdi::fuzz::RunDecoder(*decoder, writer, image, data[1], max_chunk);
  return 0;
}
