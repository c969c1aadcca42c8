// A killed importer continues where it stopped: cdi-image import --resume
// and the cdi-importer pod are killed with SIGKILL part way (the fault
// server holds the download at a gate), then run again. The result is the
// image byte for byte, and the second run fetches only what follows the
// checkpoint. With root, the page cache is dropped between the kill and the
// restart (after a sync, so this checks the restart, not durability; the
// power cut, where unsynced writes are lost, is power_cut_e2e_test's).
#include <fcntl.h>
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
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

constexpr size_t kImageSize = 6 << 20;
constexpr uint64_t kGate = (5 << 20) / 2;  // the first response holds at 2.5 MiB
constexpr uint64_t kClaimed = 2 << 20;     // the last checkpoint before it

// Waits until `ready()` holds; false if `process` exits first.
bool WaitUntil(BackgroundProcess& process, const std::function<bool()>& ready) {
  for (int i = 0; i < 3000; ++i) {
    if (ready()) return true;
    if (process.Wait(std::chrono::milliseconds(10)) != -1) return false;
  }
  return false;
}


// Drops clean pages of the page cache (root only), so that what is read next
// comes from the disk: what a power cut would have left.
bool DropPageCache() {
  if (!IsRoot()) return false;
  sync();  // only what is durable anyway; the checkpoint's data was synced before it
  std::ofstream drop("/proc/sys/vm/drop_caches");
  drop << "1\n";
  return static_cast<bool>(drop);
}

class ResumeE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = MakeRawImage(kImageSize / 65536, 5, 23);
    WriteFile(www_.File("disk.raw"), image_);
  }

  std::string GatedScript(uint64_t after) const {
    return R"({"/disk.raw": {"file": "disk.raw", "gate": {"after": )" + std::to_string(after) +
           R"(, "file": ")" + gate_ + R"("}}})";
  }

  // Kills `process` with SIGKILL once `checkpoint` claims `claimed` bytes
  // (0: once the partial file exists and the download is under way).
  void KillWhen(BackgroundProcess& process, const std::string& dir, uint64_t claimed,
                FaultServer& server) {
    ASSERT_TRUE(WaitUntil(process, [&] {
      if (claimed > 0) return CheckpointClaims(dir + "/.disk.img.checkpoint") == claimed;
      return FileExists(dir + "/.disk.img.partial") && !server.RequestsFor("/disk.raw").empty();
    })) << ReadFile(logs_.File("first.log"));
    process.Signal(SIGKILL);
    EXPECT_EQ(process.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
  }

  // The partial file's first `claimed` bytes are the image's, read after the
  // page cache was dropped when the test may.
  void ExpectClaimedBytesOnDisk(const std::string& partial, uint64_t claimed) {
    if (!DropPageCache()) {
      std::printf("[   INFO   ] not root: the page cache is not dropped before the restart\n");
    }
    EXPECT_EQ(Sha256File(partial, claimed), Sha256Bytes(image_.substr(0, claimed)));
  }

  // The cdi-importer pod's command line, with a checkpoint every MiB.
  static std::vector<std::string> PodArgv(PodHarness& pod) {
    std::vector<std::string> argv = pod.Argv();
    argv.insert(argv.end(), {"--checkpoint-every", "1Mi"});
    return argv;
  }
  // The pod's environment for importing the server's /disk.raw.
  static std::map<std::string, std::string> PodEnv(const FaultServer& server) {
    return {{"IMPORTER_SOURCE", "http"},
            {"IMPORTER_ENDPOINT", server.Url("/disk.raw")},
            {"IMPORTER_CONTENTTYPE", "kubevirt"},
            {"OWNER_UID", "4c3e2a1b-0000-4000-8000-000000000001"}};
  }

  TempDir www_;
  TempDir out_;
  TempDir logs_;
  const std::string gate_ = logs_.File("gate");
  std::string image_;
};

