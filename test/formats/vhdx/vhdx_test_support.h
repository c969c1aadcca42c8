// Helpers for the VHDX tests: images made by qemu-img and qemu-io, qemu-img's
// own conversion as the reference, decoding in chunks, and patching fields
// with their CRC-32C made right again.
#ifndef CDI_TEST_FORMATS_VHDX_VHDX_TEST_SUPPORT_H_
#define CDI_TEST_FORMATS_VHDX_VHDX_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/decoder.h"
#include "formats/pipeline.h"
#include "formats/vhdx/vhdx_decoder.h"
#include "formats/vhdx/vhdx_format.h"
#include "test/formats/formats_testing.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats::vhdx_testing {

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

inline std::string Quote(const std::string& path) { return "'" + path + "'"; }

// qemu-img's conversion of `image` to raw.
inline std::string QemuReference(const cdi::test::TempDir& dir, const std::string& image) {
  std::string raw = dir.File("reference.raw");
  cdi::test::Sh("qemu-img convert -f vhdx -O raw " + Quote(image) + " " + Quote(raw));
  return cdi::test::ReadFile(raw);
}

// Converts `data` (written to a raw file first) to a VHDX with `options`
// ("subformat=fixed,block_size=8M").
inline std::string MakeVhdx(const cdi::test::TempDir& dir, const std::string& data,
                            const std::string& options, const std::string& name = "image.vhdx") {
  std::string raw = dir.File(name + ".source");
  cdi::test::WriteFile(raw, data);
  std::string image = dir.File(name);
  cdi::test::Sh("qemu-img convert -q -f raw -O vhdx -o " + options + " " + Quote(raw) + " " +
                Quote(image));
  return image;
}

struct Decoded {
  Status status;
  std::vector<std::string> chain;
  std::optional<ImageDescription> description;  // what Begin() was given
  std::string image;
  bool coverage_ok = false;
  std::string coverage;
};

// Feeds `container` through the pipeline in `chunk`-byte pieces.
inline Decoded DecodeThroughPipeline(const std::string& container, size_t chunk,
                                     bool with_container_size, DecoderOptions options = {}) {
  if (with_container_size) options.container_size = container.size();
  testing::RecordingWriter writer;
  ImagePipeline pipeline(&writer, PipelineOptions{.decoder = options});
  Decoded out;
  out.status = testing::FeedInChunks(pipeline, container, chunk);
  out.chain = pipeline.format_chain();
  out.description = writer.description();
  out.image = writer.image();
  ::testing::AssertionResult coverage = writer.CoverageOk();
  out.coverage_ok = static_cast<bool>(coverage);
  out.coverage = coverage.message();
  return out;
}

struct Refusal {
  Status status;
  size_t writes_after_error = 0;  // GuestWriter calls after the first error (must be none)
};

// Feeds `image` straight to the VHDX decoder in 64 KiB + 1 pieces until it
// fails, then keeps feeding to check that it stays failed and silent.
inline Refusal DecodeHostile(const std::string& image, DecoderOptions options = {},
                             bool with_container_size = true) {
  if (with_container_size) options.container_size = image.size();
  testing::RecordingWriter writer(testing::RecordingWriter::Content::kDrop);
  std::unique_ptr<Decoder> decoder = MakeVhdxDecoder(&writer, options);
  Refusal refusal;
  refusal.status = testing::FeedInChunks(*decoder, image, 64 * kKiB + 1);
  if (refusal.status.ok()) return refusal;
  size_t ops = writer.ops().size();
  Status again = decoder->Feed(testing::Bytes(std::string(4096, 'x')));
  EXPECT_EQ(again.message(), refusal.status.message());
  EXPECT_EQ(decoder->Finish().message(), refusal.status.message());
  refusal.writes_after_error = writer.ops().size() - ops;
  return refusal;
}

inline void PutLe32(std::string& image, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) image[offset + i] = static_cast<char>(value >> (8 * i));
}

inline void PutLe64(std::string& image, size_t offset, uint64_t value) {
  PutLe32(image, offset, static_cast<uint32_t>(value));
  PutLe32(image, offset + 4, static_cast<uint32_t>(value >> 32));
}

inline uint32_t GetLe32(const std::string& image, size_t offset) {
  return vhdx::LoadLe32(reinterpret_cast<const uint8_t*>(image.data()) + offset);
}

