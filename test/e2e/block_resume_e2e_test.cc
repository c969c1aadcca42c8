// A killed import into a block device continues where it stopped. A device
// has no directory to keep a checkpoint beside, so the checkpoint goes to a
// directory of the device's own: `cdi-image import --resume --checkpoint-dir`,
// and the importer pod's scratch volume. The device is a loop device filled
// with 0xAA first, so that a byte the continued import failed to write shows;
// the page cache is dropped between the kill and the restart. The result is
// the image byte for byte, then zeros to the device's end, and the second run
// fetches only what follows the checkpoint.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/e2e/pod_harness.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

constexpr size_t kImageSize = 6 << 20;
constexpr uint64_t kDeviceSize = 8 << 20;
constexpr uint64_t kGate = (5 << 20) / 2;  // the first response holds at 2.5 MiB
constexpr uint64_t kClaimed = 2 << 20;     // the last checkpoint before it

// "loop3" for "/dev/loop3".
std::string Basename(const std::string& path) { return path.substr(path.rfind('/') + 1); }


// Kills `process` with SIGKILL once `checkpoint` claims at least `claimed`
// bytes; returns what it claims then.
uint64_t KillAtCheckpoint(BackgroundProcess& process, const std::string& checkpoint,
                          uint64_t claimed, const std::string& log) {
  bool reached = false;
  for (int i = 0; i < 3000 && !reached; ++i) {
    reached = CheckpointClaims(checkpoint) >= claimed;
    if (!reached && process.Wait(std::chrono::milliseconds(10)) != -1) break;
  }
  EXPECT_TRUE(reached) << ReadFile(log);
  process.Signal(SIGKILL);
  EXPECT_EQ(process.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
  return CheckpointClaims(checkpoint);
}

// What a power cut leaves of a device after a sync: the page cache goes, and
// what is read next comes from the device.
void DropPageCache() {
  sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "1\n";
}

class BlockResumeE2eTest : public ::testing::Test {
 protected:
  std::string Script(const std::string& name, uint64_t after) const {
    return R"({"/)" + name + R"(": {"file": ")" + name + R"(", "gate": {"after": )" +
           std::to_string(after) + R"(, "file": ")" + gate_ + R"("}}})";
  }

  std::vector<std::string> ImportArgs(const std::string& url, const std::string& device) const {
    return {BinDir() + "/cdi-image", "import", url, device, "--progress", "none", "--resume",
            "--checkpoint-dir", checkpoints_.path(), "--checkpoint-every", "1Mi", "-v"};
  }

  // The second run, with the gate open.
  RunResult SecondRun(const std::string& url, const std::string& device) {
    WriteFile(gate_, "");
    std::vector<std::string> args = ImportArgs(url, device);
    args.erase(args.begin());
    return CdiImage(args);
  }

  TempDir www_;
  TempDir checkpoints_;
  TempDir logs_;
  const std::string gate_ = logs_.File("gate");
};

TEST_F(BlockResumeE2eTest, RawImageKilledMidDataContinuesOnTheDevice) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  const std::string image = MakeRawImage(kImageSize / 65536, 5, 41);
  WriteFile(www_.File("disk.raw"), image);
  FaultServer server(www_.path(), Script("disk.raw", kGate));
  LoopDevice device({.size = kDeviceSize, .fill = 0xAA});
  const std::string checkpoint = checkpoints_.File("." + Basename(device.path()) + ".checkpoint");
  {
    BackgroundProcess first(ImportArgs(server.Url("/disk.raw"), device.path()),
                            logs_.File("first.log"));
    EXPECT_EQ(KillAtCheckpoint(first, checkpoint, kClaimed, logs_.File("first.log")), kClaimed);
  }
  DropPageCache();
  // The device holds what the checkpoint claims: the kill did not wipe it.
  EXPECT_EQ(Sha256File(device.path(), kClaimed), Sha256Bytes(image.substr(0, kClaimed)));

  RunResult second = SecondRun(server.Url("/disk.raw"), device.path());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(image + std::string(kDeviceSize - image.size(), '\0')));
  EXPECT_TRUE(Contains(second.out, "continued from byte " + std::to_string(kClaimed)))
      << second.out << second.err;
  EXPECT_EQ(ListDir(checkpoints_.path()), std::vector<std::string>{});
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(kClaimed) + "-");
}

TEST_F(BlockResumeE2eTest, Qcow2ImageKilledMidDataContinuesOnTheDevice) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  if (!HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img not found";
  // 6 MiB of guest, a third of it zeros, in 64 KiB clusters; compressed, so
  // that the clusters' host order differs from the guest's in size.
  WriteFile(www_.File("guest.raw"), MakeRawImage(kImageSize / 65536, 3, 43));
  Sh("cd " + www_.path() + " && qemu-img convert -q -c -f raw -O qcow2 guest.raw disk.qcow2");
  const uint64_t length = FileSize(www_.File("disk.qcow2"));
  FaultServer server(www_.path(), Script("disk.qcow2", length * 3 / 4));
  LoopDevice device({.size = kDeviceSize, .fill = 0xAA});
  const std::string checkpoint = checkpoints_.File("." + Basename(device.path()) + ".checkpoint");
  uint64_t claimed = 0;
  {
    BackgroundProcess first(ImportArgs(server.Url("/disk.qcow2"), device.path()),
                            logs_.File("first.log"));
    claimed = KillAtCheckpoint(first, checkpoint, length / 4, logs_.File("first.log"));
  }
  ASSERT_GT(claimed, 0u);
  DropPageCache();

  RunResult second = SecondRun(server.Url("/disk.qcow2"), device.path());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const std::string guest = ReadFile(www_.File("guest.raw"));
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(guest + std::string(kDeviceSize - guest.size(), '\0')));
  EXPECT_TRUE(Contains(second.out, "continued from byte " + std::to_string(claimed)))
      << second.out << second.err;
  EXPECT_EQ(ListDir(checkpoints_.path()), std::vector<std::string>{});
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.qcow2");
  ASSERT_GE(requests.size(), 3u);  // the first run, the tables again, the rest
  EXPECT_EQ(requests.back().Header("range"), "bytes=" + std::to_string(claimed) + "-");
}

