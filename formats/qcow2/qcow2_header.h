// Parsing and validation of the qcow2 header and its extensions, and the
// facts of a valid header as `cdi-image info` shows them.
#ifndef CDI_FORMATS_QCOW2_QCOW2_HEADER_H_
#define CDI_FORMATS_QCOW2_QCOW2_HEADER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/qcow2/qcow2_format.h"

namespace cdi::formats::qcow2 {

// The validated facts of a header. Offsets are host (file) offsets in bytes.
struct Header {
  uint32_t version = 0;
  Geometry geometry;
  uint64_t virtual_size = 0;
  uint32_t l1_size = 0;  // entries
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = kV2RefcountOrder;
  uint32_t header_length = kV2HeaderLength;
  CompressionType compression_type = CompressionType::kZlib;
  // End of the header extension area (after its end marker). Everything from
  // here to the end of the first cluster is unused by this decoder.
  uint64_t extensions_end = 0;

  uint64_t cluster_size() const { return geometry.cluster_size(); }
  bool dirty() const { return (incompatible_features & kIncompatDirty) != 0; }
  uint64_t l1_bytes() const { return uint64_t{l1_size} * kTableEntryBytes; }
  uint64_t refcount_table_bytes() const {
    return uint64_t{refcount_table_clusters} << geometry.cluster_bits;
  }
  // Host clusters one refcount block describes: cluster_size * 8 / refcount_bits.
  uint64_t refcount_block_entries() const { return (cluster_size() * 8) >> refcount_order; }
};

// The outcome of one parse attempt over the first bytes of an image.
struct HeaderParse {
  // Set when the header and its extensions are complete and valid.
  std::optional<Header> header;
  // Otherwise: how many bytes from the start of the image are needed before
  // trying again (always more than were given).
  uint64_t bytes_needed = 0;
};

// Parses `prefix`, the first bytes of an image. Returns an error when what is
// there already breaks the format, names a feature this decoder refuses, or
// exceeds qemu's limits; returns bytes_needed when the prefix is too short to
// decide. `container_size`, when known, bounds the tables the header points to.
// Pure function: no I/O, no allocation beyond the returned strings.
Result<HeaderParse> ParseHeader(std::span<const uint8_t> prefix,
                                std::optional<uint64_t> container_size);

// The image as its header describes it: format "qcow2", the virtual size, and
// the details "version", "cluster size", "compression type", "virtual size",
// "extended L2", then "dirty" and "internal snapshots" where they apply.
ImageDescription DescribeHeader(const Header& header);

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_QCOW2_HEADER_H_
