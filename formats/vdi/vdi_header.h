// Parsing and validation of the VDI pre-header and header (the first sector),
// and the facts of a valid header as `cdi-image info` shows them.
#ifndef CDI_FORMATS_VDI_VDI_HEADER_H_
#define CDI_FORMATS_VDI_VDI_HEADER_H_

#include <cstdint>
#include <optional>
#include <span>

#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/vdi/vdi_format.h"

namespace cdi::formats::vdi {

// The validated facts of a header. Offsets are byte offsets in the file.
struct Header {
  uint32_t header_size = 0;
  uint32_t image_type = 0;  // kTypeDynamic or kTypeStatic
  uint32_t offset_bmap = 0;
  uint32_t offset_data = 0;
  uint64_t disk_size = 0;  // the virtual size: rounded up to a whole sector
  uint32_t block_size = 0;
  uint32_t blocks_in_image = 0;
  uint32_t blocks_allocated = 0;

  uint64_t map_bytes() const { return uint64_t{blocks_in_image} * kMapEntryBytes; }
  uint64_t map_end() const { return uint64_t{offset_bmap} + map_bytes(); }
  uint64_t data_end() const {
    return uint64_t{offset_data} + uint64_t{blocks_allocated} * block_size;
  }
};

// Parses the first kHeaderSectorBytes of an image. Refuses, each with its own
// message: a wrong signature or version, header sizes and types it does not
// know, differencing images (type 4, or a parent or link UUID), sector and
// block sizes qemu refuses, per-block metadata, offsets that are unaligned,
// overlap or lie past `container_size` (when known), a block map that does not
// match the disk size, and more allocated blocks than the map has entries.
// Unsupported features are kUnsupported, broken fields kCorruptImage.
// Pure function: no I/O.
Result<Header> ParseHeader(std::span<const uint8_t, kHeaderSectorBytes> sector,
                           std::optional<uint64_t> container_size);

// The image as its header describes it: format "vdi", the virtual size, and
// the details "image type", "block size", "virtual size", "blocks allocated".
ImageDescription DescribeHeader(const Header& header);

}  // namespace cdi::formats::vdi

#endif  // CDI_FORMATS_VDI_VDI_HEADER_H_
