// cdi-image import, end to end: the built binary against real servers on
// 127.0.0.1, real files and loop devices, with qemu-img as the oracle.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "test/e2e/e2e_util.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

// One image, its compressed forms and one nginx serving them, shared by the
// suite (made once: compressing is the slow part); each test has its own
// output directory.
struct RawImageSite {
  RawImageSite() : image(MakeRawImage(64, 4, 11)) {  // 4 MiB, a quarter zero
    WriteFile(www.File("disk.raw"), image);
    Sh("cd " + www.path() + " && gzip -1 -k disk.raw && xz -0 -k -T1 disk.raw && zstd -q -1 -k disk.raw");
    server = std::make_unique<NginxServer>(NginxOptions{.root = www.path()});
  }
  TempDir www;
  std::string image;
  std::unique_ptr<NginxServer> server;
};

class ImportRawTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { site_ = new RawImageSite(); }
  static void TearDownTestSuite() {
    delete site_;
    site_ = nullptr;
  }

  // The target directory holds nothing but `names` (no partial files).
  void ExpectOnlyFiles(const std::vector<std::string>& names) {
    EXPECT_EQ(ListDir(out_.path()), names);
  }

  static RawImageSite* site_;
  TempDir& www_ = site_->www;
  const std::string& image_ = site_->image;
  NginxServer* server_ = site_->server.get();
  TempDir out_;
};

RawImageSite* ImportRawTest::site_ = nullptr;

