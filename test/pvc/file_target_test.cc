#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "pvc/capacity.h"
#include "pvc/target.h"
#include "test/support/files.h"
#include "test/support/log_capture.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::pvc {
namespace {

using test::LogCapture;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

std::span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Sets the process umask for the life of the object.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(umask(mask)) {}
  ~ScopedUmask() { umask(previous_); }

 private:
  mode_t previous_;
};

unsigned PermissionBits(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0xFFFF;
  return st.st_mode & 07777;
}

// Bytes of `path` held in the page cache (mincore over a shared mapping).
uint64_t CachedBytes(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return UINT64_MAX;
  uint64_t size = test::FileSize(path);
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return UINT64_MAX;
  long page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> pages((size + page - 1) / page);
  uint64_t cached = UINT64_MAX;
  if (mincore(map, size, pages.data()) == 0) {
    cached = 0;
    for (unsigned char p : pages) cached += (p & 1) ? page : 0;
  }
  munmap(map, size);
  return cached;
}

class FileTargetTest : public testing::Test {
 protected:
  Result<std::unique_ptr<Target>> Open(const FileTargetOptions& options = {}) {
    FileTargetOptions with_size = options;
    if (!with_size.requested_size) with_size.requested_size = 64 * kMiB;
    return OpenFileTarget(path_, with_size);
  }

  test::TempDir dir_;
  const std::string path_ = dir_.File("disk.img");
  const std::string partial_path_ = dir_.File(".disk.img.partial");
};

TEST_F(FileTargetTest, WritesLandAtTheirOffsetsAndEverythingElseIsAHole) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  std::string first = test::RandomBytes(4 * kKiB, 1);
  std::string second = test::RandomBytes(64 * kKiB, 2);
  std::string third = test::RandomBytes(4 * kKiB, 3);
  ASSERT_TRUE((*target)->SetSize(32 * kMiB).ok());
  ASSERT_TRUE((*target)->Write(10 * kMiB, Bytes(third)).ok());
  ASSERT_TRUE((*target)->Write(0, Bytes(first)).ok());
  ASSERT_TRUE((*target)->Zero(20 * kMiB, 4 * kMiB).ok());
  ASSERT_TRUE((*target)->Write(1 * kMiB, Bytes(second)).ok());
  Status committed = (*target)->Commit();
  ASSERT_TRUE(committed.ok()) << committed.ToString();

  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
  EXPECT_EQ(test::FileSize(path_), 32 * kMiB);
  EXPECT_EQ(test::DataExtents(path_), (test::ExtentMap{{0, 4 * kKiB},
                                                       {1 * kMiB, 1 * kMiB + 64 * kKiB},
                                                       {10 * kMiB, 10 * kMiB + 4 * kKiB}}));
  std::string expected(32 * kMiB, '\0');
  expected.replace(0, first.size(), first);
  expected.replace(1 * kMiB, second.size(), second);
  expected.replace(10 * kMiB, third.size(), third);
  EXPECT_TRUE(test::ReadFile(path_) == expected) << "content differs";
  TargetStats stats = (*target)->stats();
  EXPECT_EQ(stats.bytes_written, 72 * kKiB);
  EXPECT_EQ(stats.bytes_zeroed, 0u);
  EXPECT_EQ(stats.bytes_skipped, 4 * kMiB);
}

TEST_F(FileTargetTest, NothingIsAtTheTargetPathBeforeCommit) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  EXPECT_EQ((*target)->kind(), TargetKind::kFile);
  EXPECT_EQ((*target)->path(), path_);
  ASSERT_TRUE((*target)->Write(0, Bytes(test::RandomBytes(kMiB, 4))).ok());
  EXPECT_FALSE(test::FileExists(path_));
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{".disk.img.partial"});
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(FileTargetTest, ModeIs0660WhateverTheUmask) {
  ScopedUmask umask(0077);
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  EXPECT_EQ(PermissionBits(partial_path_), 0660u);
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_EQ(PermissionBits(path_), 0660u);
}

