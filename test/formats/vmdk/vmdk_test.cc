// The VMDK decoder against qemu-img: streamOptimized and monolithicSparse
// images made at test time, decoded in odd chunk sizes and compared byte for
// byte with qemu-img's own conversion to raw; hostile images, made by patching
// real ones, each refused with its own message.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/pipeline.h"
#include "formats/tar/tar_reader.h"
#include "formats/vmdk/vmdk_decoder.h"
#include "test/formats/formats_testing.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/tar_builder.h"
#include "test/support/temp_dir.h"

namespace cdi::formats {
namespace {

using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingWriter;

constexpr size_t kGrain = 64 * 1024;

struct Made {
  std::string vmdk;       // the image
  std::string reference;  // qemu-img's conversion of it to raw
};

// A vmdk of `subformat` made by qemu-img from `raw`, and qemu-img's raw of it.
Made MakeVmdk(const std::string& raw, const std::string& subformat) {
  cdi::test::TempDir dir;
  cdi::test::WriteFile(dir.File("in.raw"), raw);
  std::string vmdk = dir.File("image.vmdk");
  cdi::test::RunResult r = cdi::test::Run({"qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                                           "subformat=" + subformat, dir.File("in.raw"), vmdk});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = cdi::test::Run({"qemu-img", "convert", "-f", "vmdk", "-O", "raw", vmdk, dir.File("out.raw")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return {cdi::test::ReadFile(vmdk), cdi::test::ReadFile(dir.File("out.raw"))};
}

Status Decode(const std::string& image, size_t chunk, RecordingWriter& writer,
              DecoderOptions options = {}) {
  options.container_size = image.size();
  std::unique_ptr<Decoder> decoder = MakeVmdkDecoder(&writer, options);
  return FeedInChunks(*decoder, image, chunk);
}

void PutLe32(std::string& image, size_t offset, uint32_t value) {
  for (int i = 0; i < 4; ++i) image[offset + i] = static_cast<char>(value >> (8 * i));
}
void PutLe64(std::string& image, size_t offset, uint64_t value) {
  for (int i = 0; i < 8; ++i) image[offset + i] = static_cast<char>(value >> (8 * i));
}
uint32_t GetLe32(const std::string& image, size_t offset) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= uint32_t{static_cast<uint8_t>(image[offset + i])} << (8 * i);
  return value;
}

uint64_t GetLe64(const std::string& image, size_t offset) {
  return GetLe32(image, offset) | uint64_t{GetLe32(image, offset + 4)} << 32;
}

// Moves the grain directory (and with `tables`, the grain tables) of a
// monolithicSparse image made by qemu-img after its grains, at the end of the
// file, and fills their old places with 0xEE. The guest's data stays the same.
void MoveMapToEnd(std::string& image, bool tables) {
  const uint64_t capacity = GetLe64(image, 12);
  const uint64_t grain = GetLe64(image, 20);
  const size_t gd_bytes = static_cast<size_t>(((capacity + grain - 1) / grain + 511) / 512 * 4);
  const size_t gd = static_cast<size_t>(GetLe64(image, 56) * 512);
  image.resize((image.size() + 511) / 512 * 512);
  const uint64_t new_gd_sector = image.size() / 512;
  std::string tail = image.substr(gd, gd_bytes);
  image.replace(gd, gd_bytes, std::string(gd_bytes, '\xee'));
  tail.resize((gd_bytes + 511) / 512 * 512, '\0');
  for (size_t i = 0; tables && i < gd_bytes / 4; ++i) {
    const size_t table = size_t{GetLe32(tail, i * 4)} * 512;
    if (table == 0) continue;
    PutLe32(tail, i * 4, static_cast<uint32_t>(new_gd_sector + tail.size() / 512));
    tail += image.substr(table, 2048);
    image.replace(table, 2048, std::string(2048, '\xee'));
  }
  image += tail;
  PutLe64(image, 56, new_gd_sector);
}

// Replaces the embedded descriptor (at sector 1, as qemu-img writes it) with `text`.
void PutDescriptor(std::string& image, const std::string& text) {
  ASSERT_EQ(GetLe32(image, 28), 1u);
  size_t size = GetLe32(image, 36) * 512;
  ASSERT_LE(text.size(), size);
  image.replace(512, size, text + std::string(size - text.size(), '\0'));
}

std::string Descriptor(const std::string& create_type, const std::string& extent,
                       const std::string& extra = "") {
  return "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"" +
         create_type + "\"\n" + extra + "\n# Extent description\n" + extent + "\n";
}

// Offsets of the stream markers of a streamOptimized image, in order.
std::vector<size_t> Markers(const std::string& image) {
  std::vector<size_t> offsets;
  size_t offset = GetLe32(image, 64) * 512;
  while (offset + 16 <= image.size()) {
    offsets.push_back(offset);
    uint32_t size = GetLe32(image, offset + 8);
    if (size == 0) {
      if (GetLe32(image, offset + 12) == 0) break;
      offset += 512 + GetLe32(image, offset) * 512;
    } else {
      offset += (12 + size + 511) / 512 * 512;
    }
  }
  return offsets;
}

struct Case {
  std::string subformat;
  size_t size;
  Pattern pattern;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.subformat << "/" << c.size << "/";
  testing::PrintTo(c.pattern, os);
}

class VmdkMatchesQemuImgTest : public ::testing::TestWithParam<Case> {};

TEST_P(VmdkMatchesQemuImgTest, InOddChunks) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  const Case& c = GetParam();
  Made made = MakeVmdk(MakeData(c.size, c.pattern, static_cast<uint32_t>(c.size)), c.subformat);
  std::vector<size_t> chunks = {(1 << 20) + 1, 4099};
  if (made.vmdk.size() < (2 << 20)) chunks.push_back(7);
  for (size_t chunk : chunks) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    RecordingWriter writer;
    Status status = Decode(made.vmdk, chunk, writer);
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_TRUE(writer.CoverageOk());
    EXPECT_EQ(writer.begin_calls(), 1);
    ASSERT_EQ(writer.image().size(), made.reference.size());
    EXPECT_TRUE(writer.image() == made.reference)
        << cdi::test::FirstDifference(writer.image(), made.reference);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Images, VmdkMatchesQemuImgTest,
    ::testing::Values(Case{"streamOptimized", 500000, Pattern::kRandom},
                      Case{"streamOptimized", 3 * kGrain, Pattern::kRandom},
                      Case{"streamOptimized", 5 * 1024 * 1024 + 4321, Pattern::kZeroRuns},
                      Case{"streamOptimized", 512, Pattern::kRandom},
                      Case{"monolithicSparse", 500000, Pattern::kRandom},
                      Case{"monolithicSparse", 3 * kGrain, Pattern::kRandom},
                      Case{"monolithicSparse", 5 * 1024 * 1024 + 4321, Pattern::kZeroRuns},
                      Case{"monolithicSparse", 512, Pattern::kRandom}));

TEST(VmdkTest, LargeSparseImagesAreMostlyZero) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  // 64 MiB of zeros but for a little data at both ends: several grain tables,
  // one of them empty.
  std::string raw(64 << 20, '\0');
  raw.replace(1000, 5, "hello");
  raw.replace(raw.size() - 100, 5, "world");
  for (const char* subformat : {"streamOptimized", "monolithicSparse"}) {
    Made made = MakeVmdk(raw, subformat);
    RecordingWriter writer;
    Status status = Decode(made.vmdk, (1 << 20) + 1, writer);
    ASSERT_TRUE(status.ok()) << subformat << ": " << status.ToString();
    EXPECT_TRUE(writer.CoverageOk());
    EXPECT_TRUE(writer.image() == made.reference) << subformat;
  }
}

TEST(VmdkTest, DescribesTheImage) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(500000, Pattern::kRandom), "streamOptimized");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  ASSERT_TRUE(FeedInChunks(pipeline, made.vmdk, 4099).ok());
  EXPECT_EQ(pipeline.format_chain(), std::vector<std::string>{"vmdk"});
  ASSERT_TRUE(pipeline.Describe().has_value());
  ImageDescription d = *pipeline.Describe();
  EXPECT_EQ(d.format, "vmdk");
  EXPECT_EQ(d.virtual_size, 977u * 512);
  std::vector<std::pair<std::string, std::string>> details = {
      {"subformat", "streamOptimized"}, {"version", "3"},       {"grain size", "65536"},
      {"virtual size", "500224"},       {"compressed", "yes"}};
  EXPECT_EQ(d.details, details);
  EXPECT_TRUE(writer.image() == made.reference);

  // monolithicSparse as qemu-img lays it out: the map first, nothing spooled
  // (the redundant directory and tables are passed over).
  Made sparse = MakeVmdk(MakeData(500000, Pattern::kRandom), "monolithicSparse");
  RecordingWriter sparse_writer;
  ImagePipeline sparse_pipeline(&sparse_writer, {});
  ASSERT_TRUE(FeedInChunks(sparse_pipeline, sparse.vmdk, 4099).ok());
  ImageDescription sd = *sparse_pipeline.Describe();
  std::vector<std::pair<std::string, std::string>> tail(sd.details.end() - 3, sd.details.end());
  EXPECT_EQ(tail, (std::vector<std::pair<std::string, std::string>>{
                      {"spooling", "not needed"},
                      {"spooled bytes", "0"},
                      {"spooled bytes on disk", "0"}}));
}

