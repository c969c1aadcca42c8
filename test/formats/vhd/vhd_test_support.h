// Helpers for the VHD tests: images made by qemu-img and qemu-io, qemu-img's
// own reading of them as the reference, decoding through the pipeline in
// chunks, and patching fields with their checksums made right again.
#ifndef CDI_TEST_FORMATS_VHD_VHD_TEST_SUPPORT_H_
#define CDI_TEST_FORMATS_VHD_VHD_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/decoder.h"
#include "formats/pipeline.h"
#include "formats/vhd/vhd_decoder.h"
#include "test/formats/formats_testing.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats::vhd_testing {

inline std::string Quote(const std::string& path) { return "'" + path + "'"; }

// qemu-img's reading of a VHD (dynamic or fixed), sized by the footer's
// current size as Hyper-V reads it, not by the CHS geometry.
inline std::string QemuReference(const cdi::test::TempDir& dir, const std::string& image) {
  std::string raw = dir.File("reference.raw");
  cdi::test::Sh(
      "qemu-img convert --image-opts driver=vpc,force_size_calc=current_size,file.filename=" +
      image + " -O raw " + Quote(raw));
  return cdi::test::ReadFile(raw);
}

// Converts `data` (written to a raw file first) to a VHD of `subformat`.
inline std::string MakeVhd(const cdi::test::TempDir& dir, const std::string& data,
                           const std::string& subformat, const std::string& name = "image.vhd") {
  std::string raw = dir.File(name + ".source");
  cdi::test::WriteFile(raw, data);
  std::string image = dir.File(name);
  cdi::test::Sh("qemu-img convert -q -f raw -O vpc -o subformat=" + subformat + ",force_size=on " +
                Quote(raw) + " " + Quote(image));
  return image;
}

struct Decoded {
  Status status;
  std::vector<std::string> chain;
  std::optional<ImageDescription> description;  // what Begin() was given
  std::optional<ImageDescription> described;    // the pipeline's Describe() after Finish()
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
  out.described = pipeline.Describe();
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

// Feeds `image` straight to the VHD decoder in 4 KiB pieces until it fails,
// then keeps feeding to check that it stays failed and silent.
inline Refusal DecodeHostile(const std::string& image, DecoderOptions options = {},
                             bool with_container_size = true) {
  if (with_container_size) options.container_size = image.size();
  testing::RecordingWriter writer(testing::RecordingWriter::Content::kDrop);
  std::unique_ptr<Decoder> decoder = MakeVhdDecoder(&writer, options);
  Refusal refusal;
  refusal.status = testing::FeedInChunks(*decoder, image, 4096);
  if (refusal.status.ok()) return refusal;
  size_t ops = writer.ops().size();
  Status again = decoder->Feed(testing::Bytes(std::string(4096, 'x')));
  EXPECT_EQ(again.message(), refusal.status.message());
  EXPECT_EQ(decoder->Finish().message(), refusal.status.message());
  refusal.writes_after_error = writer.ops().size() - ops;
  return refusal;
}

inline void PutBe32(std::string& image, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) image[offset + i] = static_cast<char>(value >> (24 - 8 * i));
}

inline void PutBe64(std::string& image, size_t offset, uint64_t value) {
  PutBe32(image, offset, static_cast<uint32_t>(value >> 32));
  PutBe32(image, offset + 4, static_cast<uint32_t>(value));
}

inline uint32_t GetBe32(const std::string& image, size_t offset) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<uint8_t>(image[offset + i]);
  return value;
}

// Recomputes the checksum of the structure of `length` bytes at `offset`
// whose checksum field is at `offset + checksum_field`.
inline void FixChecksum(std::string& image, size_t offset, size_t length, size_t checksum_field) {
  uint32_t sum = 0;
  for (size_t i = 0; i < length; ++i) {
    if (i >= checksum_field && i < checksum_field + 4) continue;
    sum += static_cast<uint8_t>(image[offset + i]);
  }
  PutBe32(image, offset + checksum_field, ~sum);
}

// Both footers of a dynamic image (the copy at 0 and the one at the end).
inline void FixFooters(std::string& image) {
  FixChecksum(image, 0, 512, 64);
  FixChecksum(image, image.size() - 512, 512, 64);
}

// A 512-byte footer, as qemu-img writes it ("qem2": sized by current size).
inline std::string MakeFooter(uint32_t disk_type, uint64_t data_offset, uint64_t size) {
  std::string footer(512, '\0');
  footer.replace(0, 8, "conectix");
  PutBe32(footer, 8, 2);            // features
  PutBe32(footer, 12, 0x00010000);  // version
  PutBe64(footer, 16, data_offset);
  footer.replace(28, 4, "qem2");
  PutBe32(footer, 32, 0x00050003);
  PutBe64(footer, 40, size);        // original size
  PutBe64(footer, 48, size);        // current size
  PutBe32(footer, 56, 0x00641011);  // a geometry, unused
  PutBe32(footer, 60, disk_type);
  FixChecksum(footer, 0, 512, 64);
  return footer;
}

// Where MakeDynamic() puts the dynamic disk header and the BAT: first, as
// qemu-img and Hyper-V do; the BAT after the blocks; or both after them.
enum class TablePlace { kFirst, kBatAfterData, kBothAfterData };

// A dynamic VHD with any block size: the blocks of `stored` guest indexes,
// in that order, each full of `block_byte(index)`, bitmaps all ones.

inline std::string MakeDynamic(uint64_t size, uint32_t block_size,
                               const std::vector<uint32_t>& stored,
                               TablePlace place = TablePlace::kFirst) {
  const uint32_t entries = static_cast<uint32_t>((size + block_size - 1) / block_size);
  const size_t bitmap = ((block_size / 512 + 7) / 8 + 511) / 512 * 512;
  const size_t bat = (size_t{entries} * 4 + 511) / 512 * 512;
  std::string header(1024, '\0');
  header.replace(0, 8, "cxsparse");
  PutBe64(header, 8, ~uint64_t{0});
  PutBe32(header, 24, 0x00010000);
  PutBe32(header, 28, entries);
  PutBe32(header, 32, block_size);
  std::string table(bat, '\xff');
  // The blocks start after what comes before them.
  const size_t body_start = place == TablePlace::kFirst           ? 1536 + bat
                            : place == TablePlace::kBatAfterData ? 1536
                                                                  : 512;
  std::string body;
  for (uint32_t index : stored) {
    PutBe32(table, size_t{index} * 4, static_cast<uint32_t>((body_start + body.size()) / 512));
    body += std::string(bitmap, '\xff');
    body += std::string(block_size, static_cast<char>(0x40 + index % 64));
  }
  const uint64_t header_at = place == TablePlace::kBothAfterData ? 512 + body.size() : 512;
  const uint64_t table_at =
      place == TablePlace::kBatAfterData ? body_start + body.size() : header_at + 1024;
  PutBe64(header, 16, table_at);
  FixChecksum(header, 0, 1024, 36);
  const std::string footer = MakeFooter(3, header_at, size);
  switch (place) {
    case TablePlace::kFirst:
      return footer + header + table + body + footer;
    case TablePlace::kBatAfterData:
      return footer + header + body + table + footer;
    case TablePlace::kBothAfterData:
      break;
  }
  return footer + body + header + table + footer;
}

}  // namespace cdi::formats::vhd_testing

#endif  // CDI_TEST_FORMATS_VHD_VHD_TEST_SUPPORT_H_
