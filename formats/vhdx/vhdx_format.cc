#include "formats/vhdx/vhdx_format.h"

#include "common/crc32c.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>


namespace cdi::formats::vhdx {
namespace {

using namespace std::string_view_literals;

constexpr char kCorruptAdvice[] =
    "; the image is corrupt: check it with 'qemu-img check' or export it again from its source";

// A GUID as written in the specification, stored the way the file holds it:
// the first three fields little-endian, the last eight bytes as they are.
constexpr Guid MakeGuid(uint32_t d1, uint16_t d2, uint16_t d3, std::array<uint8_t, 8> d4) {
  Guid g{};
  for (int i = 0; i < 4; ++i) g[i] = static_cast<uint8_t>(d1 >> (8 * i));
  for (int i = 0; i < 2; ++i) g[4 + i] = static_cast<uint8_t>(d2 >> (8 * i));
  for (int i = 0; i < 2; ++i) g[6 + i] = static_cast<uint8_t>(d3 >> (8 * i));
  for (int i = 0; i < 8; ++i) g[8 + i] = d4[i];
  return g;
}

// Region table entries ([MS-VHDX] 2.2.3.2).
constexpr Guid kBatGuid =
    MakeGuid(0x2DC27766, 0xF623, 0x4200, {0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08});
constexpr Guid kMetadataGuid =
    MakeGuid(0x8B7CA206, 0x4790, 0x4B9A, {0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E});

// Metadata items ([MS-VHDX] 2.6.2).
constexpr Guid kFileParametersGuid =
    MakeGuid(0xCAA16737, 0xFA36, 0x4D43, {0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B});
constexpr Guid kVirtualDiskSizeGuid =
    MakeGuid(0x2FA54224, 0xCD1B, 0x4876, {0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8});
constexpr Guid kPage83Guid =
    MakeGuid(0xBECA12AB, 0xB2E6, 0x4523, {0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46});
constexpr Guid kLogicalSectorSizeGuid =
    MakeGuid(0x8141BF1D, 0xA96F, 0x4709, {0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F});
constexpr Guid kPhysicalSectorSizeGuid =
    MakeGuid(0xCDA348C7, 0x445D, 0x4471, {0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56});
constexpr Guid kParentLocatorGuid =
    MakeGuid(0xA8D35F2D, 0xB30B, 0x454D, {0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C});

struct MetadataItem {
  const Guid* guid;
  const char* name;
  uint32_t size;  // the bytes the item must hold (0: any)
};

constexpr std::array kMetadataItems = {
    MetadataItem{&kFileParametersGuid, "file parameters", 8},
    MetadataItem{&kVirtualDiskSizeGuid, "virtual disk size", 8},
    MetadataItem{&kPage83Guid, "page 83 data", 16},
    MetadataItem{&kLogicalSectorSizeGuid, "logical sector size", 4},
    MetadataItem{&kPhysicalSectorSizeGuid, "physical sector size", 4},
    MetadataItem{&kParentLocatorGuid, "parent locator", 0},
};

bool Matches(const uint8_t* p, std::string_view signature) {
  return std::memcmp(p, signature.data(), signature.size()) == 0;
}

Guid GuidAt(const uint8_t* p) {
  Guid g;
  std::memcpy(g.data(), p, g.size());
  return g;
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// The header copy as the current-header choice sees it.
struct HeaderCopy {
  bool valid = false;
  std::string problem;  // why not, for the message when neither is
  Header header;
};

HeaderCopy ReadHeaderCopy(std::span<const uint8_t> bytes, int index) {
  HeaderCopy copy;
  if (bytes.size() < kHeaderSize || !Matches(bytes.data(), "head"sv)) {
    copy.problem = "no \"head\" signature";
    return copy;
  }
  const uint32_t stored = LoadLe32(bytes.data() + kHeaderChecksumOffset);
  if (Crc32c(0, bytes.first(kHeaderSize), kHeaderChecksumOffset) != stored) {
    copy.problem = "a bad CRC-32C checksum";
    return copy;
  }
  const uint16_t version = LoadLe16(bytes.data() + kHeaderVersionOffset);
  if (version != 1) {
    copy.problem = "version " + std::to_string(version) + ", not 1";
    return copy;
  }
  copy.valid = true;
  copy.header.sequence_number = LoadLe64(bytes.data() + kHeaderSequenceOffset);
  copy.header.log_guid = GuidAt(bytes.data() + kHeaderLogGuidOffset);
  copy.header.log_length = LoadLe32(bytes.data() + kHeaderLogLengthOffset);
  copy.header.log_offset = LoadLe64(bytes.data() + kHeaderLogOffsetOffset);
  copy.header.index = index;
  return copy;
}

Status Corrupt(const std::string& what) { return CorruptImageError(what + kCorruptAdvice); }

bool Overlap(const Region& a, const Region& b) { return a.offset < b.end() && b.offset < a.end(); }

}  // namespace

uint32_t Crc32c(uint32_t crc, std::span<const uint8_t> bytes, std::optional<size_t> zeroed_field) {
  if (!zeroed_field || *zeroed_field >= bytes.size()) return cdi::Crc32c(crc, bytes);
  static constexpr uint8_t kZeros[4] = {0, 0, 0, 0};
  const size_t field = *zeroed_field;
  const size_t after = std::min(bytes.size(), field + 4);
  crc = cdi::Crc32c(crc, bytes.first(field));
  crc = cdi::Crc32c(crc, std::span<const uint8_t>(kZeros, after - field));
  return cdi::Crc32c(crc, bytes.subspan(after));
}

uint16_t LoadLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

uint64_t LoadLe64(const uint8_t* p) { return uint64_t{LoadLe32(p)} | (uint64_t{LoadLe32(p + 4)} << 32); }

bool Header::has_log() const {
  return std::any_of(log_guid.begin(), log_guid.end(), [](uint8_t b) { return b != 0; });
}

Result<Header> ChooseHeader(std::span<const uint8_t> header1, std::span<const uint8_t> header2,
                            std::optional<uint64_t> container_size) {
  HeaderCopy first = ReadHeaderCopy(header1, 1);
  HeaderCopy second = ReadHeaderCopy(header2, 2);
  Header current;
  if (!first.valid && !second.valid) {
    return Corrupt("VHDX: neither header is valid (header 1 at 64 KiB has " + first.problem +
                   ", header 2 at 128 KiB has " + second.problem + ")");
  }
  if (first.valid && second.valid) {
    if (first.header.sequence_number == second.header.sequence_number) {
      // Two identical copies (as some tools write them) are one header.
      if (!std::equal(header1.begin(), header1.begin() + kHeaderSize, header2.begin())) {
        return Corrupt("VHDX: both headers carry sequence number " +
                       std::to_string(first.header.sequence_number) +
                       " but differ, so neither is the current one");
      }
      current = first.header;
    } else {
      current = first.header.sequence_number > second.header.sequence_number ? first.header
                                                                             : second.header;
    }
  } else {
    current = first.valid ? first.header : second.header;
  }
  const std::string where = "VHDX header " + std::to_string(current.index) + ": the log ";
  if (current.log_offset % kMiB != 0 || current.log_length % kMiB != 0) {
    return Corrupt(where + "(offset " + std::to_string(current.log_offset) + ", length " +
                   std::to_string(current.log_length) + ") is not aligned to 1 MiB");
  }
  if (current.log_length != 0 && current.log_offset < kHeaderSectionSize) {
    return Corrupt(where + "at offset " + std::to_string(current.log_offset) +
                   " lies inside the header section");
  }
  if (container_size && current.log_length != 0 &&
      (current.log_offset > *container_size ||
       current.log_length > *container_size - current.log_offset)) {
    return Corrupt(where + "ends at " + std::to_string(current.log_offset + current.log_length) +
                   ", past the end of the " + std::to_string(*container_size) + "-byte image");
  }
  if (current.log_offset > kMaxVirtualSize * 2) {
    return Corrupt(where + "offset " + std::to_string(current.log_offset) + " is beyond any image");
  }
  return current;
}

Result<RegionTable> ParseRegionTable(std::span<const uint8_t> table, const Region& log,
                                     std::optional<uint64_t> container_size) {
  if (table.size() < kRegionTableSize || !Matches(table.data(), "regi"sv)) {
    return Corrupt("VHDX: the region table at 192 KiB has no \"regi\" signature");
  }
  const uint32_t stored = LoadLe32(table.data() + kRegionChecksumOffset);
  if (Crc32c(0, table.first(kRegionTableSize), kRegionChecksumOffset) != stored) {
    return Corrupt("VHDX: the region table at 192 KiB has a bad CRC-32C checksum");
  }
  const uint32_t count = LoadLe32(table.data() + kRegionEntryCountOffset);
  if (count > kMaxRegionEntries) {
    return Corrupt("VHDX: the region table claims " + std::to_string(count) +
                   " entries, more than the 2047 it can hold");
  }
  std::optional<Region> bat;
  std::optional<Region> metadata;
  std::vector<Region> seen;
  if (log.length != 0) seen.push_back(log);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* entry = table.data() + kRegionEntriesOffset + size_t{i} * kRegionEntrySize;
    const Guid guid = GuidAt(entry);
    const Region region{LoadLe64(entry + 16), LoadLe32(entry + 24)};
    const uint32_t flags = LoadLe32(entry + 28);
    const std::string name = guid == kBatGuid        ? "the BAT region"
                             : guid == kMetadataGuid ? "the metadata region"
                                                     : "region entry " + std::to_string(i);
    if (guid != kBatGuid && guid != kMetadataGuid) {
      if (flags & kRegionRequired) {
        return UnsupportedError("VHDX: " + name +
                                " is a required region this importer does not know; convert the "
                                "image with 'qemu-img convert -O qcow2' where it was made and "
                                "import that");
      }
      continue;  // optional regions may be ignored
    }
    if ((guid == kBatGuid && bat) || (guid == kMetadataGuid && metadata)) {
      return Corrupt("VHDX: the region table names " + name + " twice");
    }
    if (region.offset % kMiB != 0 || region.length % kMiB != 0 || region.length == 0) {
      return Corrupt("VHDX: " + name + " (offset " + std::to_string(region.offset) + ", length " +
                     std::to_string(region.length) +
                     ") is empty or not aligned to 1 MiB");
    }
    if (region.offset < kHeaderSectionSize) {
      return Corrupt("VHDX: " + name + " at offset " + std::to_string(region.offset) +
                     " lies inside the header section");
    }
    if (region.offset > kMaxVirtualSize * 2 ||
        (container_size && (region.offset > *container_size ||
                            region.length > *container_size - region.offset))) {
      return Corrupt("VHDX: " + name + " ends at " + std::to_string(region.end()) +
                     ", past the end of the image");
    }
    for (const Region& other : seen) {
      if (Overlap(region, other)) {
        return Corrupt("VHDX: " + name + " (offset " + std::to_string(region.offset) +
                       ") overlaps the log or another region");
      }
    }
    seen.push_back(region);
    (guid == kBatGuid ? bat : metadata) = region;
  }
  if (!bat || !metadata) {
    return Corrupt(std::string("VHDX: the region table has no ") +
                   (!bat ? "BAT region" : "metadata region"));
  }
  return RegionTable{*bat, *metadata};
}

Result<Metadata> ParseMetadata(std::span<const uint8_t> region) {
  if (region.size() < kMetadataTableSize || !Matches(region.data(), "metadata"sv)) {
    return Corrupt("VHDX: the metadata region has no \"metadata\" signature");
  }
  const uint32_t count = LoadLe16(region.data() + kMetadataEntryCountOffset);
  if (count > kMaxMetadataEntries) {
    return Corrupt("VHDX: the metadata table claims " + std::to_string(count) +
                   " entries, more than the 2047 it can hold");
  }
  std::array<std::optional<std::span<const uint8_t>>, kMetadataItems.size()> items;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* entry = region.data() + kMetadataEntriesOffset + size_t{i} * kMetadataEntrySize;
    const Guid guid = GuidAt(entry);
    const uint32_t offset = LoadLe32(entry + 16);
    const uint32_t length = LoadLe32(entry + 20);
    const uint32_t flags = LoadLe32(entry + 24);
    auto known = std::find_if(kMetadataItems.begin(), kMetadataItems.end(),
                              [&](const MetadataItem& item) { return *item.guid == guid; });
    if (known == kMetadataItems.end()) {
      if (flags & kMetadataRequired) {
        return UnsupportedError("VHDX: metadata entry " + std::to_string(i) +
                                " is a required item this importer does not know; convert the "
                                "image with 'qemu-img convert -O qcow2' where it was made and "
                                "import that");
      }
      continue;
    }
    const size_t k = static_cast<size_t>(known - kMetadataItems.begin());
    const std::string name = std::string("the metadata item \"") + known->name + "\"";
    if (items[k]) return Corrupt("VHDX: " + name + " appears twice");
    if (length != 0 && (offset < kMetadataTableSize || length > kMiB ||
                        uint64_t{offset} + length > region.size())) {
      return Corrupt("VHDX: " + name + " (offset " + std::to_string(offset) + ", length " +
                     std::to_string(length) + ") lies outside the metadata region's items");
    }
    if (known->size != 0 && length < known->size) {
      return Corrupt("VHDX: " + name + " holds " + std::to_string(length) + " bytes, not " +
                     std::to_string(known->size));
    }
    items[k] = length == 0 ? std::span<const uint8_t>() : region.subspan(offset, length);
  }
  for (size_t k = 0; k < kMetadataItems.size(); ++k) {
    if (*kMetadataItems[k].guid == kParentLocatorGuid || items[k]) continue;
    return Corrupt(std::string("VHDX: the metadata region has no \"") + kMetadataItems[k].name +
                   "\" item");
  }
  Metadata m;
  m.block_size = LoadLe32(items[0]->data());
  m.flags = LoadLe32(items[0]->data() + 4);
  m.virtual_size = LoadLe64(items[1]->data());
  m.logical_sector_size = LoadLe32(items[3]->data());
  m.physical_sector_size = LoadLe32(items[4]->data());
  if (m.flags & kHasParent) {
    return UnsupportedError(
        "VHDX: the image is a differencing disk, which holds only the changes to a parent disk; "
        "merge it into its parent (Hyper-V's Merge-VHD) or convert it where its parent lies, "
        "with 'qemu-img convert -O qcow2', and import the result");
  }
  if (!IsPowerOfTwo(m.block_size) || m.block_size < kMinBlockSize ||
      m.block_size > kMaxBlockSize) {
    return Corrupt("VHDX: the block size " + std::to_string(m.block_size) +
                   " is not a power of two from 1 MiB to 256 MiB");
  }
  for (auto [size, what] : {std::pair{m.logical_sector_size, "logical"},
                            std::pair{m.physical_sector_size, "physical"}}) {
    if (size != 512 && size != 4096) {
      return Corrupt(std::string("VHDX: the ") + what + " sector size " + std::to_string(size) +
                     " is neither 512 nor 4096");
    }
  }
  if (m.virtual_size > kMaxVirtualSize || m.virtual_size % m.logical_sector_size != 0) {
    return Corrupt("VHDX: the virtual disk size " + std::to_string(m.virtual_size) +
                   (m.virtual_size > kMaxVirtualSize
                        ? " is beyond the format's 64 TiB"
                        : " is not a multiple of the logical sector size"));
  }
  return m;
}

std::string Creator(std::span<const uint8_t> file_identifier) {
  std::string out;
  for (size_t i = kCreatorOffset; i + 1 < kCreatorOffset + kCreatorBytes &&
                                  i + 1 < file_identifier.size();
       i += 2) {
    const uint16_t c = LoadLe16(file_identifier.data() + i);
    if (c == 0) break;
    out.push_back(c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '?');
  }
  return out;
}

}  // namespace cdi::formats::vhdx
