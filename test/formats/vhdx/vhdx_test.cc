// VHDX images made by qemu-img and qemu-io, decoded through the pipeline in
// odd chunk sizes, with and without the container's length, and compared
// byte for byte with qemu-img's own conversion.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "test/formats/vhdx/vhdx_test_support.h"

namespace cdi::formats::vhdx_testing {
namespace {

using testing::MakeData;
using testing::Pattern;

class VhdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cdi::test::HaveProgram("qemu-img") || !cdi::test::HaveProgram("qemu-io")) {
      GTEST_SKIP() << "qemu-img and qemu-io are needed";
    }
  }

  // Decodes `path` in each chunk size, with and without the container size,
  // and compares with qemu-img's conversion.
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
        EXPECT_EQ(out.chain, std::vector<std::string>{"vhdx"});
        EXPECT_TRUE(out.coverage_ok) << out.coverage;
        ASSERT_TRUE(out.description.has_value());
        EXPECT_EQ(out.description->virtual_size, expected.size());
        EXPECT_EQ(out.description->details.front(),
                  (std::pair<std::string, std::string>{"subformat", subformat}));
        EXPECT_EQ(cdi::test::FirstDifference(out.image, expected), "equal");
      }
    }
  }

  cdi::test::TempDir dir_;
};

struct LayoutCase {
  std::string subformat;
  std::string block_size;
  Pattern pattern;
};

void PrintTo(const LayoutCase& c, std::ostream* os) {
  *os << c.subformat << " " << c.block_size << " ";
  PrintTo(c.pattern, os);
}

class VhdxLayoutTest : public VhdxTest, public ::testing::WithParamInterface<LayoutCase> {};

// qemu-img convert from a raw source of an odd size, in each subformat and
// several block sizes.
TEST_P(VhdxLayoutTest, ConvertedDataDecodesLikeQemu) {
  const LayoutCase& c = GetParam();
  std::string data = MakeData(9 * kMiB + 12345, c.pattern, 3);
  std::string path =
      MakeVhdx(dir_, data, "subformat=" + c.subformat + ",block_size=" + c.block_size);
  ExpectDecodesLikeQemu(path, c.subformat, {kMiB + 1, 4099});
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, VhdxLayoutTest,
    ::testing::Values(LayoutCase{"dynamic", "1M", Pattern::kRandom},
                      LayoutCase{"dynamic", "8M", Pattern::kZeroRuns},
                      LayoutCase{"dynamic", "32M", Pattern::kRandom},
                      LayoutCase{"fixed", "1M", Pattern::kZeroRuns},
                      LayoutCase{"fixed", "8M", Pattern::kRandom},
                      LayoutCase{"fixed", "256M", Pattern::kZeroRuns}));

// Writes in random guest order, zero writes and a discard: blocks lie in the
// file in the order they were first written, some in the zero state.
TEST_F(VhdxTest, DynamicWrittenInRandomOrder) {
  for (std::string options : {"block_size=1M", "block_size=2M,block_state_zero=off"}) {
    SCOPED_TRACE(options);
    std::string path = dir_.File("random.vhdx");
    cdi::test::Sh("qemu-img create -q -f vhdx -o " + options + " " + Quote(path) + " 20971520");
    cdi::test::Sh(
        "qemu-io -f vhdx -c 'write -P 0x5a 14M 3M' -c 'write -P 0xa5 512 1536' "
        "-c 'write -P 0x33 7M 100k' -c 'write -P 0x77 20479k 1k' "
        "-c 'write -P 0x19 4194000 1024' -c 'write -z 15M 64k' -c 'discard 16M 1M' " +
        Quote(path) + " >/dev/null");
    ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1, 4099});
  }
}

// A fixed image from qemu-img create, then written by qemu-io: the
// preallocated blocks turn fully present where written.
TEST_F(VhdxTest, FixedWrittenInPlace) {
  std::string path = dir_.File("fixed.vhdx");
  cdi::test::Sh("qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M " + Quote(path) +
                " 6M");
  cdi::test::Sh("qemu-io -f vhdx -c 'write -P 0x42 1M 1M' -c 'write -P 0x43 5M 4k' " +
                Quote(path) + " >/dev/null");
  ExpectDecodesLikeQemu(path, "fixed", {7 * 1024 + 3, kMiB + 1});
}

