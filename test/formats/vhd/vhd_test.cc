// VHD images made by qemu-img and qemu-io, decoded through the pipeline in odd
// chunk sizes and compared byte for byte with qemu-img's own reading; fixed
// VHD images recognised by their footer at the end of a raw stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "test/formats/vhd/vhd_test_support.h"

namespace cdi::formats::vhd_testing {
namespace {

using testing::MakeData;
using testing::Pattern;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

class VhdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cdi::test::HaveProgram("qemu-img") || !cdi::test::HaveProgram("qemu-io")) {
      GTEST_SKIP() << "qemu-img and qemu-io are needed";
    }
  }

  // Decodes `image` in each chunk size, with and without the container size,
  // and compares with qemu-img's reading.
  void ExpectDecodesLikeQemu(const std::string& path, const std::string& subformat,
                             const std::vector<size_t>& chunks) {
    const std::string container = cdi::test::ReadFile(path);
    const std::string expected = QemuReference(dir_, path);
    for (size_t chunk : chunks) {
      for (bool known : {true, false}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk) +
                     (known ? ", size known" : ", size unknown"));
        Decoded out = DecodeThroughPipeline(container, chunk, known);
        ASSERT_TRUE(out.status.ok()) << out.status.ToString();
        EXPECT_EQ(out.chain, std::vector<std::string>{"vhd"});
        EXPECT_TRUE(out.coverage_ok) << out.coverage;
        ASSERT_TRUE(out.described.has_value());
        EXPECT_EQ(out.described->format, "vhd");
        EXPECT_EQ(out.described->details.front(),
                  (std::pair<std::string, std::string>{"subformat", subformat}));
        if (subformat == "fixed" && known) {
          // The length was announced before the footer showed: it is zeroed.
          EXPECT_EQ(out.image.size(), expected.size() + 512);
          EXPECT_EQ(out.image.substr(expected.size()), std::string(512, '\0'));
          out.image.resize(expected.size());
        } else {
          EXPECT_EQ(out.described->virtual_size, expected.size());
        }
        EXPECT_EQ(cdi::test::FirstDifference(out.image, expected), "equal");
      }
    }
  }

  cdi::test::TempDir dir_;
};

TEST_F(VhdTest, DynamicFromRandomDataOfAnOddSize) {
  std::string path = MakeVhd(dir_, MakeData(5 * kMiB + 12345, Pattern::kRandom), "dynamic");
  ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1, 4099});
}

TEST_F(VhdTest, DynamicWithZeroRunsAndUnallocatedBlocks) {
  std::string data = MakeData(3 * kMiB, Pattern::kRandom, 2) + std::string(5 * kMiB, '\0') +
                     MakeData(3 * kMiB + 777, Pattern::kZeroRuns, 3);
  std::string path = MakeVhd(dir_, data, "dynamic");
  ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1, 4099});
}

TEST_F(VhdTest, DynamicSmallImageInSevenByteChunks) {
  std::string path = MakeVhd(dir_, MakeData(300 * kKiB + 3, Pattern::kZeroRuns, 4), "dynamic");
  ExpectDecodesLikeQemu(path, "dynamic", {7, 4099});
}

TEST_F(VhdTest, DynamicEmptyImage) {
  std::string path = dir_.File("empty.vhd");
  cdi::test::Sh("qemu-img create -q -f vpc -o force_size=on " + Quote(path) + " 7340544");
  ExpectDecodesLikeQemu(path, "dynamic", {7, kMiB + 1});
}

// Writes in random guest order: the blocks lie in the file in the order they
// were first written, not in guest order.
TEST_F(VhdTest, DynamicWrittenInRandomOrder) {
  std::string path = dir_.File("random.vhd");
  cdi::test::Sh("qemu-img create -q -f vpc -o force_size=on " + Quote(path) + " 20972032");
  cdi::test::Sh(
      "qemu-io -f vpc -c 'write -P 0x5a 14M 3M' -c 'write -P 0xa5 512 1536' "
      "-c 'write -P 0x33 7M 100k' -c 'write -P 0x77 20M 512' "
      "-c 'write -P 0x19 4194000 1024' -c 'write -z 15M 64k' " +
      Quote(path) + " >/dev/null");
  ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1, 4099});
}

