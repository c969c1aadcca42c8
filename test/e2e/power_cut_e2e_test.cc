// A power cut between a kill and the restart loses nothing a checkpoint
// claims. The target is an ext4 filesystem on a loop device, mounted with
// data=writeback (a journal commit does not carry file data with it) and a
// long commit interval, so that only what the importer made durable itself
// (fdatasync, fsync) is on the device. After the importer is killed, the
// loop device's backing file is copied at once: that copy is the disk as a
// power cut would have left it (the page cache, and with it every write not
// yet synced, is gone). Mounted again (ext4 replays its journal), the copy's
// checkpoint must hold true: the next import continues from it and the
// result is the image byte for byte. The image's data comes in 64 KiB runs
// between holes, which the file target writes through the page cache (longer
// runs go to the device directly): without the importer's fdatasync before
// its checkpoint, this test finds zeros where the checkpoint claims data.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

constexpr size_t kImageSize = 6 << 20;
constexpr uint64_t kGate = (5 << 20) / 2;  // the first response holds at 2.5 MiB
constexpr uint64_t kClaimed = 2 << 20;     // the last checkpoint before it


TEST(PowerCutE2eTest, WhatTheCheckpointClaimsSurvivesAPowerCut) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  CDI_SKIP_UNLESS_MOUNT();
  if (!HaveProgram("mkfs.ext4")) GTEST_SKIP() << "mkfs.ext4 not found; install e2fsprogs";
  TempDir www;
  TempDir logs;
  TempDir mount_point;
  TempDir saved;
  const std::string image = MakeRawImage(kImageSize / 65536, 2, 31);
  WriteFile(www.File("disk.raw"), image);
  const std::string gate = logs.File("gate");
  FaultServer server(www.path(), R"({"/disk.raw": {"file": "disk.raw", "gate": {"after": )" +
                                     std::to_string(kGate) + R"(, "file": ")" + gate + R"("}}})");
  const std::string target = mount_point.File("disk.img");
  const std::string checkpoint = mount_point.File(".disk.img.checkpoint");
  const std::vector<std::string> args = {"import",           server.Url("/disk.raw"),
                                         target,             "--progress",
                                         "none",             "--resume",
                                         "--checkpoint-every", "1Mi",
                                         "-v"};
  const std::string after_cut = saved.File("after-power-cut.img");

  LoopDevice disk(LoopDeviceOptions{.size = 64ull << 20});
  Sh("mkfs.ext4 -q -F '" + disk.path() + "'");
  {
    ScopedMount mount({"-o", "data=writeback,commit=600", disk.path()}, mount_point.path());
    std::vector<std::string> argv = {BinDir() + "/cdi-image"};
    argv.insert(argv.end(), args.begin(), args.end());
    BackgroundProcess first(argv, logs.File("first.log"));
    bool reached = false;
    for (int i = 0; i < 3000 && !reached; ++i) {
      reached = CheckpointClaims(checkpoint) == kClaimed;
      if (!reached && first.Wait(std::chrono::milliseconds(10)) != -1) break;
    }
    ASSERT_TRUE(reached) << ReadFile(logs.File("first.log"));
    first.Signal(SIGKILL);
    ASSERT_EQ(first.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
    // The power cut: the device as it is now. What the page cache still held
    // reaches the device only later (at the unmount), and never this copy.
    Sh("cp --sparse=always '" + disk.backing_file() + "' '" + after_cut + "'");
  }

  LoopDevice restarted(LoopDeviceOptions{.existing_file = after_cut});
  ScopedMount mount({restarted.path()}, mount_point.path());
  // The checkpoint that survived: the last one, or the one before it when the
  // last rename was not committed yet. Either is true of the disk.
  const uint64_t survived = CheckpointClaims(checkpoint);
  std::printf("[   INFO   ] after the power cut the checkpoint claims %llu bytes\n",
              static_cast<unsigned long long>(survived));
  EXPECT_TRUE(survived == kClaimed || survived == kClaimed / 2) << survived;
  EXPECT_EQ(Sha256File(mount_point.File(".disk.img.partial"), survived),
            Sha256Bytes(image.substr(0, survived)));

  WriteFile(gate, "");
  RunResult second = CdiImage(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image));
  EXPECT_TRUE(Contains(second.out, "continued from byte " + std::to_string(survived)))
      << second.out;
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(survived) + "-");
}

}  // namespace
}  // namespace cdi::test