TEST_F(VhdxTest, SmallImageInSevenByteChunks) {
  std::string path = MakeVhdx(dir_, MakeData(300 * kKiB + 512, Pattern::kZeroRuns, 4),
                              "block_size=1M");
  ExpectDecodesLikeQemu(path, "dynamic", {7});
}

TEST_F(VhdxTest, EmptyImage) {
  std::string path = dir_.File("empty.vhdx");
  cdi::test::Sh("qemu-img create -q -f vhdx " + Quote(path) + " 7340032");
  ExpectDecodesLikeQemu(path, "dynamic", {4099, kMiB + 1});
}

// A larger log moves the BAT and the metadata further into the file.
TEST_F(VhdxTest, LargerLog) {
  std::string path =
      MakeVhdx(dir_, MakeData(3 * kMiB, Pattern::kRandom, 5), "block_size=1M,log_size=4M");
  ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1});
}

TEST_F(VhdxTest, DescribesItself) {
  std::string path = MakeVhdx(dir_, MakeData(kMiB, Pattern::kRandom), "block_size=8M");
  Decoded out = DecodeThroughPipeline(cdi::test::ReadFile(path), 65536, true);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_TRUE(out.description.has_value());
  EXPECT_EQ(out.description->format, "vhdx");
  EXPECT_EQ(out.description->virtual_size, kMiB);
  const std::vector<std::pair<std::string, std::string>> expected_head = {
      {"subformat", "dynamic"},
      {"block size", "8388608"},
      {"logical sector size", "512"},
      {"physical sector size", "512"},
      {"virtual size", std::to_string(kMiB)}};
  ASSERT_EQ(out.description->details.size(), expected_head.size() + 1);
  for (size_t i = 0; i < expected_head.size(); ++i) {
    EXPECT_EQ(out.description->details[i], expected_head[i]);
  }
  EXPECT_EQ(out.description->details.back().first, "creator");
  EXPECT_EQ(out.description->details.back().second.substr(0, 4), "QEMU");
}

TEST_F(VhdxTest, InsideGzipAndXz) {
  std::string path = MakeVhdx(dir_, MakeData(5 * kMiB + 512, Pattern::kZeroRuns, 6),
                              "block_size=1M");
  const std::string expected = QemuReference(dir_, path);
  for (Format wrapper : {Format::kGzip, Format::kXz}) {
    Decoded out = DecodeThroughPipeline(
        testing::Compress(wrapper, cdi::test::ReadFile(path)), 4099, true);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.chain, (std::vector<std::string>{std::string(FormatName(wrapper)), "vhdx"}));
    EXPECT_TRUE(out.coverage_ok) << out.coverage;
    EXPECT_EQ(cdi::test::FirstDifference(out.image, expected), "equal");
  }
}

// Keeps the bytes written, by offset, and counts zeroed bytes: for guests too
// large to hold whole.
class SparseWriter : public GuestWriter {
 public:
  Status Begin(const ImageDescription& image) override {
    virtual_size_ = image.virtual_size.value_or(0);
    return Status::Ok();
  }
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    // A write that continues the one before joins it.
    auto before = written_.upper_bound(guest_offset);
    if (before != written_.begin()) before = std::prev(before);
    std::string& bytes =
        before != written_.end() && before->first + before->second.size() == guest_offset
            ? before->second
            : written_[guest_offset];
    bytes.append(reinterpret_cast<const char*>(data.data()), data.size());
    covered_ += data.size();
    return Status::Ok();
  }
  Status Zero(uint64_t, uint64_t length) override {
    covered_ += length;
    return Status::Ok();
  }
  std::map<uint64_t, std::string> written_;
  uint64_t covered_ = 0;
  uint64_t virtual_size_ = 0;
};