std::vector<std::string> ImportArgs(const std::string& url, const std::string& target) {
  return {BinDir() + "/cdi-image", "import", url, target, "--progress", "none", "--resume",
          "--checkpoint-every",    "1Mi",    "-v"};
}

TEST_F(ResumeE2eTest, CdiImageKilledMidDataContinuesFromItsCheckpoint) {
  FaultServer server(www_.path(), GatedScript(kGate));
  const std::string target = out_.File("disk.img");
  {
    BackgroundProcess first(ImportArgs(server.Url("/disk.raw"), target), logs_.File("first.log"));
    KillWhen(first, out_.path(), kClaimed, server);
  }
  EXPECT_EQ(ListDir(out_.path()),
            (std::vector<std::string>{".disk.img.checkpoint", ".disk.img.partial"}));
  ExpectClaimedBytesOnDisk(out_.File(".disk.img.partial"), kClaimed);

  WriteFile(gate_, "");
  std::vector<std::string> args = ImportArgs(server.Url("/disk.raw"), target);
  args.erase(args.begin());
  args.insert(args.end(), {"--checksum", "sha256:" + Sha256Bytes(image_)});
  RunResult second = CdiImage(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{"disk.img"});
  EXPECT_TRUE(Contains(second.out, "continued from byte 2097152")) << second.out;
  EXPECT_TRUE(Contains(second.err, "Checksum verification passed")) << second.err;
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=2097152-");
  EXPECT_FALSE(requests[1].Header("if-range").empty());
  // Fetched in all: 2.5 MiB, then the 4 MiB after the checkpoint.
  uint64_t fetched_after = 0;
  for (const SentResponse& response : server.WaitForResponses(2)) {
    if (response.first == kClaimed) fetched_after = response.bytes;
  }
  EXPECT_EQ(fetched_after, kImageSize - kClaimed);
}

TEST_F(ResumeE2eTest, CdiImageKilledBeforeItsFirstCheckpointStartsOver) {
  FaultServer server(www_.path(), GatedScript(300000));
  const std::string target = out_.File("disk.img");
  {
    BackgroundProcess first(ImportArgs(server.Url("/disk.raw"), target), logs_.File("first.log"));
    KillWhen(first, out_.path(), 0, server);
  }
  EXPECT_FALSE(FileExists(out_.File(".disk.img.checkpoint")));
  WriteFile(gate_, "");
  std::vector<std::string> args = ImportArgs(server.Url("/disk.raw"), target);
  args.erase(args.begin());
  RunResult second = CdiImage(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "");
}

