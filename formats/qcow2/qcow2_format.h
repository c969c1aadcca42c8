// The qcow2 on-disk layout: field offsets, masks and small helpers.
//
// Every constant cites the section of qemu's docs/interop/qcow2.txt that
// defines it. All numbers in qcow2 are big-endian ("General"). Nothing here
// validates; callers check the values against the limits below before use.
#ifndef CDI_FORMATS_QCOW2_QCOW2_FORMAT_H_
#define CDI_FORMATS_QCOW2_QCOW2_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/text.h"

namespace cdi::formats::qcow2 {

// --- "Header" -----------------------------------------------------------------

inline constexpr uint32_t kMagic = 0x514649fb;  // bytes 0-3: "QFI\xfb"

// Byte offsets of the header fields.
inline constexpr size_t kMagicOffset = 0;                   // 0-3
inline constexpr size_t kVersionOffset = 4;                 // 4-7: 2 or 3
inline constexpr size_t kBackingFileOffsetOffset = 8;       // 8-15: 0 if none
inline constexpr size_t kBackingFileSizeOffset = 16;        // 16-19
inline constexpr size_t kClusterBitsOffset = 20;            // 20-23
inline constexpr size_t kSizeOffset = 24;                   // 24-31: virtual size in bytes
inline constexpr size_t kCryptMethodOffset = 32;            // 32-35
inline constexpr size_t kL1SizeOffset = 36;                 // 36-39: entries in the active L1
inline constexpr size_t kL1TableOffsetOffset = 40;          // 40-47
inline constexpr size_t kRefcountTableOffsetOffset = 48;    // 48-55
inline constexpr size_t kRefcountTableClustersOffset = 56;  // 56-59
inline constexpr size_t kNbSnapshotsOffset = 60;            // 60-63
inline constexpr size_t kSnapshotsOffsetOffset = 64;        // 64-71
inline constexpr size_t kIncompatibleFeaturesOffset = 72;   // 72-79 (version 3)
inline constexpr size_t kCompatibleFeaturesOffset = 80;     // 80-87 (version 3)
inline constexpr size_t kAutoclearFeaturesOffset = 88;      // 88-95 (version 3)
inline constexpr size_t kRefcountOrderOffset = 96;          // 96-99 (version 3)
inline constexpr size_t kHeaderLengthOffset = 100;          // 100-103 (version 3)
inline constexpr size_t kCompressionTypeOffset = 104;       // 104 ("Additional fields")

// "For version 2, the header is exactly 72 bytes in length"; "For version 3 or
// higher, the header length is at least 104 bytes".
inline constexpr uint32_t kV2HeaderLength = 72;
inline constexpr uint32_t kV3MinHeaderLength = 104;

// cluster_bits: "Must not be less than 9"; "qemu ... has an implementation
// limit of 2 MB as the maximum cluster size".
inline constexpr uint32_t kMinClusterBits = 9;
inline constexpr uint32_t kMaxClusterBits = 21;
// "if the image has Extended L2 Entries then cluster_bits must be at least 14".
inline constexpr uint32_t kMinExtendedL2ClusterBits = 14;

// crypt_method: "0 for no encryption, 1 for AES encryption, 2 for LUKS encryption".
inline constexpr uint32_t kCryptNone = 0;
inline constexpr uint32_t kCryptAes = 1;
inline constexpr uint32_t kCryptLuks = 2;

// size: "qemu has an implementation limit of 32 MB as the maximum L1 table size".
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;
// "Host cluster management": "qemu has an implementation limit of 8 MB as the
// maximum refcount table size".
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;
// qemu refuses more internal snapshots than this (QCOW_MAX_SNAPSHOTS); each
// snapshot table entry is at least 40 bytes ("Snapshot table entry").
inline constexpr uint32_t kMaxSnapshots = 65536;
inline constexpr uint64_t kMinSnapshotEntryBytes = 40;

// incompatible_features bits.
inline constexpr uint64_t kIncompatDirty = 1ull << 0;        // "Dirty bit"
inline constexpr uint64_t kIncompatCorrupt = 1ull << 1;      // "Corrupt bit"
inline constexpr uint64_t kIncompatDataFile = 1ull << 2;     // "External data file bit"
inline constexpr uint64_t kIncompatCompression = 1ull << 3;  // "Compression type bit"
inline constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;   // "Extended L2 Entries"
inline constexpr uint64_t kIncompatKnownMask = (1ull << 5) - 1;

// refcount_order: "This value may not exceed 6"; "For version 2 images, the
// order is always assumed to be 4".
inline constexpr uint32_t kMaxRefcountOrder = 6;
inline constexpr uint32_t kV2RefcountOrder = 4;

// compression_type: "0: zlib", "1: zstd".
enum class CompressionType : uint8_t { kZlib = 0, kZstd = 1 };

// --- "Header extensions" --------------------------------------------------------

inline constexpr uint32_t kExtEnd = 0x00000000;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureNameTable = 0x6803f857;
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtFullDiskEncryption = 0x0537be77;
inline constexpr uint32_t kExtDataFileName = 0x44415441;
inline constexpr size_t kExtHeaderBytes = 8;  // type (4) + length (4)
// "Feature name table": type (1), bit number (1), name (46).
inline constexpr size_t kFeatureNameEntryBytes = 48;
inline constexpr size_t kFeatureNameBytes = 46;
inline constexpr uint8_t kFeatureTypeIncompatible = 0;

// --- "Host cluster management" --------------------------------------------------

// Refcount table entry: "Bit 0 - 8: Reserved (set to 0)"; "9 - 63: ... offset".
inline constexpr uint64_t kRefcountTableEntryReservedMask = 0x1ffull;
inline constexpr uint64_t kRefcountTableEntryOffsetMask = ~kRefcountTableEntryReservedMask;

// --- "Cluster mapping" ----------------------------------------------------------

// Every table entry (L1, L2, refcount table) is a 64-bit big-endian word.
inline constexpr uint64_t kTableEntryBytes = 8;

// L1 table entry: "9 - 55: Bits 9-55 of the offset ... at which the L2 table
// starts"; bits 0-8 and 56-62 reserved; bit 63 is the "refcount is one" flag.
inline constexpr uint64_t kL1EntryOffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL1EntryReservedMask = 0x7f000000000001ffull;

// L2 table entry: "62: ... 1 for compressed clusters"; "63: ... refcount is
// exactly one" (informational for reading).
inline constexpr uint64_t kL2EntryCopied = 1ull << 63;
inline constexpr uint64_t kL2EntryCompressed = 1ull << 62;
// Standard Cluster Descriptor: "Bit 0: If set to 1, the cluster reads as all
// zeros" (version 3 without extended L2 only); "1 - 8: Reserved";
// "9 - 55: Bits 9-55 of host cluster offset"; "56 - 61: Reserved".
inline constexpr uint64_t kL2EntryZero = 1ull << 0;
inline constexpr uint64_t kL2EntryOffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL2EntryReservedMask = 0x3f000000000001feull;

// "a virtual cluster must currently map to a host offset below 64 PB (56 bits)".
inline constexpr uint64_t kMaxHostOffset = 1ull << 56;

// Compressed clusters count their length in 512-byte sectors.
inline constexpr uint64_t kSectorSize = 512;

// --- "Extended L2 Entries" ------------------------------------------------------

// "standard data clusters are divided into 32 subclusters of the same size".
inline constexpr uint32_t kSubclustersPerCluster = 32;
inline constexpr uint32_t kSubclusterBitsPerCluster = 5;
// Subcluster Allocation Bitmap: "Bit 0 - 31: Allocation status"; "32 - 63:
// Subcluster reads as zeros".
inline constexpr uint64_t kSubclusterAllocMask = 0xffffffffull;
inline constexpr uint32_t kSubclusterZeroShift = 32;

// --- "Snapshots" ------------------------------------------------------------------

// Snapshot table entry: the fixed part, then extra data, the unique ID and
// the name, padded "to the next multiple of 8".
inline constexpr size_t kSnapshotL1OffsetOffset = 0;        // 0-7
inline constexpr size_t kSnapshotL1SizeOffset = 8;          // 8-11: entries
inline constexpr size_t kSnapshotIdSizeOffset = 12;         // 12-13
inline constexpr size_t kSnapshotNameSizeOffset = 14;       // 14-15
inline constexpr size_t kSnapshotExtraDataSizeOffset = 36;  // 36-39
inline constexpr size_t kSnapshotEntryFixedBytes = 40;
// qemu's limits: QCOW_MAX_SNAPSHOT_EXTRA_DATA and QCOW_MAX_SNAPSHOTS_SIZE.
inline constexpr uint32_t kMaxSnapshotExtraData = 1024;
inline constexpr uint64_t kMaxSnapshotTableBytes = 64ull << 20;

// --- Helpers ---------------------------------------------------------------------

inline uint32_t LoadBE32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

inline uint64_t LoadBE64(const uint8_t* p) {
  return (uint64_t{LoadBE32(p)} << 32) | uint64_t{LoadBE32(p + 4)};
}

inline uint16_t LoadBE16(const uint8_t* p) {
  return static_cast<uint16_t>((uint16_t{p[0]} << 8) | uint16_t{p[1]});
}

// Rounds up to a power-of-two alignment; the caller ensures no overflow.
inline constexpr uint64_t AlignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}
inline constexpr uint64_t AlignDown(uint64_t value, uint64_t alignment) {
  return value & ~(alignment - 1);
}