// Past 4 GiB (with 512-byte sectors), a sector-bitmap entry sits between the
// BAT's payload entries: blocks after it are found at the right index.
TEST_F(VhdxTest, BlocksPastTheFirstSectorBitmapEntry) {
  std::string path = dir_.File("large.vhdx");
  cdi::test::Sh("qemu-img create -q -f vhdx -o block_size=1M " + Quote(path) + " 6G");
  cdi::test::Sh("qemu-io -f vhdx -c 'write -P 0x61 4097M 1M' -c 'write -P 0x62 3M 512' "
                "-c 'write -P 0x63 6143M 1M' " + Quote(path) + " >/dev/null");
  const std::string container = cdi::test::ReadFile(path);
  SparseWriter writer;
  DecoderOptions options;
  options.container_size = container.size();
  std::unique_ptr<Decoder> decoder = MakeVhdxDecoder(&writer, options);
  Status status = testing::FeedInChunks(*decoder, container, kMiB + 1);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(writer.virtual_size_, 6ull << 30);
  EXPECT_EQ(writer.covered_, 6ull << 30);
  // Each write compared with qemu-img's conversion at the same offset.
  std::string raw = dir_.File("large.raw");
  cdi::test::Sh("qemu-img convert -f vhdx -O raw " + Quote(path) + " " + Quote(raw));
  int fd = ::open(raw.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<uint64_t> offsets;
  for (const auto& [offset, bytes] : writer.written_) {
    offsets.push_back(offset);
    std::string expected(bytes.size(), '\0');
    ASSERT_EQ(::pread(fd, expected.data(), expected.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(expected.size()));
    EXPECT_EQ(bytes, expected) << "at " << offset;
  }
  ::close(fd);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{3 * kMiB, 4097 * kMiB, 6143 * kMiB}));
}

// A log with an entry to replay is refused; once qemu-img has replayed it,
// the image decodes like qemu-img reads it.
TEST_F(VhdxTest, PendingLogIsRefusedUntilReplayed) {
  std::string path = MakeVhdx(dir_, MakeData(2 * kMiB, Pattern::kRandom, 7), "block_size=1M");
  std::string image = cdi::test::ReadFile(path);
  AddPendingLogEntry(image);
  cdi::test::WriteFile(path, image);
  // qemu-img itself will not read it without replaying the log.
  EXPECT_NE(cdi::test::Run({"qemu-img", "convert", "-O", "raw", path, dir_.File("x.raw")}).exit_code,
            0);
  Decoded out = DecodeThroughPipeline(image, 4099, true);
  EXPECT_EQ(out.status.code(), ErrorCode::kUnsupported) << out.status.ToString();
  EXPECT_NE(out.status.message().find("qemu-img check -r all"), std::string::npos)
      << out.status.message();
  cdi::test::Sh("qemu-img check -q -r all " + Quote(path) + " || true");
  ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1});
}

// The image of DynamicWrittenInRandomOrder's first case, as qemu-img writes
// it: the BAT at 2 MiB, the metadata at 3 MiB, blocks from 4 MiB in the
// order they were first written.
std::string RandomOrderImage(const cdi::test::TempDir& dir, const std::string& name) {
  std::string path = dir.File(name);
  cdi::test::Sh("qemu-img create -q -f vhdx -o block_size=1M " + Quote(path) + " 20971520");
  cdi::test::Sh(
      "qemu-io -f vhdx -c 'write -P 0x5a 14M 3M' -c 'write -P 0xa5 512 1536' "
      "-c 'write -P 0x33 7M 100k' -c 'write -P 0x77 20479k 1k' "
      "-c 'write -P 0x19 4194000 1024' -c 'write -z 15M 64k' -c 'discard 16M 1M' " +
      Quote(path) + " >/dev/null");
  return path;
}

// What Describe() says about spooling once the image is decoded.
std::map<std::string, std::string> SpoolingDetails(const ImageDescription& description) {
  std::map<std::string, std::string> details;
  for (const auto& [key, value] : description.details) {
    if (key.rfind("spool", 0) == 0) details[key] = value;
  }
  return details;
}

