// The dynamic VHD decoder: one pass over a dynamic VHD ("vpc" to qemu), front
// to back, placing each block's data at its guest offset as it streams past.
//
// Reads, in stream order: the footer copy at 0, the dynamic disk header at the
// footer's data offset, the block allocation table (BAT) at the header's table
// offset, then every allocated block in host order, then the footer at the
// end. Bytes between these structures are skipped once the BAT is read; before
// it (qemu-img and Hyper-V place the header and the BAT first, other writers
// may not) they are kept in the spool (formats/qcow2/spool.h: memory within
// the budget, then an unlinked file in DecoderOptions::scratch_dir), and the
// blocks among them are written from there as soon as the BAT is read.
//
// GuestWriter calls: Begin() once the header is checked (format "vhd",
// virtual_size = the footer's current size, details: subformat, block size,
// current size, creator; after the BAT, Describe() adds "spooling" ("needed"
// or "not needed"), "spooled bytes" and "spooled bytes on disk"); Zero() for
// every unallocated block as soon as the BAT is read; for each allocated
// block, Zero() for the sectors its bitmap marks unwritten and Write() for the
// others, straight from the fed chunks (no copy) or from the spool. Data past
// the current size (in the last block) is not written.
//
// Errors (returned from Feed()/Finish(), and again from every later call):
//  - kCorruptImage: a bad cookie or checksum in the footer or header, a block
//    size that is not a power of two >= 512, a BAT that does not match the
//    current size, a BAT entry that points into the metadata or past the end,
//    two entries for one host sector or overlapping blocks, a missing or
//    different footer at the end, input shorter or longer than
//    DecoderOptions::container_size, input that ends early.
//  - kUnsupported: differencing disks (they need their parent), disk types
//    other than dynamic (a fixed image is read by the raw path, see
//    formats/vhd/fixed_footer.h), header versions other than 1.0, a BAT
//    that comes before the header.
//  - kInvalidArgument: a BAT larger than DecoderOptions::memory_budget allows.
//  - kIo: the spool's scratch file cannot be written.
//
// Memory: 12 bytes per BAT entry plus one sector bitmap, reserved from
// memory_budget before anything is allocated; the spool uses what is left.
// Thread-safety: none.
#ifndef CDI_FORMATS_VHD_VHD_DECODER_H_
#define CDI_FORMATS_VHD_VHD_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder.
std::unique_ptr<Decoder> MakeVhdDecoder(GuestWriter* writer, const DecoderOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_VHD_VHD_DECODER_H_
