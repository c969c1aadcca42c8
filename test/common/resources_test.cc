// The cgroup reader, on the files a kernel shows, written under a directory
// of the test's own: cgroup v2, v1, hybrid, nested limits, a container that
// sees its cgroup as the mount's root, and no cgroup at all.
#include "common/resources.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "test/support/files.h"
#include "test/support/temp_dir.h"

namespace cdi {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = 1ull << 30;
const char kMeminfo[] = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n";
constexpr uint64_t kMachine = 16384000ull * 1024;

// A root directory with proc/ and sys/fs/cgroup/ files.
class FakeRoot {
 public:
  const std::string& path() const { return dir_.path(); }
  // Writes `contents` at `relative` (created with its directories).
  void Write(const std::string& relative, const std::string& contents) {
    std::filesystem::path file = std::filesystem::path(dir_.path()) / relative;
    std::filesystem::create_directories(file.parent_path());
    test::WriteFile(file.string(), contents);
  }
  void Mkdir(const std::string& relative) {
    std::filesystem::create_directories(std::filesystem::path(dir_.path()) / relative);
  }
  ProcessResources Read(unsigned affinity) const { return ReadProcessResources(path(), affinity); }

 private:
  test::TempDir dir_;
};

// A pure cgroup v2 system, the process in /kubepods/pod1/ctr.
void WriteV2(FakeRoot& root) {
  root.Write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  root.Write("proc/self/mountinfo",
             "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
             "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
             "cgroup2 rw,nsdelegate,memory_recursiveprot\n");
  root.Write("proc/meminfo", kMeminfo);
  root.Write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
}

TEST(ProcessResourcesTest, V2QuotaAndMemoryLimitOfTheProcessCgroup) {
  FakeRoot root;
  WriteV2(root);
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "75000 100000\n");
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "629145600\n");
  ProcessResources resources = root.Read(16);
  ASSERT_TRUE(resources.cpu_quota.has_value());
  EXPECT_DOUBLE_EQ(*resources.cpu_quota, 0.75);
  EXPECT_EQ(resources.cpus, 1u);  // 750m: one thread
  EXPECT_EQ(resources.memory_limit, 629145600u);
  EXPECT_EQ(resources.machine_memory, kMachine);
  EXPECT_EQ(resources.memory(), 629145600u);
  EXPECT_EQ(resources.Describe(), "1 CPU (cgroup quota 0.75), memory limit 600.0 MiB (cgroup)");
}

TEST(ProcessResourcesTest, V2TheTightestLimitOnTheWayUpWins) {
  FakeRoot root;
  WriteV2(root);
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n");
  root.Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000\n");  // 2.5 CPUs
  root.Write("sys/fs/cgroup/kubepods/pod1/memory.max", "2147483648\n");
  root.Write("sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n");
  root.Write("sys/fs/cgroup/kubepods/memory.max", "1073741824\n");
  ProcessResources resources = root.Read(16);
  EXPECT_DOUBLE_EQ(resources.cpu_quota.value_or(0), 2.5);
  EXPECT_EQ(resources.cpus, 3u);  // 2.5 CPUs rounded up
  EXPECT_EQ(resources.memory_limit, 1 * kGiB);
}

TEST(ProcessResourcesTest, TheAffinityMaskLowersTheQuota) {
  FakeRoot root;
  WriteV2(root);
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "400000 100000\n");
  EXPECT_EQ(root.Read(2).cpus, 2u);
  EXPECT_EQ(root.Read(8).cpus, 4u);
  EXPECT_EQ(root.Read(0).cpus, 4u);  // affinity unknown: the quota decides
}

TEST(ProcessResourcesTest, V2WithoutLimitsIsTheMachine) {
  FakeRoot root;
  WriteV2(root);
  root.Mkdir("sys/fs/cgroup/kubepods/pod1/ctr");
  ProcessResources resources = root.Read(6);
  EXPECT_EQ(resources.cpu_quota, std::nullopt);
  EXPECT_EQ(resources.memory_limit, std::nullopt);
  EXPECT_EQ(resources.cpus, 6u);
  EXPECT_EQ(resources.memory(), kMachine);
  EXPECT_EQ(resources.Describe(), "6 CPUs, no memory limit (machine 15.6 GiB)");
}

TEST(ProcessResourcesTest, AContainerSeesItsCgroupAsTheMountRoot) {
  // No cgroup namespace: /proc/self/cgroup names the host's path, which the
  // container's mount does not show; its root is the container's cgroup.
  FakeRoot root;
  WriteV2(root);
  root.Write("sys/fs/cgroup/cpu.max", "150000 100000\n");
  root.Write("sys/fs/cgroup/memory.max", "268435456\n");
  ProcessResources resources = root.Read(8);
  EXPECT_EQ(resources.cpus, 2u);
  EXPECT_EQ(resources.memory_limit, 256 * kMiB);
}

