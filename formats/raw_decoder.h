// The raw decoder: the identity mapping from container bytes to guest bytes.
//
// Begin() is called with format "raw" and virtual_size = options.container_size
// (nullopt when unknown, as inside a gzip/xz/zstd wrapper), on the first Feed()
// or at Finish() for an empty stream. Each fed chunk becomes one Write() at the
// next guest offset, handed through without a copy. An empty stream is a
// 0-byte image: Begin() and no writes.
//
// With container_size given, a stream that runs past it fails before any byte
// past it is written, and one that ends short of it fails at Finish(); both are
// kCorruptImage. Without it the virtual size is the stream length.
//
// With DecoderOptions::start_offset (a resumed import), the first byte fed is
// guest byte start_offset and the writes go on from there; container_size is
// still the whole image's.
//
// memory_budget, scratch_dir and threads of DecoderOptions are not used: the
// decoder holds nothing but counters. Thread-safety: none; one thread feeds it.
#ifndef CDI_FORMATS_RAW_DECODER_H_
#define CDI_FORMATS_RAW_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// What detection saw in a raw image, reported in its details.
enum class RawContent {
  kDisk,     // nothing in particular
  kIso9660,  // an ISO 9660 signature at 0x8001: details get {"content", "iso"}
};

// `writer` must outlive the decoder.
std::unique_ptr<Decoder> MakeRawDecoder(GuestWriter* writer, const DecoderOptions& options,
                                        RawContent content = RawContent::kDisk);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_RAW_DECODER_H_
