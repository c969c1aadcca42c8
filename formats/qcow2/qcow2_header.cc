#include "formats/qcow2/qcow2_header.h"

#include <array>
#include <string>
#include <utility>

namespace cdi::formats::qcow2 {
namespace {

constexpr char kCheckAdvice[] = "; the image is corrupt: check it with 'qemu-img check'";

Status Corrupt(std::string what) {
  return CorruptImageError("qcow2 header: " + what + kCheckAdvice);
}

// Asks for more bytes.
HeaderParse Need(uint64_t bytes) {
  HeaderParse parse;
  parse.bytes_needed = bytes;
  return parse;
}

// Names of incompatible feature bits, from qcow2.txt and from the image's own
// "Feature name table" extension (which may name bits we do not know).
using FeatureNames = std::array<std::string, 64>;

FeatureNames KnownIncompatibleNames() {
  FeatureNames names;
  names[0] = "dirty bit";
  names[1] = "corrupt bit";
  names[2] = "external data file";
  names[3] = "compression type";
  names[4] = "extended L2 entries";
  return names;
}

std::string DescribeUnknownBits(uint64_t bits, const FeatureNames& names) {
  std::string text;
  for (int bit = 0; bit < 64; ++bit) {
    if ((bits & (uint64_t{1} << bit)) == 0) continue;
    if (!text.empty()) text += ", ";
    text += "bit " + std::to_string(bit);
    if (!names[bit].empty()) text += " (" + names[bit] + ")";
  }
  return text;
}

// Checks a table the header points to: cluster-aligned, past the header
// cluster, below 2^56 and inside the container when its size is known.
Status CheckTable(const char* what, uint64_t offset, uint64_t bytes, const Geometry& geometry,
                  std::optional<uint64_t> container_size) {
  if (geometry.offset_into_cluster(offset) != 0) {
    return Corrupt(std::string(what) + " offset " + Hex(offset) + " is not aligned to a cluster");
  }
  if (offset < geometry.cluster_size()) {
    return Corrupt(std::string(what) + " at " + Hex(offset) + " overlaps the header cluster");
  }
  if (offset >= kMaxHostOffset || bytes > kMaxHostOffset - offset) {
    return Corrupt(std::string(what) + " at " + Hex(offset) + " (" + std::to_string(bytes) +
                   " bytes) lies beyond the 64 PiB limit of host offsets");
  }
  if (container_size && offset + bytes > *container_size) {
    return CorruptImageError("qcow2 header: " + std::string(what) + " at " + Hex(offset) + " (" +
                             std::to_string(bytes) + " bytes) extends past the end of the image (" +
                             std::to_string(*container_size) +
                             " bytes); the image is truncated or corrupt: fetch it again, or "
                             "check it with 'qemu-img check'");
  }
  return Status::Ok();
}

}  // namespace

Result<HeaderParse> ParseHeader(std::span<const uint8_t> prefix,
                                std::optional<uint64_t> container_size) {
  const uint8_t* p = prefix.data();
  if (prefix.size() < 8) return Need(8);
  if (LoadBE32(p + kMagicOffset) != kMagic) {
    return CorruptImageError("not a qcow2 image: the magic bytes are not \"QFI\\xfb\"");
  }
  Header h;
  h.version = LoadBE32(p + kVersionOffset);
  if (h.version != 2 && h.version != 3) {
    return UnsupportedError("qcow2 version " + std::to_string(h.version) +
                            " is not supported (only versions 2 and 3 are); convert the image "
                            "with 'qemu-img convert -O qcow2' or to raw");
  }
  // "For version 2, the header is exactly 72 bytes"; version 3 has at least 104.
  const uint64_t fixed_length = h.version == 2 ? kV2HeaderLength : kV3MinHeaderLength;
  if (prefix.size() < fixed_length) return Need(fixed_length);

  // cluster_bits (20-23): 9 <= bits ("Must not be less than 9"); qemu's limit is 2 MiB.
  uint32_t cluster_bits = LoadBE32(p + kClusterBitsOffset);
  if (cluster_bits < kMinClusterBits) {
    return Corrupt("cluster_bits is " + std::to_string(cluster_bits) +
                   ", below the minimum of 9 (512-byte clusters)");
  }
  if (cluster_bits > kMaxClusterBits) {
    return UnsupportedError("qcow2 cluster size 2^" + std::to_string(cluster_bits) +
                            " is larger than the 2 MiB that qemu supports; convert the image "
                            "with 'qemu-img convert' to a smaller cluster size");
  }
  h.geometry.cluster_bits = cluster_bits;
  const uint64_t cluster_size = h.geometry.cluster_size();

  if (h.version == 3) {
    // header_length (100-103): "at least 104 bytes and must be a multiple of 8".
    h.header_length = LoadBE32(p + kHeaderLengthOffset);
    if (h.header_length < kV3MinHeaderLength || h.header_length % 8 != 0) {
      return Corrupt("header_length " + std::to_string(h.header_length) +
                     " is not a multiple of 8 of at least 104");
    }
    // "The first cluster of a qcow2 image contains the file header".
    if (h.header_length > cluster_size) {
      return Corrupt("header_length " + std::to_string(h.header_length) +
                     " exceeds the cluster size " + std::to_string(cluster_size));
    }
  }
  if (container_size && *container_size < h.header_length) {
    return Corrupt("the image is only " + std::to_string(*container_size) +
                   " bytes long, shorter than its header");
  }
  if (prefix.size() < h.header_length) return Need(h.header_length);

  // Header extensions, "directly after the image header" and inside the first
  // cluster. Like qemu, the area ends at an end marker or at the cluster end.
  FeatureNames names = KnownIncompatibleNames();
  uint64_t offset = h.header_length;
  bool ended = false;
  while (offset < cluster_size) {
    if (offset + kExtHeaderBytes > cluster_size) {
      return Corrupt("header extension at byte " + std::to_string(offset) +
                     " runs past the first cluster");
    }
    if (prefix.size() < offset + kExtHeaderBytes) return Need(offset + kExtHeaderBytes);
    uint32_t type = LoadBE32(p + offset);
    uint32_t length = LoadBE32(p + offset + 4);
    offset += kExtHeaderBytes;
    if (type == kExtEnd) {
      ended = true;
      break;
    }
    if (length > cluster_size - offset) {
      return Corrupt("header extension " + Hex(type) + " at byte " +
                     std::to_string(offset - kExtHeaderBytes) + " has length " +
                     std::to_string(length) + ", past the end of the first cluster");
    }
    if (prefix.size() < offset + length) return Need(offset + length);
    if (type == kExtFeatureNameTable) {
      // "Feature name table": 48-byte entries; names help explain refusals.
      for (uint64_t e = 0; e + kFeatureNameEntryBytes <= length; e += kFeatureNameEntryBytes) {
        const uint8_t* entry = p + offset + e;
        if (entry[0] != kFeatureTypeIncompatible || entry[1] >= 64) continue;
        std::string name;
        for (size_t i = 0; i < kFeatureNameBytes && entry[2 + i] != 0; ++i) {
          char c = static_cast<char>(entry[2 + i]);
          name += (c >= 0x20 && c < 0x7f) ? c : '?';
        }
        if (names[entry[1]].empty()) names[entry[1]] = name;
      }
    }
    // Other extensions need no action: a backing format name is moot because
    // backing files are refused; the encryption and external data file
    // extensions come with header fields that are refused below; bitmaps are
    // not part of the guest's data; unknown ones "can be safely ignored".
    offset += AlignUp(length, 8);
  }
  h.extensions_end = ended ? offset : cluster_size;

  // Every field is read below from a prefix of at least header_length bytes.
  const uint64_t backing_file_offset = LoadBE64(p + kBackingFileOffsetOffset);
  h.virtual_size = LoadBE64(p + kSizeOffset);
  const uint32_t crypt_method = LoadBE32(p + kCryptMethodOffset);
  h.l1_size = LoadBE32(p + kL1SizeOffset);
  h.l1_table_offset = LoadBE64(p + kL1TableOffsetOffset);
  h.refcount_table_offset = LoadBE64(p + kRefcountTableOffsetOffset);
  h.refcount_table_clusters = LoadBE32(p + kRefcountTableClustersOffset);
  h.nb_snapshots = LoadBE32(p + kNbSnapshotsOffset);
  h.snapshots_offset = LoadBE64(p + kSnapshotsOffsetOffset);
  uint32_t compression_type = 0;
  if (h.version == 3) {
    h.incompatible_features = LoadBE64(p + kIncompatibleFeaturesOffset);
    h.compatible_features = LoadBE64(p + kCompatibleFeaturesOffset);
    h.autoclear_features = LoadBE64(p + kAutoclearFeaturesOffset);
    h.refcount_order = LoadBE32(p + kRefcountOrderOffset);
    // compression_type (104): present only when header_length covers it.
    if (h.header_length > kCompressionTypeOffset) compression_type = p[kCompressionTypeOffset];
  }

  // incompatible_features: "An implementation must fail to open an image if an
  // unknown bit is set."
  const uint64_t unknown = h.incompatible_features & ~kIncompatKnownMask;
  if (unknown != 0) {
    return UnsupportedError("qcow2 image uses incompatible features this importer does not know: " +
                            DescribeUnknownBits(unknown, names) +
                            "; convert the image with 'qemu-img convert -O qcow2' or to raw");
  }
  if (h.incompatible_features & kIncompatCorrupt) {
    return CorruptImageError(
        "qcow2 image is marked corrupt (incompatible feature bit 1); repair it with "
        "'qemu-img check -r all' and try again");
  }
  if (h.incompatible_features & kIncompatDataFile) {
    return UnsupportedError(
        "qcow2 images with an external data file are not supported; convert the image "
        "with 'qemu-img convert' into a self-contained one");
  }
  if (crypt_method == kCryptAes || crypt_method == kCryptLuks) {
    return UnsupportedError(std::string("encrypted qcow2 images (") +
                            (crypt_method == kCryptAes ? "AES" : "LUKS") +
                            ") are not supported; decrypt the image with 'qemu-img convert' "
                            "and import the result");
  }
  if (crypt_method != kCryptNone) {
    return Corrupt("unknown encryption method " + std::to_string(crypt_method));
  }
  if (backing_file_offset != 0) {
    return UnsupportedError(
        "qcow2 backing files are not supported; flatten the image with qemu-img convert");
  }

  // compression_type: with the "Compression type bit" it "must be present and
  // not zero"; without it, it "must not be present or must be zero".
  if (h.incompatible_features & kIncompatCompression) {
    if (compression_type == 0) {
      return Corrupt("the compression type bit is set but the compression type is zlib");
    }
    if (compression_type != static_cast<uint32_t>(CompressionType::kZstd)) {
      return UnsupportedError("qcow2 compression type " + std::to_string(compression_type) +
                              " is unknown (only zlib and zstd are supported); convert the "
                              "image with 'qemu-img convert'");
    }
    h.compression_type = CompressionType::kZstd;
  } else if (compression_type != 0) {
    return Corrupt("compression type " + std::to_string(compression_type) +
                   " is set without the compression type bit");
  }
  if (h.incompatible_features & kIncompatExtendedL2) {
    h.geometry.extended_l2 = true;
    if (cluster_bits < kMinExtendedL2ClusterBits) {
      return Corrupt("extended L2 entries need clusters of at least 16 KiB, the cluster size is " +
                     std::to_string(cluster_size));
    }
  }
  // refcount_order: "This value may not exceed 6".
  if (h.refcount_order > kMaxRefcountOrder) {
    return Corrupt("refcount_order " + std::to_string(h.refcount_order) +
                   " exceeds 6 (64-bit refcounts)");
  }

  // size and l1_size: the L1 table must be able to map the whole virtual disk,
  // and qemu limits it to 32 MiB.
  if (uint64_t{h.l1_size} > kMaxL1Bytes / kTableEntryBytes) {
    return UnsupportedError("qcow2 L1 table of " + std::to_string(h.l1_bytes()) +
                            " bytes exceeds qemu's limit of 32 MiB; the image cannot be read "
                            "by qemu either");
  }
  const uint64_t l1_needed = h.geometry.size_to_l1(h.virtual_size);
  if (l1_needed > h.l1_size) {
    return Corrupt("the L1 table has " + std::to_string(h.l1_size) +
                   " entries, too few for the virtual size of " + std::to_string(h.virtual_size) +
                   " bytes (" + std::to_string(l1_needed) + " needed)");
  }
  if (h.l1_size > 0) {
    CDI_RETURN_IF_ERROR(
        CheckTable("L1 table", h.l1_table_offset, h.l1_bytes(), h.geometry, container_size));
  }

  // refcount_table_offset / refcount_table_clusters: qemu refuses images
  // without a refcount table, and tables over 8 MiB.
  if (h.refcount_table_clusters == 0) {
    return Corrupt("the image has no refcount table (refcount_table_clusters is 0)");
  }
  if (h.refcount_table_bytes() > kMaxRefcountTableBytes) {
    return UnsupportedError("qcow2 refcount table of " + std::to_string(h.refcount_table_clusters) +
                            " clusters exceeds qemu's limit of 8 MiB; the image cannot be read "
                            "by qemu either");
  }
  CDI_RETURN_IF_ERROR(CheckTable("refcount table", h.refcount_table_offset,
                                 h.refcount_table_bytes(), h.geometry, container_size));

  // nb_snapshots / snapshots_offset: only the active L1 table maps guest data,
  // so the snapshot table is read only for the places of the snapshots' L1
  // tables; its place is checked as qemu does.
  if (h.nb_snapshots > kMaxSnapshots) {
    return Corrupt("the image claims " + std::to_string(h.nb_snapshots) +
                   " internal snapshots, more than the 65536 qemu allows");
  }
  if (h.nb_snapshots > 0) {
    CDI_RETURN_IF_ERROR(CheckTable("snapshot table", h.snapshots_offset,
                                   uint64_t{h.nb_snapshots} * kMinSnapshotEntryBytes, h.geometry,
                                   container_size));
  }

  HeaderParse parse;
  parse.header = std::move(h);
  return parse;
}

ImageDescription DescribeHeader(const Header& header) {
  ImageDescription description;
  description.format = "qcow2";
  description.virtual_size = header.virtual_size;
  auto& details = description.details;
  details.emplace_back("version", std::to_string(header.version));
  details.emplace_back("cluster size", std::to_string(header.cluster_size()));
  details.emplace_back("compression type",
                       header.compression_type == CompressionType::kZstd ? "zstd" : "zlib");
  details.emplace_back("virtual size", std::to_string(header.virtual_size));
  details.emplace_back("extended L2", header.geometry.extended_l2 ? "yes" : "no");
  if (header.dirty()) details.emplace_back("dirty", "yes");
  if (header.nb_snapshots > 0) {
    details.emplace_back("internal snapshots", std::to_string(header.nb_snapshots));
  }
  return description;
}

}  // namespace cdi::formats::qcow2
