// The directory target (pvc/directory_target.h): files and directories
// created beneath a root on a real filesystem, never outside it, bounded,
// sparse, removed again on abort.
#include "pvc/directory_target.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

std::span<const uint8_t> Bytes(const std::string& text) {
  return std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

unsigned Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class DirectoryTargetTest : public ::testing::Test {
 protected:
  std::unique_ptr<pvc::DirectoryTarget> Open(pvc::DirectoryTargetOptions options = {}) {
    auto target = pvc::OpenDirectoryTarget(root_.path(), options);
    EXPECT_TRUE(target.ok()) << target.status().ToString();
    return target.ok() ? std::move(target).value() : nullptr;
  }
  Status WriteWholeFile(pvc::DirectoryTarget& target, const std::string& path,
                        const std::string& data, uint32_t mode = 0644) {
    CDI_RETURN_IF_ERROR(target.BeginFile(path, data.size(), mode, 1600000000));
    // Two writes, split off the block grid, to exercise the run splitting.
    size_t half = data.size() / 2 + 1;
    if (half > data.size()) half = data.size();
    CDI_RETURN_IF_ERROR(target.WriteFile(Bytes(data).first(half)));
    CDI_RETURN_IF_ERROR(target.WriteFile(Bytes(data).subspan(half)));
    return target.EndFile();
  }
  TempDir root_;
};

TEST_F(DirectoryTargetTest, CreatesTheTreeWithModesTimesAndHoles) {
  auto target = Open();
  ASSERT_TRUE(target);
  // Zeros between data: one 64 KiB hole in the middle of the file.
  std::string sparse = RandomBytes(8192, 1) + std::string(65536, '\0') + RandomBytes(4096, 2);
  ASSERT_TRUE(target->MakeDirectory("etc", 0750, 1500000000).ok());
  ASSERT_TRUE(WriteWholeFile(*target, "etc/motd", "hello\n", 0640).ok());
  ASSERT_TRUE(WriteWholeFile(*target, "images/nested/disk.img", sparse).ok());  // parents implied
  ASSERT_TRUE(WriteWholeFile(*target, "empty", "").ok());
  ASSERT_TRUE(target->MakeDirectory("locked", 0555, std::nullopt).ok());
  ASSERT_TRUE(WriteWholeFile(*target, "locked/inside", "x").ok());  // before its mode applies
  ASSERT_TRUE(target->Commit().ok());

  EXPECT_EQ(ListDir(root_.path()), (std::vector<std::string>{"empty", "etc", "images", "locked"}));
  EXPECT_EQ(ReadFile(root_.File("etc/motd")), "hello\n");
  EXPECT_EQ(Sha256File(root_.File("images/nested/disk.img")), Sha256Bytes(sparse));
  EXPECT_EQ(DataExtents(root_.File("images/nested/disk.img")),
            (ExtentMap{{0, 8192}, {8192 + 65536, sparse.size()}}));
  EXPECT_EQ(FileSize(root_.File("empty")), 0u);
  EXPECT_EQ(Mode(root_.File("etc")), 0750u);
  EXPECT_EQ(Mode(root_.File("etc/motd")), 0640u);
  EXPECT_EQ(Mode(root_.File("images")), 0755u);  // implied parents
  EXPECT_EQ(Mode(root_.File("locked")), 0555u);
  EXPECT_EQ(Sh("stat -c %Y " + root_.File("etc/motd")), "1600000000\n");
  EXPECT_EQ(Sh("stat -c %Y " + root_.File("etc")), "1500000000\n");
  pvc::DirectoryStats stats = target->stats();
  EXPECT_EQ(stats.files, 4u);
  EXPECT_EQ(stats.directories, 4u);  // etc, images, images/nested, locked
  EXPECT_EQ(stats.bytes_total, 6 + sparse.size() + 1);
  EXPECT_EQ(stats.bytes_skipped, 65536u);
}

TEST_F(DirectoryTargetTest, SetIdBitsAreDropped) {
  auto target = Open();
  ASSERT_TRUE(WriteWholeFile(*target, "tool", "#!/bin/sh\n", 06755).ok());
  ASSERT_TRUE(target->Commit().ok());
  EXPECT_EQ(Mode(root_.File("tool")), 0755u);
}

TEST_F(DirectoryTargetTest, TotalIsBoundedBeforeAnythingIsWritten) {
  // 3 MiB requested at 0 overhead: 3 MiB usable.
  auto target = Open({.requested_size = 3 << 20});
  ASSERT_EQ(target->capacity(), 3u << 20);
  ASSERT_TRUE(WriteWholeFile(*target, "a", std::string(2 << 20, 'a')).ok());
  Status status = target->BeginFile("b", (1 << 20) + 1, 0644, std::nullopt);
  EXPECT_EQ(status.code(), ErrorCode::kTooSmall);
  EXPECT_TRUE(Contains(status.message(), "writing " + root_.File("b") +
                                             " (1048577 bytes) would "
                                             "bring the files written to 3145729 bytes, which is "
                                             "larger than the reported available storage 3145728. "
                                             "A larger PVC is required"))
      << status.message();
  EXPECT_FALSE(FileExists(root_.File("b")));
  // A file written twice counts once.
  ASSERT_TRUE(WriteWholeFile(*target, "a", std::string(2 << 20, 'b')).ok());
  ASSERT_TRUE(WriteWholeFile(*target, "c", std::string(1 << 20, 'c')).ok());
  ASSERT_TRUE(target->Commit().ok());
  EXPECT_EQ(ReadFile(root_.File("a")), std::string(2 << 20, 'b'));
}

TEST_F(DirectoryTargetTest, OverheadAndFreeSpaceSetTheCapacity) {
  auto target = Open({.requested_size = 11381663335, .filesystem_overhead = 0.06});
  uint64_t free_space = std::stoull(Sh("df -B1 --output=avail " + root_.path() + " | tail -1"));
  if (free_space < 11381663335) GTEST_SKIP() << "less than 11381663335 bytes free here";
  EXPECT_EQ(target->capacity(), 10ull << 30);
}

TEST_F(DirectoryTargetTest, NeverFollowsALinkOutOfTheRoot) {
  TempDir outside;
  Sh("ln -s " + outside.path() + " " + root_.File("escape"));
  WriteFile(root_.File("plain"), "x");
  auto target = Open();
  for (const char* path : {"escape/owned", "escape/deeper/owned", "plain/owned"}) {
    Status status = target->BeginFile(path, 1, 0644, std::nullopt);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << path;
    EXPECT_TRUE(Contains(status.message(),
                         "is not a directory (a file or a symbolic link is in "
                         "the way)"))
        << status.message();
  }
  Status status = target->BeginFile("escape", 1, 0644, std::nullopt);
  EXPECT_TRUE(Contains(status.message(), root_.File("escape") +
                                             " already exists and is not a regular file (a "
                                             "symbolic link)"))
      << status.message();
  status = target->MakeDirectory("escape", 0755, std::nullopt);
  EXPECT_TRUE(Contains(status.message(), "already exists and is not a directory"))
      << status.message();
  EXPECT_EQ(ListDir(outside.path()), std::vector<std::string>{});
}

TEST_F(DirectoryTargetTest, RefusesPathsThatAreNotNormalised) {
  auto target = Open();
  for (const char* path : {"../up", "/abs", "a//b", "a/./b", "", "a/.."}) {
    Status status = target->BeginFile(path, 1, 0644, std::nullopt);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << path;
    EXPECT_TRUE(Contains(status.message(), "only normalised relative paths")) << status.message();
  }
}

TEST_F(DirectoryTargetTest, AbortRemovesWhatItCreatedAndNothingElse) {
  Sh("mkdir " + root_.File("lost+found"));
  WriteFile(root_.File("lost+found/keep"), "keep");
  {
    auto target = Open();
    ASSERT_TRUE(WriteWholeFile(*target, "lost+found/mine", "mine").ok());
    ASSERT_TRUE(WriteWholeFile(*target, "new/deep/file", "x").ok());
    ASSERT_TRUE(target->MakeDirectory("locked", 0500, std::nullopt).ok());
    ASSERT_TRUE(target->BeginFile("new/partial", 100, 0644, std::nullopt).ok());
    ASSERT_TRUE(target->WriteFile(Bytes("half")).ok());
    // Destroyed uncommitted: aborted.
  }
  EXPECT_EQ(ListDir(root_.path()), std::vector<std::string>{"lost+found"});
  EXPECT_EQ(ListDir(root_.File("lost+found")), std::vector<std::string>{"keep"});
}

// A listing of a tree: each entry's path, type, mode and, for files, content
// digest, in path order.
std::string Tree(const std::string& root) {
  return Sh("cd " + root +
            " && find . -mindepth 1 -printf '%p %y %m %s\\n' | sort && "
            "find . -type f -exec sha256sum {} + | sort -k2");
}

// What an extraction killed part way leaves (its process ends without
// aborting, as under SIGKILL), made in a child process that exits at once.
void KilledExtraction(const std::string& root) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto target = pvc::OpenDirectoryTarget(root, {});
    if (!target.ok()) _exit(1);
    auto& t = **target;
    bool ok = t.MakeDirectory("etc", 0750, 1500000000).ok() &&
              t.BeginFile("etc/motd", 6, 0640, std::nullopt).ok() &&
              t.WriteFile(Bytes("hello\n")).ok() && t.EndFile().ok() &&
              t.MakeDirectory("stale-only", 0755, std::nullopt).ok() &&
              t.BeginFile("images/nested/disk.img", 1 << 20, 0644, std::nullopt).ok() &&
              t.WriteFile(Bytes(std::string(4096, 'x'))).ok();
    _exit(ok ? 0 : 2);  // no destructor runs: nothing is aborted
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// The whole extraction, as a rerun of the killed one makes it.
Status Extract(pvc::DirectoryTarget& target, const std::string& disk) {
  CDI_RETURN_IF_ERROR(target.MakeDirectory("etc", 0750, 1500000000));
  CDI_RETURN_IF_ERROR(target.BeginFile("etc/motd", 6, 0640, std::nullopt));
  CDI_RETURN_IF_ERROR(target.WriteFile(Bytes("hello\n")));
  CDI_RETURN_IF_ERROR(target.EndFile());
  CDI_RETURN_IF_ERROR(target.BeginFile("images/nested/disk.img", disk.size(), 0644, 1600000000));
  CDI_RETURN_IF_ERROR(target.WriteFile(Bytes(disk)));
  CDI_RETURN_IF_ERROR(target.EndFile());
  return target.Commit();
}

TEST_F(DirectoryTargetTest, ARerunAfterAKilledExtractionMakesTheSameTree) {
  Sh("mkdir " + root_.File("lost+found"));
  WriteFile(root_.File("lost+found/keep"), "keep");
  KilledExtraction(root_.path());
  // The killed attempt left its directories at their working mode.
  ASSERT_EQ(Mode(root_.File("images")), 0700u);
  ASSERT_TRUE(FileExists(root_.File("stale-only")));

  const std::string disk = RandomBytes(1 << 20, 9);
  auto rerun = Open();
  ASSERT_TRUE(rerun);
  ASSERT_TRUE(Extract(*rerun, disk).ok());

  TempDir clean;
  Sh("mkdir " + clean.File("lost+found"));
  WriteFile(clean.File("lost+found/keep"), "keep");
  auto first_time = pvc::OpenDirectoryTarget(clean.path(), {});
  ASSERT_TRUE(first_time.ok()) << first_time.status().ToString();
  ASSERT_TRUE(Extract(**first_time, disk).ok());

  EXPECT_EQ(Tree(root_.path()), Tree(clean.path()));
  EXPECT_EQ(Mode(root_.File("images")), 0755u);
  EXPECT_EQ(Mode(root_.File("images/nested")), 0755u);
  EXPECT_EQ(Mode(root_.File("etc")), 0750u);
  EXPECT_EQ(ListDir(root_.path()), (std::vector<std::string>{"etc", "images", "lost+found"}));
}

TEST_F(DirectoryTargetTest, OneExtractionAtATime) {
  auto first = Open();
  ASSERT_TRUE(first);
  ASSERT_TRUE(WriteWholeFile(*first, "a/file", "first").ok());
  auto second = pvc::OpenDirectoryTarget(root_.path(), {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(second.status().message(),
            root_.path() +
                " is being extracted into by another import; only one import may write a volume "
                "at a time: wait for that import to end, or stop it, then try again");
  // The refused one removed nothing of the first one's work.
  ASSERT_TRUE(first->Commit().ok());
  EXPECT_EQ(ReadFile(root_.File("a/file")), "first");
  EXPECT_EQ(ListDir(root_.path()), std::vector<std::string>{"a"});
  first.reset();
  auto third = pvc::OpenDirectoryTarget(root_.path(), {});
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST_F(DirectoryTargetTest, TheJournalsNameIsRefusedAsAnArchivePath) {
  auto target = Open();
  Status status = target->BeginFile(".cdi-extract-in-progress", 1, 0644, std::nullopt);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "the path '.cdi-extract-in-progress' is where the importer lists what an unfinished "
            "extraction created; rename it in the archive");
}

TEST_F(DirectoryTargetTest, CommitSaysItFlushedTheVolume) {
  std::vector<std::string> lines;
  std::mutex mutex;
  SetLogHandler([&](LogLevel, std::string_view line) {
    std::lock_guard lock(mutex);
    lines.emplace_back(line);
  });
  auto target = Open();
  ASSERT_TRUE(WriteWholeFile(*target, "f", "data").ok());
  ASSERT_TRUE(target->Commit().ok());
  SetLogHandler([](LogLevel, std::string_view) {}, LogLevel::kError);
  EXPECT_NE(
      std::find(lines.begin(), lines.end(),
                "Successfully completed fsync(" + root_.path() + ") syscall, committed to disk"),
      lines.end());
  // Committed: nothing more is accepted, and abort changes nothing.
  EXPECT_EQ(target->BeginFile("g", 1, 0644, std::nullopt).code(), ErrorCode::kInternal);
  target->Abort();
  EXPECT_EQ(ReadFile(root_.File("f")), "data");
}

TEST_F(DirectoryTargetTest, MisuseIsAnInternalError) {
  auto target = Open();
  EXPECT_EQ(target->WriteFile(Bytes("x")).code(), ErrorCode::kInternal);
  ASSERT_TRUE(target->BeginFile("f", 2, 0644, std::nullopt).ok());
  EXPECT_EQ(target->WriteFile(Bytes("abc")).code(), ErrorCode::kInternal);  // past its size
  EXPECT_EQ(target->EndFile().code(), ErrorCode::kInternal);                // short
  EXPECT_EQ(target->Commit().code(), ErrorCode::kInternal);                 // file still open
}

TEST(OpenDirectoryTarget, RootMustBeADirectory) {
  TempDir dir;
  WriteFile(dir.File("file"), "x");
  for (const std::string& root : {dir.File("missing"), dir.File("file")}) {
    auto target = pvc::OpenDirectoryTarget(root, {});
    EXPECT_EQ(target.status().code(), ErrorCode::kInvalidArgument) << root;
    EXPECT_TRUE(Contains(target.status().message(), root)) << target.status().message();
  }
}

}  // namespace
}  // namespace cdi::test