// The geometry every table lookup derives from cluster_bits, as qemu's
// block/qcow2.h does.
struct Geometry {
  uint32_t cluster_bits = 16;
  bool extended_l2 = false;

  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
  // "l2_entries = (cluster_size / sizeof(uint64_t))", or half of it with
  // extended L2 entries, which are 128 bits wide.
  uint64_t l2_entry_bytes() const { return extended_l2 ? 16 : 8; }
  uint32_t l2_bits() const { return cluster_bits - (extended_l2 ? 4 : 3); }
  uint64_t l2_entries() const { return uint64_t{1} << l2_bits(); }
  // Guest bytes one L2 table maps (one L1 entry).
  uint32_t l1_entry_bits() const { return cluster_bits + l2_bits(); }
  uint64_t subcluster_size() const {
    return extended_l2 ? cluster_size() >> kSubclusterBitsPerCluster : cluster_size();
  }

  uint64_t offset_into_cluster(uint64_t offset) const { return offset & (cluster_size() - 1); }
  uint64_t l1_index_to_guest_offset(uint64_t l1_index) const { return l1_index << l1_entry_bits(); }
  // Number of L1 entries needed to map `virtual_size` bytes (qemu's size_to_l1).
  uint64_t size_to_l1(uint64_t virtual_size) const {
    uint32_t shift = l1_entry_bits();
    return (virtual_size >> shift) + ((virtual_size & ((uint64_t{1} << shift) - 1)) != 0);
  }

