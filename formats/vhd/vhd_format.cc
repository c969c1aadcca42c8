#include "formats/vhd/vhd_format.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "common/text.h"
namespace cdi::formats::vhd {
namespace {

constexpr std::string_view kFooterCookie = "conectix";
constexpr std::string_view kHeaderCookie = "cxsparse";
constexpr char kCheckAdvice[] = "; the image is corrupt: export it again from its source";

Status Corrupt(const std::string& what) { return CorruptImageError("VHD " + what + kCheckAdvice); }

bool HasCookie(std::span<const uint8_t> bytes, std::string_view cookie) {
  return bytes.size() >= cookie.size() &&
         std::memcmp(bytes.data(), cookie.data(), cookie.size()) == 0;
}

bool IsPowerOfTwo(uint64_t value) { return value != 0 && (value & (value - 1)) == 0; }

std::string CreatorText(const uint8_t* footer) {
  std::string app;
  for (size_t i = 0; i < 4; ++i) {
    char c = static_cast<char>(footer[kFooterCreatorAppOffset + i]);
    app += (c >= 0x20 && c < 0x7F) ? c : '?';
  }
  while (!app.empty() && app.back() == ' ') app.pop_back();
  uint32_t version = LoadBe32(footer + kFooterCreatorVersionOffset);
  return app + " " + std::to_string(version >> 16) + "." + std::to_string(version & 0xFFFF);
}

}  // namespace

uint32_t LoadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

uint64_t LoadBe64(const uint8_t* p) { return (uint64_t{LoadBe32(p)} << 32) | LoadBe32(p + 4); }

uint32_t Checksum(std::span<const uint8_t> structure, size_t checksum_offset) {
  uint32_t sum = 0;
  for (size_t i = 0; i < structure.size(); ++i) {
    if (i >= checksum_offset && i < checksum_offset + 4) continue;
    sum += structure[i];
  }
  return ~sum;
}

bool LooksLikeFooter(std::span<const uint8_t> bytes) {
  return bytes.size() == kFooterSize && HasCookie(bytes, kFooterCookie) &&
         Checksum(bytes, kFooterChecksumOffset) == LoadBe32(bytes.data() + kFooterChecksumOffset);
}

Result<Footer> ParseFooter(std::span<const uint8_t> bytes, const std::string& where) {
  if (bytes.size() != kFooterSize || !HasCookie(bytes, kFooterCookie)) {
    return Corrupt(where + ": the cookie is not \"conectix\"");
  }
  const uint32_t stored = LoadBe32(bytes.data() + kFooterChecksumOffset);
  const uint32_t computed = Checksum(bytes, kFooterChecksumOffset);
  if (stored != computed) {
    return Corrupt(where + ": checksum " + Hex(stored) + " does not match its contents (" +
                   Hex(computed) + ")");
  }
  Footer footer;
  footer.disk_type = LoadBe32(bytes.data() + kFooterDiskTypeOffset);
  footer.data_offset = LoadBe64(bytes.data() + kFooterDataOffsetOffset);
  footer.current_size = LoadBe64(bytes.data() + kFooterCurrentSizeOffset);
  footer.creator = CreatorText(bytes.data());
  if (footer.disk_type == kDiskTypeDifferencing) {
    return UnsupportedError(
        "differencing VHD images need their parent; this importer reads one image alone: "
        "merge it into a standalone image ('qemu-img convert -O qcow2' on the child, with its "
        "parent beside it) and import that");
  }
  if (footer.disk_type != kDiskTypeFixed && footer.disk_type != kDiskTypeDynamic) {
    return UnsupportedError("VHD " + where + ": disk type " + std::to_string(footer.disk_type) +
                            " is not one this importer reads (2, fixed, or 3, dynamic)");
  }
  return footer;
}

Result<DynamicHeader> ParseDynamicHeader(std::span<const uint8_t> bytes, uint64_t header_offset,
                                         uint64_t current_size,
                                         std::optional<uint64_t> container_size) {
  if (bytes.size() != kDynamicHeaderSize || !HasCookie(bytes, kHeaderCookie)) {
    return Corrupt("dynamic disk header at " + Hex(header_offset) +
                   ": the cookie is not \"cxsparse\"");
  }
  const uint32_t stored = LoadBe32(bytes.data() + kHeaderChecksumOffset);
  const uint32_t computed = Checksum(bytes, kHeaderChecksumOffset);
  if (stored != computed) {
    return Corrupt("dynamic disk header: checksum " + Hex(stored) +
                   " does not match its contents (" + Hex(computed) + ")");
  }
  const uint32_t version = LoadBe32(bytes.data() + kHeaderVersionOffset);
  if (version != kHeaderVersion) {
    return UnsupportedError("VHD dynamic disk header version " + Hex(version) +
                            " is not one this importer reads (0x10000)");
  }
  DynamicHeader header;
  header.table_offset = LoadBe64(bytes.data() + kHeaderTableOffsetOffset);
  header.max_table_entries = LoadBe32(bytes.data() + kHeaderMaxTableEntriesOffset);
  header.block_size = LoadBe32(bytes.data() + kHeaderBlockSizeOffset);

  if (!IsPowerOfTwo(header.block_size) || header.block_size < kSectorSize) {
    return Corrupt("dynamic disk header: block size " + std::to_string(header.block_size) +
                   " is not a power of two of at least 512");
  }
  const uint64_t sectors = header.block_size / kSectorSize;
  header.bitmap_size =
      static_cast<uint32_t>(((sectors + 7) / 8 + kSectorSize - 1) / kSectorSize * kSectorSize);
  if (current_size > kMaxDynamicSize) {
    return UnsupportedError("VHD current size " + std::to_string(current_size) +
                            " bytes is past the 2040 GiB limit of dynamic VHD images");
  }
  const uint64_t covered = uint64_t{header.max_table_entries} * header.block_size;
  if (covered < current_size) {
    return Corrupt("dynamic disk header: max table entries " +
                   std::to_string(header.max_table_entries) + " of " +
                   std::to_string(header.block_size) + "-byte blocks cover " +
                   std::to_string(covered) + " bytes, less than the current size " +
                   std::to_string(current_size));
  }
  // Some writers add one spare entry when the size is a multiple of the block.
  if (covered - current_size > header.block_size) {
    return Corrupt("dynamic disk header: max table entries " +
                   std::to_string(header.max_table_entries) + " of " +
                   std::to_string(header.block_size) + "-byte blocks cover " +
                   std::to_string(covered) + " bytes, more than a block past the current size " +
                   std::to_string(current_size));
  }
  const uint64_t bat_bytes = uint64_t{header.max_table_entries} * 4;
  const uint64_t header_end = header_offset + kDynamicHeaderSize;
  if (header.table_offset < header_end) {
    if (header.table_offset + bat_bytes > header_offset) {
      return Corrupt("dynamic disk header: the BAT at " + Hex(header.table_offset) +
                     " overlaps the header at " + Hex(header_offset));
    }
    if (header.table_offset < kFooterSize) {
      return Corrupt("dynamic disk header: the BAT at " + Hex(header.table_offset) +
                     " overlaps the footer copy at 0");
    }
    return UnsupportedError("VHD block allocation table at " + Hex(header.table_offset) +
                            " comes before the dynamic disk header at " + Hex(header_offset) +
                            "; a streaming import reads them in order: convert the image with "
                            "'qemu-img convert -O qcow2' and import that");
  }
  if (header.table_offset > (uint64_t{1} << 62) ||
      (container_size.has_value() &&
       (*container_size < kFooterSize ||
        header.table_offset + bat_bytes > *container_size - kFooterSize))) {
    return Corrupt("dynamic disk header: the BAT at " + Hex(header.table_offset) + " (" +
                   std::to_string(bat_bytes) + " bytes) lies past the end of the image" +
                   (container_size ? " (" + std::to_string(*container_size) + " bytes)" : ""));
  }
  return header;
}

}  // namespace cdi::formats::vhd
