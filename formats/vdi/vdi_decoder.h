// Streaming VDI decoder: container bytes in file order in, guest writes out.
//
// The image is read once, front to back. The first sector holds the header
// (vdi_header.h), which is checked whole before Begin(). The block map follows
// it and always precedes the data, so the decoder reads the map entry by entry
// and inverts it (data block index -> guest block, 4 bytes per allocated block,
// held within DecoderOptions::memory_budget). Guest blocks the map marks
// unallocated or zero become GuestWriter::Zero as the map passes (adjacent
// ones in one call). Each data block is then written at its guest offset as
// its bytes stream past, zero bytes and all; the tail of the last block past
// the virtual size is dropped, as are data blocks no map entry names and any
// bytes after the last allocated block.
//
// Refused before any write: what ParseHeader refuses, and an inverted map
// beyond the memory budget (kInvalidArgument). Refused as the map streams
// past (kCorruptImage): an entry naming a data block at or past "blocks
// allocated", and two guest blocks naming one data block. A stream that ends
// before the last allocated data block is complete is kCorruptImage at
// Finish(): truncated input never reads as zeros.
//
// Describe() details: "image type" (dynamic or static), "block size",
// "virtual size", "blocks allocated" (after Begin).
// Thread-safety: none; one thread feeds it, and every GuestWriter call comes
// from that thread.
#ifndef CDI_FORMATS_VDI_VDI_DECODER_H_
#define CDI_FORMATS_VDI_VDI_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder. scratch_dir and threads of
// DecoderOptions are not used: nothing is spooled or inflated.
std::unique_ptr<Decoder> MakeVdiDecoder(GuestWriter* writer, const DecoderOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_VDI_VDI_DECODER_H_
