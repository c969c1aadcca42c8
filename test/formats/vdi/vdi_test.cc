// The VDI decoder against images made by qemu-img and qemu-io: dynamic and
// static images, zero regions, block maps out of order, sizes that are not a
// multiple of the block size, each decoded in odd chunk sizes and compared
// byte for byte with qemu-img's own conversion to raw. Then one hostile image
// per refusal, made by patching one field of a valid image.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "formats/pipeline.h"
#include "formats/vdi/vdi_decoder.h"
#include "formats/vdi/vdi_format.h"
#include "test/formats/formats_testing.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingWriter;

constexpr uint64_t kMiB = 1024 * 1024;

void RunOk(const std::vector<std::string>& argv) {
  cdi::test::RunResult r = cdi::test::Run(argv);
  ASSERT_EQ(r.exit_code, 0) << argv[0] << ": " << r.err;
}

// A vdi image and qemu-img's own conversion of it to raw.
struct Made {
  std::string vdi;
  std::string raw;
};

// Converts `path` (raw) to vdi with `options`, and that back to raw.
Made Convert(cdi::test::TempDir& dir, const std::string& path,
             const std::vector<std::string>& options = {}) {
  Made made;
  std::vector<std::string> argv = {"qemu-img", "convert", "-f", "raw", "-O", "vdi"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(path);
  argv.push_back(dir.File("image.vdi"));
  RunOk(argv);
  RunOk({"qemu-img", "convert", "-f", "vdi", "-O", "raw", dir.File("image.vdi"),
         dir.File("back.raw")});
  made.vdi = cdi::test::ReadFile(dir.File("image.vdi"));
  made.raw = cdi::test::ReadFile(dir.File("back.raw"));
  return made;
}

// Source data: `pattern` data with whole blocks of zeros in it, so that the
// image has unallocated blocks.
std::string SourceData(size_t size, Pattern pattern, uint32_t seed) {
  std::string data = MakeData(size, pattern, seed);
  if (size > 3 * kMiB) std::fill_n(data.begin() + kMiB, 2 * kMiB, '\0');
  return data;
}

class QemuImgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  }

  // Decodes `made.vdi` in each of `chunks` and compares with `made.raw`.
  void ExpectDecodes(const Made& made, const std::vector<size_t>& chunks,
                     const std::string& image_type) {
    for (size_t chunk : chunks) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      RecordingWriter writer;
      DecoderOptions options;
      options.container_size = made.vdi.size();
      auto decoder = MakeVdiDecoder(&writer, options);
      Status status = FeedInChunks(*decoder, made.vdi, chunk);
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_TRUE(writer.CoverageOk());
      ASSERT_TRUE(writer.description().has_value());
      EXPECT_EQ(writer.description()->format, "vdi");
      EXPECT_EQ(writer.description()->virtual_size, made.raw.size());
      EXPECT_EQ(writer.image().size(), made.raw.size());
      EXPECT_TRUE(writer.image() == made.raw) << cdi::test::FirstDifference(writer.image(), made.raw);
      ImageDescription described = decoder->Describe();
      ASSERT_FALSE(described.details.empty());
      EXPECT_EQ(described.details[0], (std::pair<std::string, std::string>{"image type", image_type}));
    }
  }

  cdi::test::TempDir dir_;
};

TEST_F(QemuImgTest, DynamicImagesDecodeLikeQemuImg) {
  for (Pattern pattern : {Pattern::kRandom, Pattern::kZeroRuns}) {
    SCOPED_TRACE(pattern == Pattern::kRandom ? "random" : "zero runs");
    // Not a multiple of the block size, nor of a sector.
    std::string data = SourceData(6 * kMiB + 12345, pattern, 7);
    cdi::test::WriteFile(dir_.File("source.raw"), data);
    Made made = Convert(dir_, dir_.File("source.raw"));
    ExpectDecodes(made, {kMiB + 1, 4099, 65536}, "dynamic");
  }
}

TEST_F(QemuImgTest, StaticImagesDecodeLikeQemuImg) {
  std::string data = SourceData(5 * kMiB + 4096 + 512, Pattern::kZeroRuns, 11);
  cdi::test::WriteFile(dir_.File("source.raw"), data);
  Made made = Convert(dir_, dir_.File("source.raw"), {"-o", "static=on"});
  ExpectDecodes(made, {kMiB + 1, 4099}, "static");
}

TEST_F(QemuImgTest, SmallImagesDecodeInSevenByteChunks) {
  std::string data = SourceData(kMiB + 1000, Pattern::kRandom, 3);
  cdi::test::WriteFile(dir_.File("source.raw"), data);
  ExpectDecodes(Convert(dir_, dir_.File("source.raw")), {7, 1}, "dynamic");
}

