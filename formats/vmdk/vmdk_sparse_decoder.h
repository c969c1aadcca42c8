// The body of a monolithicSparse VMDK: the grain directory, the grain tables,
// then the grains, placed as they stream past.
//
// The grain directory (at gdOffset; the redundant copy is skipped) names the
// grain tables; each table maps 512 grains to host sectors. Once every table
// has been read, the map is inverted (host sector -> guest grain) and each
// grain is written at its guest offset as its bytes pass, without copying.
// Directory entries of 0 and table entries of 0 (unallocated), or of 1 when
// the header's zeroed-grain flag is set, become Zero() as soon as read.
//
// A grain table or a grain that lies before the directory or the table that
// names it is read all the same: until every table is read, the bytes passed
// over go to the spool (formats/qcow2/spool.h: memory within the budget, then
// an unlinked file in DecoderOptions::scratch_dir), and what the map then
// finds among them is read from there; Describe() says "spooling" ("needed" or
// "not needed"), "spooled bytes" and "spooled bytes on disk". The redundant
// grain directory and the tables it names (qemu-img and VMware write them
// before the directory) are passed over, not kept: a grain or table among
// them is refused (kUnsupported). Refused as corrupt: tables or grains that
// overlap each other or the metadata, or lie past the end of the container.
// Memory: the directory, the redundant one while it passes, and 16 bytes per
// allocated grain, within DecoderOptions::memory_budget; the spool uses what
// is left.
#ifndef CDI_FORMATS_VMDK_VMDK_SPARSE_DECODER_H_
#define CDI_FORMATS_VMDK_VMDK_SPARSE_DECODER_H_

#include <memory>

#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/vmdk/extent_body.h"
#include "formats/vmdk/vmdk_header.h"

namespace cdi::formats::vmdk {

// `position` is the offset of the first byte the body will be fed (the end
// of the descriptor). `writer` must outlive the body.
Result<std::unique_ptr<ExtentBody>> MakeSparseBody(GuestWriter* writer, const Header& header,
                                                    const DecoderOptions& options,
                                                    uint64_t position);

}  // namespace cdi::formats::vmdk

#endif  // CDI_FORMATS_VMDK_VMDK_SPARSE_DECODER_H_
