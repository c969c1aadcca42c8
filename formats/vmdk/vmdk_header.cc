#include "formats/vmdk/vmdk_header.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <vector>

#include "formats/vmdk/vmdk_format.h"

namespace cdi::formats::vmdk {
namespace {

Status Corrupt(const std::string& what) {
  return CorruptImageError("vmdk header: " + what + "; the image is corrupt");
}

std::string ConvertAdvice() {
  return "; convert the disk with 'qemu-img convert -O qcow2' (or -O raw) on a host that "
         "has all its files, and import that";
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

std::string_view Unquote(std::string_view value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    return value.substr(1, value.size() - 2);
  }
  return value;
}

// Splits an extent line on blanks, keeping a quoted file name whole.
std::vector<std::string_view> SplitExtent(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t') {
      ++i;
      continue;
    }
    size_t end;
    if (line[i] == '"') {
      end = line.find('"', i + 1);
      end = end == std::string_view::npos ? line.size() : end + 1;
    } else {
      end = line.find_first_of(" \t", i);
      if (end == std::string_view::npos) end = line.size();
    }
    words.push_back(line.substr(i, end - i));
    i = end;
  }
  return words;
}

bool IsExtentLine(std::string_view line) {
  return line.starts_with("RW ") || line.starts_with("RDONLY ") ||
         line.starts_with("NOACCESS ") || line.starts_with("RW\t") ||
         line.starts_with("RDONLY\t") || line.starts_with("NOACCESS\t");
}

}  // namespace

bool Header::compressed() const { return (flags & kFlagCompressed) != 0; }
bool Header::markers() const { return (flags & kFlagMarkers) != 0; }
uint64_t Header::gd_entries() const { return (grain_count() + kGtesPerGt - 1) / kGtesPerGt; }

Result<Header> ParseHeader(std::span<const uint8_t> bytes, std::optional<uint64_t> container_size) {
  if (bytes.size() < kHeaderSize) return Corrupt("shorter than 512 bytes");
  if (LoadLe32(bytes, kMagicOffset) != kMagic) return Corrupt("magic is not \"KDMV\"");
  Header h;
  h.version = LoadLe32(bytes, kVersionOffset);
  h.flags = LoadLe32(bytes, kFlagsOffset);
  h.capacity = LoadLe64(bytes, kCapacityOffset);
  h.grain_size = LoadLe64(bytes, kGrainSizeOffset);
  h.descriptor_offset = LoadLe64(bytes, kDescriptorOffsetOffset);
  h.descriptor_size = LoadLe64(bytes, kDescriptorSizeOffset);
  uint32_t gtes_per_gt = LoadLe32(bytes, kNumGtesPerGtOffset);
  h.rgd_offset = LoadLe64(bytes, kRgdOffsetOffset);
  h.gd_offset = LoadLe64(bytes, kGdOffsetOffset);
  h.overhead = LoadLe64(bytes, kOverHeadOffset);
  h.compress_algorithm = LoadLe16(bytes, kCompressAlgorithmOffset);

  if (h.version < 1 || h.version > 3) {
    return UnsupportedError("vmdk header: version " + std::to_string(h.version) +
                            " is not supported (only 1, 2 and 3 are)" + ConvertAdvice());
  }
  if ((h.flags & kFlagValidNewlineTest) != 0 &&
      std::memcmp(bytes.data() + kNewlineCharsOffset, "\n \r\n", 4) != 0) {
    return Corrupt(
        "the newline test characters are altered (the file went through a text-mode "
        "transfer, which changes line endings): fetch it again in binary mode");
  }
  if (h.grain_size == 0 || h.grain_size > kMaxGrainSectors || !std::has_single_bit(h.grain_size)) {
    return Corrupt("grainSize " + std::to_string(h.grain_size) +
                   " sectors is not a power of two between 1 and " +
                   std::to_string(kMaxGrainSectors));
  }
  if (h.capacity == 0 || h.capacity > kMaxCapacitySectors) {
    return Corrupt("capacity " + std::to_string(h.capacity) + " sectors is not between 1 and " +
                   std::to_string(kMaxCapacitySectors));
  }
  if (gtes_per_gt != kGtesPerGt) {
    return Corrupt("numGTEsPerGT is " + std::to_string(gtes_per_gt) + ", not 512");
  }
  if (h.descriptor_offset == 0 || h.descriptor_size == 0) {
    return UnsupportedError(
        "vmdk header: the extent has no embedded descriptor (descriptorOffset " +
        std::to_string(h.descriptor_offset) +
        "): it is one part of a disk described by a separate descriptor file" +
        ConvertAdvice());
  }
  if (h.descriptor_size > kMaxDescriptorSectors) {
    return Corrupt("descriptorSize " + std::to_string(h.descriptor_size) +
                   " sectors is larger than 1 MiB");
  }
  if (h.descriptor_offset > kMaxCapacitySectors) {
    return Corrupt("descriptorOffset " + std::to_string(h.descriptor_offset) +
                   " sectors is past any image");
  }
  uint64_t descriptor_end = h.descriptor_offset + h.descriptor_size;
  if (h.overhead < descriptor_end || h.overhead > kMaxCapacitySectors) {
    return Corrupt("overHead " + std::to_string(h.overhead) +
                   " sectors does not leave room for the descriptor (which ends at sector " +
                   std::to_string(descriptor_end) + ")");
  }
  if (container_size && h.overhead * kSectorSize > *container_size) {
    return Corrupt("overHead " + std::to_string(h.overhead) + " sectors is past the end of the " +
                   std::to_string(*container_size) + "-byte image");
  }
  if (h.compressed() && h.compress_algorithm != kCompressDeflate) {
    return UnsupportedError("vmdk header: compressAlgorithm " +
                            std::to_string(h.compress_algorithm) +
                            " is not supported (only 1, deflate, is)" + ConvertAdvice());
  }
  if (h.compressed() != h.markers()) {
    return UnsupportedError(std::string("vmdk header: flags has ") +
                            (h.compressed() ? "compressed grains without markers"
                                            : "markers without compressed grains") +
                            ", which is not supported" + ConvertAdvice());
  }
  if (!h.compressed()) {
    // The grain directory is read before the grains: it must lie after the
    // descriptor and inside the container.
    if (h.gd_offset < descriptor_end || h.gd_offset > kMaxCapacitySectors) {
      return Corrupt("gdOffset " + std::to_string(h.gd_offset) +
                     " sectors is not after the descriptor (which ends at sector " +
                     std::to_string(descriptor_end) + ")");
    }
    uint64_t gd_end = h.gd_offset * kSectorSize + h.gd_entries() * 4;
    if (container_size && gd_end > *container_size) {
      return Corrupt("the grain directory at gdOffset " + std::to_string(h.gd_offset) +
                     " ends past the end of the " + std::to_string(*container_size) +
                     "-byte image");
    }
  }
  return h;
}