TEST_F(BlockResumeE2eTest, WithoutACheckpointDirectoryABlockDeviceImportsWithoutCheckpoints) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  const std::string image = MakeRawImage(kImageSize / 65536, 5, 47);
  WriteFile(www_.File("disk.raw"), image);
  FaultServer server(www_.path(), "{}");
  LoopDevice device({.size = kDeviceSize, .fill = 0xAA});
  RunResult r = CdiImage({"import", server.Url("/disk.raw"), device.path(), "--progress", "none",
                          "--resume", "-v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "No checkpoints: " + device.path() +
                                  " is a block device, which has no room for a checkpoint "
                                  "beside it, and no directory for its checkpoint was given"))
      << r.err;
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(image + std::string(kDeviceSize - image.size(), '\0')));
}

TEST_F(BlockResumeE2eTest, ImporterPodOnABlockVolumeContinuesFromItsScratchVolume) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  const std::string image = MakeRawImage(kImageSize / 65536, 5, 53);
  WriteFile(www_.File("disk.raw"), image);
  FaultServer server(www_.path(), Script("disk.raw", kGate));
  LoopDevice device({.size = kDeviceSize, .fill = 0xAA});
  PodHarness pod;
  pod.block_device = device.path();
  std::vector<std::string> argv = pod.Argv();
  argv.insert(argv.end(), {"--checkpoint-every", "1Mi"});
  const std::string scratch = argv[std::find(argv.begin(), argv.end(), "--scratch-dir") -
                                   argv.begin() + 1];
  Sh("mkdir -p '" + scratch + "'");
  const std::map<std::string, std::string> env = {
      {"IMPORTER_SOURCE", "http"},
      {"IMPORTER_ENDPOINT", server.Url("/disk.raw")},
      {"IMPORTER_CONTENTTYPE", "kubevirt"},
      {"OWNER_UID", "4c3e2a1b-0000-4000-8000-000000000002"}};
  const std::string checkpoint = scratch + "/." + Basename(device.path()) + ".checkpoint";
  {
    BackgroundProcess first(argv, logs_.File("first.log"), pod.Options(env));
    EXPECT_EQ(KillAtCheckpoint(first, checkpoint, kClaimed, logs_.File("first.log")), kClaimed);
  }
  DropPageCache();
  WriteFile(gate_, "");
  RunResult second = test::Run(argv, pod.Options(env));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(Contains(pod.ReadTermination(), "Import Complete")) << pod.ReadTermination();
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(image + std::string(kDeviceSize - image.size(), '\0')));
  EXPECT_TRUE(Contains(second.err, "Continuing the download of " + server.Url("/disk.raw") +
                                       " at byte " + std::to_string(kClaimed)))
      << second.err;
  EXPECT_FALSE(FileExists(checkpoint));
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(kClaimed) + "-");
}

// `cdi-image apply` keeps a Block DataVolume's checkpoint in the directory
// --pvc-dir would give it as a Filesystem volume, and a second apply
// continues from it; the directory goes once the import is done.
TEST_F(BlockResumeE2eTest, AppliedBlockDataVolumeContinuesFromItsPvcDirectory) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  const std::string image = MakeRawImage(kImageSize / 65536, 5, 59);
  WriteFile(www_.File("disk.raw"), image);
  FaultServer server(www_.path(), Script("disk.raw", kGate));
  LoopDevice device({.size = kDeviceSize, .fill = 0xAA});
  const std::string manifest = logs_.File("dv.yaml");
  WriteFile(manifest,
            "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata:\n  name: disk\n"
            "spec:\n  source:\n    http:\n      url: " +
                server.Url("/disk.raw") +
                "\n  pvc:\n    volumeMode: Block\n    accessModes: [ReadWriteOnce]\n"
                "    resources:\n      requests:\n        storage: 8Mi\n");
  const std::string pvcs = logs_.File("pvcs");
  const std::vector<std::string> args = {"apply", "-f", manifest, "--pvc-dir", pvcs, "--block",
                                         "disk=" + device.path(), "--progress", "none",
                                         "--checkpoint-every", "1Mi"};
  const std::string checkpoint =
      pvcs + "/default/disk/." + Basename(device.path()) + ".checkpoint";
  {
    std::vector<std::string> argv = args;
    argv.insert(argv.begin(), BinDir() + "/cdi-image");
    BackgroundProcess first(argv, logs_.File("first.log"));
    EXPECT_EQ(KillAtCheckpoint(first, checkpoint, kClaimed, logs_.File("first.log")), kClaimed);
  }
  DropPageCache();
  WriteFile(gate_, "");
  RunResult second = CdiImage(args);
  ASSERT_EQ(second.exit_code, 0) << second.err << second.out;
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(image + std::string(kDeviceSize - image.size(), '\0')));
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(kClaimed) + "-");
  EXPECT_EQ(ListDir(pvcs), std::vector<std::string>{});
}

}  // namespace
}  // namespace cdi::test
