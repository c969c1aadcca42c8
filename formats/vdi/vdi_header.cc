#include "formats/vdi/vdi_header.h"

#include <algorithm>
#include <string>

#include "common/text.h"
namespace cdi::formats::vdi {
namespace {

constexpr char kCorruptAdvice[] =
    "; the image is corrupt: check it with 'qemu-img check', or export it again from VirtualBox";
constexpr char kConvertAdvice[] =
    "; convert it with 'qemu-img convert -O qcow2' (or 'VBoxManage clonemedium --format RAW') "
    "and import that";

Status Corrupt(const std::string& what) {
  return CorruptImageError("vdi header: " + what + kCorruptAdvice);
}

Status Unsupported(const std::string& what) {
  return UnsupportedError("vdi header: " + what + kConvertAdvice);
}

bool IsNullUuid(const uint8_t* p) {
  return std::all_of(p, p + kUuidBytes, [](uint8_t byte) { return byte == 0; });
}

Status PastEnd(const std::string& what, uint64_t end, uint64_t container_size) {
  return CorruptImageError("vdi header: " + what + " ends at byte " + std::to_string(end) +
                           ", past the end of the image (" + std::to_string(container_size) +
                           " bytes); the image is truncated: fetch it again");
}

}  // namespace

Result<Header> ParseHeader(std::span<const uint8_t, kHeaderSectorBytes> sector,
                           std::optional<uint64_t> container_size) {
  const uint8_t* p = sector.data();
  uint32_t signature = LoadLE32(p + kSignatureOffset);
  if (signature != kSignature) {
    return CorruptImageError("not a vdi image: the signature at 0x40 is " + Hex(signature) +
                             ", not " + Hex(kSignature));
  }
  uint32_t version = LoadLE32(p + kVersionOffset);
  if (version != kVersion1_1) {
    return Unsupported("version " + std::to_string(version >> 16) + "." +
                       std::to_string(version & 0xFFFF) + " is not supported (only 1.1 is)");
  }

  Header h;
  h.header_size = LoadLE32(p + kHeaderSizeOffset);
  h.image_type = LoadLE32(p + kImageTypeOffset);
  h.offset_bmap = LoadLE32(p + kOffsetBmapOffset);
  h.offset_data = LoadLE32(p + kOffsetDataOffset);
  uint32_t sector_size = LoadLE32(p + kSectorSizeOffset);
  h.disk_size = LoadLE64(p + kDiskSizeOffset);
  h.block_size = LoadLE32(p + kBlockSizeOffset);
  uint32_t block_extra = LoadLE32(p + kBlockExtraOffset);
  h.blocks_in_image = LoadLE32(p + kBlocksInImageOffset);
  h.blocks_allocated = LoadLE32(p + kBlocksAllocatedOffset);

  if (h.header_size < kMinHeaderSize || h.header_size > kMaxHeaderSize) {
    return Corrupt("header size " + std::to_string(h.header_size) + " is outside " +
                   std::to_string(kMinHeaderSize) + ".." + std::to_string(kMaxHeaderSize));
  }
  if (h.image_type == kTypeDiff || !IsNullUuid(p + kUuidParentOffset) ||
      !IsNullUuid(p + kUuidLinkOffset)) {
    return Unsupported(
        "the image is a differencing image (it has a parent image): import a merged image "
        "instead ('VBoxManage clonemedium' of the newest snapshot)");
  }
  if (h.image_type == kTypeUndo) return Unsupported("undo images (image type 3) are not supported");
  if (h.image_type != kTypeDynamic && h.image_type != kTypeStatic) {
    return Corrupt("image type " + std::to_string(h.image_type) +
                   " is unknown (1 is dynamic, 2 static)");
  }
  if (sector_size != kSectorSize) {
    return Unsupported("sector size " + std::to_string(sector_size) + " is not supported (only " +
                       std::to_string(kSectorSize) + " is)");
  }
  if (h.block_size != kBlockSize) {
    return Unsupported("block size " + std::to_string(h.block_size) + " is not supported (only " +
                       std::to_string(kBlockSize) + " is)");
  }
  if (block_extra != 0) {
    return Unsupported("per-block metadata (" + std::to_string(block_extra) +
                       " extra bytes per block) is not supported");
  }
  if (h.disk_size > kMaxDiskSize) {
    return Unsupported("disk size " + std::to_string(h.disk_size) + " exceeds the limit of " +
                       std::to_string(kMaxDiskSize) + " bytes");
  }
  // An odd disk size (some converters write one) counts as its next whole sector.
  h.disk_size = (h.disk_size + kSectorSize - 1) / kSectorSize * kSectorSize;
  uint64_t blocks_needed = (h.disk_size + h.block_size - 1) / h.block_size;
  if (h.blocks_in_image < blocks_needed) {
    return Corrupt("the block map has " + std::to_string(h.blocks_in_image) +
                   " entries, too few for the disk size of " + std::to_string(h.disk_size) +
                   " bytes (" + std::to_string(blocks_needed) + " blocks)");
  }
  if (h.blocks_in_image > blocks_needed) {
    return Corrupt("the block map has " + std::to_string(h.blocks_in_image) +
                   " entries, more than the " + std::to_string(blocks_needed) +
                   " blocks of the disk size of " + std::to_string(h.disk_size) + " bytes");
  }
  if (h.blocks_allocated > h.blocks_in_image) {
    return Corrupt("blocks allocated " + std::to_string(h.blocks_allocated) +
                   " exceeds the blocks in the image (" + std::to_string(h.blocks_in_image) + ")");
  }
  if (h.offset_bmap % kSectorSize != 0) {
    return Corrupt("block map offset " + Hex(h.offset_bmap) + " is not aligned to a sector");
  }
  if (h.offset_data % kSectorSize != 0) {
    return Corrupt("data offset " + Hex(h.offset_data) + " is not aligned to a sector");
  }
  if (h.offset_bmap < kHeaderSectorBytes) {
    return Corrupt("block map offset " + Hex(h.offset_bmap) + " overlaps the header");
  }
  if (h.offset_data < h.map_end()) {
    return Corrupt("data offset " + Hex(h.offset_data) + " overlaps the block map (" +
                   Hex(h.offset_bmap) + ", " + std::to_string(h.map_bytes()) + " bytes)");
  }
  if (container_size) {
    if (h.map_end() > *container_size) return PastEnd("the block map", h.map_end(), *container_size);
    if (h.data_end() > *container_size) {
      return PastEnd("the data of " + std::to_string(h.blocks_allocated) + " allocated blocks",
                     h.data_end(), *container_size);
    }
  }
  return h;
}

ImageDescription DescribeHeader(const Header& header) {
  ImageDescription description;
  description.format = "vdi";
  description.virtual_size = header.disk_size;
  description.details = {
      {"image type", header.image_type == kTypeStatic ? "static" : "dynamic"},
      {"block size", std::to_string(header.block_size)},
      {"virtual size", std::to_string(header.disk_size)},
      {"blocks allocated", std::to_string(header.blocks_allocated)},
  };
  return description;
}

}  // namespace cdi::formats::vdi
