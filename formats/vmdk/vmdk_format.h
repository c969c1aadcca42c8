// The VMDK hosted sparse extent ("KDMV") on-disk layout: the 512-byte header,
// the stream markers of streamOptimized images, and the limits the decoder
// holds images to.
//
// All numbers are little-endian. Offsets and sizes are in 512-byte sectors
// unless a name says bytes. Nothing here validates; vmdk_header.h checks the
// header and the embedded descriptor before any value is used.
#ifndef CDI_FORMATS_VMDK_VMDK_FORMAT_H_
#define CDI_FORMATS_VMDK_VMDK_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace cdi::formats::vmdk {

inline constexpr uint64_t kSectorSize = 512;
inline constexpr size_t kHeaderSize = 512;

// Header field offsets (bytes).
inline constexpr size_t kMagicOffset = 0;               // "KDMV"
inline constexpr size_t kVersionOffset = 4;             // uint32: 1, 2 or 3
inline constexpr size_t kFlagsOffset = 8;               // uint32
inline constexpr size_t kCapacityOffset = 12;           // uint64 sectors
inline constexpr size_t kGrainSizeOffset = 20;          // uint64 sectors
inline constexpr size_t kDescriptorOffsetOffset = 28;   // uint64 sectors
inline constexpr size_t kDescriptorSizeOffset = 36;     // uint64 sectors
inline constexpr size_t kNumGtesPerGtOffset = 44;       // uint32
inline constexpr size_t kRgdOffsetOffset = 48;          // uint64 sectors
inline constexpr size_t kGdOffsetOffset = 56;           // uint64 sectors
inline constexpr size_t kOverHeadOffset = 64;           // uint64 sectors
inline constexpr size_t kUncleanShutdownOffset = 72;    // uint8
inline constexpr size_t kNewlineCharsOffset = 73;       // "\n \r\n"
inline constexpr size_t kCompressAlgorithmOffset = 77;  // uint16

inline constexpr uint32_t kMagic = 0x564d444b;  // "KDMV" read little-endian

// Flags.
inline constexpr uint32_t kFlagValidNewlineTest = 1u << 0;
inline constexpr uint32_t kFlagRedundantGd = 1u << 1;
inline constexpr uint32_t kFlagZeroedGrainGte = 1u << 2;
inline constexpr uint32_t kFlagCompressed = 1u << 16;
inline constexpr uint32_t kFlagMarkers = 1u << 17;

inline constexpr uint16_t kCompressNone = 0;
inline constexpr uint16_t kCompressDeflate = 1;

// gdOffset of a streamOptimized image whose directory follows the grains.
inline constexpr uint64_t kGdAtEnd = 0xFFFFFFFFFFFFFFFFull;

// Grain table entries per grain table: the only value any writer uses.
inline constexpr uint32_t kGtesPerGt = 512;
// A grain table entry of 1 reads as zero when kFlagZeroedGrainGte is set.
inline constexpr uint32_t kZeroedGrainGte = 1;

// Limits: grains up to 1 GiB (0x200000 sectors), the embedded descriptor up
// to 1 MiB, capacity up to 2^40 sectors (512 TiB).
inline constexpr uint64_t kMaxGrainSectors = 0x200000;
inline constexpr uint64_t kMaxDescriptorSectors = 2048;
inline constexpr uint64_t kMaxCapacitySectors = 1ull << 40;

// streamOptimized markers, each at a sector boundary: {uint64 value,
// uint32 size}. size > 0: a grain whose compressed bytes follow at once
// (value is its LBA). size == 0: a metadata marker; a uint32 type follows,
// the rest of the sector is padding, and `value` sectors of metadata follow.
inline constexpr size_t kMarkerHeaderSize = 12;
inline constexpr size_t kMetadataMarkerSize = 512;
enum class MarkerType : uint32_t { kEndOfStream = 0, kGrainTable = 1, kGrainDirectory = 2,
                                   kFooter = 3 };

inline uint16_t LoadLe16(std::span<const uint8_t> bytes, size_t offset) {
  return static_cast<uint16_t>(bytes[offset] | (bytes[offset + 1] << 8));
}
inline uint32_t LoadLe32(std::span<const uint8_t> bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value |= static_cast<uint32_t>(bytes[offset + i]) << (8 * i);
  return value;
}
inline uint64_t LoadLe64(std::span<const uint8_t> bytes, size_t offset) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value |= static_cast<uint64_t>(bytes[offset + i]) << (8 * i);
  return value;
}

}  // namespace cdi::formats::vmdk

#endif  // CDI_FORMATS_VMDK_VMDK_FORMAT_H_