TEST(VmdkTest, CompressedStreamReachesTheDecoder) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(300000, Pattern::kZeroRuns), "monolithicSparse");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, testing::Compress(Format::kGzip, made.vmdk), 4099);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(pipeline.format_chain(), (std::vector<std::string>{"gzip", "vmdk"}));
  EXPECT_TRUE(writer.image() == made.reference);
}

TEST(VmdkTest, TruncatedImagesAreErrorsNeverZeros) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  for (const char* subformat : {"streamOptimized", "monolithicSparse"}) {
    Made made = MakeVmdk(MakeData(500000, Pattern::kRandom), subformat);
    // Inside the end-of-stream marker's type, or inside the last grain.
    size_t end = subformat == std::string("streamOptimized") ? Markers(made.vmdk).back() + 15
                                                            : made.vmdk.size();
    for (size_t cut : {size_t{100}, size_t{600}, size_t{20000}, size_t{70000}, end - 1}) {
      RecordingWriter writer;
      std::unique_ptr<Decoder> decoder = MakeVmdkDecoder(&writer, {});
      Status status = FeedInChunks(*decoder, made.vmdk.substr(0, cut), 4099);
      EXPECT_EQ(status.code(), ErrorCode::kCorruptImage) << subformat << " cut at " << cut;
      EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
    }
  }
}

