// The VHDX on-disk layout (Microsoft's "VHDX Format Specification" v1.0,
// [MS-VHDX]): the file identifier, the two headers, the region table, the
// metadata region and the block allocation table (BAT), and the checks on
// each. All numbers are little-endian.
//
// A VHDX file opens with a 1 MiB header section: the file identifier
// ("vhdxfile" and a creator string) at 0, header 1 at 64 KiB, header 2 at
// 128 KiB, region table 1 at 192 KiB and region table 2 at 256 KiB. The
// current header is the valid one with the larger sequence number; it names
// the log. The region table names the BAT and the metadata region, both at
// 1 MiB-aligned offsets anywhere after the header section. The metadata
// region holds a table of items: file parameters (block size, flags), the
// virtual disk size, the logical and physical sector sizes, the SCSI page 83
// identifier and, for differencing disks, the parent locator. Payload blocks
// lie at 1 MiB-aligned offsets named by the BAT, whose entries come in chunks:
// `chunk_ratio` payload entries, then one sector-bitmap entry.
//
// The parsers check every field a decoder relies on and return a
// kCorruptImage or kUnsupported Status naming it. Pure functions; thread-safe.
#ifndef CDI_FORMATS_VHDX_VHDX_FORMAT_H_
#define CDI_FORMATS_VHDX_VHDX_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"