  // Compressed Clusters Descriptor: "x = 62 - (cluster_bits - 8)"; bits 0..x-1
  // are the host offset and bits x..61 the number of additional sectors.
  uint32_t compressed_sectors_shift() const { return 62 - (cluster_bits - 8); }
  uint64_t compressed_offset_mask() const {
    return (uint64_t{1} << compressed_sectors_shift()) - 1;
  }
  uint64_t compressed_sectors_mask() const { return (uint64_t{1} << (cluster_bits - 8)) - 1; }
};

// Where a compressed cluster's bytes lie: [host_offset, host_offset + length).
// The range ends at a sector boundary; "the compressed data does not
// necessarily occupy all of the bytes in the final sector".
struct CompressedRange {
  uint64_t host_offset = 0;
  uint64_t length = 0;
};

inline CompressedRange DecodeCompressedEntry(uint64_t l2_entry, const Geometry& geometry) {
  CompressedRange range;
  range.host_offset = l2_entry & geometry.compressed_offset_mask();
  uint64_t sectors =
      ((l2_entry >> geometry.compressed_sectors_shift()) & geometry.compressed_sectors_mask()) + 1;
  range.length = sectors * kSectorSize - (range.host_offset & (kSectorSize - 1));
  return range;
}

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_QCOW2_FORMAT_H_
