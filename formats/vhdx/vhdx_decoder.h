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
// A BAT or metadata region placed after data it maps (qemu-img and Hyper-V
// place them first; another writer may not): the bytes between them past the
// header section are kept, as they pass, in a spool (formats/qcow2/spool.h:
// all-zero stretches cost nothing, other bytes go to memory within
// DecoderOptions::memory_budget, beyond it to an unlinked scratch file in
// DecoderOptions::scratch_dir), and the blocks among them are written out of
// it once the BAT is read; then the spool is emptied and nothing more is kept.
//
// GuestWriter calls: Begin() once the metadata is read (format "vhdx",
// virtual_size = the virtual disk size, details: subformat "dynamic" or
// "fixed" (the LeaveBlocksAllocated flag), block size, logical and physical
// sector size, virtual size, creator); once both the metadata and the BAT are
// read, Zero() for every block in state not present, undefined, zero or
// unmapped (adjacent ones in one call); Write() for each fully present block
// as its bytes pass, straight from the fed chunks (or, for blocks that
// passed before the BAT, from the spool right after it is read), the last
// block clipped to the virtual size. Describe() adds, once the BAT is read,
// "spooling" ("needed" when blocks came from the spool, else "not needed"),
// "spooled bytes" and "spooled bytes on disk".
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
//    how).
//  - kInvalidArgument: metadata, BAT and block list beyond
//    DecoderOptions::memory_budget.
//  - The spool's scratch file that cannot be created, written or read (no
//    space left, a missing directory): the error of its errno, naming the
//    scratch directory, and that a larger memory budget spools less to disk.
//
// Memory: 256 KiB for the header section, the metadata region and the BAT
// region as their lengths say, and 24 bytes per present block, checked
// against memory_budget before anything is allocated; spooled bytes within
// what is left of it, and a 1 MiB buffer to write out spooled blocks held on
// disk. Thread-safety: none.
#ifndef CDI_FORMATS_VHDX_VHDX_DECODER_H_
#define CDI_FORMATS_VHDX_VHDX_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder. DecoderOptions::threads is not used:
// nothing is inflated.
std::unique_ptr<Decoder> MakeVhdxDecoder(GuestWriter* writer, const DecoderOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_VHDX_VHDX_DECODER_H_