namespace cdi::formats::vhdx {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * 1024;

// The header section.
inline constexpr uint64_t kHeaderSectionSize = kMiB;
inline constexpr uint64_t kCreatorOffset = 8;      // UTF-16LE, 512 bytes, diagnostic only
inline constexpr size_t kCreatorBytes = 512;
inline constexpr uint64_t kHeader1Offset = 64 * kKiB;
inline constexpr uint64_t kHeader2Offset = 128 * kKiB;
inline constexpr size_t kHeaderSize = 4 * kKiB;     // the CRC covers all of it
inline constexpr uint64_t kRegionTable1Offset = 192 * kKiB;
inline constexpr size_t kRegionTableSize = 64 * kKiB;  // the CRC covers all of it
// What the decoder keeps of the header section: up to the end of region table 1.
inline constexpr size_t kHeadBytes = kRegionTable1Offset + kRegionTableSize;

// Header fields (offsets within the 4 KiB header).
inline constexpr size_t kHeaderChecksumOffset = 4;
inline constexpr size_t kHeaderSequenceOffset = 8;         // u64
inline constexpr size_t kHeaderLogGuidOffset = 48;         // 16 bytes; zero: no log
inline constexpr size_t kHeaderLogVersionOffset = 64;      // u16
inline constexpr size_t kHeaderVersionOffset = 66;         // u16: 1
inline constexpr size_t kHeaderLogLengthOffset = 68;       // u32, a multiple of 1 MiB
inline constexpr size_t kHeaderLogOffsetOffset = 72;       // u64, a multiple of 1 MiB

// Region table: a 16-byte header ("regi", CRC, entry count, reserved), then
// 32-byte entries (GUID, u64 file offset, u32 length, u32 flags).
inline constexpr size_t kRegionChecksumOffset = 4;
inline constexpr size_t kRegionEntryCountOffset = 8;
inline constexpr size_t kRegionEntriesOffset = 16;
inline constexpr size_t kRegionEntrySize = 32;
inline constexpr uint32_t kMaxRegionEntries = 2047;
inline constexpr uint32_t kRegionRequired = 1;

// Metadata table: a 32-byte header ("metadata", reserved, u16 entry count),
// then 32-byte entries (GUID, u32 offset in the region, u32 length, u32 flags,
// reserved), in the first 64 KiB of the region.
inline constexpr size_t kMetadataTableSize = 64 * kKiB;
inline constexpr size_t kMetadataEntryCountOffset = 10;
inline constexpr size_t kMetadataEntriesOffset = 32;
inline constexpr size_t kMetadataEntrySize = 32;
inline constexpr uint32_t kMaxMetadataEntries = 2047;
inline constexpr uint32_t kMetadataRequired = 4;

// File parameters flags.
inline constexpr uint32_t kLeaveBlocksAllocated = 1;  // a fixed disk
inline constexpr uint32_t kHasParent = 2;             // a differencing disk

inline constexpr uint32_t kMinBlockSize = 1 * kMiB;
inline constexpr uint32_t kMaxBlockSize = 256 * kMiB;
inline constexpr uint64_t kMaxVirtualSize = 64ull << 40;  // 64 TiB
inline constexpr uint64_t kMaxSectorsPerBlock = 1ull << 23;

// BAT entries: the state in bits 0-2, the file offset in MiB in bits 20-63.
inline constexpr uint64_t kBatStateMask = 7;
inline constexpr uint64_t kBatOffsetMask = ~(kMiB - 1);
enum PayloadState : uint32_t {
  kBlockNotPresent = 0,
  kBlockUndefined = 1,
  kBlockZero = 2,
  kBlockUnmapped = 3,
  kBlockUnmappedV095 = 5,  // the value of drafts before 1.0, which qemu also reads as zero
  kBlockFullyPresent = 6,
  kBlockPartiallyPresent = 7,  // only in differencing disks
};

// Log entries: a 64-byte header at a 4 KiB boundary of the log.
inline constexpr size_t kLogSectorSize = 4 * kKiB;
inline constexpr size_t kLogEntryLengthOffset = 8;  // u32, a multiple of 4 KiB
inline constexpr size_t kLogEntryGuidOffset = 32;   // 16 bytes: the header's log GUID

using Guid = std::array<uint8_t, 16>;  // as stored in the file

// CRC-32C (Castagnoli) of `bytes` continuing from `crc` (start with 0),
// the 4 bytes at `zeroed_field` (an offset into `bytes`, if given) counted as
// zeros, as every VHDX checksum is computed.
uint32_t Crc32c(uint32_t crc, std::span<const uint8_t> bytes,
                std::optional<size_t> zeroed_field = std::nullopt);

uint16_t LoadLe16(const uint8_t* p);
uint32_t LoadLe32(const uint8_t* p);
uint64_t LoadLe64(const uint8_t* p);

struct Header {
  uint64_t sequence_number = 0;
  Guid log_guid{};
  uint32_t log_length = 0;
  uint64_t log_offset = 0;
  int index = 1;  // 1 or 2: which copy is current
  bool has_log() const;
};

// Chooses the current header from the two 4 KiB copies (at 64 and 128 KiB):
// the valid one (signature "head", CRC-32C, version 1) with the larger
// sequence number; two valid ones with one number must be identical. Checks
// the log's place: 1 MiB-aligned, after the header section, inside the
// container when its length is known.
Result<Header> ChooseHeader(std::span<const uint8_t> header1, std::span<const uint8_t> header2,
                            std::optional<uint64_t> container_size);

struct Region {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
};

struct RegionTable {
  Region bat;
  Region metadata;
};

// Parses region table 1 (64 KiB): signature "regi", CRC-32C, at most 2047
// entries, exactly one BAT and one metadata region, no required region it
// does not know, each region 1 MiB-aligned, non-empty, after the header
// section, inside the container when its length is known, overlapping
// neither the other regions nor `log` (kCorruptImage, kUnsupported for an
// unknown required region).
Result<RegionTable> ParseRegionTable(std::span<const uint8_t> table, const Region& log,
                                     std::optional<uint64_t> container_size);

struct Metadata {
  uint32_t block_size = 0;
  uint32_t flags = 0;  // kLeaveBlocksAllocated, kHasParent
  uint64_t virtual_size = 0;
  uint32_t logical_sector_size = 0;
  uint32_t physical_sector_size = 0;

  uint64_t chunk_ratio() const {
    return kMaxSectorsPerBlock * logical_sector_size / block_size;
  }
  uint64_t payload_blocks() const { return (virtual_size + block_size - 1) / block_size; }
  // Payload and sector-bitmap entries, as a disk without a parent has them.
  uint64_t bat_entries() const {
    uint64_t blocks = payload_blocks();
    return blocks == 0 ? 0 : blocks + (blocks - 1) / chunk_ratio();
  }
};

// Parses the metadata region (all of it, `region.size()` bytes): signature
// "metadata", at most 2047 entries inside the first 64 KiB, each known item
// once, inside the region and of its size, no required item it does not
// know; then the items: block size a power of two in [1 MiB, 256 MiB],
// logical sector size 512 or 4096, physical sector size 512 or 4096, a
// virtual size that is a multiple of the logical sector size and at most
// 64 TiB. A disk with a parent is kUnsupported by name.
Result<Metadata> ParseMetadata(std::span<const uint8_t> region);

// The creator string of the file identifier, as printable ASCII ("QEMU v7.2").
std::string Creator(std::span<const uint8_t> file_identifier);

}  // namespace cdi::formats::vhdx

#endif  // CDI_FORMATS_VHDX_VHDX_FORMAT_H_