TEST_F(QemuImgTest, OutOfOrderBlockMapDecodesLikeQemuImg) {
  if (!cdi::test::HaveProgram("qemu-io")) GTEST_SKIP() << "qemu-io is not installed";
  std::string image = dir_.File("image.vdi");
  RunOk({"qemu-img", "create", "-q", "-f", "vdi", image, std::to_string(9 * kMiB + 100 * 1024 + 512)});
  // Writes in an order unlike the guest's: data blocks land in the file in
  // the order written, so the block map is out of order.
  std::vector<std::string> argv = {"qemu-io", "-f", "vdi"};
  uint32_t seed = 20;
  for (uint64_t offset : {7 * kMiB + 4096, 2 * kMiB, 9 * kMiB, uint64_t{0}, 5 * kMiB + 512, 3 * kMiB}) {
    std::string pattern = dir_.File("pattern" + std::to_string(seed));
    cdi::test::WriteFile(pattern, cdi::test::RandomBytes(64 * 1024, seed++));
    argv.insert(argv.end(), {"-c", "write -q -s " + pattern + " " + std::to_string(offset) + " 64k"});
  }
  argv.push_back(image);
  RunOk(argv);
  Made made;
  made.vdi = cdi::test::ReadFile(image);
  RunOk({"qemu-img", "convert", "-f", "vdi", "-O", "raw", image, dir_.File("back.raw")});
  made.raw = cdi::test::ReadFile(dir_.File("back.raw"));
  // The first map entry (guest block 0) names data block 3: out of order.
  ASSERT_EQ(vdi::LoadLE32(Bytes(made.vdi).data() + 0x200), 3u);
  ExpectDecodes(made, {kMiB + 1, 4099, 7}, "dynamic");
}

TEST_F(QemuImgTest, PipelineDetectsVdiInsideGzip) {
  std::string data = SourceData(4 * kMiB, Pattern::kZeroRuns, 5);
  cdi::test::WriteFile(dir_.File("source.raw"), data);
  Made made = Convert(dir_, dir_.File("source.raw"));
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, testing::Compress(Format::kGzip, made.vdi), 4099);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(pipeline.format_chain(), (std::vector<std::string>{"gzip", "vdi"}));
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_TRUE(writer.image() == made.raw);
  ASSERT_TRUE(pipeline.Describe().has_value());
  EXPECT_EQ(pipeline.Describe()->details,
            (std::vector<std::pair<std::string, std::string>>{
                {"image type", "dynamic"},
                {"block size", "1048576"},
                {"virtual size", std::to_string(4 * kMiB)},
                {"blocks allocated", "2"}}));
}

// --- Hostile images -----------------------------------------------------------

void PutLE32(std::string& image, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) image[offset + i] = static_cast<char>(value >> (8 * i));
}
void PutLE64(std::string& image, size_t offset, uint64_t value) {
  PutLE32(image, offset, static_cast<uint32_t>(value));
  PutLE32(image, offset + 4, static_cast<uint32_t>(value >> 32));
}

struct Outcome {
  Status status;
  int begin_calls = 0;
  size_t ops = 0;
};

Outcome Decode(const std::string& image, DecoderOptions options = {}, bool known_size = true) {
  if (known_size) options.container_size = image.size();
  RecordingWriter writer;
  auto decoder = MakeVdiDecoder(&writer, options);
  Outcome outcome;
  outcome.status = FeedInChunks(*decoder, image, 4099);
  outcome.begin_calls = writer.begin_calls();
  outcome.ops = writer.ops().size();
  return outcome;
}

class HostileTest : public QemuImgTest {
 protected:
  void SetUp() override {
    QemuImgTest::SetUp();
    if (IsSkipped()) return;
    // Three blocks, the middle one zero: map entries 0, unallocated, 1.
    std::string data = cdi::test::RandomBytes(3 * kMiB, 9);
    std::fill_n(data.begin() + kMiB, kMiB, '\0');
    cdi::test::WriteFile(dir_.File("source.raw"), data);
    image_ = Convert(dir_, dir_.File("source.raw")).vdi;
    ASSERT_EQ(vdi::LoadLE32(Bytes(image_).data() + vdi::kBlocksAllocatedOffset), 2u);
    ASSERT_EQ(vdi::LoadLE32(Bytes(image_).data() + 0x204), vdi::kMapUnallocated);
  }

  // Expects `image` refused with `code` and a message holding `text`, before
  // Begin when `before_begin`.
  void ExpectRefused(const std::string& image, ErrorCode code, const std::string& text,
                     bool before_begin = true, DecoderOptions options = {},
                     bool known_size = true) {
    Outcome outcome = Decode(image, options, known_size);
    EXPECT_EQ(outcome.status.code(), code) << outcome.status.ToString();
    EXPECT_NE(outcome.status.message().find(text), std::string::npos)
        << outcome.status.message();
    if (before_begin) {
      EXPECT_EQ(outcome.begin_calls, 0);
    }
  }