// qemu-img ends some streamOptimized images after their last grain, with no
// end-of-stream marker: the tables before the grains tell a complete one from
// one cut at a grain boundary.
TEST(VmdkTest, StreamWithoutEndMarkerIsCheckedAgainstItsTables) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(3 * kGrain, Pattern::kRandom), "streamOptimized");
  std::vector<size_t> markers = Markers(made.vmdk);
  ASSERT_EQ(markers.size(), 3u);
  ASSERT_NE(GetLe32(made.vmdk, markers.back() + 8), 0u) << "the image has an end marker";
  for (size_t cut : {markers[1], markers[2]}) {
    RecordingWriter writer;
    std::unique_ptr<Decoder> decoder = MakeVmdkDecoder(&writer, {});
    Status status = FeedInChunks(*decoder, made.vmdk.substr(0, cut), 4099);
    EXPECT_EQ(status.code(), ErrorCode::kCorruptImage) << "cut at " << cut;
    EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
  }
}

// A stream as VMware writes one (the disk inside an OVA): gdOffset is
// GD_AT_END, nothing but zeros before the grains, and after them a grain
// table, the grain directory and the footer, each behind its marker, then the
// end-of-stream marker. The grains here come out of LBA order.
TEST(VmdkTest, StreamWithTablesAtTheEnd) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(500000, Pattern::kZeroRuns, 7), "streamOptimized");
  std::string& qemu = made.vmdk;
  std::vector<size_t> markers = Markers(qemu);
  ASSERT_GE(markers.size(), 4u);
  size_t overhead = GetLe32(qemu, 64) * 512;
  std::string head = qemu.substr(0, overhead);
  std::fill(head.begin() + 512 + GetLe32(head, 36) * 512, head.end(), '\0');
  std::string footer = head.substr(0, 512);
  PutLe64(head, 56, 0xFFFFFFFFFFFFFFFFull);
  auto marker = [](uint64_t sectors, uint32_t type) {
    std::string m(512, '\0');
    PutLe64(m, 0, sectors);
    PutLe32(m, 12, type);
    return m;
  };
  // Grains in the order 1, 0, 2, 3...: a grain's marker and data run to the next marker.
  std::string grains = qemu.substr(markers[1], markers[2] - markers[1]) +
                       qemu.substr(markers[0], markers[1] - markers[0]) +
                       qemu.substr(markers[2], markers.back() - markers[2]);
  size_t gt_sector = (overhead + grains.size()) / 512 + 1;
  PutLe64(footer, 56, gt_sector + 4 + 1);
  std::string image = head + grains + marker(4, 1) + std::string(2048, '\0') + marker(1, 2) +
                      std::string(512, '\0') + marker(1, 3) + footer + marker(0, 0);
  for (size_t chunk : {size_t{7}, size_t{4099}, size_t{(1 << 20) + 1}}) {
    RecordingWriter writer;
    Status status = Decode(image, chunk, writer);
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_TRUE(writer.CoverageOk());
    EXPECT_TRUE(writer.image() == made.reference) << "chunk " << chunk;
  }
  // Cut inside the footer: truncated.
  RecordingWriter writer;
  Status status = Decode(image.substr(0, image.size() - 700), 4099, writer);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage) << status.ToString();
}

