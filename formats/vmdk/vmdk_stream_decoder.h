// The body of a streamOptimized VMDK: a sequence of markers from sector
// overHead on, decoded in one pass.
//
// Each grain marker {LBA, compressed size} is followed by the grain's zlib
// data, padded to a sector; it is inflated and written at LBA * 512 (the
// last grain of the capacity may inflate short, to the capacity's end).
// Metadata markers (grain tables, grain directory, footer) are skipped with
// their data: the markers alone place every grain. The end-of-stream marker
// ends the image; bytes after it are ignored. Images whose grain directory
// and tables lie before the grains (gdOffset not GD_AT_END, as qemu-img
// writes them) may lack that marker: their tables are read as they pass, only
// to count the grains they name, and such an image is complete when it ends
// right after that many grains. At Finish() the guest ranges no grain covered
// are Zero().
//
// Refused as corrupt: an LBA past the capacity or not at a grain boundary, a
// grain seen twice, a compressed size past what zlib can produce from one
// grain, data that does not inflate to the grain, an unknown marker type, and
// an image that ends before its end-of-stream marker (or, without one, before
// the last grain its tables name). Memory: one compressed and one inflated
// grain, the grain directory, plus the ranges covered (kept merged), all within
// DecoderOptions::memory_budget.
#ifndef CDI_FORMATS_VMDK_VMDK_STREAM_DECODER_H_
#define CDI_FORMATS_VMDK_VMDK_STREAM_DECODER_H_

#include <memory>

#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/vmdk/extent_body.h"
#include "formats/vmdk/vmdk_header.h"

namespace cdi::formats::vmdk {

// `position` is the offset of the first byte the body will be fed (the end
// of the descriptor). `writer` must outlive the body.
Result<std::unique_ptr<ExtentBody>> MakeStreamBody(GuestWriter* writer, const Header& header,
                                                    const DecoderOptions& options,
                                                    uint64_t position);

}  // namespace cdi::formats::vmdk

#endif  // CDI_FORMATS_VMDK_VMDK_STREAM_DECODER_H_
