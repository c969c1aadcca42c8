// CDI's helper programs as the importer image ships them, end to end:
// cdi-image-size-detection against qemu-img's virtual sizes, and
// cdi-containerimage-server serving a containerDisk directory to curl and to
// cdi-image on 127.0.0.1, as CDI's controller and importer use them.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

RunResult SizeDetection(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinDir() + "/cdi-image-size-detection"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv);
}

std::string QemuVirtualSize(const std::string& path) {
  std::string json = Sh("qemu-img info --output=json " + path);
  const std::string key = "\"virtual-size\": ";
  const size_t at = json.find(key);
  if (at == std::string::npos) throw std::runtime_error("no virtual-size in " + json);
  return json.substr(at + key.size(), json.find_first_of(",\n", at) - at - key.size());
}

TEST(SizeDetectionTest, WritesTheVirtualSizeQemuImgReportsForEveryFormat) {
  if (!HaveProgram("qemu-img")) GTEST_SKIP() << "needs qemu-img";
  TempDir dir;
  // vpc rounds the size to its disk geometry: the size qemu-img reports is the one.
  const std::vector<std::pair<std::string, std::string>> formats = {
      {"raw", ""}, {"qcow2", ""}, {"qcow2", "-o compat=0.10"}, {"vmdk", ""},
      {"vmdk", "-o subformat=streamOptimized"}, {"vdi", ""}, {"vpc", ""},
      {"vpc", "-o subformat=fixed"}};
  int n = 0;
  for (const auto& [format, options] : formats) {
    const std::string image = dir.File("disk" + std::to_string(n++) + "." + format);
    Sh("qemu-img create -q -f " + format + " " + options + " " + image + " 100000000");
    const std::string termination = dir.File("termination-log");
    RunResult r = SizeDetection({"-image-path", image, "-termination-log", termination});
    EXPECT_EQ(r.exit_code, 0) << format << " " << options << "\n" << r.err;
    EXPECT_EQ(ReadFile(termination), QemuVirtualSize(image)) << format << " " << options;
    EXPECT_TRUE(Contains(r.err, "Size-detection binary has completed")) << r.err;
  }
}

TEST(SizeDetectionTest, ReadsCompressedImagesAndHttpUrls) {
  if (!HaveProgram("qemu-img")) GTEST_SKIP() << "needs qemu-img";
  TempDir dir;
  Sh("qemu-img create -q -f qcow2 " + dir.File("disk.qcow2") + " 3G && xz -0 -k " +
     dir.File("disk.qcow2"));
  WriteFile(dir.File("disk.raw"), MakeRawImage(8, 2, 3));
  Sh("gzip -k " + dir.File("disk.raw"));
  RunResult r = SizeDetection({"--image-path=" + dir.File("disk.qcow2.xz"), "-termination-log",
                               dir.File("t1")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir.File("t1")), "3221225472");
  // A raw image inside gzip declares no size: it is read through.
  r = SizeDetection({"-image-path", dir.File("disk.raw.gz"), "-termination-log", dir.File("t2")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir.File("t2")), std::to_string(8 * 65536));

  NginxServer nginx(NginxOptions{.root = dir.path()});
  r = SizeDetection({"-scheme", "http://", "-image-path",
                     "127.0.0.1:" + std::to_string(nginx.port()) + "/disk.qcow2",
                     "-termination-log", dir.File("t3")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir.File("t3")), "3221225472");
}