  std::string Patched32(size_t offset, uint32_t value) const {
    std::string image = image_;
    PutLE32(image, offset, value);
    return image;
  }

  std::string image_;
};

TEST_F(HostileTest, ValidImageDecodes) { EXPECT_TRUE(Decode(image_).status.ok()); }

// Valid variations qemu-img reads too: each patched image decodes like
// qemu-img's conversion of it.
TEST_F(HostileTest, VariantsDecodeLikeQemuImg) {
  struct Variant {
    std::string name;
    std::string image;
  };
  std::string discarded = Patched32(0x204, vdi::kMapZero);
  // Guest block 2 reads as zero; data block 1 is named by no entry and skipped.
  std::string unreferenced = Patched32(0x208, vdi::kMapUnallocated);
  // The "version 1 plus" header size VirtualBox writes.
  std::string header_plus = Patched32(vdi::kHeaderSizeOffset, 0x190);
  // An odd disk size counts as its next whole sector; the last block's tail is dropped.
  std::string odd_size = image_;
  PutLE64(odd_size, vdi::kDiskSizeOffset, 3 * kMiB - 1000);
  std::string trailing = image_ + std::string(1000, 'x');
  for (const Variant& v : {Variant{"discarded", discarded}, Variant{"unreferenced", unreferenced},
                           Variant{"header plus", header_plus}, Variant{"odd size", odd_size},
                           Variant{"trailing bytes", trailing}}) {
    SCOPED_TRACE(v.name);
    cdi::test::WriteFile(dir_.File("variant.vdi"), v.image);
    RunOk({"qemu-img", "convert", "-f", "vdi", "-O", "raw", dir_.File("variant.vdi"),
           dir_.File("variant.raw")});
    ExpectDecodes(Made{v.image, cdi::test::ReadFile(dir_.File("variant.raw"))}, {4099, kMiB + 1},
                  "dynamic");
  }
}

TEST_F(HostileTest, VersionOtherThan11IsRefused) {
  ExpectRefused(Patched32(vdi::kVersionOffset, 0x00010000), ErrorCode::kUnsupported,
                "version 1.0 is not supported");
}

TEST_F(HostileTest, DifferencingImagesAreRefused) {
  ExpectRefused(Patched32(vdi::kImageTypeOffset, vdi::kTypeDiff), ErrorCode::kUnsupported,
                "differencing image");
  ExpectRefused(Patched32(vdi::kUuidParentOffset + 4, 0x1234), ErrorCode::kUnsupported,
                "differencing image");
  ExpectRefused(Patched32(vdi::kUuidLinkOffset, 1), ErrorCode::kUnsupported, "differencing image");
}

TEST_F(HostileTest, UnknownImageTypesAreRefused) {
  ExpectRefused(Patched32(vdi::kImageTypeOffset, vdi::kTypeUndo), ErrorCode::kUnsupported,
                "undo images");
  ExpectRefused(Patched32(vdi::kImageTypeOffset, 9), ErrorCode::kCorruptImage,
                "image type 9 is unknown");
}

TEST_F(HostileTest, HeaderSizeOutsideLimitsIsRefused) {
  ExpectRefused(Patched32(vdi::kHeaderSizeOffset, 0x100), ErrorCode::kCorruptImage,
                "header size 256 is outside");
  ExpectRefused(Patched32(vdi::kHeaderSizeOffset, 0x10000), ErrorCode::kCorruptImage,
                "header size 65536 is outside");
}

TEST_F(HostileTest, SectorSizeOtherThan512IsRefused) {
  ExpectRefused(Patched32(vdi::kSectorSizeOffset, 4096), ErrorCode::kUnsupported,
                "sector size 4096 is not supported");
}

TEST_F(HostileTest, BlockSizesOtherThan1MiBAreRefused) {
  ExpectRefused(Patched32(vdi::kBlockSizeOffset, 2 * kMiB), ErrorCode::kUnsupported,
                "block size 2097152 is not supported");
  ExpectRefused(Patched32(vdi::kBlockSizeOffset, 0), ErrorCode::kUnsupported,
                "block size 0 is not supported");
  ExpectRefused(Patched32(vdi::kBlockExtraOffset, 512), ErrorCode::kUnsupported,
                "per-block metadata");
}