TEST_F(ResumeE2eTest, ImageChangedBetweenTheRunsStartsOver) {
  FaultServer server(www_.path(), GatedScript(kGate));
  const std::string target = out_.File("disk.img");
  {
    BackgroundProcess first(ImportArgs(server.Url("/disk.raw"), target), logs_.File("first.log"));
    KillWhen(first, out_.path(), kClaimed, server);
  }
  // A new image under the same name: another ETag and Last-Modified.
  image_ = MakeRawImage(kImageSize / 65536, 7, 24);
  WriteFile(www_.File("disk.raw.new"), image_);
  Sh("touch -d '2030-01-01' " + www_.File("disk.raw.new") + " && mv " + www_.File("disk.raw.new") +
     " " + www_.File("disk.raw"));
  WriteFile(gate_, "");
  std::vector<std::string> args = ImportArgs(server.Url("/disk.raw"), target);
  args.erase(args.begin());
  RunResult second = CdiImage(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  EXPECT_TRUE(Contains(second.err,
                       "with the whole image (it changed since the earlier "
                       "download): starting over from byte 0"))
      << second.err;
  EXPECT_FALSE(Contains(second.out, "continued from byte")) << second.out;
}

TEST_F(ResumeE2eTest, ImporterPodKilledMidDataContinuesInTheNextPod) {
  FaultServer server(www_.path(), GatedScript(kGate));
  PodHarness pod;
  const std::vector<std::string> argv = PodArgv(pod);
  const std::map<std::string, std::string> env = PodEnv(server);
  {
    BackgroundProcess first(argv, logs_.File("first.log"), pod.Options(env));
    KillWhen(first, pod.data_dir(), kClaimed, server);
  }
  ExpectClaimedBytesOnDisk(pod.data_dir() + "/.disk.img.partial", kClaimed);
  WriteFile(gate_, "");
  RunResult second = test::Run(argv, pod.Options(env));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(Contains(pod.ReadTermination(), "Import Complete")) << pod.ReadTermination();
  EXPECT_EQ(Sha256File(pod.data_dir() + "/disk.img"), Sha256Bytes(image_));
  EXPECT_EQ(ListDir(pod.data_dir()), std::vector<std::string>{"disk.img"});
  EXPECT_TRUE(Contains(
      second.err, "Continuing the download of " + server.Url("/disk.raw") + " at byte 2097152"))
      << second.err;
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=2097152-");
}

TEST_F(ResumeE2eTest, ImporterPodStoppedAfterACheckpointKeepsItAndSaysSo) {
  FaultServer server(www_.path(), GatedScript(kGate));
  PodHarness pod;
  const std::vector<std::string> argv = PodArgv(pod);
  const std::map<std::string, std::string> env = PodEnv(server);
  {
    // kubelet stops the pod (SIGTERM) once the checkpoint is written.
    BackgroundProcess first(argv, logs_.File("first.log"), pod.Options(env));
    ASSERT_TRUE(WaitUntil(first, [&] {
      return CheckpointClaims(pod.data_dir() + "/.disk.img.checkpoint") == kClaimed;
    })) << ReadFile(logs_.File("first.log"));
    first.Signal(SIGTERM);
    EXPECT_EQ(first.Wait(std::chrono::seconds(10)), 130);
  }
  EXPECT_EQ(pod.ReadTermination(),
            "Unable to process data: the import was cancelled by a signal; what it had written "
            "up to its last checkpoint was kept, and the next attempt continues from there");
  EXPECT_EQ(ListDir(pod.data_dir()),
            (std::vector<std::string>{".disk.img.checkpoint", ".disk.img.partial"}));
  WriteFile(gate_, "");
  RunResult second = test::Run(argv, pod.Options(env));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(pod.data_dir() + "/disk.img"), Sha256Bytes(image_));
  EXPECT_TRUE(Contains(
      second.err, "Continuing the download of " + server.Url("/disk.raw") + " at byte 2097152"))
      << second.err;
}

TEST_F(ResumeE2eTest, CdiImageKilledInsideAZstdFrameContinuesAtTheFrameBefore) {
  // The image in three zstd frames of 2 MiB each, as `cat a.zst b.zst c.zst`.
  std::vector<uint64_t> frame_ends;  // compressed offsets
  std::string compressed;
  for (size_t start = 0; start < kImageSize; start += 2 << 20) {
    WriteFile(logs_.File("piece"), image_.substr(start, 2 << 20));
    Sh("zstd -q -1 -f " + logs_.File("piece") + " -o " + logs_.File("piece.zst"));
    compressed += ReadFile(logs_.File("piece.zst"));
    frame_ends.push_back(compressed.size());
  }
  WriteFile(www_.File("disk.raw.zst"), compressed);
  // Held inside the last frame: the image's first 5 MiB are out, so the
  // second frame's end (4 MiB) is the last point a checkpoint may claim.
  FaultServer server(www_.path(), R"({"/disk.raw.zst": {"file": "disk.raw.zst", "gate": {"after": )" +
                                      std::to_string(frame_ends[2] - 1000) + R"(, "file": ")" +
                                      gate_ + R"("}}})");
  const std::string target = out_.File("disk.img");
  const std::string url = server.Url("/disk.raw.zst");
  {
    BackgroundProcess first(ImportArgs(url, target), logs_.File("first.log"));
    ASSERT_TRUE(WaitUntil(first, [&] {
      return CheckpointClaims(out_.File(".disk.img.checkpoint")) == frame_ends[1];
    })) << ReadFile(logs_.File("first.log"));
    first.Signal(SIGKILL);
    EXPECT_EQ(first.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
  }
  ExpectClaimedBytesOnDisk(out_.File(".disk.img.partial"), 4 << 20);

  WriteFile(gate_, "");
  std::vector<std::string> args = ImportArgs(url, target);
  args.erase(args.begin());
  RunResult second = CdiImage(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{"disk.img"});
  EXPECT_TRUE(Contains(second.out, "continued from byte " + std::to_string(frame_ends[1])))
      << second.out;
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw.zst");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(frame_ends[1]) + "-");
  // The second run fetched only what follows the second frame.
  uint64_t fetched_after = 0;
  for (const SentResponse& response : server.WaitForResponses(2)) {
    if (response.first == frame_ends[1]) fetched_after = response.bytes;
  }
  EXPECT_EQ(fetched_after, compressed.size() - frame_ends[1]);
}

