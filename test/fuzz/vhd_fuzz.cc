// libFuzzer target for the VHD decoders: the dynamic decoder, and the raw
// decoder behind the fixed-VHD footer check.
//
// Input layout: byte 0 selects options (bit 4: the raw/fixed path), byte 1
// seeds the chunk sizes, the rest is the image. The image is fed in chunks of varying odd sizes to
// a sink that checks the GuestWriter contract; any violation aborts.
#include <cstddef>
#include <cstdint>
#include <span>

#include "formats/vhd/fixed_footer.h"
#include "formats/vhd/vhd_decoder.h"
#include "test/fuzz/decoder_fuzzing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  std::span<const uint8_t> image(data + 2, size - 2);

  cdi::formats::DecoderOptions options;
  // A small budget refuses large tables.
  options.memory_budget = (flags & 1) ? 4096 : (6u << 20);
  if (flags & 4) options.container_size = image.size();
  const uint32_t max_chunk = (flags & 8) ? 7 : 4099;

  cdi::fuzz::ContractWriter writer(cdi::fuzz::ContractWriter::Size::kOptional);
  auto decoder = (flags & 16) ? cdi::formats::MakeRawOrFixedVhdDecoder(&writer, options)
                              : cdi::formats::MakeVhdDecoder(&writer, options);
  cdi::fuzz::RunDecoder(*decoder, writer, image, data[1], max_chunk);
  return 0;
}
