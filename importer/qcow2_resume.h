// The metadata a qcow2 import continued at a checkpoint needs again: the
// header, the active L1 table and the L2 tables before the checkpoint's
// source offset (formats/qcow2/resume_point.h), fetched with ranged
// requests (If-Range) from the image the checkpoint names.
//
// Typically a few requests and well under 1% of the image (one L2 table
// per 512 MiB of guest space for 64 KiB clusters); refcounts and snapshots
// are not fetched. Then the ranges the decoder held unmapped before the
// point (formats::ResumeAt::held, recorded in the checkpoint's
// format-state), merged into the metadata in host order, so that the
// continued decoder holds them again.
#ifndef CDI_IMPORTER_QCOW2_RESUME_H_
#define CDI_IMPORTER_QCOW2_RESUME_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "formats/qcow2/resume_point.h"
#include "importer/checkpoint.h"

namespace cdi::importer {

// The format a checkpoint of a qcow2 image (no wrapper) names.
inline constexpr std::string_view kQcow2Format = "qcow2";

// Fetches the metadata before checkpoint.source_offset of the image at
// spec.url, which must still be the one `checkpoint` names (length, ETag,
// Last-Modified). kCorruptImage when the image is not one to continue there
// (start over); a server that sends another image, or none, fails as
// ReadImageRange (sources/http/range_read.h). `bytes_fetched` counts the
// bytes received.
// A checkpoint's format-state for a qcow2 point that carries ranges of the
// spool (formats::ResumeAt::held): "held START-END START-END ..."; "" when
// there are none.
std::string EncodeQcow2Held(const std::vector<std::pair<uint64_t, uint64_t>>& held);
// The ranges back, checked to be in order, apart and before `point`;
// kCorruptImage otherwise.
Result<std::vector<std::pair<uint64_t, uint64_t>>> DecodeQcow2Held(std::string_view state,
                                                                 uint64_t point);

Result<formats::Qcow2Resume> FetchQcow2Resume(const SourceSpec& spec, const Checkpoint& checkpoint,
                                              const CancelToken* cancel, uint64_t* bytes_fetched);

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_QCOW2_RESUME_H_