// A raw image in xz blocks of 1 MiB, as `xz -T0` (sizes in each block's
// header: decoded by the threaded decoder) and `xz --block-size` (without:
// decoded block by block) write it: killed part way, the next run fetches
// from the start of the block after its checkpoint.
TEST_F(ResumeE2eTest, CdiImageKilledInsideAnXzStreamContinuesAtABlock) {
  WriteFile(logs_.File("image"), image_);
  for (const std::string threads : {"-T2", "-T1"}) {
    SCOPED_TRACE("xz " + threads);
    Sh("rm -f " + gate_ + " " + out_.File("disk.img"));
    Sh("xz -0 " + threads + " --block-size=1MiB -c " + logs_.File("image") + " > " +
       www_.File("disk.raw.xz"));
    const uint64_t size = ReadFile(www_.File("disk.raw.xz")).size();
    // xz --robot --list: "block STREAM N N COMPOFFSET UNCOMPOFFSET TOTALSIZE ...".
    const std::string ends = Sh("xz --robot -lvv " + www_.File("disk.raw.xz") +
                                " | awk '$1 == \"block\" {print $5 + $7}'");
    std::vector<uint64_t> block_ends;
    for (size_t at = 0; at < ends.size(); at = ends.find('\n', at) + 1) {
      block_ends.push_back(std::stoull(ends.substr(at)));
    }
    ASSERT_EQ(block_ends.size(), 6u);
    // Held inside the fifth block.
    FaultServer server(www_.path(), R"({"/disk.raw.xz": {"file": "disk.raw.xz", "gate": {"after": )" +
                                        std::to_string(block_ends[3] + 1000) + R"(, "file": ")" +
                                        gate_ + R"("}}})");
    const std::string target = out_.File("disk.img");
    const std::string url = server.Url("/disk.raw.xz");
    uint64_t claimed = 0;
    {
      BackgroundProcess first(ImportArgs(url, target), logs_.File("first.log"));
      // The checkpoint once it stays put: the end of a block before the gate.
      uint64_t seen = 0;
      int steady = 0;
      ASSERT_TRUE(WaitUntil(first, [&] {
        const uint64_t now = CheckpointClaims(out_.File(".disk.img.checkpoint"));
        steady = now > 0 && now == seen ? steady + 1 : 0;
        seen = now;
        return steady >= 30;
      })) << ReadFile(logs_.File("first.log"));
      first.Signal(SIGKILL);
      EXPECT_EQ(first.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
      claimed = seen;
    }
    const auto block = std::find(block_ends.begin(), block_ends.end(), claimed);
    ASSERT_NE(block, block_ends.end()) << claimed;
    // Decoded block by block, the third block's end: the image's first 4 MiB
    // are out but for the raw decoder's last 512 bytes.
    if (threads == "-T1") {
      EXPECT_EQ(claimed, block_ends[2]);
    }
    ExpectClaimedBytesOnDisk(out_.File(".disk.img.partial"),
                             static_cast<uint64_t>(block - block_ends.begin() + 1) << 20);

    WriteFile(gate_, "");
    std::vector<std::string> args = ImportArgs(url, target);
    args.erase(args.begin());
    RunResult second = CdiImage(args);
    ASSERT_EQ(second.exit_code, 0) << second.err;
    EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
    EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{"disk.img"});
    EXPECT_TRUE(Contains(second.out, "continued from byte " + std::to_string(claimed)))
        << second.out;
    std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw.xz");
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(claimed) + "-");
    // The second run fetched only what follows the checkpoint.
    uint64_t fetched_after = 0;
    for (const SentResponse& response : server.WaitForResponses(2)) {
      if (response.first == claimed) fetched_after = response.bytes;
    }
    EXPECT_EQ(fetched_after, size - claimed);
  }
}