// An OVA is a tar holding an .ovf and the streamOptimized disk. The disk
// decodes straight out of the archive, in the one pass over it: here the tar
// reader hands the .vmdk entry's data to a disk pipeline as it streams. (The
// pipeline itself does not open .ova files in disk mode: see README.)
class OvaDiskWriter : public tar::EntryWriter {
 public:
  explicit OvaDiskWriter(GuestWriter* writer) : writer_(writer) {}
  Status Begin(const tar::Entry& entry) override {
    if (!entry.path.ends_with(".vmdk")) return Status::Ok();
    ++disks_;
    pipeline_ = std::make_unique<ImagePipeline>(writer_, PipelineOptions{});
    return Status::Ok();
  }
  Status Data(std::span<const uint8_t> data) override {
    return pipeline_ == nullptr ? Status::Ok() : pipeline_->Feed(data);
  }
  Status End() override {
    if (pipeline_ == nullptr) return Status::Ok();
    Status status = pipeline_->Finish();
    chain_ = pipeline_->format_chain();
    pipeline_.reset();
    return status;
  }
  int disks() const { return disks_; }
  const std::vector<std::string>& chain() const { return chain_; }

 private:
  GuestWriter* writer_;
  std::unique_ptr<ImagePipeline> pipeline_;
  std::vector<std::string> chain_;
  int disks_ = 0;
};

