// OVA in disk mode: a tar archive (an OVF package) whose disk is imported.
//
// The archive is read once, front to back, by the tar reader
// (formats/tar/tar_reader.h). The OVF descriptor (the first entry whose name
// ends in ".ovf", which the OVF specification puts first) is read (at most
// kMaxOvfBytes) for the disks it declares: each Disk element's fileRef,
// resolved through the References section's File elements to an entry name,
// in the order of the DiskSection. The disk entry is then fed, as it streams
// past, to an image pipeline of its own (formats/pipeline.h): detected and
// decoded as any image is (a streamOptimized VMDK, as every OVA holds,
// gzip-compressed or not), into the GuestWriter.
//
// Which entry is the disk: the one disk the OVF declares; without an OVF
// before it, the first entry whose name ends in ".vmdk".
//
// Describe(): before the disk is found, format "ova"; then the disk's own
// description with {"ova disk", NAME} as its first detail.
//
// Errors (kUnsupported unless said otherwise):
//  - an OVF declaring several disks: refused by name, listing them (one VM
//    disk per import: extract the one wanted with 'tar -xf' and import it);
//  - without an OVF, a second ".vmdk" entry after the first was imported
//    (refused at its header, listing both);
//  - an archive holding no disk: the OVF's disk missing from the archive, or
//    no ".vmdk" entry (kCorruptImage when the OVF names one);
//  - an OVF descriptor larger than kMaxOvfBytes;
//  - the tar reader's and the disk pipeline's errors, unchanged.
//
// Memory: the OVF descriptor (kMaxOvfBytes at most), the tar reader's, and
// the disk pipeline's (formats/pipeline.h). Thread-safety: none.
#ifndef CDI_FORMATS_OVA_OVA_DECODER_H_
#define CDI_FORMATS_OVA_OVA_DECODER_H_

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"
#include "formats/decoder.h"

namespace cdi::formats {

struct PipelineOptions;

inline constexpr size_t kMaxOvfBytes = 4u << 20;

// True when `head` starts with a tar header block: "ustar" at 257 and a
// valid header checksum.
bool LooksLikeTar(std::span<const uint8_t> head);

// The disks an OVF descriptor declares, as entry names, in DiskSection
// order; kCorruptImage when a Disk names a File the References lack.
Result<std::vector<std::string>> OvfDisks(std::string_view ovf);

// `writer` must outlive the decoder. `options` are those of the disk's own
// pipeline; its container_size is replaced by the disk entry's size.
std::unique_ptr<Decoder> MakeOvaDecoder(GuestWriter* writer, const PipelineOptions& options);

}  // namespace cdi::formats

#endif  // CDI_FORMATS_OVA_OVA_DECODER_H_