TEST_F(ImportRawTest, RawOverHttpIsByteIdenticalAndSparse) {
  std::string target = out_.File("disk.img");
  RunResult r = CdiImage({"import", server_->Url("/disk.raw"), target, "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  EXPECT_EQ(FileSize(target), image_.size());
  // Zero blocks were never written: the file's data extents are exactly the image's data.
  EXPECT_EQ(DataExtents(target), NonZeroExtents(image_));
  EXPECT_EQ(Sh("stat -c %a " + target), "660\n");
  // qemu-img reads the same image from the same bytes.
  Sh("qemu-img convert -f raw -O raw " + www_.File("disk.raw") + " " + out_.File("oracle.raw"));
  EXPECT_EQ(Sha256File(target), Sha256File(out_.File("oracle.raw")));
  EXPECT_TRUE(Contains(r.out, "Imported raw into " + target)) << r.out;
}

TEST_F(ImportRawTest, CompressedWrappersAreUnwrappedWhileStreaming) {
  for (const char* name : {"disk.raw.gz", "disk.raw.xz", "disk.raw.zst"}) {
    std::string target = out_.File(std::string(name) + ".img");
    RunResult r = CdiImage({"import", server_->Url(std::string("/") + name), target, "--progress",
                            "json"});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(Sha256File(target), Sha256Bytes(image_)) << name;
    EXPECT_EQ(DataExtents(target), NonZeroExtents(image_)) << name;
    std::string wrapper = std::string(name).substr(9);
    std::string chain = wrapper == "gz" ? "gzip" : wrapper == "zst" ? "zstd" : "xz";
    EXPECT_TRUE(Contains(r.out, "\"format_chain\":[\"" + chain + "\",\"raw\"]")) << r.out;
  }
}

TEST_F(ImportRawTest, JsonProgressIsMonotonicAndEndsWithTheResult) {
  RunResult r = CdiImage({"import", server_->Url("/disk.raw.gz"), out_.File("disk.img"),
                          "--progress", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  double last = -1;
  std::string last_line;
  size_t progress_lines = 0;
  for (size_t pos = 0; pos < r.out.size();) {
    size_t end = r.out.find('\n', pos);
    std::string line = r.out.substr(pos, end - pos);
    pos = end + 1;
    last_line = line;
    size_t f = line.find("\"fraction\":");
    if (f == std::string::npos) continue;
    ++progress_lines;
    double fraction = std::stod(line.substr(f + 11));
    EXPECT_GE(fraction, last) << line;
    last = fraction;
  }
  EXPECT_GE(progress_lines, 2u);
  EXPECT_DOUBLE_EQ(last, 1.0);
  EXPECT_TRUE(Contains(last_line, "\"event\":\"result\"")) << last_line;
  EXPECT_TRUE(Contains(last_line, "\"virtual_size\":" + std::to_string(image_.size())));
}

TEST_F(ImportRawTest, RequestedSizeGrowsTheFileSparsely) {
  std::string target = out_.File("disk.img");
  RunResult r = CdiImage({"import", server_->Url("/disk.raw.zst"), target, "--size", "64Mi"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FileSize(target), 64u << 20);
  EXPECT_EQ(Sha256File(target, image_.size()), Sha256Bytes(image_));
  EXPECT_EQ(DataExtents(target), NonZeroExtents(image_));
}

TEST_F(ImportRawTest, OverheadMathGivesCdisUsableSize) {
  // A 11381663335-byte request at 6% overhead is exactly 10 GiB usable, as in CDI.
  std::string target = out_.File("disk.img");
  RunResult r = CdiImage({"import", server_->Url("/disk.raw"), target, "--size", "11381663335",
                          "--overhead", "0.06"});
  if (r.exit_code == 7 && Contains(r.err, "reported available storage")) {
    GTEST_SKIP() << "not enough free space here for a 10 GiB sparse file: " << r.err;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FileSize(target), 10ull << 30);
  EXPECT_EQ(Sha256File(target, image_.size()), Sha256Bytes(image_));
}

TEST_F(ImportRawTest, ImageLargerThanTheRequestFailsBeforeWriting) {
  RunResult r = CdiImage({"import", server_->Url("/disk.raw"), out_.File("disk.img"), "--size",
                          "2Mi"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_TRUE(Contains(r.err, "virtual image size 4194304 is larger than the reported available "
                              "storage 2097152. A larger PVC is required"))
      << r.err;
  ExpectOnlyFiles({});
}

TEST_F(ImportRawTest, CompressedImageLargerThanTheRequestStopsAsSoonAsItPassesIt) {
  // The size of a compressed raw stream shows only at its end: the import must
  // stop where the data passes the target, not download it all.
  WriteFile(www_.File("zeros.raw"), std::string(32 << 20, '\0') + "end");
  Sh("cd " + www_.path() + " && zstd -q zeros.raw");
  RunResult r = CdiImage({"import", server_->Url("/zeros.raw.zst"), out_.File("disk.img"),
                          "--size", "8Mi"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_TRUE(Contains(r.err, "larger than the reported available storage 8388608")) << r.err;
  ExpectOnlyFiles({});
}

TEST_F(ImportRawTest, ExistingTargetIsRefusedUnlessForced) {
  std::string target = out_.File("disk.img");
  WriteFile(target, "precious");
  RunResult r = CdiImage({"import", server_->Url("/disk.raw"), target});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--force")) << r.err;
  EXPECT_EQ(ReadFile(target), "precious");
  r = CdiImage({"import", server_->Url("/disk.raw"), target, "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(image_));
  ExpectOnlyFiles({"disk.img"});
}

TEST_F(ImportRawTest, HttpErrorNamesTheStatusAndHidesSecrets) {
  std::string url = server_->Url("/missing.raw");
  url.insert(url.find("//") + 2, "alice:s3cret@");
  RunResult r = CdiImage({"import", url + "?token=t0psecret", out_.File("disk.img"), "-vv"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_TRUE(Contains(r.err, "HTTP 404 Not Found from " + server_->Url("/missing.raw"))) << r.err;
  for (const char* secret : {"s3cret", "t0psecret", "alice"}) {
    EXPECT_FALSE(Contains(r.err + r.out, secret)) << secret << " leaked:\n" << r.err;
  }
  ExpectOnlyFiles({});
}

TEST_F(ImportRawTest, UnsupportedFormatIsRefusedByName) {
  Sh("qemu-img create -q -f qed " + www_.File("disk.qed") + " 16M");
  RunResult r = CdiImage({"import", server_->Url("/disk.qed"), out_.File("disk.img")});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(Contains(r.err, "QED")) << r.err;
  ExpectOnlyFiles({});
}

TEST_F(ImportRawTest, TruncatedCompressedImageIsCorrupt) {
  std::string gz = ReadFile(www_.File("disk.raw.gz"));
  WriteFile(www_.File("cut.raw.gz"), gz.substr(0, gz.size() / 2));
  RunResult r = CdiImage({"import", server_->Url("/cut.raw.gz"), out_.File("disk.img")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_TRUE(Contains(r.err, "gzip")) << r.err;
  ExpectOnlyFiles({});
}

TEST_F(ImportRawTest, ChecksumOfTheBytesAsServed) {
  std::string gz_sha = Sha256File(www_.File("disk.raw.gz"));
  RunResult good = CdiImage({"import", server_->Url("/disk.raw.gz"), out_.File("good.img"),
                             "--checksum", "sha256:" + gz_sha});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_TRUE(Contains(good.out, "checksum sha256:" + gz_sha + " verified")) << good.out;

  std::string wrong(64, '0');
  RunResult bad = CdiImage({"import", server_->Url("/disk.raw.gz"), out_.File("bad.img"),
                            "--checksum", "sha256:" + wrong});
  EXPECT_EQ(bad.exit_code, 9);
  EXPECT_TRUE(Contains(bad.err, "checksum mismatch: expected sha256:" + wrong +
                                    ", calculated sha256:" + gz_sha))
      << bad.err;
  ExpectOnlyFiles({"good.img"});

  RunResult malformed = CdiImage({"import", server_->Url("/disk.raw.gz"), out_.File("x.img"),
                                  "--checksum", "sha256:abc"});
  EXPECT_EQ(malformed.exit_code, 2);
  EXPECT_TRUE(Contains(malformed.err, "invalid sha256 hash length")) << malformed.err;
}

TEST_F(ImportRawTest, LocalFileAndStandardInput) {
  std::string from_file = out_.File("file.img");
  RunResult r = CdiImage({"import", www_.File("disk.raw.xz"), from_file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(from_file), Sha256Bytes(image_));

  std::string from_stdin = out_.File("stdin.img");
  r = CdiImage({"import", "-", from_stdin}, {.stdin_data = ReadFile(www_.File("disk.raw.gz"))});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(from_stdin), Sha256Bytes(image_));
  EXPECT_EQ(FileSize(from_stdin), image_.size());
}

TEST_F(ImportRawTest, InfoReportsTheChainAndSizes) {
  RunResult r = CdiImage({"info", server_->Url("/disk.raw"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "\"format_chain\":[\"raw\"]")) << r.out;
  EXPECT_TRUE(Contains(r.out, "\"virtual_size\":" + std::to_string(image_.size()))) << r.out;
  r = CdiImage({"info", server_->Url("/disk.raw.xz")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "format:         xz > raw\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "virtual size:   unknown until decompressed")) << r.out;
}

// zstd writes the size of a file it compresses into the frame header; from a
// pipe it cannot.
TEST_F(ImportRawTest, InfoReportsTheSizeAZstdFrameHeaderDeclares) {
  const std::string size = std::to_string(image_.size());
  RunResult r = CdiImage({"info", server_->Url("/disk.raw.zst")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "format:           zstd > raw\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "\nvirtual size:     ")) << r.out;
  EXPECT_TRUE(Contains(r.out, " (" + size + " bytes)\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "size declared by: the zstd frame header\n")) << r.out;
  EXPECT_FALSE(Contains(r.out, "unknown")) << r.out;
  r = CdiImage({"info", server_->Url("/disk.raw.zst"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "\"virtual_size\":" + size + ",")) << r.out;
  EXPECT_TRUE(Contains(r.out, "\"size declared by\":\"the zstd frame header\"")) << r.out;

  Sh("zstd -q -c < " + www_.File("disk.raw") + " > " + www_.File("piped.raw.zst"));
  r = CdiImage({"info", server_->Url("/piped.raw.zst"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "\"virtual_size\":null,")) << r.out;
  r = CdiImage({"info", server_->Url("/piped.raw.zst")});
  EXPECT_TRUE(Contains(r.out, "virtual size:   unknown until decompressed")) << r.out;
}

TEST_F(ImportRawTest, ConnectionsFlagFetchesInPartsAndOneTurnsItOff) {
  // 6 MiB: more than the connections hold under --memory 16Mi (4 MiB). Its
  // first GET trickles (about 3 MB/s), so one connection is the bound and
  // the rest comes in ranged parts of at most 1 MiB (the image / 6: two
  // parts a connection, as the memory would allow larger ones).
  const std::string big = RandomBytes(6 * 1024 * 1024 + 77, 1602);
  WriteFile(www_.File("big.raw"), big);
  FaultServer server(www_.path(), R"({"/big.raw": {"etag": "\"b1\"", "times": 1,
      "trickle": {"bytes": 16384, "interval": 0.005}, "then": {"etag": "\"b1\""}}})");
  RunResult r = CdiImage({"import", server.Url("/big.raw"), out_.File("three.img"), "--progress",
                          "none", "--memory", "16Mi", "--connections", "3", "-v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(out_.File("three.img")), Sha256Bytes(big));
  EXPECT_TRUE(Contains(r.err, "One connection was the bound")) << r.err;
  EXPECT_TRUE(Contains(r.err, "over 3 connections")) << r.err;
  std::vector<RecordedRequest> requests = server.RequestsFor("/big.raw");
  ASSERT_GE(requests.size(), 2u);
  EXPECT_TRUE(requests[0].Header("range").empty());
  for (size_t i = 1; i < requests.size(); ++i) {
    EXPECT_FALSE(requests[i].Header("range").empty());
  }

  // One connection: one GET, even where the server is slow.
  const size_t before = requests.size();
  r = CdiImage({"import", server.Url("/big.raw"), out_.File("one.img"), "--progress", "none",
                "--memory", "16Mi", "--connections", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(out_.File("one.img")), Sha256Bytes(big));
  requests = server.RequestsFor("/big.raw");
  ASSERT_EQ(requests.size(), before + 1);
  EXPECT_TRUE(requests.back().Header("range").empty());

  r = CdiImage({"import", server.Url("/big.raw"), out_.File("none.img"), "--connections", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--connections")) << r.err;
  ExpectOnlyFiles({"one.img", "three.img"});
}

TEST_F(ImportRawTest, BadFlagsAreUsageErrors) {
  RunResult r = CdiImage({"import", server_->Url("/disk.raw"), out_.File("a.img"), "--size", "10Q"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--size")) << r.err;
  r = CdiImage({"import", "ftp://127.0.0.1/disk.raw", out_.File("a.img")});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(Contains(r.err, "ftp")) << r.err;
  r = CdiImage({"import", "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  r = CdiImage({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "130  cancelled")) << r.out;
  EXPECT_TRUE(Contains(r.out, "decoded     raw (and ISO), qcow2")) << r.out;
  EXPECT_TRUE(Contains(r.out, "Parallels")) << r.out;
  ExpectOnlyFiles({});
}

TEST_F(ImportRawTest, AnAppleDiskImageIsRefusedAtItsEndAndLeavesNothing) {
  // A DMG shows what it is only in its last 512 bytes (the "koly" trailer):
  // the bytes before it were written by then, and the refusal removes them.
  std::string koly(512, '\0');
  koly.replace(0, 4, "koly");
  koly[7] = 4;
  koly[10] = 2;
  WriteFile(www_.File("disk.dmg"), RandomBytes(3 << 20, 11) + koly);
  RunResult r = CdiImage({"import", server_->Url("/disk.dmg"), out_.File("disk.img")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(Contains(r.err, "DMG disk image (Apple's UDIF)")) << r.err;
  EXPECT_TRUE(Contains(r.err, "qemu-img convert -f dmg -O qcow2")) << r.err;
  ExpectOnlyFiles({});
}

// Faults that nginx does not produce, from the project's own server.
class ImportFaultTest : public ::testing::Test {
 protected:
  TempDir www_;
  TempDir out_;
};

TEST_F(ImportFaultTest, ShortBodyAndLyingLengthAreErrorsAndLeaveNothing) {
  WriteFile(www_.File("disk.raw"), RandomBytes(1 << 20, 3));
  FaultServer server(www_.path(), R"({
      "/short": {"file": "disk.raw", "close_after": 300000},
      "/liar": {"file": "disk.raw", "content_length": 2000000}})");
  for (const char* path : {"/short", "/liar"}) {
    // The liar keeps the connection open after its last byte: a short stall
    // window makes the import give up quickly. Retrying (the resilience
    // tests cover it) would only repeat the same fault here.
    RunResult r = CdiImage({"import", server.Url(path), out_.File("disk.img"), "--stall-timeout",
                            "2", "--retries", "0"});
    EXPECT_EQ(r.exit_code, 5) << path << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "of 1048576 bytes") || Contains(r.err, "of 2000000 bytes"))
        << path << ": " << r.err;
    EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{}) << path;
  }
}

TEST_F(ImportFaultTest, CredentialsStayWithTheirOrigin) {
  WriteFile(www_.File("disk.raw"), RandomBytes(256 << 10, 4));
  WriteFile(out_.File("password"), "hunter2\n");
  FaultServer server(www_.path(), R"({"/moved": {"redirect": "other:/disk.raw"}})");
  RunResult r = CdiImage({"import", server.Url("/moved"), out_.File("disk.img"), "--user", "bob",
                          "--password-file", out_.File("password"), "--header",
                          "X-Api-Key: k3y", "-vv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(out_.File("disk.img")), Sha256File(www_.File("disk.raw")));
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].origin, "primary");
  EXPECT_TRUE(requests[0].HasHeader("authorization"));
  EXPECT_EQ(requests[0].Header("x-api-key"), "k3y");
  EXPECT_EQ(requests[1].origin, "other");
  EXPECT_FALSE(requests[1].HasHeader("authorization"));
  EXPECT_FALSE(requests[1].HasHeader("x-api-key"));
  for (const char* secret : {"hunter2", "k3y"}) {
    EXPECT_FALSE(Contains(r.err + r.out, secret)) << secret << " leaked";
  }
}

TEST_F(ImportFaultTest, RedirectToAnotherSchemeIsRefused) {
  FaultServer server(www_.path(), R"({"/evil": {"redirect": "file:///etc/passwd"}})");
  RunResult r = CdiImage({"import", server.Url("/evil"), out_.File("disk.img")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.err, "file")) << r.err;
  EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{});
}

TEST_F(ImportFaultTest, InterruptCancelsCleanly) {
  WriteFile(www_.File("disk.raw"), RandomBytes(4 << 20, 5));
  FaultServer server(www_.path(),
                     R"({"/slow": {"file": "disk.raw", "trickle": {"bytes": 4096, "interval": 0.05}}})");
  std::string log = out_.File("..") + "/cancel-" + std::to_string(getpid()) + ".log";
  BackgroundProcess import({BinDir() + "/cdi-image", "import", server.Url("/slow"),
                            out_.File("disk.img"), "--progress", "plain"},
                           log);
  // Wait until the import is under way (its partial file exists), then interrupt it.
  for (int i = 0; i < 500 && ListDir(out_.path()).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(ListDir(out_.path()).empty()) << ReadFile(log);
  import.Signal(SIGINT);
  int code = import.Wait(std::chrono::seconds(20));
  std::string output = ReadFile(log);
  std::remove(log.c_str());
  EXPECT_EQ(code, 130) << output;
  EXPECT_TRUE(Contains(output, "cancel")) << output;
  EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{});
}

// Block devices: loop devices pre-filled with stale data (0xAA).
class ImportBlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CDI_SKIP_UNLESS_LOOP_DEVICES();
    image_ = MakeRawImage(48, 3, 21);  // 3 MiB, a third zero
    WriteFile(www_.File("disk.raw"), image_);
    Sh("cd " + www_.path() + " && xz -k -T1 disk.raw");
    server_ = std::make_unique<NginxServer>(NginxOptions{.root = www_.path()});
  }
  TempDir www_;
  std::string image_;
  std::unique_ptr<NginxServer> server_;
};

TEST_F(ImportBlockTest, DeviceReadsExactlyTheImageThenZeros) {
  LoopDevice device({.size = 8 << 20, .fill = 0xAA});
  for (const char* name : {"/disk.raw", "/disk.raw.xz"}) {
    RunResult r = CdiImage({"import", server_->Url(name), device.path(), "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    std::string expected = image_ + std::string((8 << 20) - image_.size(), '\0');
    EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(expected)) << name;
    // Stale data must not survive anywhere: fill again before the next round.
    Sh("dd if=/dev/zero bs=1M count=8 status=none | tr '\\000' '\\252' | dd of=" + device.path() +
       " bs=1M oflag=direct status=none");
  }
}

TEST_F(ImportBlockTest, ImageLargerThanTheDeviceLeavesItUntouched) {
  LoopDevice device({.size = 2 << 20, .fill = 0xAA});
  RunResult r = CdiImage({"import", server_->Url("/disk.raw"), device.path()});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_TRUE(Contains(r.err, "virtual image size 3145728 is larger than the reported available "
                              "storage 2097152. A larger PVC is required"))
      << r.err;
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(2 << 20, '\xAA')));
}

TEST_F(ImportBlockTest, FailureAfterWritingWipesTheDeviceHead) {
  // The xz stream's size shows only at its end, so writing starts before the
  // import finds that the image does not fit.
  LoopDevice device({.size = 2 << 20, .fill = 0xAA});
  RunResult r = CdiImage({"import", server_->Url("/disk.raw.xz"), device.path()});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_EQ(Sha256File(device.path(), 1 << 20), Sha256Bytes(std::string(1 << 20, '\0')));
}

}  // namespace
}  // namespace cdi::test