TEST(VmdkTest, DiskOfAnOvaDecodesAsTheArchiveStreams) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(3 << 20, Pattern::kZeroRuns, 11), "streamOptimized");
  std::string ovf =
      "<?xml version=\"1.0\"?>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\">"
      "<References><File ovf:href=\"vm-disk1.vmdk\" ovf:id=\"file1\"/></References>"
      "</Envelope>\n";
  std::string ova = cdi::test::TarBuilder()
                        .File("vm.ovf", ovf)
                        .File("vm-disk1.vmdk", made.vmdk)
                        .File("vm.mf", "SHA256(vm-disk1.vmdk)= 00\n")
                        .End()
                        .bytes;
  RecordingWriter writer;
  OvaDiskWriter disks(&writer);
  std::unique_ptr<ByteSink> reader = tar::MakeTarReader(&disks);
  Status status = FeedInChunks(*reader, ova, 4099);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(disks.disks(), 1);
  EXPECT_EQ(disks.chain(), std::vector<std::string>{"vmdk"});
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_TRUE(writer.image() == made.reference);
}

// qemu-io writes zeroes into a zeroed-grain image as table entries of 1.
TEST(VmdkTest, ZeroedGrainEntriesReadAsZero) {
  if (!cdi::test::HaveProgram("qemu-img") || !cdi::test::HaveProgram("qemu-io")) {
    GTEST_SKIP() << "qemu-img or qemu-io is not installed";
  }
  cdi::test::TempDir dir;
  std::string path = dir.File("z.vmdk");
  cdi::test::RunResult r =
      cdi::test::Run({"qemu-img", "create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", path, "1M"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cdi::test::Run({"qemu-io", "-f", "vmdk", "-c", "write -P 0x55 0 64k", "-c",
                      "write -z 64k 128k", "-c", "write -P 0xaa 192k 64k", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string image = cdi::test::ReadFile(path);
  ASSERT_EQ(GetLe32(image, 8) & 4, 4u) << "no zeroed-grain flag";
  r = cdi::test::Run({"qemu-img", "convert", "-f", "vmdk", "-O", "raw", path, dir.File("z.raw")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RecordingWriter writer;
  Status status = Decode(image, 4099, writer);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_TRUE(writer.image() == cdi::test::ReadFile(dir.File("z.raw")));
  uint64_t written = 0;
  for (const RecordingWriter::Op& op : writer.ops()) {
    if (op.kind == RecordingWriter::Kind::kWrite) written += op.length;
  }
  EXPECT_EQ(written, 2 * kGrain);
}

// A header may claim any capacity; the grain directory must fit the budget
// before a byte of it is held (the container's length is not known here).
TEST(VmdkTest, HugeGrainDirectoryIsRefusedBeforeItIsRead) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(100000, Pattern::kRandom), "monolithicSparse");
  PutLe64(made.vmdk, 12, 1ull << 40);  // capacity
  PutLe64(made.vmdk, 20, 1);           // grain size: 2^31 directory entries
  PutDescriptor(made.vmdk,
                Descriptor("monolithicSparse", "RW " + std::to_string(1ull << 40) + " SPARSE \"a\""));
  RecordingWriter writer;
  std::unique_ptr<Decoder> decoder = MakeVmdkDecoder(&writer, {});
  Status status = FeedInChunks(*decoder, made.vmdk, 4099);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("grain directory"), std::string::npos) << status.message();
}

// One patched image per refusal: the code and a word of the message.
struct Hostile {
  std::string name;
  std::string subformat;
  void (*patch)(std::string& image);
  ErrorCode code;
  std::string message;
};

void PrintTo(const Hostile& h, std::ostream* os) { *os << h.name; }

class VmdkHostileTest : public ::testing::TestWithParam<Hostile> {};

TEST_P(VmdkHostileTest, RefusedWithItsOwnMessage) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  const Hostile& h = GetParam();
  Made made = MakeVmdk(MakeData(500000, Pattern::kRandom), h.subformat);
  std::string image = made.vmdk;
  h.patch(image);
  if (::testing::Test::HasFatalFailure()) return;
  RecordingWriter writer;
  Status status = Decode(image, 4099, writer);
  EXPECT_EQ(status.code(), h.code) << status.ToString();
  EXPECT_NE(status.message().find(h.message), std::string::npos) << status.message();
  EXPECT_TRUE(writer.CoverageOk() || !status.ok());
}

const std::string kStream = "streamOptimized";
const std::string kSparse = "monolithicSparse";

INSTANTIATE_TEST_SUITE_P(
    Images, VmdkHostileTest,
    ::testing::Values(
        Hostile{"Version4", kStream, [](std::string& i) { PutLe32(i, 4, 4); },
                ErrorCode::kUnsupported, "version 4"},
        Hostile{"GrainSizeNotPowerOfTwo", kSparse, [](std::string& i) { PutLe64(i, 20, 96); },
                ErrorCode::kCorruptImage, "grainSize 96"},
        Hostile{"GrainSizeTooLarge", kStream, [](std::string& i) { PutLe64(i, 20, 1ull << 22); },
                ErrorCode::kCorruptImage, "grainSize"},
        Hostile{"CapacityZero", kStream, [](std::string& i) { PutLe64(i, 12, 0); },
                ErrorCode::kCorruptImage, "capacity 0"},
        Hostile{"GtesPerGt", kSparse, [](std::string& i) { PutLe32(i, 44, 1024); },
                ErrorCode::kCorruptImage, "numGTEsPerGT"},
        Hostile{"NewlineTest", kSparse, [](std::string& i) { i[75] = '\n'; },
                ErrorCode::kCorruptImage, "newline"},
        Hostile{"CompressAlgorithm", kStream, [](std::string& i) { PutLe32(i, 77, 2); },
                ErrorCode::kUnsupported, "compressAlgorithm 2"},
        Hostile{"NoEmbeddedDescriptor", kSparse, [](std::string& i) { PutLe64(i, 28, 0); },
                ErrorCode::kUnsupported, "no embedded descriptor"},
        Hostile{"DescriptorTooLarge", kSparse, [](std::string& i) { PutLe64(i, 36, 4096); },
                ErrorCode::kCorruptImage, "descriptorSize"},
        Hostile{"OverHeadPastTheEnd", kStream, [](std::string& i) { PutLe64(i, 64, 1ull << 30); },
                ErrorCode::kCorruptImage, "overHead"},
        Hostile{"GdOffsetPastTheEnd", kSparse, [](std::string& i) { PutLe64(i, 56, 1ull << 30); },
                ErrorCode::kCorruptImage, "grain directory"},
        Hostile{"MonolithicFlat", kSparse,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("monolithicFlat", "RW 977 FLAT \"/etc/shadow\" 0"));
                },
                ErrorCode::kUnsupported, "createType \"monolithicFlat\""},
        Hostile{"TwoGbMaxExtentSparse", kSparse,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("twoGbMaxExtentSparse", "RW 977 SPARSE \"a.vmdk\""));
                },
                ErrorCode::kUnsupported, "createType \"twoGbMaxExtentSparse\""},
        Hostile{"FlatExtent", kSparse,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("monolithicSparse", "RW 977 FLAT \"/dev/sda\" 0"));
                },
                ErrorCode::kUnsupported, "type FLAT"},
        Hostile{"TwoExtents", kSparse,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("monolithicSparse",
                                              "RW 977 SPARSE \"a.vmdk\"\nRW 977 SPARSE \"b.vmdk\""));
                },
                ErrorCode::kUnsupported, "2 extent lines"},
        Hostile{"ExtentLength", kStream,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("streamOptimized", "RW 976 SPARSE \"a.vmdk\""));
                },
                ErrorCode::kCorruptImage, "976 sectors"},
        Hostile{"Differencing", kSparse,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("monolithicSparse", "RW 977 SPARSE \"a.vmdk\"",
                                              "parentFileNameHint=\"/var/lib/base.vmdk\"\n"));
                },
                ErrorCode::kUnsupported, "differencing"},
        Hostile{"ParentCid", kSparse,
                [](std::string& i) {
                  std::string d = Descriptor("monolithicSparse", "RW 977 SPARSE \"a.vmdk\"");
                  d.replace(d.find("parentCID=ffffffff"), 18, "parentCID=1234abcd");
                  PutDescriptor(i, d);
                },
                ErrorCode::kUnsupported, "parentCID is 1234abcd"},
        Hostile{"NoCreateType", kSparse,
                [](std::string& i) { PutDescriptor(i, "RW 977 SPARSE \"a.vmdk\"\n"); },
                ErrorCode::kCorruptImage, "no createType"},
        Hostile{"CreateTypeAgainstFlags", kSparse,
                [](std::string& i) {
                  PutDescriptor(i, Descriptor("streamOptimized", "RW 977 SPARSE \"a.vmdk\""));
                },
                ErrorCode::kCorruptImage, "does not match the header"},
        Hostile{"GrainLbaPastCapacity", kStream,
                [](std::string& i) { PutLe64(i, Markers(i)[1], 977 + 127); },
                ErrorCode::kCorruptImage, "past the capacity"},
        Hostile{"GrainLbaUnaligned", kStream,
                [](std::string& i) { PutLe64(i, Markers(i)[1], 129); },
                ErrorCode::kCorruptImage, "not a multiple of the grain size"},
        Hostile{"GrainSeenTwice", kStream,
                [](std::string& i) { PutLe64(i, Markers(i)[2], 0); },
                ErrorCode::kCorruptImage, "second grain"},
        Hostile{"CompressedSizeTooLarge", kStream,
                [](std::string& i) { PutLe32(i, Markers(i)[0] + 8, 1u << 20); },
                ErrorCode::kCorruptImage, "compressed size"},
        Hostile{"NotZlib", kStream,
                [](std::string& i) { PutLe32(i, Markers(i)[0] + 12, 0xdeadbeef); },
                ErrorCode::kCorruptImage, "not valid zlib data"},
        Hostile{"UnknownMarker", kStream,
                [](std::string& i) { PutLe32(i, Markers(i).back() + 12, 9); },
                ErrorCode::kCorruptImage, "unknown marker type 9"},
        Hostile{"GteInsideMetadata", kSparse,
                [](std::string& i) {
                  size_t gd = GetLe32(i, 56) * 512;
                  PutLe32(i, GetLe32(i, gd) * 512, 5);
                },
                ErrorCode::kCorruptImage, "inside the metadata"},
        Hostile{"GrainsOverlap", kSparse,
                [](std::string& i) {
                  size_t gt = GetLe32(i, GetLe32(i, 56) * 512) * 512;
                  PutLe32(i, gt + 4, GetLe32(i, gt) + 8);
                },
                ErrorCode::kCorruptImage, "overlap"},
        Hostile{"GrainInsideItsTable", kSparse,
                [](std::string& i) {
                  // overHead 27 lets a grain start at sector 28, inside the
                  // table at 27-30 that maps it.
                  PutLe64(i, 64, 27);
                  size_t gt = GetLe32(i, GetLe32(i, 56) * 512) * 512;
                  ASSERT_EQ(gt, 27u * 512);
                  PutLe32(i, gt, 28);
                },
                ErrorCode::kCorruptImage, "overlaps the grain directory or a grain table"},
        Hostile{"GrainAmongTheRedundantTables", kSparse,
                [](std::string& i) {
                  // With the map at the end, a grain at sector 22, where the
                  // redundant grain table lies, which is passed over.
                  MoveMapToEnd(i, true);
                  PutLe64(i, 64, 22);
                  size_t gt = GetLe32(i, GetLe32(i, 56) * 512) * 512;
                  PutLe32(i, gt, 22);
                },
                ErrorCode::kUnsupported, "where the redundant grain directory and its tables lie"},
        Hostile{"TableBeforeDirectory", kSparse,
                [](std::string& i) { PutLe32(i, GetLe32(i, 56) * 512, 21); },
                ErrorCode::kUnsupported, "out of order"}),
    [](const auto& test_info) { return test_info.param.name; });

