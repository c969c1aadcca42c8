#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "pvc/target.h"
#include "test/support/files.h"
#include "test/support/log_capture.h"
#include "test/support/loop_device.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::pvc {
namespace {

using test::LogCapture;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kDeviceSize = 16 * kMiB;
constexpr char kFill = '\xAA';

std::span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

class BlockTargetTest : public testing::Test {
 protected:
  void SetUp() override {
    CDI_SKIP_UNLESS_LOOP_DEVICES();
    device_ = std::make_unique<test::LoopDevice>(
        test::LoopDeviceOptions{.size = kDeviceSize, .fill = static_cast<uint8_t>(kFill)});
  }

  const std::string& device() const { return device_->path(); }
  std::string Content() const { return test::ReadFile(device()); }
  std::string BusyMessage() const {
    return "opening block device " + device() +
           " for writing: it is in use (mounted, or opened exclusively by another program, such "
           "as another import writing it); only one import may write a device at a time: "
           "unmount it or wait for the other program to end, then try again";
  }

  std::unique_ptr<test::LoopDevice> device_;
};

TEST_F(BlockTargetTest, CapacityAndSizeAreTheDeviceSize) {
  auto target = OpenBlockTarget(device());
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  EXPECT_EQ((*target)->kind(), TargetKind::kBlockDevice);
  EXPECT_EQ((*target)->path(), device());
  EXPECT_EQ((*target)->capacity(), kDeviceSize);
  EXPECT_EQ((*target)->size(), kDeviceSize);
  EXPECT_TRUE((*target)->SetSize(kDeviceSize).ok());

  Status smaller = (*target)->SetSize(8 * kMiB);
  EXPECT_EQ(smaller.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(smaller.message(), "cannot set the size of " + device() +
                                   " to 8388608 bytes: a block device's size is fixed (16777216 "
                                   "bytes); write the image into it without resizing");
  Status larger = (*target)->SetSize(kDeviceSize + 1);
  EXPECT_EQ(larger.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(larger.message(), "size 16777217 of " + device() +
                                  " is larger than the reported available storage 16777216. A "
                                  "larger PVC is required");
  EXPECT_EQ((*target)->size(), kDeviceSize);
}

TEST_F(BlockTargetTest, NeverWritesAtOrPastTheEnd) {
  {
    auto target = OpenBlockTarget(device());
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    Status write = (*target)->Write(kDeviceSize - kMiB, Bytes(std::string(2 * kMiB, 'x')));
    EXPECT_EQ(write.code(), ErrorCode::kTooSmall);
    EXPECT_EQ(write.message(), "writing 2097152 bytes at offset 15728640 of " + device() +
                                   " would pass its usable size of 16777216 bytes; the image "
                                   "does not fit: a larger volume is required");
    Status zero = (*target)->Zero(kDeviceSize, 1);
    EXPECT_EQ(zero.code(), ErrorCode::kTooSmall);
    EXPECT_EQ(zero.message(), "zeroing 1 bytes at offset 16777216 of " + device() +
                                  " would pass its usable size of 16777216 bytes; the image "
                                  "does not fit: a larger volume is required");
    EXPECT_EQ((*target)->stats().bytes_written, 0u);
    EXPECT_EQ((*target)->stats().bytes_zeroed, 0u);
  }
  // Nothing was written, so dropping the target left the device alone.
  EXPECT_TRUE(Content() == std::string(kDeviceSize, kFill));
}

TEST_F(BlockTargetTest, AbortWipesTheFirstAndLastMiB) {
  auto target = OpenBlockTarget(device());
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  std::string data = test::RandomBytes(4 * kKiB, 1);
  ASSERT_TRUE((*target)->Write(8 * kMiB, Bytes(data)).ok());
  LogCapture log("%l %v");
  (*target)->Abort();
  (*target)->Abort();  // again: nothing more to do

  // The ends read zero; the write in between may have reached the device or
  // may have been dropped from the staging buffer, and nothing else changed.
  std::string content = Content();
  std::string expected(kDeviceSize, kFill);
  expected.replace(0, kMiB, kMiB, '\0');
  expected.replace(kDeviceSize - kMiB, kMiB, kMiB, '\0');
  if (content.compare(8 * kMiB, data.size(), data) == 0) {
    expected.replace(8 * kMiB, data.size(), data);
  }
  EXPECT_TRUE(content == expected) << test::FirstDifference(content, expected);
  EXPECT_NE(
      log.text().find("info " + device() + ": import abandoned; zeroed its first and last MiB\n"),
      std::string::npos)
      << log.text();
}

TEST_F(BlockTargetTest, DroppingAnUncommittedTargetWipesItToo) {
  {
    auto target = OpenBlockTarget(device());
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    ASSERT_TRUE((*target)->Zero(4 * kMiB, kMiB).ok());
  }
  std::string expected(kDeviceSize, kFill);
  expected.replace(0, kMiB, kMiB, '\0');
  expected.replace(4 * kMiB, kMiB, kMiB, '\0');
  expected.replace(kDeviceSize - kMiB, kMiB, kMiB, '\0');
  std::string content = Content();
  EXPECT_TRUE(content == expected) << test::FirstDifference(content, expected);
}

TEST_F(BlockTargetTest, CommitLogsCdisFsyncLineAndIsFinal) {
  auto target = OpenBlockTarget(device());
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  std::string data = test::RandomBytes(kMiB, 2);
  ASSERT_TRUE((*target)->Write(0, Bytes(data)).ok());
  {
    LogCapture log("%l %v");
    ASSERT_TRUE((*target)->Commit().ok());
    EXPECT_NE(log.text().find("info Successfully completed fsync(" + device() +
                              ") syscall, committed to disk\n"),
              std::string::npos)
        << log.text();
  }
  (*target)->Abort();  // after Commit: must not wipe
  std::string expected(kDeviceSize, kFill);
  expected.replace(0, data.size(), data);
  std::string content = Content();
  EXPECT_TRUE(content == expected) << test::FirstDifference(content, expected);
  Status write = (*target)->Write(0, Bytes("x"));
  EXPECT_EQ(write.code(), ErrorCode::kInternal);
  EXPECT_EQ(write.message(), "writing " + device() +
                                 " after it was committed; this is a bug in the importer, please "
                                 "report it");
}

TEST_F(BlockTargetTest, RefusedWhileMounted) {
  if (!test::HaveProgram("mkfs.ext4")) GTEST_SKIP() << "mkfs.ext4 not found; install e2fsprogs";
  test::Sh("mkfs.ext4 -q -F " + device());
  {
    test::TempDir mount_point;
    test::ScopedMount mount({device()}, mount_point.path());
    auto target = OpenBlockTarget(device());
    ASSERT_FALSE(target.ok());
    EXPECT_EQ(target.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(target.status().message(), BusyMessage());
  }
  auto after_unmount = OpenBlockTarget(device());
  EXPECT_TRUE(after_unmount.ok()) << after_unmount.status().ToString();
}

TEST_F(BlockTargetTest, RefusedWhileAnotherImportHoldsIt) {
  auto first = OpenBlockTarget(device());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = OpenBlockTarget(device());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(second.status().message(), BusyMessage());
  // The first import is not disturbed, and the device is free once it ends.
  ASSERT_TRUE((*first)->Write(0, std::vector<uint8_t>(4096, 0x5A)).ok());
  ASSERT_TRUE((*first)->Commit().ok());
  first->reset();
  auto third = OpenBlockTarget(device());
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST_F(BlockTargetTest, IsBlockDeviceFollowsSymlinks) {
  test::TempDir dir;
  ASSERT_EQ(symlink(device().c_str(), dir.File("volume").c_str()), 0);
  test::WriteFile(dir.File("file"), "x");
  EXPECT_TRUE(IsBlockDevice(device()));
  EXPECT_TRUE(IsBlockDevice(dir.File("volume")));
  EXPECT_FALSE(IsBlockDevice(dir.File("file")));
  EXPECT_FALSE(IsBlockDevice(dir.path()));
  EXPECT_FALSE(IsBlockDevice(dir.File("missing")));

  auto through_symlink = OpenBlockTarget(dir.File("volume"));
  ASSERT_TRUE(through_symlink.ok()) << through_symlink.status().ToString();
  EXPECT_EQ((*through_symlink)->capacity(), kDeviceSize);
}

TEST_F(BlockTargetTest, IsNotOpenedAsAFile) {
  auto target = OpenFileTarget(device(), {.existing = ExistingFile::kReplace});
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(target.status().message(),
            device() + " is a block device; import into it as a block device, not as a file");
}

// Offloaded zeroing never moves the zeros through memory: on a loop device
// the backing file gets unwritten extents (which SEEK_DATA skips), where
// written zeros would become data.
TEST(BlockZeroEfficiencyTest, LargeZeroRangesAreOffloaded) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  constexpr uint64_t kLarge = 256 * kMiB;
  test::LoopDevice offloaded({.size = kLarge});
  std::string queue = "/sys/block/" + offloaded.path().substr(5) + "/queue/";
  if (test::ReadFile(queue + "write_zeroes_max_bytes") == "0\n") {
    GTEST_SKIP() << "this kernel's loop driver cannot offload zeroing";
  }
  auto target = OpenBlockTarget(offloaded.path());
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_TRUE((*target)->Zero(0, kLarge).ok());
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_EQ((*target)->stats().bytes_zeroed, kLarge);
  EXPECT_EQ(test::DataExtents(offloaded.backing_file()), test::ExtentMap{});

  // The last rung, for contrast: the zeros reach the backing file as data.
  test::LoopDevice written({.size = 16 * kMiB});
  auto writer = OpenBlockTarget(written.path(), {.first_zero_method = ZeroMethod::kWriteZeros});
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE((*writer)->Zero(0, 16 * kMiB).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ(test::DataExtents(written.backing_file()), (test::ExtentMap{{0, 16 * kMiB}}));
}

TEST(BlockTargetReadOnlyTest, IsRefusedAtOpen) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  test::LoopDevice device({.access = test::LoopAccess::kReadOnly});
  auto target = OpenBlockTarget(device.path());
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(target.status().message(),
            device.path() + " is read-only; attach the volume read-write");
}

TEST(BlockTargetPathTest, RefusesWhatIsNotABlockDevice) {
  test::TempDir dir;
  test::WriteFile(dir.File("disk.img"), "x");
  auto file = OpenBlockTarget(dir.File("disk.img"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(file.status().message(),
            dir.File("disk.img") +
                " is not a block device; give the volume's device (such as "
                "/dev/cdi-block-volume), or import into a file instead");

  auto missing = OpenBlockTarget("/dev/cdi-no-such-volume");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(),
            "looking up block device /dev/cdi-no-such-volume: no such file or directory; check "
            "the path and that the volume is mounted");
}

// Every rung of the zeroing ladder, on 512- and 4096-byte logical blocks.
}  // namespace

// Readable parameters in test names (found by argument-dependent lookup).
void PrintTo(ZeroMethod method, std::ostream* os) {
  switch (method) {
    case ZeroMethod::kBlkZeroOut: *os << "BLKZEROOUT"; return;
    case ZeroMethod::kZeroRange: *os << "FALLOC_FL_ZERO_RANGE"; return;
    case ZeroMethod::kPunchHole: *os << "FALLOC_FL_PUNCH_HOLE"; return;
    case ZeroMethod::kWriteZeros: *os << "writing zeros"; return;
  }
  *os << "ZeroMethod " << static_cast<int>(method);
}

namespace {

class BlockZeroTest : public testing::TestWithParam<std::tuple<uint32_t, ZeroMethod>> {
 protected:
  void SetUp() override { CDI_SKIP_UNLESS_LOOP_DEVICES(); }
};

TEST_P(BlockZeroTest, WritesAndZeroesReadBackExactly) {
  auto [sector_size, first_method] = GetParam();
  test::LoopDevice device(
      {.size = kDeviceSize, .fill = static_cast<uint8_t>(kFill), .sector_size = sector_size});
  auto target = OpenBlockTarget(device.path(), {.first_zero_method = first_method});
  ASSERT_TRUE(target.ok()) << target.status().ToString();

  std::string expected(kDeviceSize, kFill);
  uint64_t written = 0;
  uint64_t zeroed = 0;
  auto write = [&](uint64_t offset, const std::string& data) {
    expected.replace(offset, data.size(), data);
    written += data.size();
    return (*target)->Write(offset, Bytes(data));
  };
  auto zero = [&](uint64_t offset, uint64_t length) {
    expected.replace(offset, length, length, '\0');
    zeroed += length;
    return (*target)->Zero(offset, length);
  };
  ASSERT_TRUE(write(0, test::RandomBytes(kMiB, 3)).ok());
  ASSERT_TRUE(zero(kMiB, 2 * kMiB).ok());  // aligned
  ASSERT_TRUE(write(3 * kMiB + 100, test::RandomBytes(5000, 4)).ok());
  ASSERT_TRUE(zero(3 * kMiB + 5100, 2 * kMiB - 4323).ok());   // unaligned at both ends
  ASSERT_TRUE(zero(6 * kMiB + 10, 290).ok());                 // inside one block
  ASSERT_TRUE(zero(6 * kMiB + 4096 * 3 + 7, 4096 + 1).ok());  // two partial blocks
  ASSERT_TRUE(write(7 * kMiB, test::RandomBytes(4 * kKiB, 5)).ok());
  ASSERT_TRUE(zero(8 * kMiB, 8 * kMiB).ok());  // to the end
  Status committed = (*target)->Commit();
  ASSERT_TRUE(committed.ok()) << committed.ToString();

  std::string content = test::ReadFile(device.path());
  EXPECT_TRUE(content == expected) << test::FirstDifference(content, expected);
  EXPECT_EQ((*target)->stats().bytes_written, written);
  EXPECT_EQ((*target)->stats().bytes_zeroed, zeroed);
  EXPECT_EQ((*target)->stats().bytes_skipped, 0u);
}

std::string ZeroTestName(const testing::TestParamInfo<std::tuple<uint32_t, ZeroMethod>>& info) {
  static const char* kNames[] = {"BlkZeroOut", "ZeroRange", "PunchHole", "WriteZeros"};
  return "Sector" + std::to_string(std::get<0>(info.param)) + "From" +
         kNames[static_cast<int>(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(
    Ladder, BlockZeroTest,
    testing::Combine(testing::Values(512u, 4096u),
                     testing::Values(ZeroMethod::kBlkZeroOut, ZeroMethod::kZeroRange,
                                     ZeroMethod::kPunchHole, ZeroMethod::kWriteZeros)),
    ZeroTestName);

// A 16 MiB device over a file on a 4 MiB tmpfs fails writes once its store
// is full, like storage that breaks under the import (the loop driver reports
// every failure of its backing file as an I/O error).
class FailingDeviceTest : public testing::Test {
 protected:
  void SetUp() override {
    CDI_SKIP_UNLESS_LOOP_DEVICES();
    CDI_SKIP_UNLESS_MOUNT();
    mount_ = std::make_unique<test::ScopedMount>(
        std::vector<std::string>{"-t", "tmpfs", "-o", "size=4m", "tmpfs"}, store_.path());
    device_ = std::make_unique<test::LoopDevice>(
        test::LoopDeviceOptions{.size = kDeviceSize, .backing_dir = store_.path()});
  }

  // Writes 8 MiB, then commits; returns the first failure.
  Status WriteAndCommit(Target& target) {
    std::string data = test::RandomBytes(kMiB, 6);
    for (uint64_t offset = 0; offset < 8 * kMiB; offset += kMiB) {
      CDI_RETURN_IF_ERROR(target.Write(offset, Bytes(data)));
    }
    return target.Commit();
  }

  test::TempDir store_;
  std::unique_ptr<test::ScopedMount> mount_;
  std::unique_ptr<test::LoopDevice> device_;
};

// Through the page cache (a device without direct I/O), the failure shows
// when the cache is written back.
TEST_F(FailingDeviceTest, CommitReportsTheIoError) {
  auto target = OpenBlockTarget(device_->path(), {.direct_io = false});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  Status status = WriteAndCommit(**target);
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_EQ(status.message(), "flushing " + device_->path() +
                                  " to disk: input/output error: the storage failed; check the "
                                  "volume and the node's kernel log");
}

TEST_F(FailingDeviceTest, BoundedWritebackReportsItDuringTheWrites) {
  auto target = OpenBlockTarget(device_->path(), {.writeback_window = kMiB, .direct_io = false});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  Status status = WriteAndCommit(**target);
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  const std::string prefix = "writing back bytes ";
  const std::string suffix = " of " + device_->path() +
                             ": input/output error: the storage failed; check the volume and "
                             "the node's kernel log";
  EXPECT_EQ(status.message().substr(0, prefix.size()), prefix) << status.message();
  ASSERT_GE(status.message().size(), suffix.size());
  EXPECT_EQ(status.message().substr(status.message().size() - suffix.size()), suffix);
}

// With direct I/O a write fails, not the flush, and with the storage's own
// reason: the loop driver passes its backing file's ENOSPC on, as a thin
// volume does.
TEST_F(FailingDeviceTest, DirectWritesReportTheStoragesOwnReason) {
  auto target = OpenBlockTarget(device_->path());
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  Status status = WriteAndCommit(**target);
  EXPECT_EQ(status.code(), ErrorCode::kTooSmall);
  EXPECT_TRUE(status.message().starts_with("writing ")) << status.message();
  EXPECT_NE(status.message().find(" bytes to " + device_->path() + " at offset "),
            std::string::npos)
      << status.message();
  EXPECT_TRUE(status.message().ends_with(
      ": no space left on device; the image does not fit: a larger volume is required"))
      << status.message();
}

// Runs of data of many lengths and alignments, direct and through the page
// cache, between zeroed ranges, on 512- and 4096-byte sectors.
TEST(BlockTargetDirectTest, RunsOfAnyShapeReadBackExactly) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  for (uint32_t sector_size : {512u, 4096u}) {
    SCOPED_TRACE("sector size " + std::to_string(sector_size));
    test::LoopDevice device(
        {.size = kDeviceSize, .fill = static_cast<uint8_t>(kFill), .sector_size = sector_size});
    auto target = OpenBlockTarget(device.path());
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    std::string expected(kDeviceSize, kFill);
    uint64_t at = 0;
    for (uint64_t length : std::initializer_list<uint64_t>{
             5 * kMiB + 512, 300 * kKiB + 1, 512, 4 * kMiB - 512, 700 * kKiB, kMiB + 4096 + 3}) {
      std::string data = test::RandomBytes(length, static_cast<uint32_t>(at));
      expected.replace(at, length, data);
      ASSERT_TRUE((*target)->Write(at, Bytes(data)).ok());
      at += length;
      // A zeroed gap after every other run; the others continue the run.
      if (length % 2 == 1) {
        expected.replace(at, 8 * kKiB + 512, 8 * kKiB + 512, '\0');
        ASSERT_TRUE((*target)->Zero(at, 8 * kKiB + 512).ok());
        at += 8 * kKiB + 512;
      }
    }
    ASSERT_LT(at, kDeviceSize);
    ASSERT_TRUE((*target)->Commit().ok());
    EXPECT_GT((*target)->stats().bytes_direct, 8 * kMiB);
    std::string content = test::ReadFile(device.path());
    EXPECT_TRUE(content == expected) << test::FirstDifference(content, expected);
  }
}

}  // namespace
}  // namespace cdi::pvc
