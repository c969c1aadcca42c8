#include "formats/detect.h"

#include <algorithm>
#include <array>

namespace cdi::formats {
namespace {

struct Magic {
  Format format;
  size_t offset;
  std::string_view bytes;
};

using namespace std::string_view_literals;

// CDI's table (pkg/image/filefmt.go). The order does not matter: no two
// entries can match the same bytes.
constexpr std::array kMagics = {
    Magic{Format::kGzip, 0, "\x1F\x8B"sv},
    Magic{Format::kXz, 0, "\xFD\x37\x7A\x58\x5A\x00"sv},
    Magic{Format::kZstd, 0, "\x28\xB5\x2F\xFD"sv},
    Magic{Format::kQcow2, 0, "QFI\xFB"sv},
    Magic{Format::kVmdk, 0, "KDMV"sv},
    Magic{Format::kVdi, 0x40, "\x7F\x10\xDA\xBE"sv},
    Magic{Format::kVhd, 0, "conectix"sv},
    Magic{Format::kVhdx, 0, "vhdxfile"sv},
};

// RFC 8878 section 3.1.2: a skippable frame starts with 0x184D2A5? (little-
// endian). Not in CDI's table, but pzstd starts every file with one: without
// this, a pzstd-made image would be imported as raw compressed bytes.
constexpr std::string_view kZstdSkippableMagicTail = "\x2A\x4D\x18";
constexpr uint8_t kZstdSkippableFirstByteMask = 0xF0;
constexpr uint8_t kZstdSkippableFirstByte = 0x50;

constexpr size_t kIsoSignatureOffset = 0x8001;
constexpr std::string_view kIsoSignature = "CD001";

bool HasBytesAt(std::span<const uint8_t> head, size_t offset, std::string_view bytes) {
  if (head.size() < offset || head.size() - offset < bytes.size()) return false;
  return std::equal(
      bytes.begin(), bytes.end(), head.begin() + static_cast<ptrdiff_t>(offset),
      [](char expected, uint8_t actual) { return static_cast<uint8_t>(expected) == actual; });
}

}  // namespace

Format Detect(std::span<const uint8_t> head) {
  for (const Magic& magic : kMagics) {
    if (HasBytesAt(head, magic.offset, magic.bytes)) return magic.format;
  }
  if (!head.empty() && (head[0] & kZstdSkippableFirstByteMask) == kZstdSkippableFirstByte &&
      HasBytesAt(head, 1, kZstdSkippableMagicTail)) {
    return Format::kZstd;
  }
  return Format::kRaw;
}

bool IsWrapper(Format format) {
  return format == Format::kGzip || format == Format::kXz || format == Format::kZstd;
}

bool HasIso9660Signature(std::span<const uint8_t> head) {
  return HasBytesAt(head, kIsoSignatureOffset, kIsoSignature);
}

std::string_view FormatName(Format format) {
  switch (format) {
    case Format::kRaw:
      return "raw";
    case Format::kGzip:
      return "gzip";
    case Format::kXz:
      return "xz";
    case Format::kZstd:
      return "zstd";
    case Format::kQcow2:
      return "qcow2";
    case Format::kVmdk:
      return "vmdk";
    case Format::kVdi:
      return "vdi";
    case Format::kVhd:
      return "vhd";
    case Format::kVhdx:
      return "vhdx";
  }
  return "unknown";
}

}  // namespace cdi::formats