TEST_F(VhdTest, DynamicDescribesItself) {
  std::string path = MakeVhd(dir_, MakeData(kMiB, Pattern::kRandom), "dynamic");
  Decoded out = DecodeThroughPipeline(cdi::test::ReadFile(path), 65536, true);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_TRUE(out.description.has_value());
  EXPECT_EQ(out.description->format, "vhd");
  EXPECT_EQ(out.description->virtual_size, kMiB);
  ASSERT_EQ(out.description->details.size(), 4u);
  EXPECT_EQ(out.description->details[1],
            (std::pair<std::string, std::string>{"block size", "2097152"}));
  EXPECT_EQ(out.description->details[2].second, std::to_string(kMiB));
  EXPECT_EQ(out.description->details[3].first, "creator");
  EXPECT_EQ(out.description->details[3].second.substr(0, 4), "qem2");
}

TEST_F(VhdTest, DynamicInsideGzip) {
  std::string path = MakeVhd(dir_, MakeData(2 * kMiB + 5, Pattern::kZeroRuns, 5), "dynamic");
  Decoded out = DecodeThroughPipeline(testing::Compress(Format::kGzip, cdi::test::ReadFile(path)),
                                      4099, true);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.chain, (std::vector<std::string>{"gzip", "vhd"}));
  EXPECT_EQ(cdi::test::FirstDifference(out.image, QemuReference(dir_, path)), "equal");
}

TEST_F(VhdTest, FixedFromRandomDataOfAnOddSize) {
  std::string path = MakeVhd(dir_, MakeData(3 * kMiB + 4321, Pattern::kZeroRuns, 6), "fixed");
  ExpectDecodesLikeQemu(path, "fixed", {kMiB + 1, 4099, 100});
}

TEST_F(VhdTest, FixedSmallImageInSevenByteChunks) {
  std::string path = MakeVhd(dir_, MakeData(20 * kKiB, Pattern::kRandom, 7), "fixed");
  ExpectDecodesLikeQemu(path, "fixed", {7, 511, 513});
}

// The footer is never written, and the guest is as long as its current size.
TEST_F(VhdTest, FixedFooterIsNotWritten) {
  std::string data = MakeData(kMiB, Pattern::kRandom, 8);
  std::string container = cdi::test::ReadFile(MakeVhd(dir_, data, "fixed"));
  ASSERT_EQ(container.size(), kMiB + 512);
  Decoded out = DecodeThroughPipeline(container, 4099, false);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.description->virtual_size, std::nullopt);
  EXPECT_EQ(out.described->virtual_size, kMiB);
  EXPECT_EQ(out.image.size(), kMiB);
  EXPECT_EQ(out.image, data);
  EXPECT_EQ(out.described->details[1],
            (std::pair<std::string, std::string>{"current size", std::to_string(kMiB)}));
}

// Inside a wrapper the length is not known before the end: the guest is the
// footer's current size.
TEST_F(VhdTest, FixedInsideGzipHasTheFootersSize) {
  std::string data = MakeData(kMiB + 1536, Pattern::kZeroRuns, 12);
  std::string container = cdi::test::ReadFile(MakeVhd(dir_, data, "fixed"));
  Decoded out = DecodeThroughPipeline(testing::Compress(Format::kGzip, container), 4099, true);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.chain, (std::vector<std::string>{"gzip", "vhd"}));
  EXPECT_EQ(out.described->virtual_size, data.size());
  EXPECT_EQ(out.image, data);
}

// Block data goes to the writer straight from the fed chunk.
TEST_F(VhdTest, DynamicDataIsNotCopied) {
  std::string container =
      cdi::test::ReadFile(MakeVhd(dir_, MakeData(3 * kMiB, Pattern::kRandom, 13), "dynamic"));
  testing::RecordingWriter writer;
  std::unique_ptr<Decoder> decoder = MakeVhdDecoder(&writer, {});
  ASSERT_TRUE(decoder->Feed(testing::Bytes(container)).ok());
  ASSERT_TRUE(decoder->Finish().ok());
  const uint8_t* begin = testing::Bytes(container).data();
  size_t writes = 0;
  for (const testing::RecordingWriter::Op& op : writer.ops()) {
    if (op.kind != testing::RecordingWriter::Kind::kWrite) continue;
    ++writes;
    EXPECT_TRUE(op.data >= begin && op.data + op.length <= begin + container.size());
  }
  EXPECT_EQ(writes, 2u);  // one per block
}

