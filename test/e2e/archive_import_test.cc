// The library's entry points the pod uses beyond disk images:
// Import(ContentType::kArchive) and CreateBlankImage().
#include <gtest/gtest.h>

#include <vector>

#include "cdi/import.h"
#include "test/e2e/e2e_util.h"
#include "test/support/files.h"
#include "test/support/loop_device.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

class ArchiveImportTest : public ::testing::Test {
 protected:
  ArchiveImportTest() { Sh("mkdir -p " + dir_.File("tree/sub") + " " + dir_.File("out")); }
  ImportSpec Spec(const std::string& source) {
    ImportSpec spec;
    spec.source.url = source;
    spec.content_type = ContentType::kArchive;
    spec.targets.push_back({.path = dir_.File("out")});
    return spec;
  }
  TempDir dir_;
};

TEST_F(ArchiveImportTest, ExtractsALocalCompressedTarAndReportsIt) {
  WriteFile(dir_.File("tree/a.txt"), "alpha");
  WriteFile(dir_.File("tree/sub/zeros"), std::string(1 << 20, '\0'));
  Sh("tar -C " + dir_.File("tree") + " -cJf " + dir_.File("tree.tar.xz") + " .");
  std::vector<Phase> phases;
  uint64_t last_guest_bytes = 0;
  ImportHooks hooks;
  hooks.on_progress = [&](const Progress& p) {
    if (phases.empty() || phases.back() != p.phase) phases.push_back(p.phase);
    last_guest_bytes = p.guest_bytes;
  };
  Result<ImportResult> result = Import(Spec(dir_.File("tree.tar.xz")), hooks);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->format_chain, (std::vector<std::string>{"xz", "tar"}));
  EXPECT_EQ(result->virtual_size, 5u + (1 << 20));
  EXPECT_EQ(result->bytes_written, 5u);
  EXPECT_EQ(result->bytes_zero, 1u << 20);
  EXPECT_EQ(result->bytes_read, FileSize(dir_.File("tree.tar.xz")));
  EXPECT_EQ(phases, (std::vector<Phase>{Phase::kConnecting, Phase::kTransferring, Phase::kFlushing,
                                        Phase::kDone}));
  EXPECT_EQ(last_guest_bytes, 5u + (1 << 20));
  EXPECT_EQ(ReadFile(dir_.File("out/a.txt")), "alpha");
  EXPECT_EQ(AllocatedBytes(dir_.File("out/sub/zeros")), 0u);
}

TEST_F(ArchiveImportTest, SpecProblemsAreRefusedBeforeReading) {
  ImportSpec two = Spec(dir_.File("missing.tar"));
  two.targets.push_back({.path = dir_.File("other")});
  Result<ImportResult> result = Import(two);
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "an archive is extracted into exactly one directory; 2 targets were given");

  ImportSpec overhead = Spec(dir_.File("missing.tar"));
  overhead.targets[0].filesystem_overhead = 1.5;
  result = Import(overhead);
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(
      Contains(result.status().message(), "filesystem overhead must be at least 0 and below 1"))
      << result.status().message();

  ImportSpec missing_dir = Spec(dir_.File("missing.tar"));
  missing_dir.targets[0].path = dir_.File("no-such-dir");
  result = Import(missing_dir);
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(result.status().message(), dir_.File("no-such-dir")))
      << result.status().message();
}

TEST_F(ArchiveImportTest, ABlockDeviceIsNoPlaceForAnArchive) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 1 << 20, .fill = 0x55});
  ImportSpec spec = Spec(dir_.File("missing.tar"));
  spec.targets[0].path = device.path();
  Result<ImportResult> result = Import(spec);
  EXPECT_EQ(result.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            device.path() +
                " is a block device; archive content is extracted into a directory of a "
                "filesystem volume");
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(1 << 20, '\x55')));
}

TEST(CreateBlankImage, AnExistingFileIsReplacedOnlyWhenAsked) {
  TempDir dir;
  WriteFile(dir.File("disk.img"), "precious");
  TargetSpec target{.path = dir.File("disk.img"), .requested_size = 4 << 20};
  Result<ImportResult> refused = CreateBlankImage(target);
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(dir.File("disk.img")), "precious");
  target.existing = ExistingFile::kReplace;
  Result<ImportResult> created = CreateBlankImage(target);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->target_size, 4u << 20);
  EXPECT_EQ(created->format_chain, std::vector<std::string>{"raw"});
  EXPECT_FALSE(created->preallocated);
  EXPECT_EQ(FileSize(dir.File("disk.img")), 4u << 20);
  EXPECT_EQ(AllocatedBytes(dir.File("disk.img")), 0u);
  EXPECT_EQ(ListDir(dir.path()), std::vector<std::string>{"disk.img"});  // no partial file left
}

TEST(CreateBlankImage, WithoutARequestedSizeTheFreeSpaceIsTaken) {
  CDI_SKIP_UNLESS_MOUNT();
  TempDir dir;
  ScopedMount volume({"-t", "tmpfs", "-o", "size=8m", "tmpfs"}, dir.path());
  Result<ImportResult> created = CreateBlankImage({.path = dir.File("disk.img")});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(FileSize(dir.File("disk.img")), 8u << 20);
}

TEST(CreateBlankImage, APreallocatedDeviceReadsZero) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 2 << 20, .fill = 0xAA});
  Result<ImportResult> created =
      CreateBlankImage({.path = device.path(), .preallocation = Preallocation::kOn});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(created->preallocated);
  EXPECT_EQ(created->target_size, 2u << 20);
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(2 << 20, '\0')));
}

}  // namespace
}  // namespace cdi::test