TEST(SizeDetectionTest, EachFailureHasCdisExitCode) {
  TempDir dir;
  WriteFile(dir.File("disk.raw"), std::string(4096, 'x'));
  // 1: arguments.
  RunResult r = SizeDetection({});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "One or more mandatory parameters are missing")) << r.err;
  r = SizeDetection({"-image-pathh", "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "flag provided but not defined: -image-pathh")) << r.err;
  // 2: an image that cannot be read.
  r = SizeDetection({"-image-path", dir.File("missing.img"), "-termination-log", dir.File("t")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "Unable to extract information from '" + dir.File("missing.img")))
      << r.err;
  EXPECT_FALSE(FileExists(dir.File("t")));
  // 3: a scheme that is not read here.
  r = SizeDetection({"-scheme", "nbd://", "-image-path", "host/export"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(Contains(r.err, "Unable to parse the provided URL")) << r.err;
  // 4: the termination message cannot be written.
  r = SizeDetection({"-image-path", dir.File("disk.raw"), "-termination-log",
                     dir.File("no-such-dir/termination-log")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_TRUE(Contains(r.err, "Unable to write to termination file")) << r.err;
  // -h is not a failure.
  r = SizeDetection({"-h"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.err, "-image-path string")) << r.err;
}

// cdi-containerimage-server on a containerDisk directory, as the node-pull
// pod runs it.
class ContainerImageServerTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string disk_dir_ = dir_.File("disk");
  std::string ready_ = dir_.File("shared-ready");
  std::string done_ = dir_.File("shared-done");
  uint16_t port_ = UnusedPort();

  std::vector<std::string> Argv() const {
    return {BinDir() + "/cdi-containerimage-server", "-p", std::to_string(port_), "-image-dir",
            disk_dir_, "-ready-file", ready_, "-done-file", done_};
  }
  bool WaitFor(const std::string& path, bool present) {
    for (int i = 0; i < 100; ++i) {
      if (FileExists(path) == present) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
};

TEST_F(ContainerImageServerTest, ServesTheDiskWithRangesUntilDone) {
  const std::string image = MakeRawImage(32, 3, 17);  // 2 MiB
  Sh("mkdir -p " + disk_dir_);
  WriteFile(disk_dir_ + "/fedora.qcow2", image);
  RunOptions options;
  options.env = {{"CONTAINER_MARKER", "containerdisk <1>"}};
  BackgroundProcess server(Argv(), dir_.File("server.log"), options);
  ASSERT_TRUE(WaitFor(ready_, true)) << ReadFile(dir_.File("server.log"));
  // The ready file names the disk, as CDI's importer reads it.
  EXPECT_EQ(ReadFile(ready_), "fedora.qcow2");
  const std::string log = ReadFile(dir_.File("server.log"));
  EXPECT_TRUE(Contains(log, disk_dir_ + "\n" + disk_dir_ + "/fedora.qcow2\n")) << log;

  // Whole, ranged, suffix-ranged, and out of range.
  EXPECT_EQ(Sha256Bytes(Sh("curl -sf " + Url("/fedora.qcow2"))), Sha256Bytes(image));
  EXPECT_EQ(Sh("curl -sf -r 1000-1999 " + Url("/fedora.qcow2")), image.substr(1000, 1000));
  EXPECT_EQ(Sh("curl -sf -r -500 " + Url("/fedora.qcow2")), image.substr(image.size() - 500));
  const std::string partial =
      Sh("curl -s -D - -o /dev/null -r 65536- " + Url("/fedora.qcow2"));
  EXPECT_TRUE(Contains(partial, "206 Partial Content")) << partial;
  EXPECT_TRUE(Contains(partial, "Content-Range: bytes 65536-2097151/2097152")) << partial;
  EXPECT_EQ(Sh("curl -s -o /dev/null -w '%{http_code}' -r 3000000- " + Url("/fedora.qcow2")),
            "416");
  const std::string head = Sh("curl -sfI " + Url("/fedora.qcow2"));
  EXPECT_TRUE(Contains(head, "Accept-Ranges: bytes")) << head;
  EXPECT_TRUE(Contains(head, "Content-Length: 2097152")) << head;
  // Nothing outside the directory.
  EXPECT_EQ(Sh("curl -s --path-as-is -o /dev/null -w '%{http_code}' " +
               Url("/../shared-ready")),
            "404");
  // /info: the server's environment, as CDI's importer turns it into labels.
  const std::string info = Sh("curl -sf " + Url("/info"));
  EXPECT_TRUE(info.starts_with("{\"env\":[")) << info;
  EXPECT_TRUE(Contains(info, "\"CONTAINER_MARKER=containerdisk \\u003c1\\u003e\"")) << info;

  // The importer's way: cdi-image reads it over HTTP.
  RunResult r = CdiImage({"import", Url("/fedora.qcow2"), dir_.File("out.img"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir_.File("out.img")), Sha256Bytes(image));

  // The importer says it is done: the server stops and cleans up.
  WriteFile(done_, "");
  EXPECT_EQ(server.Wait(std::chrono::seconds(5)), 0);
  EXPECT_FALSE(FileExists(done_));
  EXPECT_FALSE(FileExists(ready_));
  EXPECT_TRUE(Contains(ReadFile(dir_.File("server.log")), "Importer has completed"));
}

TEST_F(ContainerImageServerTest, RunsWithoutAnyLibrary) {
  // CDI copies it into containerDisk images that hold nothing else. A
  // sanitizer build links the sanitizer's runtime into it instead; the plain
  // build (README's test command) checks the static link.
#ifndef CDI_SANITIZED_BUILD
  RunResult ldd = test::Run({"ldd", BinDir() + "/cdi-containerimage-server"});
  EXPECT_TRUE(Contains(ldd.out + ldd.err, "not a dynamic executable") ||
              Contains(ldd.out + ldd.err, "statically linked"))
      << ldd.out << ldd.err;
#endif
  // The DataImportCron's digest pod runs it with -h only.
  RunResult help = test::Run({BinDir() + "/cdi-containerimage-server", "-h"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.err, "-image-dir string")) << help.err;
}

TEST_F(ContainerImageServerTest, RefusesADirectoryThatIsNotOneDisk) {
  Sh("mkdir -p " + disk_dir_);
  WriteFile(disk_dir_ + "/a.img", "a");
  WriteFile(disk_dir_ + "/b.img", "b");
  RunResult r = test::Run(Argv());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "Failed get image filename in " + disk_dir_ +
                                  ": Invalid container image"))
      << r.err;
  EXPECT_FALSE(FileExists(ready_));

  r = test::Run({BinDir() + "/cdi-containerimage-server", "-image-dir", dir_.File("none")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "Failed walking the directory")) << r.err;

  r = test::Run({BinDir() + "/cdi-containerimage-server", "-p", "eighty"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "invalid value \"eighty\" for flag -p")) << r.err;
}

}  // namespace
}  // namespace cdi::test