TEST(ProcessResourcesTest, AMountOfASubtreeIsReadRelativeToItsRoot) {
  FakeRoot root;
  root.Write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  // The mount shows /kubepods as its root.
  root.Write("proc/self/mountinfo",
             "30 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  root.Write("proc/meminfo", kMeminfo);
  root.Write("sys/fs/cgroup/pod1/ctr/cpu.max", "200000 100000\n");
  root.Write("sys/fs/cgroup/pod1/memory.max", "536870912\n");
  ProcessResources resources = root.Read(8);
  EXPECT_EQ(resources.cpus, 2u);
  EXPECT_EQ(resources.memory_limit, 512 * kMiB);
}

// cgroup v1, controllers on their own mounts; v2's unified hierarchy beside
// them has no controllers (a hybrid system).
void WriteV1(FakeRoot& root) {
  root.Write("proc/self/cgroup",
             "12:memory:/docker/abc\n"
             "11:cpu,cpuacct:/docker/abc\n"
             "10:cpuset:/docker/abc\n"
             "1:name=systemd:/docker/abc\n"
             "0::/docker/abc\n");
  root.Write("proc/self/mountinfo",
             "31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
             "32 31 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
             "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
             "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  root.Write("proc/meminfo", kMeminfo);
}

TEST(ProcessResourcesTest, V1QuotaAndMemoryLimit) {
  FakeRoot root;
  WriteV1(root);
  root.Write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n");
  root.Write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  root.Write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "1073741824\n");
  root.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  // The unified hierarchy's files are not the limits on a hybrid system.
  root.Write("sys/fs/cgroup/unified/docker/abc/cpu.max", "10000 100000\n");
  ProcessResources resources = root.Read(16);
  EXPECT_DOUBLE_EQ(resources.cpu_quota.value_or(0), 1.5);
  EXPECT_EQ(resources.cpus, 2u);
  EXPECT_EQ(resources.memory_limit, 1 * kGiB);
}

TEST(ProcessResourcesTest, V1WithoutLimits) {
  FakeRoot root;
  WriteV1(root);
  root.Write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  root.Write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  root.Write("sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");
  ProcessResources resources = root.Read(4);
  EXPECT_EQ(resources.cpu_quota, std::nullopt);
  EXPECT_EQ(resources.memory_limit, std::nullopt);
  EXPECT_EQ(resources.cpus, 4u);
  EXPECT_EQ(resources.memory(), kMachine);
}

TEST(ProcessResourcesTest, NoMountinfoFallsBackToTheUsualPlaces) {
  FakeRoot root;
  root.Write("proc/meminfo", kMeminfo);
  root.Write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  root.Write("sys/fs/cgroup/cpu.max", "100000 100000\n");
  root.Write("sys/fs/cgroup/memory.max", "104857600\n");
  ProcessResources resources = root.Read(4);
  EXPECT_EQ(resources.cpus, 1u);
  EXPECT_EQ(resources.memory_limit, 100 * kMiB);
}

TEST(ProcessResourcesTest, NothingReadableIsTheAffinityAlone) {
  FakeRoot root;
  ProcessResources resources = root.Read(3);
  EXPECT_EQ(resources.cpus, 3u);
  EXPECT_EQ(resources.cpu_quota, std::nullopt);
  EXPECT_EQ(resources.memory_limit, std::nullopt);
  EXPECT_EQ(resources.machine_memory, 0u);
  EXPECT_EQ(resources.memory(), 0u);
  EXPECT_EQ(root.Read(0).cpus, 1u);
}

TEST(ProcessResourcesTest, GarbageIsNoLimit) {
  FakeRoot root;
  WriteV2(root);
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "lots\n");
  root.Write("sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "-5\n");
  root.Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "0 100000\n");
  ProcessResources resources = root.Read(2);
  EXPECT_EQ(resources.cpu_quota, std::nullopt);
  EXPECT_EQ(resources.memory_limit, std::nullopt);
  EXPECT_EQ(resources.cpus, 2u);
}

TEST(ProcessResourcesTest, ThisProcessHasAtLeastOneCpu) {
  const ProcessResources& resources = ThisProcessResources();
  EXPECT_GE(resources.cpus, 1u);
  EXPECT_EQ(&resources, &ThisProcessResources());  // read once
}

}  // namespace
}  // namespace cdi
