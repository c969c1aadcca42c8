// VHDX images made by qemu-img with one field patched (checksums made right
// again where the check is past them): each is refused with its own message
// and code, nothing is written once the error is returned, and memory stays
// within the budget whatever the fields claim.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "test/formats/vhdx/vhdx_test_support.h"

namespace cdi::formats::vhdx_testing {
namespace {

// Offsets in the image qemu-img writes: the BAT at 2 MiB, the metadata at
// 3 MiB, payload blocks from 4 MiB.
constexpr size_t kHeader1 = 64 * kKiB;
constexpr size_t kRegionTable = 192 * kKiB;

struct HostileCase {
  std::string name;
  std::function<void(std::string&)> patch;
  ErrorCode code;
  std::string message;  // a part of the message
  bool with_container_size = true;
  uint64_t memory_budget = 32ull << 20;
};

void PrintTo(const HostileCase& c, std::ostream* os) { *os << c.name; }

// Three blocks of data (1 MiB each, the last one partial), one in the zero
// state, one more of data.
const std::string& BaseImage() {
  static const std::string* image = [] {
    cdi::test::TempDir dir;
    std::string data = testing::MakeData(2 * kMiB + 4096, testing::Pattern::kRandom, 21) +
                       std::string(2 * kMiB - 4096, '\0') +
                       testing::MakeData(kMiB, testing::Pattern::kRandom, 22);
    return new std::string(cdi::test::ReadFile(MakeVhdx(dir, data, "block_size=1M")));
  }();
  return *image;
}

size_t Bat(const std::string& image) { return BatOffset(image); }

void SetBatEntry(std::string& image, size_t index, uint64_t value) {
  PutLe64(image, Bat(image) + index * 8, value);
}

class VhdxHostileTest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(VhdxHostileTest, RefusedByName) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  const HostileCase& c = GetParam();
  std::string image = BaseImage();
  {
    Refusal base = DecodeHostile(image);
    ASSERT_TRUE(base.status.ok()) << base.status.ToString();
  }
  c.patch(image);
  DecoderOptions options;
  options.memory_budget = c.memory_budget;
  Refusal refusal = DecodeHostile(image, options, c.with_container_size);
  EXPECT_EQ(refusal.status.code(), c.code) << refusal.status.ToString();
  EXPECT_NE(refusal.status.message().find(c.message), std::string::npos)
      << refusal.status.message();
  EXPECT_EQ(refusal.writes_after_error, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Refusals, VhdxHostileTest,
    ::testing::Values(
        HostileCase{"NoSignature", [](std::string& i) { i[0] = 'V'; }, ErrorCode::kCorruptImage,
                    "no \"vhdxfile\" signature"},
        HostileCase{"BothHeadersBadCrc",
                    [](std::string& i) {
                      i[kHeader1 + 200] ^= 1;
                      i[2 * kHeader1 + 200] ^= 1;
                    },
                    ErrorCode::kCorruptImage, "neither header is valid"},
        HostileCase{"HeadersDifferWithOneSequenceNumber",
                    [](std::string& i) {
                      PatchHeaders(i, [&](size_t h) {
                        PutLe64(i, h + 8, 7);
                        i[h + 300] = static_cast<char>(h >> 16);
                      });
                    },
                    ErrorCode::kCorruptImage, "carry sequence number 7 but differ"},
        HostileCase{"LogInsideHeaderSection",
                    [](std::string& i) { PatchHeaders(i, [&](size_t h) { PutLe64(i, h + 72, 0); }); },
                    ErrorCode::kCorruptImage, "lies inside the header section"},
        HostileCase{"RegionTableBadCrc", [](std::string& i) { i[kRegionTable + 1000] ^= 1; },
                    ErrorCode::kCorruptImage, "bad CRC-32C"},
        HostileCase{"RegionCountTooLarge",
                    [](std::string& i) {
                      PutLe32(i, kRegionTable + 8, 5000);
                      FixRegionTable(i);
                    },
                    ErrorCode::kCorruptImage, "more than the 2047"},
        HostileCase{"BatRegionInHeaderSection",
                    [](std::string& i) {
                      PutLe64(i, RegionEntry(0) + 16, 0);
                      FixRegionTable(i);
                    },
                    ErrorCode::kCorruptImage, "the BAT region at offset 0 lies inside the header"},
        HostileCase{"BatRegionOverlapsMetadata",
                    [](std::string& i) {
                      PutLe64(i, RegionEntry(0) + 16, MetadataOffset(i));
                      FixRegionTable(i);
                    },
                    ErrorCode::kCorruptImage, "overlaps the log or another region"},
        HostileCase{"BatRegionOverlapsLog",
                    [](std::string& i) {
                      PutLe64(i, RegionEntry(0) + 16, kMiB);
                      FixRegionTable(i);
                    },
                    ErrorCode::kCorruptImage, "overlaps the log or another region"},
        HostileCase{"MetadataRegionPastTheEnd",
                    [](std::string& i) {
                      PutLe64(i, RegionEntry(1) + 16, 1ull << 40);
                      FixRegionTable(i);
                    },
                    ErrorCode::kCorruptImage, "past the end of the image"},
        HostileCase{"UnknownRequiredRegion",
                    [](std::string& i) {
                      PutLe32(i, kRegionTable + 8, 3);
                      std::string entry(32, '\x11');
                      PutLe64(entry, 16, 100 * kMiB);
                      PutLe32(entry, 24, kMiB);
                      PutLe32(entry, 28, 1);
                      i.replace(RegionEntry(2), 32, entry);
                      FixRegionTable(i);
                    },
                    ErrorCode::kUnsupported, "required region"},
        HostileCase{"HugeRegionsBeyondBudget",
                    [](std::string& i) {
                      PutLe32(i, RegionEntry(1) + 24, 0xFFF00000u);
                      FixRegionTable(i);
                    },
                    ErrorCode::kInvalidArgument, "raise the memory budget", false},
        HostileCase{"BlockSizeNotAPowerOfTwo",
                    [](std::string& i) { PutLe32(i, MetadataItem(i, kFileParameters), 3 * kMiB); },
                    ErrorCode::kCorruptImage, "block size 3145728"},
        HostileCase{"Differencing",
                    [](std::string& i) { PutLe32(i, MetadataItem(i, kFileParameters) + 4, 2); },
                    ErrorCode::kUnsupported, "differencing disk"},
        HostileCase{"LogicalSectorSize",
                    [](std::string& i) { PutLe32(i, MetadataItem(i, kLogicalSectorSize), 1000); },
                    ErrorCode::kCorruptImage, "logical sector size 1000"},
        HostileCase{"HugeVirtualSize",
                    [](std::string& i) { PutLe64(i, MetadataItem(i, kVirtualDiskSize), 1ull << 50); },
                    ErrorCode::kCorruptImage, "beyond the format's 64 TiB"},
        HostileCase{"BatTooSmallForVirtualSize",
                    [](std::string& i) {
                      PutLe64(i, MetadataItem(i, kVirtualDiskSize), 200ull << 30);
                    },
                    ErrorCode::kCorruptImage, "holds fewer than"},
        HostileCase{"BlockInHeaderSection",
                    [](std::string& i) { SetBatEntry(i, 0, 6); }, ErrorCode::kCorruptImage,
                    "points into the header section"},
        HostileCase{"BlockInBat",
                    [](std::string& i) { SetBatEntry(i, 1, Bat(i) | 6); },
                    ErrorCode::kCorruptImage, "points into the header section, the log"},
        HostileCase{"TwoBlocksOverlap",
                    [](std::string& i) {
                      SetBatEntry(i, 1, GetLe64(i, Bat(i)));
                    },
                    ErrorCode::kCorruptImage, "overlap"},
        HostileCase{"BlockPastTheEnd",
                    [](std::string& i) { SetBatEntry(i, 0, (1ull << 40) | 6); },
                    ErrorCode::kCorruptImage, "past the end of the image"},
        HostileCase{"UnknownBlockState", [](std::string& i) { SetBatEntry(i, 2, 4); },
                    ErrorCode::kCorruptImage, "unknown state 4"},
        HostileCase{"PartiallyPresentBlock",
                    [](std::string& i) { SetBatEntry(i, 0, GetLe64(i, Bat(i)) | 7); },
                    ErrorCode::kCorruptImage, "partially present"},
        HostileCase{"PendingLog", [](std::string& i) { AddPendingLogEntry(i); },
                    ErrorCode::kUnsupported, "qemu-img check -r all"},
        HostileCase{"TruncatedInABlock", [](std::string& i) { i.resize(i.size() - 100); },
                    ErrorCode::kCorruptImage, "ends after", false}),
    [](const ::testing::TestParamInfo<HostileCase>& param) { return param.param.name; });

}  // namespace
}  // namespace cdi::formats::vhdx_testing
