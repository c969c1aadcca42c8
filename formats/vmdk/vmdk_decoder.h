// Streaming VMDK decoder for hosted sparse extents ("KDMV"): container bytes
// in file order in, guest writes out, in one pass.
//
// The 512-byte header and the embedded descriptor are read and checked first
// (vmdk_header.h); only self-contained disks are decoded: createType
// streamOptimized (vmdk_stream_decoder.h, the disk inside an OVA) and
// monolithicSparse (vmdk_sparse_decoder.h). Every other createType, extents
// naming other files, and differencing disks are refused by name before any
// write. A truncated image is an error at Finish(), never zeros.
//
// Describe() details (after Begin): "subformat" (the createType), "version",
// "grain size" (bytes), "virtual size" (bytes), "compressed" ("yes"/"no").
#ifndef CDI_FORMATS_VMDK_VMDK_DECODER_H_
#define CDI_FORMATS_VMDK_VMDK_DECODER_H_

#include <memory>

#include "formats/decoder.h"

namespace cdi::formats {

// `writer` must outlive the decoder. Feed() and Finish() are called from one
// thread; every GuestWriter call comes from that thread.
std::unique_ptr<Decoder> MakeVmdkDecoder(GuestWriter* writer, const DecoderOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_VMDK_VMDK_DECODER_H_