// A raw image whose last sector merely looks like a footer stays raw.
TEST_F(VhdTest, RawWithAFooterOfTheWrongSizeStaysRaw) {
  std::string data = MakeData(kMiB, Pattern::kRandom, 9);
  std::string container = cdi::test::ReadFile(MakeVhd(dir_, data, "fixed"));
  for (uint64_t size : {uint64_t{kMiB} - 512, uint64_t{kMiB} + 512, uint64_t{0}}) {
    std::string patched = container;
    PutBe64(patched, patched.size() - 512 + 48, size);
    FixChecksum(patched, patched.size() - 512, 512, 64);
    for (bool known : {true, false}) {
      Decoded out = DecodeThroughPipeline(patched, 4099, known);
      ASSERT_TRUE(out.status.ok()) << out.status.ToString();
      EXPECT_EQ(out.described->format, "raw");
      EXPECT_EQ(out.chain, std::vector<std::string>{"raw"});
      EXPECT_EQ(out.image, patched);
      EXPECT_TRUE(out.coverage_ok) << out.coverage;
    }
  }
  // A bad checksum, and a dynamic disk type, make it raw too.
  std::string bad_checksum = container;
  bad_checksum[bad_checksum.size() - 512 + 64] ^= 1;
  std::string dynamic_type = container;
  PutBe32(dynamic_type, dynamic_type.size() - 512 + 60, 3);
  FixChecksum(dynamic_type, dynamic_type.size() - 512, 512, 64);
  for (const std::string& patched : {bad_checksum, dynamic_type}) {
    Decoded out = DecodeThroughPipeline(patched, 65536, false);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.described->format, "raw");
    EXPECT_EQ(out.image, patched);
  }
}

// Streams shorter than a footer, and exactly a footer long, stay raw.
TEST_F(VhdTest, ShortRawStreamsStayRaw) {
  for (size_t size : {size_t{1}, size_t{511}, size_t{512}, size_t{513}}) {
    std::string data = MakeData(size, Pattern::kRandom, 10);
    data[0] = 'x';
    Decoded out = DecodeThroughPipeline(data, 7, false);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.described->format, "raw");
    EXPECT_EQ(out.image, data);
  }
}

// Block sizes qemu-img does not write (it always uses 2 MiB), blocks stored
// out of guest order, a size that ends inside a block.
TEST_F(VhdTest, SmallBlocksOutOfOrder) {
  struct Case {
    uint32_t block_size;
    uint64_t size;
    std::vector<uint32_t> stored;
  };
  for (const Case& c :
       {Case{4096, 40448, {7, 0, 9, 3}}, Case{1u << 16, 200704, {3, 1}}, Case{4096, 16384, {}}}) {
    SCOPED_TRACE("block size " + std::to_string(c.block_size));
    std::string path = dir_.File("small.vhd");
    cdi::test::WriteFile(path, MakeDynamic(c.size, c.block_size, c.stored));
    ExpectDecodesLikeQemu(path, "dynamic", {7, 4099});
  }
}

// Some writers add one spare BAT entry when the size is a multiple of the
// block size: up to one block past the current size is accepted.
TEST_F(VhdTest, OneSpareTableEntryIsAccepted) {
  std::string path = dir_.File("spare.vhd");
  std::string container = MakeDynamic(16384, 4096, {2, 0});
  PutBe32(container, 512 + 28, 5);  // max table entries: 4 needed
  FixChecksum(container, 512, 1024, 36);
  cdi::test::WriteFile(path, container);
  ExpectDecodesLikeQemu(path, "dynamic", {7, 4099});
}

// Blocks smaller than 4 KiB still have a 512-byte bitmap (one bit per sector,
// rounded up to a sector). qemu-img reads them without one, so the expected
// image is built here.
TEST_F(VhdTest, BlocksOfOneSector) {
  const std::vector<uint32_t> stored = {9, 1, 4, 0, 8};
  std::string container = MakeDynamic(5120 - 100, 512, stored);
  std::string expected(5120 - 100, '\0');
  for (uint32_t index : stored) {
    size_t length = std::min<size_t>(512, expected.size() - index * 512);
    expected.replace(index * 512, length, std::string(length, static_cast<char>(0x40 + index)));
  }
  for (size_t chunk : {7, 4099}) {
    Decoded out = DecodeThroughPipeline(container, chunk, chunk == 7);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_TRUE(out.coverage_ok) << out.coverage;
    EXPECT_EQ(out.described->details[1],
              (std::pair<std::string, std::string>{"block size", "512"}));
    EXPECT_EQ(cdi::test::FirstDifference(out.image, expected), "equal");
  }
}

