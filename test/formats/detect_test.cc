#include "formats/detect.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test/formats/formats_testing.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::Compress;

// kDetectBytes of zeros with `magic` written at `offset`.
std::string HeadWith(const std::string& magic, size_t offset = 0, size_t length = kDetectBytes) {
  std::string head(length, '\0');
  head.replace(offset, magic.size(), magic);
  return head;
}

struct MagicCase {
  std::string magic;
  size_t offset;
  Format format;
  std::string name;
};

void PrintTo(const MagicCase& c, std::ostream* os) { *os << c.name << " at " << c.offset; }

class DetectMagicTest : public ::testing::TestWithParam<MagicCase> {};

TEST_P(DetectMagicTest, RecognisesTheMagicAndNothingShorter) {
  const MagicCase& c = GetParam();
  EXPECT_EQ(Detect(Bytes(HeadWith(c.magic, c.offset))), c.format);
  EXPECT_EQ(FormatName(c.format), c.name);
  // Exactly as long as the magic's end: still recognised.
  EXPECT_EQ(Detect(Bytes(HeadWith(c.magic, c.offset, c.offset + c.magic.size()))), c.format);
  // One byte short of it: the magic does not fit, so the stream is raw.
  EXPECT_EQ(Detect(Bytes(HeadWith(c.magic, c.offset, c.offset + c.magic.size())
                             .substr(0, c.offset + c.magic.size() - 1))),
            Format::kRaw);
  // The magic with its last byte changed is not the format.
  std::string wrong = c.magic;
  wrong.back() = static_cast<char>(wrong.back() ^ 0x01);
  EXPECT_EQ(Detect(Bytes(HeadWith(wrong, c.offset))), Format::kRaw);
}

INSTANTIATE_TEST_SUITE_P(CdiMagics, DetectMagicTest,
                         ::testing::Values(MagicCase{"\x1F\x8B", 0, Format::kGzip, "gzip"},
                                           MagicCase{std::string("\xFD\x37\x7A\x58\x5A\x00", 6), 0,
                                                     Format::kXz, "xz"},
                                           MagicCase{"\x28\xB5\x2F\xFD", 0, Format::kZstd, "zstd"},
                                           MagicCase{"QFI\xFB", 0, Format::kQcow2, "qcow2"},
                                           MagicCase{"KDMV", 0, Format::kVmdk, "vmdk"},
                                           MagicCase{"\x7F\x10\xDA\xBE", 0x40, Format::kVdi, "vdi"},
                                           MagicCase{"conectix", 0, Format::kVhd, "vhd"},
                                           MagicCase{"vhdxfile", 0, Format::kVhdx, "vhdx"}),
                         [](const auto& test_info) { return test_info.param.name; });

// pzstd starts its files with a skippable frame (magic 0x184D2A50..5F).
TEST(DetectTest, ZstdSkippableFrameAtTheStartIsZstd) {
  for (int variant : {0x50, 0x53, 0x5F}) {
    std::string head = {static_cast<char>(variant), '\x2A', '\x4D', '\x18', 4, 0, 0, 0};
    EXPECT_EQ(Detect(Bytes(head)), Format::kZstd) << variant;
  }
  EXPECT_EQ(Detect(Bytes(std::string("\x60\x2A\x4D\x18"))), Format::kRaw);
  EXPECT_EQ(Detect(Bytes(std::string("\x50\x2A\x4D"))), Format::kRaw);
  EXPECT_EQ(Detect(Bytes(std::string("\x50\x2A\x4D\x19"))), Format::kRaw);
}

TEST(DetectTest, EmptyAndShortStreamsAreRaw) {
  EXPECT_EQ(Detect({}), Format::kRaw);
  EXPECT_EQ(Detect(Bytes("\x1F")), Format::kRaw);
  EXPECT_EQ(Detect(Bytes("QFI")), Format::kRaw);
  EXPECT_EQ(Detect(Bytes(std::string(100, 'x'))), Format::kRaw);
}

TEST(DetectTest, MagicsAreMatchedOnlyAtTheirOffset) {
  EXPECT_EQ(Detect(Bytes(HeadWith("QFI\xFB", 1))), Format::kRaw);
  EXPECT_EQ(Detect(Bytes(HeadWith("\x7F\x10\xDA\xBE", 0))), Format::kRaw);
  EXPECT_EQ(Detect(Bytes(HeadWith("\x7F\x10\xDA\xBE", 0x41))), Format::kRaw);
  EXPECT_EQ(Detect(Bytes(HeadWith("conectix", 512))), Format::kRaw);
}

TEST(DetectTest, BytesPastTheHeadDoNotMatter) {
  std::string head = HeadWith("QFI\xFB") + "KDMV";
  EXPECT_EQ(Detect(Bytes(head)), Format::kQcow2);
}

TEST(DetectTest, IsoImagesAreRawWithASignature) {
  std::string iso = HeadWith("CD001", 0x8001);
  EXPECT_EQ(Detect(Bytes(iso)), Format::kRaw);
  EXPECT_TRUE(HasIso9660Signature(Bytes(iso)));
  EXPECT_EQ(kDetectBytes, 0x8001u + 5);
  EXPECT_FALSE(HasIso9660Signature(Bytes(iso.substr(0, kDetectBytes - 1))));
  EXPECT_FALSE(HasIso9660Signature(Bytes(HeadWith("CD001", 0x8000))));
}

TEST(DetectTest, OnlyCompressionsAreWrappers) {
  EXPECT_TRUE(IsWrapper(Format::kGzip));
  EXPECT_TRUE(IsWrapper(Format::kXz));
  EXPECT_TRUE(IsWrapper(Format::kZstd));
  for (Format f :
       {Format::kRaw, Format::kQcow2, Format::kVmdk, Format::kVdi, Format::kVhd, Format::kVhdx}) {
    EXPECT_FALSE(IsWrapper(f)) << FormatName(f);
  }
}

// What the real tools make, down to an empty input, is detected.
TEST(DetectTest, RecognisesOutputOfTheRealCompressors) {
  for (const std::string& data :
       {std::string(), std::string("x"), testing::MakeData(5000, testing::Pattern::kRandom)}) {
    EXPECT_EQ(Detect(Bytes(Compress(Format::kGzip, data))), Format::kGzip);
    EXPECT_EQ(Detect(Bytes(Compress(Format::kXz, data))), Format::kXz);
    EXPECT_EQ(Detect(Bytes(Compress(Format::kZstd, data))), Format::kZstd);
  }
}

TEST(DetectTest, RecognisesImagesMadeByQemuImg) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  cdi::test::TempDir dir;
  struct Case {
    std::string qemu_format;
    Format format;
  };
  for (const Case& c :
       {Case{"qcow2", Format::kQcow2}, Case{"vmdk", Format::kVmdk}, Case{"vdi", Format::kVdi},
        Case{"vpc", Format::kVhd}, Case{"vhdx", Format::kVhdx}, Case{"raw", Format::kRaw}}) {
    std::string path = dir.File("image." + c.qemu_format);
    cdi::test::RunResult r =
        cdi::test::Run({"qemu-img", "create", "-q", "-f", c.qemu_format, path, "1M"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string head = cdi::test::ReadFile(path).substr(0, kDetectBytes);
    EXPECT_EQ(Detect(Bytes(head)), c.format) << c.qemu_format;
  }
}

}  // namespace
}  // namespace cdi::formats