// --- qcow2 -------------------------------------------------------------------------

// A qcow2 layout made at test time, and where its first import is held.
struct Qcow2Case {
  std::string name;
  // Builds "<dir>/disk.qcow2" from "<dir>/guest.raw".
  std::function<void(const std::string& dir)> make;
  double gate;  // the first import is held at this fraction of the file
  // The first import is killed once its checkpoint is this close to the gate.
  uint64_t margin = 2 << 20;
};

void PrintTo(const Qcow2Case& c, std::ostream* os) { *os << c.name; }

// A 12 MiB guest: zero, random and text-like mebibytes in turn.
std::string Qcow2Guest() {
  std::string guest;
  for (uint32_t mib = 0; mib < 12; ++mib) {
    if (mib % 3 == 0) {
      guest += std::string(1 << 20, '\0');
    } else if (mib % 3 == 1) {
      guest += RandomBytes(1 << 20, mib);
    } else {
      std::string text;
      while (text.size() < (1 << 20))
        text += "block " + std::to_string(mib) + " line " + std::to_string(text.size()) + "\n";
      guest += text.substr(0, 1 << 20);
    }
  }
  return guest;
}

std::vector<Qcow2Case> Qcow2Cases() {
  auto convert = [](const std::string& flags) {
    return [flags](const std::string& dir) {
      Sh("cd " + dir + " && qemu-img convert -q -f raw -O qcow2 " + flags +
         " guest.raw disk.qcow2");
    };
  };
  // Grown by a resize, then written: the L1 table moves behind the first
  // data and its L2 tables, which pass before it and are spooled; the rest
  // follows it.
  auto grown = [](const std::string& dir) {
    Sh("cd " + dir +
       " && qemu-img create -q -f qcow2 -o cluster_size=4096 disk.qcow2 4M && "
       "qemu-io -f qcow2 -c 'write -s guest.raw 0 2m' disk.qcow2 >/dev/null && "
       "qemu-img resize -q -f qcow2 disk.qcow2 40M && "
       "qemu-io -f qcow2 -c 'write -s guest.raw 20m 6m' disk.qcow2 >/dev/null");
  };
  // Compressed in 4 KiB clusters: an L2 table per 2 MiB of guest, placed
  // as the data reaches its range, and the ends of host clusters after
  // compressed data that no table maps: the decoder holds them until the
  // last table has passed, and a checkpoint carries them
  // ("small_zlib": their ranges are fetched again).
  return {{"plain_mid", convert(""), 0.5},  {"plain_late", convert(""), 0.85},
          {"zlib_mid", convert("-c"), 0.5}, {"zlib_late", convert("-c"), 0.85},
          {"grown_mid", grown, 0.55},       {"grown_late", grown, 0.85},
          {"small_zlib_mid", convert("-c -o cluster_size=4096"), 0.6, 1 << 20}};
}

