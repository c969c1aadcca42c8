// Who owns a target, end to end: while one import writes a file, a device or
// an extraction root, a second one (cdi-image import, cdi-image apply,
// cdi-importer) is refused at once and the first finishes with the image's
// bytes; and a rerun after a killed import makes what a first run makes.
// The project's fault server holds each first import part way (its "gate").
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/e2e/pod_harness.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

constexpr size_t kImageSize = 4 << 20;
constexpr char kBusy[] = "is being written by another import";

// Waits until `ready()` holds; false if `process` exits first. The limit is
// a safety net, not a measurement.
bool WaitUntil(BackgroundProcess& process, const std::function<bool()>& ready) {
  for (int i = 0; i < 3000; ++i) {
    if (ready()) return true;
    if (process.Wait(std::chrono::milliseconds(20)) != -1) return false;
  }
  return false;
}

class TargetOwnershipTest : public ::testing::Test {
 protected:
  TargetOwnershipTest() : image_(RandomBytes(kImageSize, 41)) {
    WriteFile(www_.File("disk.raw"), image_);
  }

  // /gated sends the image's first MiB, then waits until Open() is called.
  std::string Script() const {
    return R"({"/gated": {"file": "disk.raw", "gate": {"after": 1048576, "file": ")" + gate_ +
           R"("}}})";
  }
  void Open() const { WriteFile(gate_, ""); }

  std::vector<std::string> CdiImageArgv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {BinDir() + "/cdi-image"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  TempDir www_;
  TempDir out_;
  TempDir logs_;
  const std::string gate_ = logs_.File("gate");
  std::string image_;
};

TEST_F(TargetOwnershipTest, SecondImportIntoTheSameFileIsRefusedAndTheFirstFinishes) {
  FaultServer server(www_.path(), Script());
  const std::string target = out_.File("disk.img");
  const std::string log = logs_.File("first.log");
  BackgroundProcess first(
      CdiImageArgv({"import", server.Url("/gated"), target, "--progress", "none"}), log);
  ASSERT_TRUE(WaitUntil(first, [&] {
    return !server.RequestsFor("/gated").empty() && FileExists(out_.File(".disk.img.partial"));
  })) << ReadFile(log);

  // Whether or not it may replace the file, and from a source that is not
  // held back: refused, before it reads anything.
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{}, std::vector<std::string>{"--force"}}) {
    std::vector<std::string> args = {"import", server.Url("/disk.raw"), target};
    args.insert(args.end(), flags.begin(), flags.end());
    RunResult second = CdiImage(args);
    EXPECT_EQ(second.exit_code, 2) << second.err;
    EXPECT_TRUE(Contains(second.err, "error: " + target + " " + kBusy + " (it holds " +
                                         out_.File(".disk.img.partial") + ")"))
        << second.err;
  }
  EXPECT_TRUE(server.RequestsFor("/disk.raw").empty());
  EXPECT_EQ(first.Wait(std::chrono::milliseconds(0)), -1) << ReadFile(log);

  Open();
  EXPECT_EQ(first.Wait(std::chrono::seconds(60)), 0) << ReadFile(log);
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{"disk.img"});
}

TEST_F(TargetOwnershipTest, SecondImportOntoTheSameDeviceIsRefusedAndTheFirstFinishes) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 8 << 20, .fill = 0xAA});
  FaultServer server(www_.path(), Script());
  const std::string log = logs_.File("first.log");
  BackgroundProcess first(
      CdiImageArgv({"import", server.Url("/gated"), device.path(), "--progress", "none"}), log);
  ASSERT_TRUE(WaitUntil(first, [&] { return !server.RequestsFor("/gated").empty(); }))
      << ReadFile(log);

  RunResult second = CdiImage({"import", server.Url("/disk.raw"), device.path()});
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_TRUE(Contains(second.err, "error: opening block device " + device.path() +
                                       " for writing: it is in use"))
      << second.err;
  EXPECT_TRUE(server.RequestsFor("/disk.raw").empty());

  Open();
  EXPECT_EQ(first.Wait(std::chrono::seconds(60)), 0) << ReadFile(log);
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(image_ + std::string((8 << 20) - kImageSize, '\0')));
}