TEST_F(HostileTest, DiskSizeBeyondTheLimitIsRefused) {
  std::string image = image_;
  PutLE64(image, vdi::kDiskSizeOffset, UINT64_MAX);
  ExpectRefused(image, ErrorCode::kUnsupported, "disk size 18446744073709551615 exceeds");
}

TEST_F(HostileTest, MapNotMatchingTheDiskSizeIsRefused) {
  ExpectRefused(Patched32(vdi::kBlocksInImageOffset, 2), ErrorCode::kCorruptImage,
                "the block map has 2 entries, too few");
  ExpectRefused(Patched32(vdi::kBlocksInImageOffset, 1000000), ErrorCode::kCorruptImage,
                "the block map has 1000000 entries, more than the 3 blocks");
  std::string image = image_;
  PutLE64(image, vdi::kDiskSizeOffset, 100 * kMiB);
  ExpectRefused(image, ErrorCode::kCorruptImage, "the block map has 3 entries, too few");
}

TEST_F(HostileTest, MoreAllocatedBlocksThanMapEntriesIsRefused) {
  ExpectRefused(Patched32(vdi::kBlocksAllocatedOffset, 4), ErrorCode::kCorruptImage,
                "blocks allocated 4 exceeds the blocks in the image (3)");
}

TEST_F(HostileTest, BadOffsetsAreRefused) {
  ExpectRefused(Patched32(vdi::kOffsetBmapOffset, 0x201), ErrorCode::kCorruptImage,
                "block map offset 0x201 is not aligned");
  ExpectRefused(Patched32(vdi::kOffsetDataOffset, 0x401), ErrorCode::kCorruptImage,
                "data offset 0x401 is not aligned");
  ExpectRefused(Patched32(vdi::kOffsetBmapOffset, 0), ErrorCode::kCorruptImage,
                "block map offset 0x0 overlaps the header");
  ExpectRefused(Patched32(vdi::kOffsetDataOffset, 0x200), ErrorCode::kCorruptImage,
                "data offset 0x200 overlaps the block map");
  ExpectRefused(Patched32(vdi::kOffsetBmapOffset, 0x7FFFFE00), ErrorCode::kCorruptImage,
                "data offset 0x400 overlaps the block map");
  // Both past the end of the image, in order.
  std::string image = Patched32(vdi::kOffsetBmapOffset, 0x40000000);
  PutLE32(image, vdi::kOffsetDataOffset, 0x40000200);
  ExpectRefused(image, ErrorCode::kCorruptImage, "the block map ends at byte 1073741836, past");
  ExpectRefused(Patched32(vdi::kOffsetDataOffset, 0x100000), ErrorCode::kCorruptImage,
                "the data of 2 allocated blocks ends at byte 3145728, past the end");
}

TEST_F(HostileTest, KnownContainerSizeShorterThanTheDataIsRefusedBeforeBegin) {
  ExpectRefused(image_.substr(0, image_.size() - 1), ErrorCode::kCorruptImage,
                "past the end of the image");
}

TEST_F(HostileTest, MapEntryPastTheAllocatedBlocksIsRefused) {
  ExpectRefused(Patched32(0x208, 2), ErrorCode::kCorruptImage,
                "guest block 2 names data block 2, past the 2 allocated blocks", false);
}

TEST_F(HostileTest, TwoGuestBlocksAtOneDataBlockAreRefused) {
  ExpectRefused(Patched32(0x208, 0), ErrorCode::kCorruptImage,
                "guest blocks 0 and 2 both name data block 0", false);
}

TEST_F(HostileTest, InvertedMapBeyondTheMemoryBudgetIsRefused) {
  DecoderOptions options;
  options.memory_budget = 7;
  ExpectRefused(image_, ErrorCode::kInvalidArgument, "beyond the memory budget of 7 bytes", true,
                options);
}

TEST_F(HostileTest, TruncatedStreamsAreErrorsNotZeros) {
  struct Cut {
    size_t length;
    std::string text;
  };
  for (const Cut& cut : {Cut{0, "inside its 512-byte header"}, Cut{300, "inside its 512-byte header"},
                         Cut{0x206, "before the end of its block map at byte 524"},
                         Cut{0x400 + kMiB + 5, "before the end of its allocated data blocks"},
                         Cut{image_.size() - 1, "before the end of its allocated data blocks"}}) {
    SCOPED_TRACE(cut.length);
    ExpectRefused(image_.substr(0, cut.length), ErrorCode::kCorruptImage, cut.text, false, {},
                  /*known_size=*/false);
  }
}

TEST_F(HostileTest, NotASignatureIsRefused) {
  ExpectRefused(Patched32(vdi::kSignatureOffset, 0x12345678), ErrorCode::kCorruptImage,
                "the signature at 0x40 is 0x12345678");
}

}  // namespace
}  // namespace cdi::formats
