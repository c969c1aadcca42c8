// Dynamic VHD images with one field patched (checksums made right again where
// the check is past them): each is refused with its own message and code,
// and nothing is written once the error is returned.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "test/formats/vhd/vhd_test_support.h"

namespace cdi::formats::vhd_testing {
namespace {

constexpr size_t kMiB = 1024 * 1024;
// Where qemu-img puts things in a dynamic image.
constexpr size_t kHeader = 512;
constexpr size_t kBat = 1536;

void FixHeader(std::string& image) { FixChecksum(image, kHeader, 1024, 36); }

struct HostileCase {
  std::string name;
  std::function<void(std::string&)> patch;
  ErrorCode code;
  std::string message;  // a part of the message
  bool with_container_size = true;
};

void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

// Three blocks of data (the last one partial) and one unallocated block.
const std::string& BaseImage() {
  static const std::string* image = [] {
    cdi::test::TempDir dir;
    std::string data = testing::MakeData(4 * kMiB, testing::Pattern::kRandom, 21) +
                       std::string(2 * kMiB, '\0') +
                       testing::MakeData(kMiB, testing::Pattern::kRandom, 22);
    return new std::string(cdi::test::ReadFile(MakeVhd(dir, data, "dynamic")));
  }();
  return *image;
}

class VhdHostileTest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(VhdHostileTest, RefusedByName) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  const HostileCase& c = GetParam();
  std::string image = BaseImage();
  {
    // The unpatched image decodes.
    Refusal base = DecodeHostile(image);
    EXPECT_TRUE(base.status.ok()) << base.status.ToString();
  }
  c.patch(image);
  Refusal refusal = DecodeHostile(image, {}, c.with_container_size);
  EXPECT_EQ(refusal.status.code(), c.code) << refusal.status.ToString();
  EXPECT_NE(refusal.status.message().find(c.message), std::string::npos)
      << refusal.status.message();
  EXPECT_EQ(refusal.writes_after_error, 0u);
}

void SetFooter32(std::string& image, size_t field, uint32_t value) {
  PutBe32(image, field, value);
  PutBe32(image, image.size() - 512 + field, value);
  FixFooters(image);
}

void SetFooter64(std::string& image, size_t field, uint64_t value) {
  PutBe64(image, field, value);
  PutBe64(image, image.size() - 512 + field, value);
  FixFooters(image);
}

INSTANTIATE_TEST_SUITE_P(
    Fields, VhdHostileTest,
    ::testing::Values(
        HostileCase{"FooterCookie", [](std::string& i) { i[3] = 'X'; }, ErrorCode::kCorruptImage,
                    "footer copy at offset 0: the cookie is not \"conectix\""},
        HostileCase{"FooterChecksum", [](std::string& i) { i[40] ^= 1; },
                    ErrorCode::kCorruptImage, "footer copy at offset 0: checksum"},
        HostileCase{"Differencing", [](std::string& i) { SetFooter32(i, 60, 4); },
                    ErrorCode::kUnsupported, "differencing VHD images need their parent; "},
        HostileCase{"UnknownDiskType", [](std::string& i) { SetFooter32(i, 60, 5); },
                    ErrorCode::kUnsupported, "disk type 5 is not one this importer reads"},
        HostileCase{"FixedTypeAtTheStart", [](std::string& i) { SetFooter32(i, 60, 2); },
                    ErrorCode::kUnsupported, "footer copy of a fixed disk"},
        HostileCase{"DataOffsetInsideFooter", [](std::string& i) { SetFooter64(i, 16, 100); },
                    ErrorCode::kCorruptImage, "data offset 100 of the dynamic disk header lies inside"},
        HostileCase{"DataOffsetPastTheEnd", [](std::string& i) { SetFooter64(i, 16, 1ull << 40); },
                    ErrorCode::kCorruptImage, "lies past the end of the image"},
        HostileCase{"HeaderCookie", [](std::string& i) { i[kHeader] = 'X'; },
                    ErrorCode::kCorruptImage, "the cookie is not \"cxsparse\""},
        HostileCase{"HeaderChecksum", [](std::string& i) { i[kHeader + 100] ^= 1; },
                    ErrorCode::kCorruptImage, "dynamic disk header: checksum"},
        HostileCase{"HeaderVersion",
                    [](std::string& i) { PutBe32(i, kHeader + 24, 0x20000); FixHeader(i); },
                    ErrorCode::kUnsupported, "header version 0x20000"},
        HostileCase{"BlockSizeNotPowerOfTwo",
                    [](std::string& i) { PutBe32(i, kHeader + 32, 3 << 20); FixHeader(i); },
                    ErrorCode::kCorruptImage, "block size 3145728 is not a power of two"},
        HostileCase{"BlockSizeBelowASector",
                    [](std::string& i) { PutBe32(i, kHeader + 32, 256); FixHeader(i); },
                    ErrorCode::kCorruptImage, "block size 256 is not a power of two of at least 512"},
        HostileCase{"TooFewTableEntries",
                    [](std::string& i) { PutBe32(i, kHeader + 28, 3); FixHeader(i); },
                    ErrorCode::kCorruptImage, "less than the current size"},
        HostileCase{"TooManyTableEntries",
                    [](std::string& i) { PutBe32(i, kHeader + 28, 100000); FixHeader(i); },
                    ErrorCode::kCorruptImage, "more than a block past the current size"},
        HostileCase{"CurrentSizePastTheLimit",
                    [](std::string& i) { SetFooter64(i, 48, 3ull << 40); },
                    ErrorCode::kUnsupported, "past the 2040 GiB limit"},
        HostileCase{"TableBeforeTheHeader",
                    [](std::string& i) {
                      SetFooter64(i, 16, 1024);
                      std::string header = i.substr(kHeader, 1024);
                      i.replace(1024, 1024, header);
                      PutBe64(i, 1024 + 16, 512);
                      FixChecksum(i, 1024, 1024, 36);
                    },
                    ErrorCode::kUnsupported, "comes before the dynamic disk header"},
        HostileCase{"TableOverlapsTheHeader",
                    [](std::string& i) { PutBe64(i, kHeader + 16, 1024); FixHeader(i); },
                    ErrorCode::kCorruptImage, "overlaps the header"},
        HostileCase{"TableOverlapsTheFooterCopy",
                    [](std::string& i) {
                      PutBe64(i, kHeader + 16, 256);
                      FixHeader(i);
                    },
                    ErrorCode::kCorruptImage, "the BAT at 0x100 overlaps the footer copy"},
        HostileCase{"TablePastTheEnd",
                    [](std::string& i) { PutBe64(i, kHeader + 16, 1ull << 30); FixHeader(i); },
                    ErrorCode::kCorruptImage, "the BAT at 0x40000000 (16 bytes) lies past the end"},
        HostileCase{"EntryPastTheEnd", [](std::string& i) { PutBe32(i, kBat + 4, 1u << 30); },
                    ErrorCode::kCorruptImage, "entry 1 (sector 1073741824): its block ends at"},
        HostileCase{"EntryIntoTheHeader", [](std::string& i) { PutBe32(i, kBat + 4, 2); },
                    ErrorCode::kCorruptImage, "entry 1 (sector 2) points into the footer copy"},
        HostileCase{"DuplicateEntries",
                    [](std::string& i) { PutBe32(i, kBat + 4, GetBe32(i, kBat)); },
                    ErrorCode::kCorruptImage, "entries 0 and 1 both point at sector"},
        HostileCase{"OverlappingBlocks",
                    [](std::string& i) { PutBe32(i, kBat + 12, GetBe32(i, kBat) + 8); },
                    ErrorCode::kCorruptImage, "have overlapping blocks"},
        HostileCase{"Truncated", [](std::string& i) { i.resize(i.size() - 600); },
                    ErrorCode::kCorruptImage, "ends early, after", false},
        HostileCase{"TruncatedInsideTheHeader", [](std::string& i) { i.resize(1000); },
                    ErrorCode::kCorruptImage,
                    "ends early, after 1000 bytes, inside the dynamic disk header", false},
        HostileCase{"TruncatedInsideTheTable", [](std::string& i) { i.resize(1540); },
                    ErrorCode::kCorruptImage,
                    "ends early, after 1540 bytes, inside the block allocation table", false},
        HostileCase{"TruncatedInsideABitmap", [](std::string& i) { i.resize(2100); },
                    ErrorCode::kCorruptImage, "inside the block of BAT entry", false},
        HostileCase{"TruncatedWithKnownSize", [](std::string& i) { i.resize(3 * kMiB); },
                    ErrorCode::kCorruptImage, "past the end of the image's data"},
        HostileCase{"NoFooterAtTheEnd", [](std::string& i) { i.resize(i.size() - 512); },
                    ErrorCode::kCorruptImage, "ends without its footer", false},
        HostileCase{"EndFooterDiffers",
                    [](std::string& i) {
                      PutBe64(i, i.size() - 512 + 48, 4 * kMiB);
                      FixFooters(i);
                    },
                    ErrorCode::kCorruptImage, "does not match its copy at offset 0"},
        HostileCase{"EndFooterChecksum", [](std::string& i) { i[i.size() - 100] ^= 1; },
                    ErrorCode::kCorruptImage, "footer at the end of the image: checksum"}),
    [](const auto& test_info) { return test_info.param.name; });

TEST(VhdHostileTest, TableLargerThanTheMemoryBudget) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  DecoderOptions options;
  options.memory_budget = 500;  // the BAT of 4 entries and a 512-byte bitmap need 560
  Refusal refusal = DecodeHostile(BaseImage(), options);
  EXPECT_EQ(refusal.status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refusal.status.message().find("raise the memory budget"), std::string::npos)
      << refusal.status.message();
}

TEST(VhdHostileTest, LongerThanAnnounced) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  std::string image = BaseImage();
  DecoderOptions options;
  options.container_size = image.size();
  Refusal refusal = DecodeHostile(image + std::string(1000, 'x'), options, false);
  EXPECT_EQ(refusal.status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(refusal.status.message().find("longer than"), std::string::npos)
      << refusal.status.message();
}

}  // namespace
}  // namespace cdi::formats::vhd_testing