// A grain directory (and its tables) after the grains they map, as a
// monolithicSparse VMDK may be laid out: the grains that pass before the map
// is complete wait in the spool and land where qemu-img reads them.
TEST(VmdkTest, MapAfterTheGrainsIsSpooled) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  for (bool tables : {false, true}) {
    SCOPED_TRACE(tables ? "directory and tables at the end" : "directory at the end");
    Made made = MakeVmdk(MakeData(700000, Pattern::kRandom, 5), "monolithicSparse");
    MoveMapToEnd(made.vmdk, tables);
    cdi::test::TempDir dir;
    cdi::test::WriteFile(dir.File("moved.vmdk"), made.vmdk);
    cdi::test::RunResult r = cdi::test::Run(
        {"qemu-img", "convert", "-f", "vmdk", "-O", "raw", dir.File("moved.vmdk"), dir.File("out.raw")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(cdi::test::ReadFile(dir.File("out.raw")) == made.reference);
    for (size_t chunk : {size_t{7}, size_t{4099}, size_t{(1 << 20) + 1}}) {
      SCOPED_TRACE("chunk " + std::to_string(chunk));
      RecordingWriter writer;
      std::unique_ptr<Decoder> decoder =
          MakeVmdkDecoder(&writer, DecoderOptions{.container_size = made.vmdk.size()});
      Status status = FeedInChunks(*decoder, made.vmdk, chunk);
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_TRUE(writer.CoverageOk());
      EXPECT_TRUE(writer.image() == made.reference)
          << cdi::test::FirstDifference(writer.image(), made.reference);
      const auto details = decoder->Describe().details;
      EXPECT_NE(std::find(details.begin(), details.end(),
                          std::pair<std::string, std::string>{"spooling", "needed"}),
                details.end());
    }
  }
}

// Grains spooled beyond the memory budget go to an unlinked file in the
// scratch directory; nothing stays behind there.
TEST(VmdkTest, SpooledGrainsBeyondTheMemoryBudgetGoToTheScratchDirectory) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(8 << 20, Pattern::kRandom, 6), "monolithicSparse");
  MoveMapToEnd(made.vmdk, true);
  cdi::test::TempDir scratch;
  RecordingWriter writer;
  std::unique_ptr<Decoder> decoder = MakeVmdkDecoder(
      &writer, DecoderOptions{.container_size = made.vmdk.size(),
                              .memory_budget = 4 << 20,
                              .scratch_dir = scratch.path()});
  Status status = FeedInChunks(*decoder, made.vmdk, 65536);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(writer.image() == made.reference)
      << cdi::test::FirstDifference(writer.image(), made.reference);
  const auto details = decoder->Describe().details;
  auto on_disk = std::find_if(details.begin(), details.end(),
                              [](const auto& d) { return d.first == "spooled bytes on disk"; });
  ASSERT_NE(on_disk, details.end());
  EXPECT_GT(std::stoull(on_disk->second), 0u);
  EXPECT_TRUE(cdi::test::ListDir(scratch.path()).empty());
}

TEST(VmdkTest, MemoryBudgetHolds) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  Made made = MakeVmdk(MakeData(500000, Pattern::kRandom), "streamOptimized");
  PutLe64(made.vmdk, 20, 1 << 20);  // 512 MiB grains
  RecordingWriter writer;
  Status status = Decode(made.vmdk, 4099, writer, DecoderOptions{.memory_budget = 32 << 20});
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << status.ToString();
  EXPECT_NE(status.message().find("memory budget"), std::string::npos) << status.message();
}

TEST(VmdkTest, MonolithicFlatDescriptorIsRefusedByName) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  cdi::test::TempDir dir;
  cdi::test::WriteFile(dir.File("in.raw"), MakeData(100000, Pattern::kRandom));
  cdi::test::RunResult r =
      cdi::test::Run({"qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                      "subformat=monolithicFlat", dir.File("in.raw"), dir.File("flat.vmdk")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, cdi::test::ReadFile(dir.File("flat.vmdk")), 4099);
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << status.ToString();
  EXPECT_NE(status.message().find("VMDK descriptor"), std::string::npos) << status.message();
  EXPECT_EQ(writer.begin_calls(), 0);
}

}  // namespace
}  // namespace cdi::formats