inline uint64_t GetLe64(const std::string& image, size_t offset) {
  return vhdx::LoadLe64(reinterpret_cast<const uint8_t*>(image.data()) + offset);
}

// Recomputes the CRC-32C of the structure of `length` bytes at `offset`
// (every VHDX checksum is at offset 4 of its structure).
inline void FixCrc(std::string& image, size_t offset, size_t length) {
  PutLe32(image, offset + 4, 0);
  const auto* bytes = reinterpret_cast<const uint8_t*>(image.data()) + offset;
  PutLe32(image, offset + 4, vhdx::Crc32c(0, std::span(bytes, length)));
}

// Region table 1's entry for the BAT (index 0) or the metadata (index 1), as
// qemu-img writes them.
inline size_t RegionEntry(int index) { return 192 * kKiB + 16 + size_t(index) * 32; }
inline uint64_t BatOffset(const std::string& image) { return GetLe64(image, RegionEntry(0) + 16); }
inline uint64_t MetadataOffset(const std::string& image) {
  return GetLe64(image, RegionEntry(1) + 16);
}
inline void FixRegionTable(std::string& image) { FixCrc(image, 192 * kKiB, 64 * kKiB); }

// Moves the region of region table entry `index` (0: the BAT, 1: the
// metadata) to the end of the file, on a MiB, and zeroes where it was; both
// region tables are updated with their checksums. qemu-img reads the result
// as it read the original.
inline void MoveRegionToEnd(std::string& image, int index) {
  const size_t offset = GetLe64(image, RegionEntry(index) + 16);
  const size_t length = GetLe32(image, RegionEntry(index) + 24);
  const std::string region = image.substr(offset, length);
  image.replace(offset, length, std::string(length, '\0'));
  const size_t moved = (image.size() + kMiB - 1) / kMiB * kMiB;
  image.resize(moved, '\0');
  image += region;
  PutLe64(image, RegionEntry(index) + 16, moved);
  FixRegionTable(image);
  image.replace(256 * kKiB, 64 * kKiB, image.substr(192 * kKiB, 64 * kKiB));
}

// The file offset of the metadata item whose GUID starts with `first_word`
// (its first field, as the specification writes it).
inline size_t MetadataItem(const std::string& image, uint32_t first_word) {
  const size_t region = MetadataOffset(image);
  const uint32_t count = GetLe32(image, region + 8) >> 16;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t entry = region + 32 + size_t{i} * 32;
    if (GetLe32(image, entry) == first_word) return region + GetLe32(image, entry + 16);
  }
  ADD_FAILURE() << "no metadata item " << std::hex << first_word;
  return 0;
}
inline constexpr uint32_t kFileParameters = 0xCAA16737;
inline constexpr uint32_t kVirtualDiskSize = 0x2FA54224;
inline constexpr uint32_t kLogicalSectorSize = 0x8141BF1D;

// Both headers with `patch` applied and their checksums made right.
template <typename Patch>
void PatchHeaders(std::string& image, Patch patch) {
  for (size_t header : {64 * kKiB, 128 * kKiB}) {
    patch(header);
    FixCrc(image, header, 4 * kKiB);
  }
}

// Sets the log GUID of both headers and writes one log entry of that GUID,
// with no descriptors and a valid checksum, at the start of the log: a log
// that qemu and Hyper-V replay before reading the disk.
inline void AddPendingLogEntry(std::string& image) {
  std::string guid;
  for (int i = 1; i <= 16; ++i) guid.push_back(static_cast<char>(i));
  PatchHeaders(image, [&](size_t header) { image.replace(header + 48, 16, guid); });
  const size_t log = GetLe64(image, 64 * kKiB + 72);
  std::string entry(4 * kKiB, '\0');
  entry.replace(0, 4, "loge");
  PutLe32(entry, 8, 4 * kKiB);  // entry length
  PutLe64(entry, 16, 1);        // sequence number
  entry.replace(32, 16, guid);
  PutLe64(entry, 48, image.size());  // flushed file offset
  PutLe64(entry, 56, image.size());  // last file offset
  FixCrc(entry, 0, entry.size());
  image.replace(log, entry.size(), entry);
}

}  // namespace cdi::formats::vhdx_testing

#endif  // CDI_TEST_FORMATS_VHDX_VHDX_TEST_SUPPORT_H_
