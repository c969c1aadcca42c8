// What a checkpoint inside an xz stream records besides its offsets (the
// checkpoint's format-state, importer/checkpoint.h): the stream's integrity
// check and where the stream began, which the next import needs to decode
// the blocks that follow and to check the stream's Index against the point
// (formats/xz_blocks.h).
//
//   format-state xz-check 4 stream-offset 0 stream-image-offset 0
//
// Thread-safety: plain functions.
#ifndef CDI_IMPORTER_RESUME_XZ_H_
#define CDI_IMPORTER_RESUME_XZ_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cdi/status.h"
#include "formats/pipeline.h"

namespace cdi::importer {

std::string EncodeXzState(const formats::XzStreamStart& stream);

// Parses a format-state and checks it against the point it belongs to (the
// checkpoint's source-offset and target-bytes): the stream begins before the
// point, and its check is one the .xz format defines. kCorruptImage saying
// what is wrong.
Result<formats::XzStreamStart> DecodeXzState(std::string_view text, uint64_t source_offset,
                                             uint64_t target_bytes);

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_RESUME_XZ_H_
