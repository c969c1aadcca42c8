#include "cdi/import.h"
#include "pvc/capacity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "test/support/files.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::pvc {
namespace {

TEST(AvailableSpaceTest, ReportsTheFreeSpaceOfASizedTmpfs) {
  CDI_SKIP_UNLESS_MOUNT();
  test::TempDir dir;
  test::ScopedMount mount({"-t", "tmpfs", "-o", "size=4m", "tmpfs"}, dir.path());
  Result<uint64_t> empty = AvailableSpace(dir.path());
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, 4 * kMiB);

  test::WriteFile(dir.File("one-mib"), std::string(kMiB, 'x'));
  Result<uint64_t> after = AvailableSpace(dir.File("one-mib"));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, 3 * kMiB);
}

TEST(AvailableSpaceTest, NamesAMissingPath) {
  Result<uint64_t> space = AvailableSpace("/nonexistent/volume");
  ASSERT_FALSE(space.ok());
  EXPECT_EQ(space.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(space.status().message(),
            "checking the free space of the filesystem holding /nonexistent/volume: no such file "
            "or directory; check the path and that the volume is mounted");
}

}  // namespace
}  // namespace cdi::pvc
