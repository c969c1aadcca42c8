// The VDI (VirtualBox Disk Image) on-disk layout: field offsets, constants and
// little-endian loads.
//
// A VDI file is a pre-header (a text line "<<< ... >>>", the signature and the
// version), a header, the block map (one little-endian uint32 per guest block)
// and then the data blocks, each block_size bytes, at offset_data + index *
// block_size. All numbers are little-endian. Nothing here validates; the
// header parser (vdi_header.h) checks every value against the limits below.
#ifndef CDI_FORMATS_VDI_VDI_FORMAT_H_
#define CDI_FORMATS_VDI_VDI_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace cdi::formats::vdi {

// --- Pre-header ---------------------------------------------------------------

inline constexpr size_t kTextBytes = 0x40;  // "<<< Oracle VM VirtualBox Disk Image >>>\n"
inline constexpr size_t kSignatureOffset = 0x40;
inline constexpr uint32_t kSignature = 0xBEDA107F;
inline constexpr size_t kVersionOffset = 0x44;  // major << 16 | minor
inline constexpr uint32_t kVersion1_1 = 0x00010001;

// --- Header (version 1) ---------------------------------------------------------

inline constexpr size_t kHeaderSizeOffset = 0x48;  // bytes from here to the header's end
inline constexpr size_t kImageTypeOffset = 0x4C;
inline constexpr size_t kImageFlagsOffset = 0x50;
inline constexpr size_t kDescriptionOffset = 0x54;  // 256 bytes of text
inline constexpr size_t kOffsetBmapOffset = 0x154;
inline constexpr size_t kOffsetDataOffset = 0x158;
inline constexpr size_t kCylindersOffset = 0x15C;  // legacy geometry, unused
inline constexpr size_t kSectorSizeOffset = 0x168;
inline constexpr size_t kDiskSizeOffset = 0x170;  // uint64
inline constexpr size_t kBlockSizeOffset = 0x178;
inline constexpr size_t kBlockExtraOffset = 0x17C;  // bytes of per-block metadata before each block
inline constexpr size_t kBlocksInImageOffset = 0x180;
inline constexpr size_t kBlocksAllocatedOffset = 0x184;
inline constexpr size_t kUuidImageOffset = 0x188;
inline constexpr size_t kUuidLastSnapOffset = 0x198;
inline constexpr size_t kUuidLinkOffset = 0x1A8;
inline constexpr size_t kUuidParentOffset = 0x1B8;
inline constexpr size_t kUuidBytes = 16;

// The decoder reads the first sector whole: the pre-header and the largest
// header version 1 (0x48 + 0x190 bytes) fit in it.
inline constexpr size_t kHeaderSectorBytes = 512;
// header_size: 0x180 for version 1 as written by qemu, 0x190 for the
// "version 1 plus" header VirtualBox writes (it adds the logical geometry).
inline constexpr uint32_t kMinHeaderSize = 0x180;
inline constexpr uint32_t kMaxHeaderSize = kHeaderSectorBytes - kHeaderSizeOffset;

// image_type.
inline constexpr uint32_t kTypeDynamic = 1;  // blocks allocated as written
inline constexpr uint32_t kTypeStatic = 2;   // every block allocated at creation
inline constexpr uint32_t kTypeUndo = 3;
inline constexpr uint32_t kTypeDiff = 4;  // a differencing image over a parent

inline constexpr uint32_t kSectorSize = 512;
// The only block size qemu reads (VirtualBox's default as well).
inline constexpr uint32_t kBlockSize = 1u << 20;
// The most blocks a map may have, so that its bytes fit in 32 bits.
inline constexpr uint32_t kMaxBlocksInImage = UINT32_MAX / 4;
inline constexpr uint64_t kMaxDiskSize = uint64_t{kMaxBlocksInImage} * kBlockSize;

// --- Block map ----------------------------------------------------------------

inline constexpr size_t kMapEntryBytes = 4;
// Entries at or above kMapZero read as zero: kMapZero marks a block that was
// discarded (zero), kMapUnallocated one never written.
inline constexpr uint32_t kMapUnallocated = 0xFFFFFFFF;
inline constexpr uint32_t kMapZero = 0xFFFFFFFE;

inline uint32_t LoadLE32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t LoadLE64(const uint8_t* p) {
  return uint64_t{LoadLE32(p)} | uint64_t{LoadLE32(p + 4)} << 32;
}

}  // namespace cdi::formats::vdi

#endif  // CDI_FORMATS_VDI_VDI_FORMAT_H_