Result<Descriptor> ParseDescriptor(std::string_view text, const Header& header) {
  text = text.substr(0, std::min(text.find('\0'), text.size()));
  Descriptor descriptor;
  bool has_create_type = false;
  std::vector<std::string_view> extents;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = std::min(text.find('\n', begin), text.size());
    std::string_view line = Trim(text.substr(begin, end - begin));
    begin = end + 1;
    if (line.empty() || line.front() == '#') continue;
    if (IsExtentLine(line)) {
      extents.push_back(line);
      continue;
    }
    size_t equals = line.find('=');
    if (equals == std::string_view::npos) continue;
    std::string_view key = Trim(line.substr(0, equals));
    std::string_view value = Unquote(Trim(line.substr(equals + 1)));
    if (key == "createType") {
      has_create_type = true;
      descriptor.create_type = std::string(value);
    } else if (key == "parentCID" && value != "ffffffff") {
      return UnsupportedError("vmdk descriptor: parentCID is " + std::string(value) +
                              ": the image is a differencing disk, whose parent is another "
                              "file" + ConvertAdvice());
    } else if (key == "parentFileNameHint") {
      return UnsupportedError("vmdk descriptor: parentFileNameHint names \"" + std::string(value) +
                              "\": the image is a differencing disk, whose parent is another "
                              "file" + ConvertAdvice());
    }
  }
  if (!has_create_type) {
    return CorruptImageError("vmdk descriptor: there is no createType line; the image is corrupt");
  }
  if (descriptor.create_type == "monolithicSparse") {
    descriptor.subformat = Subformat::kMonolithicSparse;
  } else if (descriptor.create_type == "streamOptimized") {
    descriptor.subformat = Subformat::kStreamOptimized;
  } else {
    return UnsupportedError("vmdk descriptor: createType \"" + descriptor.create_type +
                            "\" is not supported: only monolithicSparse and streamOptimized "
                            "disks, whose data is all in this one file, are imported (the "
                            "extent lines of other kinds can name any file on the host)" +
                            ConvertAdvice());
  }
  bool stream = descriptor.subformat == Subformat::kStreamOptimized;
  if (stream != header.compressed()) {
    return CorruptImageError(std::string("vmdk descriptor: createType \"") +
                             descriptor.create_type + "\" does not match the header, whose "
                             "flags say grains are " + (header.compressed() ? "" : "not ") +
                             "compressed; the image is corrupt");
  }
  if (extents.size() != 1) {
    return UnsupportedError("vmdk descriptor: " + std::to_string(extents.size()) +
                            " extent lines, where a self-contained disk has exactly one" +
                            ConvertAdvice());
  }
  std::vector<std::string_view> words = SplitExtent(extents.front());
  if (words.size() < 3) {
    return CorruptImageError("vmdk descriptor: the extent line \"" + std::string(extents.front()) +
                             "\" is not \"<access> <sectors> <type> ...\"; the image is corrupt");
  }
  if (words[2] != "SPARSE") {
    return UnsupportedError("vmdk descriptor: the extent is of type " + std::string(words[2]) +
                            ", not SPARSE: its data is in another file, which this importer "
                            "never opens (an extent path can name any file on the host)" +
                            ConvertAdvice());
  }
  if (words.size() > 4) {
    return UnsupportedError("vmdk descriptor: the extent line \"" + std::string(extents.front()) +
                            "\" has more fields than a SPARSE extent of this file" +
                            ConvertAdvice());
  }
  if (words[1] != std::to_string(header.capacity)) {
    return CorruptImageError("vmdk descriptor: the extent's length, " + std::string(words[1]) +
                             " sectors, is not the header's capacity of " +
                             std::to_string(header.capacity) + " sectors; the image is corrupt");
  }
  return descriptor;
}

}  // namespace cdi::formats::vmdk