class Qcow2ResumeE2eTest : public ::testing::TestWithParam<Qcow2Case> {
 protected:
  void SetUp() override {
    WriteFile(www_.File("guest.raw"), Qcow2Guest());
    GetParam().make(www_.path());
    image_ = ReadFile(www_.File("disk.qcow2"));
    Sh("qemu-img convert -q -f qcow2 -O raw " + www_.File("disk.qcow2") + " " +
       logs_.File("expected.raw"));
    gate_at_ = static_cast<uint64_t>(static_cast<double>(image_.size()) * GetParam().gate);
  }

  std::string Script() const {
    return R"({"/disk.qcow2": {"file": "disk.qcow2", "gate": {"after": )" +
           std::to_string(gate_at_) + R"(, "file": ")" + gate_ + R"("}}})";
  }

  // Runs a first import, kills it with SIGKILL once a checkpoint claims a
  // good part of what reached it, and returns the source offset claimed.
  uint64_t KilledFirstRun(FaultServer& server, const std::string& target) {
    const std::string checkpoint = out_.File(".disk.img.checkpoint");
    const uint64_t margin = GetParam().margin;
    const uint64_t enough = gate_at_ > margin ? gate_at_ - margin : 1;
    BackgroundProcess first(ImportArgs(server.Url("/disk.qcow2"), target), logs_.File("first.log"));
    EXPECT_TRUE(WaitUntil(first, [&] { return CheckpointClaims(checkpoint) >= enough; }))
        << ReadFile(logs_.File("first.log"));
    first.Signal(SIGKILL);
    EXPECT_EQ(first.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
    return CheckpointClaims(checkpoint);
  }

  // Opens the gate and imports again into `target` (with `extra` flags);
  // the result is qemu-img's raw conversion of the image now served.
  RunResult SecondRun(FaultServer& server, const std::string& target,
                      const std::vector<std::string>& extra = {}) {
    WriteFile(gate_, "");
    std::vector<std::string> args = ImportArgs(server.Url("/disk.qcow2"), target);
    args.erase(args.begin());
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult second = CdiImage(args);
    EXPECT_EQ(second.exit_code, 0) << second.err;
    EXPECT_EQ(Sha256File(target), Sha256File(logs_.File("expected.raw")));
    return second;
  }

  TempDir www_;
  TempDir out_;
  TempDir logs_;
  const std::string gate_ = logs_.File("gate");
  std::string image_;
  uint64_t gate_at_ = 0;
};

TEST_P(Qcow2ResumeE2eTest, KilledImportContinuesFromItsCheckpoint) {
  FaultServer server(www_.path(), Script());
  const std::string target = out_.File("disk.img");
  const uint64_t claimed = KilledFirstRun(server, target);
  ASSERT_GT(claimed, 0u);
  ASSERT_LT(claimed, gate_at_ + 1);
  // (and a temporary checkpoint when the kill came while one was written)
  EXPECT_TRUE(FileExists(out_.File(".disk.img.partial")));
  // What a power cut leaves: only what was synced (root only).
  DropPageCache();

  RunResult second = SecondRun(server, target);
  EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{"disk.img"});
  EXPECT_TRUE(Contains(second.out, "continued from byte " + std::to_string(claimed)))
      << second.out << second.err;
  if (GetParam().name.rfind("small_zlib", 0) == 0) {
    EXPECT_TRUE(Contains(second.err, "ranges that no table had mapped yet")) << second.err;
  }
  // The second run: the header and tables before the checkpoint in closed
  // ranges, then the image from the checkpoint on.
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.qcow2");
  ASSERT_GE(requests.size(), 3u);
  EXPECT_EQ(requests.back().Header("range"), "bytes=" + std::to_string(claimed) + "-");
  for (size_t i = 1; i + 1 < requests.size(); ++i) {
    EXPECT_NE(requests[i].Header("range"), "");
    EXPECT_FALSE(requests[i].Header("if-range").empty());
  }
  uint64_t metadata = 0;
  uint64_t rest = 0;
  uint64_t total = 0;
  const std::vector<SentResponse> responses = server.WaitForResponses(requests.size());
  std::string listed;
  for (size_t i = 0; i < responses.size(); ++i) {
    listed += std::to_string(responses[i].first) + "+" + std::to_string(responses[i].bytes) + " ";
    if (i == 0) {
      // The first run's, which it received up to the gate: what the server
      // wrote after the gate opened went to a closed connection.
      total += std::min(responses[i].bytes, gate_at_);
      continue;
    }
    total += responses[i].bytes;
    if (responses[i].first == claimed && i + 1 == responses.size()) {
      rest = responses[i].bytes;
    } else {
      metadata += responses[i].bytes;
    }
  }
  EXPECT_EQ(rest, image_.size() - claimed);
  // Header, L1 table and L2 tables: a few clusters, never the data.
  EXPECT_LE(metadata, 256u << 10);
  // All told, one image and what the first run had past its checkpoint.
  EXPECT_LE(total, image_.size() + (gate_at_ - claimed) + metadata) << listed;
  std::printf("[ fetched  ] %s: image %zu, checkpoint at %llu, total fetched %llu (%.3fx)\n",
              GetParam().name.c_str(), image_.size(), static_cast<unsigned long long>(claimed),
              static_cast<unsigned long long>(total),
              static_cast<double>(total) / static_cast<double>(image_.size()));
}

