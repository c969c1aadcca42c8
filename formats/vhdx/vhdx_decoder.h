// The VHDX decoder: one pass over a VHDX image (Hyper-V's format), front to
// back, placing each payload block at its guest offset as it streams past.
//
// Reads, in stream order: the header section (file identifier, the two
// headers, region table 1: the first 256 KiB, held whole), then the regions
// where they lie: the log (scanned, when the current header names one), the
// metadata region and the BAT region (each collected whole), then every
// payload block the BAT marks fully present, in file order. Bytes between
// these are skipped; bytes after the last of them are not part of the image.
//
// GuestWriter calls: Begin() once the metadata is read (format "vhdx",
// virtual_size = the virtual disk size, details: subformat "dynamic" or
// "fixed" (the LeaveBlocksAllocated flag), block size, logical and physical
// sector size, virtual size, creator); once both the metadata and the BAT are
// read, Zero() for every block in state not present, undefined, zero or
// unmapped (adjacent ones in one call); Write() for each fully present block
// as its bytes pass, straight from the fed chunks, the last block clipped to
// the virtual size.
//
// Errors (returned from Feed()/Finish(), and again from every later call):
//  - kCorruptImage: no "vhdxfile" signature; neither header valid (signature,
//    CRC-32C, version), or two different headers with one sequence number; a
//    bad region table (signature, CRC-32C, entry count, regions missing,
//    named twice, unaligned, inside the header section, overlapping each
//    other or the log, past the end); bad metadata (signature, entry count,
//    items missing, duplicated, out of the region, block size, sector sizes,
//    virtual size); a BAT region too small for the virtual size; a BAT entry
//    with an unknown state, a partially present block (only differencing
//    disks have them), a block pointing into the header section, the log,
//    the metadata or the BAT, past the end, or onto another block; input
//    that ends early, or is longer than DecoderOptions::container_size.
//  - kUnsupported: differencing disks (they need their parent); a region or
//    metadata item marked required that the format's version 1 does not
//    know; a log holding an entry of the current log GUID with a valid
//    checksum (writes qemu or Hyper-V would replay first: the message says
//    how); a BAT or metadata region that lies after data it maps (a
//    streaming read cannot go back for it).
//  - kInvalidArgument: metadata, BAT and block list beyond
//    DecoderOptions::memory_budget.
//
// Memory: 256 KiB for the header section, the metadata region and the BAT
// region as their lengths say, and 16 bytes per present block, checked
// against memory_budget before anything is allocated. Thread-safety: none.
#ifndef CDI_FORMATS_VHDX_VHDX_DECODER_H_
#define CDI_FORMATS_VHDX_VHDX_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder. scratch_dir and threads of
// DecoderOptions are not used: nothing is spooled or inflated.
std::unique_ptr<Decoder> MakeVhdxDecoder(GuestWriter* writer, const DecoderOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_VHDX_VHDX_DECODER_H_
