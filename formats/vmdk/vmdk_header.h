// Parsing and checking of a VMDK hosted sparse extent's header and of the
// descriptor embedded in it.
//
// ParseHeader checks every field it returns against the format's limits and
// against the container's length when known. ParseDescriptor accepts only a
// self-contained disk: createType monolithicSparse or streamOptimized, one
// SPARSE extent (this file) whose length is the header's capacity, and no
// parent. Anything else is refused by name: an extent line can name any file
// on the host, and a differencing disk needs its parent.
//
// Errors: kCorruptImage for broken structure, kUnsupported for valid images
// this importer does not decode. Messages name the field and the problem.
#ifndef CDI_FORMATS_VMDK_VMDK_HEADER_H_
#define CDI_FORMATS_VMDK_VMDK_HEADER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::formats::vmdk {

struct Header {
  uint32_t version = 0;
  uint32_t flags = 0;
  uint64_t capacity = 0;           // sectors
  uint64_t grain_size = 0;         // sectors
  uint64_t descriptor_offset = 0;  // sectors
  uint64_t descriptor_size = 0;    // sectors
  uint64_t rgd_offset = 0;         // sectors
  uint64_t gd_offset = 0;          // sectors, or kGdAtEnd
  uint64_t overhead = 0;           // sectors before the first grain
  uint16_t compress_algorithm = 0;

  bool compressed() const;
  bool markers() const;
  uint64_t grain_bytes() const { return grain_size * 512; }
  uint64_t capacity_bytes() const { return capacity * 512; }
  // Grains the capacity spans (the last may be partly past the capacity).
  uint64_t grain_count() const { return (capacity + grain_size - 1) / grain_size; }
  // Grain tables the directory names.
  uint64_t gd_entries() const;
};

// `bytes` is the first 512 bytes of the image.
Result<Header> ParseHeader(std::span<const uint8_t> bytes, std::optional<uint64_t> container_size);

enum class Subformat { kMonolithicSparse, kStreamOptimized };

struct Descriptor {
  Subformat subformat = Subformat::kMonolithicSparse;
  std::string create_type;
};

// `text` is the descriptor area (NUL padding allowed); checked against `header`.
Result<Descriptor> ParseDescriptor(std::string_view text, const Header& header);

}  // namespace cdi::formats::vmdk

#endif  // CDI_FORMATS_VMDK_VMDK_HEADER_H_
