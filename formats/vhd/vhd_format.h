// The VHD on-disk layout (Microsoft's "Virtual Hard Disk Image Format
// Specification"): the 512-byte footer, the 1024-byte dynamic disk header and
// the checks on both.
//
// All numbers are big-endian. A dynamic VHD is: a copy of the footer at 0, the
// dynamic disk header at the footer's data offset, the block allocation table
// (BAT) at the header's table offset, then blocks (a sector bitmap, then
// block_size bytes of data) and the footer again at the end. A fixed VHD is
// the guest data followed by the footer alone.
//
// ParseFooter and ParseDynamicHeader check every field a decoder relies on
// (cookie, checksum, disk type, sizes, offsets, limits) and return a
// kCorruptImage or kUnsupported Status naming the field. Pure functions;
// thread-safe.
#ifndef CDI_FORMATS_VHD_VHD_FORMAT_H_
#define CDI_FORMATS_VHD_VHD_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"

namespace cdi::formats::vhd {

inline constexpr size_t kFooterSize = 512;
inline constexpr size_t kDynamicHeaderSize = 1024;
inline constexpr uint64_t kSectorSize = 512;

// Footer fields ("Hard Disk Footer Format").
inline constexpr size_t kFooterCookieOffset = 0;       // "conectix"
inline constexpr size_t kFooterDataOffsetOffset = 16;  // u64: the dynamic header, or ~0 when fixed
inline constexpr size_t kFooterCreatorAppOffset = 28;  // 4 characters
inline constexpr size_t kFooterCreatorVersionOffset = 32;  // u32: major << 16 | minor
inline constexpr size_t kFooterCurrentSizeOffset = 48;     // u64: the guest size in bytes
inline constexpr size_t kFooterDiskTypeOffset = 60;        // u32
inline constexpr size_t kFooterChecksumOffset = 64;        // u32

// Dynamic disk header fields ("Dynamic Disk Header Format").
inline constexpr size_t kHeaderCookieOffset = 0;            // "cxsparse"
inline constexpr size_t kHeaderTableOffsetOffset = 16;      // u64: the BAT
inline constexpr size_t kHeaderVersionOffset = 24;          // u32: 0x00010000
inline constexpr size_t kHeaderMaxTableEntriesOffset = 28;  // u32
inline constexpr size_t kHeaderBlockSizeOffset = 32;        // u32
inline constexpr size_t kHeaderChecksumOffset = 36;         // u32

inline constexpr uint32_t kDiskTypeFixed = 2;
inline constexpr uint32_t kDiskTypeDynamic = 3;
inline constexpr uint32_t kDiskTypeDifferencing = 4;
inline constexpr uint32_t kHeaderVersion = 0x00010000;
inline constexpr uint32_t kUnallocated = 0xFFFFFFFF;  // a BAT entry for a block not stored

// The largest dynamic disk accepted: 0xFF000000 sectors (about 2040 GiB), the
// format's limit as Hyper-V and qemu apply it.
inline constexpr uint64_t kMaxDynamicSize = 0xFF000000ull * kSectorSize;

// One's complement of the byte sum, the checksum field itself counted as 0.
uint32_t Checksum(std::span<const uint8_t> structure, size_t checksum_offset);

uint32_t LoadBe32(const uint8_t* p);
uint64_t LoadBe64(const uint8_t* p);

struct Footer {
  uint32_t disk_type = 0;
  uint64_t data_offset = 0;
  uint64_t current_size = 0;
  std::string creator;  // "qem2 5.3": application and version, for details
};

// True when `bytes` (512) carry the cookie and a correct checksum.
bool LooksLikeFooter(std::span<const uint8_t> bytes);

// Parses and checks a footer. `where` names it in messages ("footer copy at
// offset 0", "footer at the end of the image"). Disk types other than fixed,
// dynamic and differencing are kUnsupported; differencing is kUnsupported by
// name. Sizes are not checked here (see the decoders).
Result<Footer> ParseFooter(std::span<const uint8_t> bytes, const std::string& where);

struct DynamicHeader {
  uint64_t table_offset = 0;
  uint32_t max_table_entries = 0;
  uint32_t block_size = 0;
  uint32_t bitmap_size = 0;  // bytes before each block's data: ceil(sectors / 8), rounded to 512
};

// Parses and checks the dynamic disk header found at `header_offset`, against
// the footer's current size and the container length when known: block size a
// power of two of at least 512, entries covering the current size and
// exceeding it by less than a block, the BAT after the header and inside the
// container.
Result<DynamicHeader> ParseDynamicHeader(std::span<const uint8_t> bytes, uint64_t header_offset,
                                         uint64_t current_size,
                                         std::optional<uint64_t> container_size);

}  // namespace cdi::formats::vhd

#endif  // CDI_FORMATS_VHD_VHD_FORMAT_H_