// A DataVolume of CDI's own form whose source is `url`.
std::string DataVolume(const std::string& name, const std::string& url) {
  return "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata:\n  name: " + name +
         "\nspec:\n  source:\n    http:\n      url: \"" + url +
         "\"\n  storage:\n    resources:\n      requests:\n        storage: 8Mi\n";
}

TEST_F(TargetOwnershipTest, SecondApplyIntoTheSamePvcIsRefusedAndTheFirstFinishes) {
  FaultServer server(www_.path(), Script());
  const std::string pvcs = out_.File("pvcs");
  const std::string disk = pvcs + "/default/disk/disk.img";
  WriteFile(logs_.File("gated.yaml"), DataVolume("disk", server.Url("/gated")));
  WriteFile(logs_.File("plain.yaml"), DataVolume("disk", server.Url("/disk.raw")));
  const std::string log = logs_.File("first.log");
  BackgroundProcess first(CdiImageArgv({"apply", "-f", logs_.File("gated.yaml"), "--pvc-dir", pvcs,
                                        "--progress", "none"}),
                          log);
  ASSERT_TRUE(WaitUntil(first, [&] {
    return FileExists(pvcs + "/default/disk/.disk.img.partial") &&
           !server.RequestsFor("/gated").empty();
  })) << ReadFile(log);

  RunResult second = CdiImage(
      {"apply", "-f", logs_.File("plain.yaml"), "--pvc-dir", pvcs, "--output", "json"});
  EXPECT_EQ(second.exit_code, 2) << second.err << second.out;
  EXPECT_TRUE(Contains(second.out, disk + " " + kBusy)) << second.out;
  EXPECT_TRUE(server.RequestsFor("/disk.raw").empty());

  Open();
  EXPECT_EQ(first.Wait(std::chrono::seconds(60)), 0) << ReadFile(log);
  EXPECT_EQ(FileSize(disk), 8u << 20);
  EXPECT_EQ(Sha256File(disk), Sha256Bytes(image_ + std::string((8 << 20) - kImageSize, '\0')));
  EXPECT_EQ(ListDir(pvcs + "/default/disk"), std::vector<std::string>{"disk.img"});
}

TEST_F(TargetOwnershipTest, TwoDataVolumesOnOneDeviceAreAProblemBeforeAnyDownload) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 8 << 20, .fill = 0xAA});
  FaultServer server(www_.path());
  // The same device under two names: a link, and the device itself.
  const std::string link = out_.File("volume");
  Sh("ln -s " + device.path() + " " + link);
  std::string manifest = DataVolume("one", server.Url("/disk.raw")) + "---\n" +
                         DataVolume("two", server.Url("/disk.raw"));
  WriteFile(logs_.File("two.yaml"), manifest);
  RunResult r = CdiImage({"apply", "-f", logs_.File("two.yaml"), "--block", "one=" + link,
                          "--block", "two=" + device.path()});
  EXPECT_EQ(r.exit_code, 2) << r.err << r.out;
  EXPECT_TRUE(Contains(r.err, "DataVolume two: --block two=" + device.path() + ": " +
                                  device.path() + " is the same device as " + link +
                                  ", given to DataVolume one; give each DataVolume a device of "
                                  "its own"))
      << r.err;
  EXPECT_TRUE(server.Requests().empty());
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(8 << 20, '\xAA')));
}