// A BAT, a metadata region or both placed after the blocks they map (moved
// to the end of the file): the blocks are kept in the spool as they pass and
// written once the BAT is read, byte for byte as qemu-img reads the image
// before and after the move.
TEST_F(VhdxTest, TablesAfterTheDataAreSpooled) {
  const std::string original = RandomOrderImage(dir_, "original.vhdx");
  const std::string expected = QemuReference(dir_, original);
  for (std::vector<int> moved : {std::vector<int>{0}, {1}, {0, 1}, {1, 0}}) {
    SCOPED_TRACE(moved.size() == 2 ? "both" : moved[0] == 0 ? "BAT" : "metadata");
    std::string image = cdi::test::ReadFile(original);
    for (int region : moved) MoveRegionToEnd(image, region);
    const std::string path = dir_.File("moved.vhdx");
    cdi::test::WriteFile(path, image);
    ASSERT_EQ(cdi::test::FirstDifference(QemuReference(dir_, path), expected), "equal");
    ExpectDecodesLikeQemu(path, "dynamic", {kMiB + 1, 4099});

    testing::RecordingWriter writer;
    std::unique_ptr<Decoder> decoder = MakeVhdxDecoder(&writer, DecoderOptions{});
    ASSERT_TRUE(testing::FeedInChunks(*decoder, image, 65536).ok());
    const std::map<std::string, std::string> details = SpoolingDetails(decoder->Describe());
    EXPECT_EQ(details.at("spooling"), "needed");
    EXPECT_GT(std::stoull(details.at("spooled bytes")), 2 * kMiB);
    EXPECT_EQ(details.at("spooled bytes on disk"), "0");
  }
}

// The layout qemu-img writes needs no spool.
TEST_F(VhdxTest, TablesBeforeTheDataNeedNoSpool) {
  const std::string image = cdi::test::ReadFile(RandomOrderImage(dir_, "image.vhdx"));
  testing::RecordingWriter writer;
  std::unique_ptr<Decoder> decoder = MakeVhdxDecoder(&writer, DecoderOptions{});
  ASSERT_TRUE(testing::FeedInChunks(*decoder, image, 65536).ok());
  const std::map<std::string, std::string> details = SpoolingDetails(decoder->Describe());
  EXPECT_EQ(details.at("spooling"), "not needed");
  EXPECT_EQ(details.at("spooled bytes"), "0");
}

// Beyond the memory budget, spooled blocks go to a scratch file in the
// scratch directory (unlinked: nothing is left there); one that cannot be
// made fails the import with the directory's error, before any data is
// written.
TEST_F(VhdxTest, SpoolBeyondTheBudgetGoesToTheScratchDirectory) {
  const std::string original = RandomOrderImage(dir_, "original.vhdx");
  const std::string expected = QemuReference(dir_, original);
  std::string image = cdi::test::ReadFile(original);
  MoveRegionToEnd(image, 0);
  cdi::test::TempDir scratch;
  DecoderOptions options;
  options.memory_budget = 5 * kMiB;  // the regions take 2 MiB of it
  options.scratch_dir = scratch.path();
  options.container_size = image.size();
  testing::RecordingWriter writer;
  std::unique_ptr<Decoder> decoder = MakeVhdxDecoder(&writer, options);
  Status status = testing::FeedInChunks(*decoder, image, kMiB + 1);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(cdi::test::FirstDifference(writer.image(), expected), "equal");
  const std::map<std::string, std::string> details = SpoolingDetails(decoder->Describe());
  EXPECT_EQ(details.at("spooling"), "needed");
  EXPECT_GT(std::stoull(details.at("spooled bytes on disk")), 0u);
  EXPECT_EQ(cdi::test::Run({"ls", "-A", scratch.path()}).out, "");

  options.scratch_dir = scratch.File("missing");
  testing::RecordingWriter refused(testing::RecordingWriter::Content::kDrop);
  decoder = MakeVhdxDecoder(&refused, options);
  status = testing::FeedInChunks(*decoder, image, kMiB + 1);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("creating a scratch file in " + scratch.File("missing") +
                                  " to spool out-of-order VHDX data"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("raise the memory budget"), std::string::npos)
      << status.message();
  for (const auto& op : refused.ops()) EXPECT_NE(op.kind, testing::RecordingWriter::Kind::kWrite);
}

}  // namespace
}  // namespace cdi::formats::vhdx_testing