TEST_F(FileTargetTest, RefusesAnExistingFile) {
  test::WriteFile(path_, "an earlier import");
  auto target = Open();
  ASSERT_FALSE(target.ok());
  EXPECT_EQ(target.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(target.status().message(), path_ + " already exists; pass --force to replace it");
  EXPECT_EQ(test::ReadFile(path_), "an earlier import");
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(FileTargetTest, ReplacesAnExistingFileOnlyAtCommit) {
  test::WriteFile(path_, "an earlier import");
  auto target = Open({.existing = ExistingFile::kReplace});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  std::string data = test::RandomBytes(8 * kKiB, 5);
  ASSERT_TRUE((*target)->Write(0, Bytes(data)).ok());
  EXPECT_EQ(test::ReadFile(path_), "an earlier import");
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_TRUE(test::ReadFile(path_) == data);
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(FileTargetTest, CommitLeavesAloneAFileThatAppearedMeanwhile) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_TRUE((*target)->Write(0, Bytes(test::RandomBytes(8 * kKiB, 6))).ok());
  test::WriteFile(path_, "written by someone else");
  Status committed = (*target)->Commit();
  EXPECT_EQ(committed.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(committed.message(),
            path_ +
                " appeared while the image was being written (another program created it) "
                "and was left alone; pass --force to replace it");
  EXPECT_EQ(test::ReadFile(path_), "written by someone else");
  (*target)->Abort();
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(FileTargetTest, ReplacesAStalePartialFile) {
  test::WriteFile(partial_path_, std::string(2 * kMiB, '\xff'));
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  std::string data = test::RandomBytes(4 * kKiB, 7);
  ASSERT_TRUE((*target)->SetSize(kMiB).ok());
  ASSERT_TRUE((*target)->Write(0, Bytes(data)).ok());
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_TRUE(test::ReadFile(path_) == data + std::string(kMiB - data.size(), '\0'));
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(FileTargetTest, OneImportOwnsATargetAtATime) {
  auto first = Open();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::string data = test::RandomBytes(kMiB, 15);
  ASSERT_TRUE((*first)->Write(0, Bytes(data.substr(0, kMiB / 2))).ok());
  for (ExistingFile existing : {ExistingFile::kRefuse, ExistingFile::kReplace}) {
    auto second = Open({.existing = existing});
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(second.status().message(),
              path_ + " is being written by another import (it holds " + partial_path_ +
                  "); only one import may write a target at a time: wait for that import to "
                  "end, or stop it, then try again");
  }
  // The refused imports touched nothing of the first one's.
  ASSERT_TRUE((*first)->Write(kMiB / 2, Bytes(data.substr(kMiB / 2))).ok());
  ASSERT_TRUE((*first)->SetSize(kMiB).ok());
  ASSERT_TRUE((*first)->Commit().ok());
  EXPECT_TRUE(test::ReadFile(path_) == data);
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
  // Once it has ended, the target is free again.
  auto next = Open({.existing = ExistingFile::kReplace});
  EXPECT_TRUE(next.ok()) << next.status().ToString();
}

TEST_F(FileTargetTest, AnAbortedImportFreesTheTarget) {
  auto first = Open();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE((*first)->Write(0, Bytes(test::RandomBytes(kMiB, 16))).ok());
  (*first)->Abort();
  auto second = Open();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE((*second)->Commit().ok());
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(FileTargetTest, ASmallMemoryShareWritesThroughThePageCache) {
  struct statfs fs {};
  ASSERT_EQ(statfs(dir_.path().c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "tmpfs has no direct I/O";
  const std::string data = test::RandomBytes(8 * kMiB, 17);
  for (uint64_t memory : {kDefaultStagingMemory, 3 * kMiB, 512 * kKiB}) {
    SCOPED_TRACE(memory);
    const std::string path = dir_.File("share-" + std::to_string(memory) + ".img");
    auto target = OpenFileTarget(path, {.requested_size = 16 * kMiB, .staging_memory = memory});
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    for (uint64_t offset = 0; offset < data.size(); offset += kMiB) {
      ASSERT_TRUE((*target)->Write(offset, Bytes(data.substr(offset, kMiB))).ok());
    }
    ASSERT_TRUE((*target)->Commit().ok());
    // Buffers of at least 256 KiB each write directly; smaller ones would
    // not pay, and the target goes through the page cache.
    EXPECT_EQ((*target)->stats().bytes_direct, memory >= 3 * kMiB ? data.size() : 0u);
    EXPECT_TRUE(test::ReadFile(path) == data);
  }
}

TEST_F(FileTargetTest, AbortRemovesThePartialFile) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_TRUE((*target)->Write(0, Bytes(test::RandomBytes(kMiB, 8))).ok());
  (*target)->Abort();
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{});
  (*target)->Abort();  // again: nothing to do
  Status write = (*target)->Write(0, Bytes("x"));
  EXPECT_EQ(write.code(), ErrorCode::kInternal);
  EXPECT_EQ(write.message(), "writing " + path_ +
                                 " after it was aborted; this is a bug in the importer, please "
                                 "report it");
  Status commit = (*target)->Commit();
  EXPECT_EQ(commit.code(), ErrorCode::kInternal);
  EXPECT_EQ(commit.message(), "committing " + path_ +
                                  " after it was aborted; this is a bug in the importer, please "
                                  "report it");
}

TEST_F(FileTargetTest, DroppingAnUncommittedTargetRemovesThePartialFile) {
  {
    auto target = Open();
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    ASSERT_TRUE((*target)->Write(0, Bytes(test::RandomBytes(kMiB, 9))).ok());
  }
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{});
}

TEST_F(FileTargetTest, CommitIsFinal) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  std::string data = test::RandomBytes(4 * kKiB, 10);
  ASSERT_TRUE((*target)->Write(0, Bytes(data)).ok());
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_TRUE((*target)->Commit().ok());
  (*target)->Abort();
  EXPECT_TRUE(test::ReadFile(path_) == data);
  Status zero = (*target)->Zero(0, 1);
  EXPECT_EQ(zero.code(), ErrorCode::kInternal);
  EXPECT_EQ(zero.message(), "zeroing " + path_ +
                                " after it was committed; this is a bug in the importer, please "
                                "report it");
  Status resize = (*target)->SetSize(1);
  EXPECT_EQ(resize.code(), ErrorCode::kInternal);
  EXPECT_EQ(resize.message(), "resizing " + path_ +
                                  " after it was committed; this is a bug in the importer, "
                                  "please report it");
}

TEST_F(FileTargetTest, NeverWritesAtOrPastCapacity) {
  // 3.5 MiB requested, no overhead: 3 MiB usable (whole MiB only).
  auto target = Open({.requested_size = 3 * kMiB + 512 * kKiB});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_EQ((*target)->capacity(), 3 * kMiB);

  Status crossing = (*target)->Write(2 * kMiB + 512 * kKiB, Bytes(std::string(kMiB, 'x')));
  EXPECT_EQ(crossing.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(crossing.message(),
            "writing 1048576 bytes at offset 2621440 of " + path_ +
                " would pass its usable size of 3145728 bytes; the image does not fit: a larger "
                "volume is required");
  EXPECT_EQ(test::FileSize(partial_path_), 0u);
  EXPECT_EQ((*target)->size(), 0u);

  Status at_capacity = (*target)->Write(3 * kMiB, Bytes("x"));
  EXPECT_EQ(at_capacity.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(at_capacity.message(),
            "writing 1 bytes at offset 3145728 of " + path_ +
                " would pass its usable size of 3145728 bytes; the image does not fit: a larger "
                "volume is required");

  Status zero = (*target)->Zero(kMiB, UINT64_MAX - 10);
  EXPECT_EQ(zero.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(zero.message(),
            "zeroing 18446744073709551605 bytes at offset 1048576 of " + path_ +
                " would pass its usable size of 3145728 bytes; the image does not fit: a larger "
                "volume is required");

  Status resize = (*target)->SetSize(3 * kMiB + 1);
  EXPECT_EQ(resize.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(resize.message(), "size 3145729 of " + path_ +
                                  " is larger than the reported available storage 3145728. A "
                                  "larger PVC is required");
  EXPECT_EQ(test::FileSize(partial_path_), 0u);

  // Up to the last usable byte is fine.
  EXPECT_TRUE((*target)->Write(2 * kMiB, Bytes(std::string(kMiB, 'x'))).ok());
  EXPECT_TRUE((*target)->SetSize(3 * kMiB).ok());
  EXPECT_EQ(test::FileSize(partial_path_), 3 * kMiB);
}

TEST_F(FileTargetTest, ZeroPastTheEndExtendsTheFileWithAHole) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_TRUE((*target)->Write(0, Bytes(std::string(4 * kKiB, 'x'))).ok());
  ASSERT_TRUE((*target)->Zero(4 * kKiB, 8 * kMiB - 4 * kKiB).ok());
  EXPECT_EQ((*target)->size(), 8 * kMiB);
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_EQ(test::FileSize(path_), 8 * kMiB);
  EXPECT_EQ(test::DataExtents(path_), (test::ExtentMap{{0, 4 * kKiB}}));
}

TEST_F(FileTargetTest, CapacityIsTheRequestWhenTheFilesystemHoldsMore) {
  auto target = Open({.requested_size = 10 * kMiB});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  EXPECT_EQ((*target)->capacity(), 10 * kMiB);
  Result<uint64_t> free_space = AvailableSpace(dir_.path());
  ASSERT_TRUE(free_space.ok()) << free_space.status().ToString();
  if (*free_space < 11381663335) GTEST_SKIP() << "needs 11381663335 bytes free in " << dir_.path();
  auto with_overhead = OpenFileTarget(dir_.File("other.img"),
                                      {.requested_size = 11381663335, .filesystem_overhead = 0.06});
  ASSERT_TRUE(with_overhead.ok()) << with_overhead.status().ToString();
  EXPECT_EQ((*with_overhead)->capacity(), 10 * kGiB);
}

TEST_F(FileTargetTest, CapacityIsBoundByTheFreeSpace) {
  CDI_SKIP_UNLESS_MOUNT();
  // tmpfs sizes are whole pages: 11381663335 becomes 11381665792 bytes, which
  // still gives exactly 10Gi after CDI's default overhead.
  test::ScopedMount mount({"-t", "tmpfs", "-o", "size=11381663335", "tmpfs"}, dir_.path());
  auto free_space_only = OpenFileTarget(path_, {.filesystem_overhead = 0.06});
  ASSERT_TRUE(free_space_only.ok()) << free_space_only.status().ToString();
  EXPECT_EQ((*free_space_only)->capacity(), 10 * kGiB);
  (*free_space_only)->Abort();

  auto larger_request =
      OpenFileTarget(path_, {.requested_size = 100 * kGiB, .filesystem_overhead = 0.06});
  ASSERT_TRUE(larger_request.ok()) << larger_request.status().ToString();
  EXPECT_EQ((*larger_request)->capacity(), 10 * kGiB);
}

TEST_F(FileTargetTest, PreallocationAllocatesTheWholeSize) {
  auto sparse = OpenFileTarget(dir_.File("sparse.img"), {.requested_size = 64 * kMiB});
  ASSERT_TRUE(sparse.ok()) << sparse.status().ToString();
  ASSERT_TRUE((*sparse)->SetSize(16 * kMiB).ok());
  EXPECT_EQ(test::AllocatedBytes(dir_.File(".sparse.img.partial")), 0u);

  auto target = Open({.preallocation = Preallocation::kOn});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_TRUE((*target)->SetSize(16 * kMiB).ok());
  EXPECT_GE(test::AllocatedBytes(partial_path_), 16 * kMiB);
  ASSERT_TRUE((*target)->Write(kMiB, Bytes(std::string(kMiB, 'x'))).ok());
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_GE(test::AllocatedBytes(path_), 16 * kMiB);
  EXPECT_TRUE(test::ReadFile(path_) ==
              std::string(kMiB, '\0') + std::string(kMiB, 'x') + std::string(14 * kMiB, '\0'));
}

TEST_F(FileTargetTest, RunningOutOfSpaceIsTooSmallAndLeavesNothing) {
  CDI_SKIP_UNLESS_MOUNT();
  test::ScopedMount mount({"-t", "tmpfs", "-o", "size=2m", "tmpfs"}, dir_.path());
  auto target = OpenFileTarget(path_, {});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_EQ((*target)->capacity(), 2 * kMiB);
  // Another writer takes half of the volume after the target was sized.
  test::WriteFile(dir_.File("other"), std::string(kMiB, 'o'));

  // A staged write fails when it reaches the file: at the write, or at Commit.
  Status write = (*target)->Write(0, Bytes(test::RandomBytes(2 * kMiB, 11)));
  if (write.ok()) write = (*target)->Commit();
  EXPECT_EQ(write.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(write.message(), "writing 1048576 bytes to " + path_ +
                                 " at offset 1048576: no space left on device; the image does "
                                 "not fit: a larger volume is required");
  (*target)->Abort();
  EXPECT_EQ(test::ListDir(dir_.path()), std::vector<std::string>{"other"});
}

TEST_F(FileTargetTest, CommitLogsCdisFsyncLine) {
  auto target = Open();
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  ASSERT_TRUE((*target)->Write(0, Bytes("boot sector")).ok());
  LogCapture log("%l %v");
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_NE(log.text().find("info Successfully completed fsync(" + path_ +
                            ") syscall, committed to disk\n"),
            std::string::npos)
      << log.text();
}

TEST_F(FileTargetTest, KeepsThePageCacheBounded) {
  struct statfs fs {};
  ASSERT_EQ(statfs(dir_.path().c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "on tmpfs the page cache is the storage";
  constexpr uint64_t kWindow = 8 * kMiB;
  constexpr uint64_t kTotal = 128 * kMiB;
  std::string chunk = test::RandomBytes(kMiB, 12);
  auto write_all = [&](Target& target) {
    for (uint64_t offset = 0; offset < kTotal; offset += kMiB) {
      Status status = target.Write(offset, Bytes(chunk));
      if (!status.ok()) return status;
    }
    return Status::Ok();
  };

  // Through the page cache: direct I/O (below) bypasses it.
  auto bounded =
      Open({.requested_size = 256 * kMiB, .writeback_window = kWindow, .direct_io = false});
  ASSERT_TRUE(bounded.ok()) << bounded.status().ToString();
  ASSERT_TRUE(write_all(**bounded).ok());
  // The window being filled and the one being written back, plus slack.
  EXPECT_LE(CachedBytes(partial_path_), 3 * kWindow);

  // The same writes left to the kernel stay cached: what the limiter prevents.
  auto unbounded =
      OpenFileTarget(dir_.File("unbounded.img"),
                     {.requested_size = 256 * kMiB, .writeback_window = 0, .direct_io = false});
  ASSERT_TRUE(unbounded.ok()) << unbounded.status().ToString();
  ASSERT_TRUE(write_all(**unbounded).ok());
  EXPECT_GT(CachedBytes(dir_.File(".unbounded.img.partial")), kTotal / 2);
}

TEST_F(FileTargetTest, LongRunsBypassThePageCache) {
  struct statfs fs {};
  ASSERT_EQ(statfs(dir_.path().c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "on tmpfs the page cache is the storage";
  constexpr uint64_t kTotal = 64 * kMiB;
  std::string data = test::RandomBytes(kTotal, 13);
  auto target = Open({.requested_size = 128 * kMiB});
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  for (uint64_t offset = 0; offset < kTotal; offset += kMiB) {
    ASSERT_TRUE((*target)->Write(offset, Bytes(data.substr(offset, kMiB))).ok());
  }
  ASSERT_TRUE((*target)->SetSize(kTotal).ok());
  // Written, yet hardly any of it sits in the page cache.
  EXPECT_LE(CachedBytes(partial_path_), 4 * kMiB);
  EXPECT_EQ((*target)->stats().bytes_written, kTotal);
  EXPECT_EQ((*target)->stats().bytes_direct, kTotal);
  ASSERT_TRUE((*target)->Commit().ok());
  EXPECT_TRUE(test::ReadFile(path_) == data);
}

TEST_F(FileTargetTest, OnTmpfsWritesGoThroughThePageCacheItsStorage) {
  // tmpfs takes O_DIRECT, but a direct write copies into its pages all the
  // same: staging would only add a copy.
  struct statfs fs {};
  if (statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "no tmpfs at /dev/shm";
  }
  char pattern[] = "/dev/shm/cdi-file-target-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string path = std::string(pattern) + "/disk.img";
  const std::string data = test::RandomBytes(8 * kMiB, 18);
  {
    auto target = OpenFileTarget(path, {.requested_size = 8 * kMiB});
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    for (uint64_t offset = 0; offset < data.size(); offset += kMiB) {
      ASSERT_TRUE((*target)->Write(offset, Bytes(data.substr(offset, kMiB))).ok());
    }
    ASSERT_TRUE((*target)->Commit().ok());
    EXPECT_EQ((*target)->stats().bytes_written, data.size());
    EXPECT_EQ((*target)->stats().bytes_direct, 0u);
  }
  const bool same = test::ReadFile(path) == data;
  unlink(path.c_str());
  rmdir(pattern);
  EXPECT_TRUE(same);
}

// Runs of every length and alignment around the staging buffer's edges,
// scattered and contiguous, direct and not, read back exactly.
TEST_F(FileTargetTest, StagedRunsOfAnyShapeReadBackExactly) {
  constexpr uint64_t kSize = 40 * kMiB;
  std::string expected(kSize, '\0');
  std::mt19937_64 random(14);
  struct Piece {
    uint64_t offset;
    uint64_t length;
  };
  // Disjoint pieces in a shuffled order, some adjacent (one run), some not.
  std::vector<Piece> pieces;
  for (uint64_t at = 1; at < kSize;) {
    uint64_t length = std::uniform_int_distribution<uint64_t>(1, 3 * kMiB)(random);
    if (random() % 4 == 0) length = 4 * kMiB - at % 4096;  // ends on a buffer edge
    length = std::min(length, kSize - at);
    pieces.push_back({at, length});
    at +=
        length + (random() % 3 == 0 ? std::uniform_int_distribution<uint64_t>(1, 9000)(random) : 0);
  }
  for (size_t i = 0; i + 1 < pieces.size(); i += 2) {
    if (random() % 3 == 0) std::swap(pieces[i], pieces[i + 1]);
  }
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "direct I/O" : "page cache");
    std::string path = dir_.File(direct ? "direct.img" : "buffered.img");
    auto target = OpenFileTarget(path, {.requested_size = kSize, .direct_io = direct});
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    ASSERT_TRUE((*target)->SetSize(kSize).ok());
    for (const Piece& piece : pieces) {
      std::string bytes = test::RandomBytes(piece.length, piece.offset);
      expected.replace(piece.offset, piece.length, bytes);
      ASSERT_TRUE((*target)->Write(piece.offset, Bytes(bytes)).ok());
    }
    ASSERT_TRUE((*target)->Commit().ok());
    struct statfs fs {};
    ASSERT_EQ(statfs(dir_.path().c_str(), &fs), 0);
    if (direct && fs.f_type != TMPFS_MAGIC) {
      EXPECT_GT((*target)->stats().bytes_direct, 0u);
    } else {
      EXPECT_EQ((*target)->stats().bytes_direct, 0u);
    }
    std::string content = test::ReadFile(path);
    EXPECT_TRUE(content == expected) << test::FirstDifference(content, expected);
  }
}

TEST(FileTargetPathTest, RefusesPathsThatAreNotFiles) {
  test::TempDir dir;
  auto empty = OpenFileTarget("", {});
  EXPECT_EQ(empty.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(empty.status().message(),
            "the target path is empty; give the disk image file to write, such as "
            "/data/disk.img");

  auto trailing_slash = OpenFileTarget(dir.path() + "/", {});
  EXPECT_EQ(trailing_slash.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(trailing_slash.status().message(),
            dir.path() +
                "/ names a directory; give the disk image file to write inside it, such as "
                "/data/disk.img");

  auto directory = OpenFileTarget(dir.path(), {});
  EXPECT_EQ(directory.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(directory.status().message(),
            dir.path() +
                " is a directory; give the disk image file to write, such as "
                "/data/disk.img");

  auto missing_dir = OpenFileTarget(dir.File("missing/disk.img"), {});
  EXPECT_EQ(missing_dir.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(missing_dir.status().message(),
            "opening the directory " + dir.File("missing") + " to create " +
                dir.File("missing/disk.img") +
                ": no such file or directory; check the path and that the volume is mounted");
  EXPECT_EQ(test::ListDir(dir.path()), std::vector<std::string>{});
}

}  // namespace
}  // namespace cdi::pvc