TEST_F(TargetOwnershipTest, SecondPodOnTheSameVolumeIsRefusedAndTheFirstFinishes) {
  FaultServer server(www_.path(), Script());
  PodHarness first_pod;
  PodHarness second_pod;
  std::vector<std::string> second_argv = second_pod.Argv();
  for (size_t i = 0; i + 1 < second_argv.size(); ++i) {
    if (second_argv[i] == "--data-dir") second_argv[i + 1] = first_pod.data_dir();
  }
  const std::string log = logs_.File("first.log");
  BackgroundProcess first(first_pod.Argv(), log,
                          first_pod.Options({{"IMPORTER_SOURCE", "http"},
                                             {"IMPORTER_ENDPOINT", server.Url("/gated")}}));
  const std::string partial = first_pod.data_dir() + "/.disk.img.partial";
  ASSERT_TRUE(WaitUntil(first, [&] {
    return !server.RequestsFor("/gated").empty() && FileExists(partial);
  })) << ReadFile(log);

  RunResult second = test::Run(second_argv, second_pod.Options({{"IMPORTER_SOURCE", "http"},
                                                          {"IMPORTER_ENDPOINT",
                                                           server.Url("/disk.raw")}}));
  EXPECT_EQ(second.exit_code, 1) << second.err;
  const std::string termination = second_pod.ReadTermination();
  EXPECT_TRUE(Contains(termination, kBusy)) << termination;
  EXPECT_TRUE(server.RequestsFor("/disk.raw").empty());

  Open();
  EXPECT_EQ(first.Wait(std::chrono::seconds(60)), 0) << ReadFile(log);
  EXPECT_TRUE(Contains(first_pod.ReadTermination(), "Import Complete"))
      << first_pod.ReadTermination();
  EXPECT_EQ(Sha256File(first_pod.data_dir() + "/disk.img"), Sha256Bytes(image_));
}

// A listing of a tree: each entry's path, type, mode and size, then each
// file's digest, in path order.
std::string Tree(const std::string& root) {
  return Sh("cd " + root +
            " && find . -mindepth 1 -printf '%p %y %m %s\\n' | LC_ALL=C sort && "
            "find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2");
}

TEST_F(TargetOwnershipTest, ArchiveRerunAfterAKilledImportMakesTheSameTree) {
  // Directories first, then a file large enough that the gate holds the
  // extraction inside it, then more.
  TempDir tree;
  Sh("cd " + tree.path() + " && mkdir -p a/b c && chmod 0755 a a/b c && chmod 0750 c");
  WriteFile(tree.File("a/b/big"), RandomBytes(3 << 20, 42));
  WriteFile(tree.File("c/small"), "small\n");
  Sh("chmod 0644 " + tree.File("a/b/big") + " " + tree.File("c/small"));
  Sh("tar -C " + tree.path() + " --no-recursion -cf " + www_.File("archive.tar") +
     " a a/b a/b/big c c/small");
  FaultServer server(www_.path(), R"({"/gated.tar": {"file": "archive.tar", "gate": {"after":
                                      1048576, "file": ")" + gate_ + R"("}}})");
  auto env = [&](const std::string& path) {
    return std::map<std::string, std::string>{{"IMPORTER_SOURCE", "http"},
                                              {"IMPORTER_CONTENTTYPE", "archive"},
                                              {"IMPORTER_ENDPOINT", server.Url(path)}};
  };

  PodHarness pod;
  const std::string log = logs_.File("killed.log");
  {
    BackgroundProcess killed(pod.Argv(), log, pod.Options(env("/gated.tar")));
    ASSERT_TRUE(WaitUntil(killed, [&] { return FileExists(pod.data_dir() + "/a/b/big"); }))
        << ReadFile(log);
    killed.Signal(SIGKILL);
    EXPECT_EQ(killed.Wait(std::chrono::seconds(30)), 128 + SIGKILL);
  }
  // What the killed attempt left: directories at their working mode.
  struct stat st {};
  ASSERT_EQ(stat((pod.data_dir() + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  PodResult rerun = pod.Run(env("/archive.tar"));
  ASSERT_EQ(rerun.exit_code, 0) << rerun.log;
  EXPECT_TRUE(Contains(rerun.termination, "Import Complete")) << rerun.termination;

  PodHarness clean;
  PodResult first_time = clean.Run(env("/archive.tar"));
  ASSERT_EQ(first_time.exit_code, 0) << first_time.log;
  EXPECT_EQ(Tree(pod.data_dir()), Tree(clean.data_dir()));
  EXPECT_TRUE(Contains(Tree(pod.data_dir()), "./a d 755 ")) << Tree(pod.data_dir());
  EXPECT_TRUE(Contains(Tree(pod.data_dir()), "./c d 750 ")) << Tree(pod.data_dir());
}

}  // namespace
}  // namespace cdi::test