// A sector whose bitmap bit is 0 reads as zero, whatever its block holds.
TEST_F(VhdTest, SectorsNotMarkedInTheBitmapReadAsZero) {
  std::string data = MakeData(kMiB, Pattern::kRandom, 11);
  std::string container = cdi::test::ReadFile(MakeVhd(dir_, data, "dynamic"));
  const uint32_t sector = GetBe32(container, 1536);  // BAT entry 0
  const size_t bitmap = size_t{sector} * 512;
  container[bitmap] = static_cast<char>(0x5F);      // sectors 0 and 2 unwritten
  container[bitmap + 1] = static_cast<char>(0xFE);  // sector 15 unwritten
  Decoded out = DecodeThroughPipeline(container, 4099, true);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(out.coverage_ok) << out.coverage;
  std::string expected = data;
  for (size_t s : {0, 2, 15}) expected.replace(s * 512, 512, std::string(512, '\0'));
  EXPECT_EQ(cdi::test::FirstDifference(out.image, expected), "equal");
}

// A header and a BAT placed after the blocks they map (qemu-img and Hyper-V
// place them first; a VHD may put them anywhere): the blocks that pass
// before the BAT wait in the spool and land where qemu-img reads them.
TEST_F(VhdTest, TablesAfterTheDataAreSpooled) {
  for (TablePlace place : {TablePlace::kBatAfterData, TablePlace::kBothAfterData}) {
    SCOPED_TRACE(place == TablePlace::kBatAfterData ? "BAT after the data" : "both after the data");
    std::string path = dir_.File("late.vhd");
    cdi::test::WriteFile(path, MakeDynamic(40448, 4096, {7, 0, 9, 3}, place));
    ExpectDecodesLikeQemu(path, "dynamic", {7, 4099});
    Decoded out = DecodeThroughPipeline(cdi::test::ReadFile(path), 4099, true);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    ASSERT_TRUE(out.described.has_value());
    const auto& details = out.described->details;
    EXPECT_NE(std::find(details.begin(), details.end(),
                        std::pair<std::string, std::string>{"spooling", "needed"}),
              details.end());
  }
  // Laid out first, nothing is spooled.
  Decoded first = DecodeThroughPipeline(MakeDynamic(40448, 4096, {7, 0}), 4099, true);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  const auto& details = first.described->details;
  EXPECT_NE(std::find(details.begin(), details.end(),
                      std::pair<std::string, std::string>{"spooling", "not needed"}),
            details.end());
}

// Spooled blocks beyond the memory budget go to an unlinked file in the
// scratch directory and come back intact; nothing stays behind there.
TEST_F(VhdTest, SpooledBlocksBeyondTheMemoryBudgetGoToTheScratchDirectory) {
  const std::vector<uint32_t> stored = {5, 1, 3, 0};
  const uint32_t block = 2 * kMiB;
  std::string path = dir_.File("spilled.vhd");
  cdi::test::WriteFile(path, MakeDynamic(6 * block + 4096, block, stored,
                                         TablePlace::kBatAfterData));
  const std::string expected = QemuReference(dir_, path);
  cdi::test::TempDir scratch;
  DecoderOptions options;
  options.memory_budget = 4 * kMiB;
  options.scratch_dir = scratch.path();
  Decoded out = DecodeThroughPipeline(cdi::test::ReadFile(path), 65536, true, options);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(out.coverage_ok) << out.coverage;
  EXPECT_EQ(cdi::test::FirstDifference(out.image, expected), "equal");
  const auto& details = out.described->details;
  auto on_disk = std::find_if(details.begin(), details.end(),
                              [](const auto& d) { return d.first == "spooled bytes on disk"; });
  ASSERT_NE(on_disk, details.end());
  EXPECT_GT(std::stoull(on_disk->second), 0u);
  EXPECT_TRUE(cdi::test::ListDir(scratch.path()).empty());
}

}  // namespace
}  // namespace cdi::formats::vhd_testing