// The cases that start over: one kill point of each layout is enough.
class Qcow2StartOverE2eTest : public Qcow2ResumeE2eTest {};

TEST_P(Qcow2StartOverE2eTest, ImageChangedBetweenTheRunsStartsOver) {
  FaultServer server(www_.path(), Script());
  const std::string target = out_.File("disk.img");
  ASSERT_GT(KilledFirstRun(server, target), 0u);
  // Another image under the same name: another ETag and Last-Modified.
  Sh("cd " + www_.path() +
     " && qemu-img create -q -f qcow2 new.qcow2 12M && "
     "qemu-io -f qcow2 -c 'write -P 0x3c 1m 3m' new.qcow2 >/dev/null && "
     "touch -d '2030-01-01' new.qcow2 && mv new.qcow2 disk.qcow2");
  Sh("qemu-img convert -q -f qcow2 -O raw " + www_.File("disk.qcow2") + " " +
     logs_.File("expected.raw"));
  RunResult second = SecondRun(server, target);
  EXPECT_TRUE(Contains(second.err, "from byte 0")) << second.err;
  EXPECT_FALSE(Contains(second.out, "continued from byte")) << second.out;
}

TEST_P(Qcow2StartOverE2eTest, AChecksumStartsOverAndSaysWhy) {
  FaultServer server(www_.path(), Script());
  const std::string target = out_.File("disk.img");
  ASSERT_GT(KilledFirstRun(server, target), 0u);
  RunResult second = SecondRun(server, target, {"--checksum", "sha256:" + Sha256Bytes(image_)});
  EXPECT_TRUE(Contains(second.err, "covers the qcow2 file as served")) << second.err;
  EXPECT_TRUE(Contains(second.err, "Checksum verification passed")) << second.err;
}

// One kill point of each layout.
std::vector<Qcow2Case> Qcow2MidCases() {
  std::vector<Qcow2Case> mid = Qcow2Cases();
  std::erase_if(mid, [](const Qcow2Case& c) { return c.gate > 0.6; });
  return mid;
}

INSTANTIATE_TEST_SUITE_P(Qcow2, Qcow2ResumeE2eTest, ::testing::ValuesIn(Qcow2Cases()),
                         [](const auto& test_info) { return test_info.param.name; });
INSTANTIATE_TEST_SUITE_P(Qcow2, Qcow2StartOverE2eTest, ::testing::ValuesIn(Qcow2MidCases()),
                         [](const auto& test_info) { return test_info.param.name; });

}  // namespace
}  // namespace cdi::test
