// cdi-importer end to end: the built binary with CDI's environment, against
// nginx and the fault server on 127.0.0.1, into directories, small tmpfs
// volumes and loop devices; checked the way a cluster admin would check an
// import: the disk, the termination message, the exit code, the log.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "test/e2e/e2e_util.h"
#include "test/e2e/pod_harness.h"
#include "test/support/certs.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"

namespace cdi::test {
namespace {

constexpr const char* kSuccess =
    R"({"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"})";
constexpr const char* kSuccessPreallocated =
    R"({"scratchSpaceRequired":false,"preallocationApplied":true,"message":"Import Complete"})";

// Files of the archive tree, with their modes.
struct TreeFile {
  const char* path;
  std::string content;
  const char* mode;
};

// What every test serves, made once: a raw image and its compressed and
// qcow2 forms, an archive tree as tar and tar.gz, hostile archives.
struct Site {
  Site() : image(MakeRawImage(64, 4, 31)) {  // 4 MiB, a quarter zero blocks
    WriteFile(www.File("disk.raw"), image);
    Sh("cd " + www.path() +
       " && gzip -1 -k disk.raw && qemu-img convert -f raw -O qcow2 disk.raw "
       "disk.qcow2 && gzip -1 disk.qcow2");
    tree = {{"README.txt", "read me\n", "644"},
            {"vm/disk.img", RandomBytes(200000, 7) + std::string(131072, '\0') + "end", "600"},
            {"vm/config/settings.json", "{\"cpus\": 2}\n", "640"}};
    for (const TreeFile& f : tree) {
      std::string path = www.File(std::string("tree/") + f.path);
      Sh("mkdir -p \"$(dirname " + path + ")\"");
      WriteFile(path, f.content);
      Sh(std::string("chmod ") + f.mode + " " + path);
    }
    Sh("mkdir -p " + www.File("tree/vm/empty") + " && chmod 750 " + www.File("tree/vm/config"));
    Sh("tar -C " + www.File("tree") + " -cf " + www.File("tree.tar") + " . && gzip -k " +
       www.File("tree.tar"));
    WriteFile(www.File("hostile.py"), R"(
import io, sys, tarfile
kind, out, outside = sys.argv[1], sys.argv[2], sys.argv[3]
def add(t, name, data=None, **attrs):
    info = tarfile.TarInfo(name)
    for key, value in attrs.items():
        setattr(info, key, value)
    if data is not None:
        info.size = len(data)
    t.addfile(info, io.BytesIO(data) if data is not None else None)
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "good.txt", b"fine\n")
    add(t, "subdir", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "subdir/inside.txt", b"inside\n")
    if kind == "absolute": add(t, outside + "/escaped", b"x")
    if kind == "dotdot": add(t, "subdir/../../escaped", b"x")
    if kind == "symlink": add(t, "subdir/link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
    if kind == "hardlink": add(t, "hard", type=tarfile.LNKTYPE, linkname="good.txt")
    if kind == "device": add(t, "dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    if kind == "fifo": add(t, "pipe", type=tarfile.FIFOTYPE)
    if kind == "large": add(t, "big.bin", bytes(2 << 20))
)");
    for (const char* kind :
         {"absolute", "dotdot", "symlink", "hardlink", "device", "fifo", "large"}) {
      Sh("python3 " + www.File("hostile.py") + " " + kind + " " +
         www.File(std::string(kind) + ".tar") + " " + outside.path());
    }
    server = std::make_unique<NginxServer>(NginxOptions{.root = www.path()});
  }
  TempDir www;
  TempDir outside;  // where hostile archives aim
  std::string image;
  std::vector<TreeFile> tree;
  std::unique_ptr<NginxServer> server;
};

class PodTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { site_ = new Site(); }
  static void TearDownTestSuite() {
    delete site_;
    site_ = nullptr;
  }
  std::string Url(const std::string& path) const { return site_->server->Url(path); }
  // A disk-image import of `path` from nginx, plus `more`.
  std::map<std::string, std::string> Http(const std::string& path,
                                          std::map<std::string, std::string> more = {}) const {
    more.emplace("IMPORTER_SOURCE", "http");
    more.emplace("IMPORTER_ENDPOINT", Url(path));
    more.emplace("IMPORTER_CONTENTTYPE", "kubevirt");
    more.emplace("PREALLOCATION", "false");
    more.emplace("OWNER_UID", "4c3e2a1b-0000-4000-8000-000000000001");
    return more;
  }
  std::map<std::string, std::string> Archive(const std::string& path,
                                             std::map<std::string, std::string> more = {}) const {
    more.emplace("IMPORTER_CONTENTTYPE", "archive");
    return Http(path, std::move(more));
  }
  std::string Image() const { return site_->image; }
  std::vector<std::string> DataDir() const { return ListDir(pod_.data_dir()); }

  static Site* site_;
  PodHarness pod_;
};

Site* PodTest::site_ = nullptr;

// ---------------------------------------------------------------------------
// Disk images into a filesystem volume

TEST_F(PodTest, DiskImageIntoAFilesystemVolume) {
  PodResult r =
      pod_.Run(Http("/disk.raw", {{"IMPORTER_IMAGE_SIZE", "64Mi"}, {"FILESYSTEM_OVERHEAD", "0"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, kSuccess);
  std::string disk = pod_.data_dir() + "/disk.img";
  EXPECT_EQ(DataDir(), std::vector<std::string>{"disk.img"});
  EXPECT_EQ(FileSize(disk), 64u << 20);
  EXPECT_EQ(Sha256File(disk, Image().size()), Sha256Bytes(Image()));
  EXPECT_EQ(DataExtents(disk), NonZeroExtents(Image()));  // sparse
  EXPECT_EQ(Sh("stat -c %a " + disk), "660\n");
  EXPECT_TRUE(
      Contains(r.log, "Successfully completed fsync(" + disk + ") syscall, committed to disk"))
      << r.log;
}

TEST_F(PodTest, CompressedQcow2IsConvertedToRaw) {
  PodResult r = pod_.Run(Http("/disk.qcow2.gz"));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, kSuccess);
  // Without IMPORTER_IMAGE_SIZE the disk keeps the image's virtual size, as in CDI.
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(Image()));
}

TEST_F(PodTest, PreallocationAllocatesTheWholeDiskAndSaysSo) {
  PodResult r =
      pod_.Run(Http("/disk.raw.gz", {{"IMPORTER_IMAGE_SIZE", "16Mi"}, {"PREALLOCATION", "true"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, kSuccessPreallocated);
  EXPECT_GE(AllocatedBytes(pod_.data_dir() + "/disk.img"), 16u << 20);
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img", Image().size()), Sha256Bytes(Image()));
}

TEST_F(PodTest, OverheadWorkedExampleGivesExactly10Gi) {
  PodResult r = pod_.Run(
      Http("/disk.raw", {{"IMPORTER_IMAGE_SIZE", "11381663335"}, {"FILESYSTEM_OVERHEAD", "0.06"}}));
  if (r.exit_code == 1 && Contains(r.termination, "reported available storage")) {
    GTEST_SKIP() << "not enough free space here for a 10 GiB sparse file: " << r.termination;
  }
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(FileSize(pod_.data_dir() + "/disk.img"), 10ull << 30);
  EXPECT_EQ(r.termination, kSuccess);
}

// Free bytes of the filesystem at `path`, as statvfs reports them to an unprivileged writer.
uint64_t FreeBytes(const std::string& path) {
  struct statvfs st {};
  EXPECT_EQ(statvfs(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// CDI's usable size, RoundDown(ceil(bytes / 1.06), 1 MiB), in integers.
uint64_t UsableAt6Percent(uint64_t bytes) {
  uint64_t without_overhead = (bytes * 100 + 105) / 106;
  return without_overhead / (1 << 20) * (1 << 20);
}

TEST_F(PodTest, FreeSpaceOfASmallVolumeBoundsTheDisk) {
  CDI_SKIP_UNLESS_MOUNT();
  ScopedMount volume({"-t", "tmpfs", "-o", "size=64m", "tmpfs"}, pod_.data_dir());
  const uint64_t free_bytes = FreeBytes(pod_.data_dir());
  // The PVC asked for 1Gi, but the volume holds 64 MiB: the free space wins.
  PodResult r = pod_.Run(
      Http("/disk.raw.gz", {{"IMPORTER_IMAGE_SIZE", "1Gi"}, {"FILESYSTEM_OVERHEAD", "0.06"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(FileSize(pod_.data_dir() + "/disk.img"), UsableAt6Percent(free_bytes));
  EXPECT_EQ(FileSize(pod_.data_dir() + "/disk.img"), 60u << 20);
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img", Image().size()), Sha256Bytes(Image()));
}

TEST_F(PodTest, TooSmallVolumeFailsWithCdisMessage) {
  CDI_SKIP_UNLESS_MOUNT();
  ScopedMount volume({"-t", "tmpfs", "-o", "size=3m", "tmpfs"}, pod_.data_dir());
  ASSERT_EQ(UsableAt6Percent(FreeBytes(pod_.data_dir())), 2u << 20);
  PodResult r = pod_.Run(
      Http("/disk.raw", {{"IMPORTER_IMAGE_SIZE", "1Gi"}, {"FILESYSTEM_OVERHEAD", "0.06"}}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.termination,
            "Unable to process data: Unable to transfer source data to target file: virtual image "
            "size 4194304 is larger than the reported available storage 2097152. A larger PVC is "
            "required");
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

TEST_F(PodTest, HttpErrorsAreConnectionErrors) {
  PodResult r = pod_.Run(Http("/missing.raw"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      r.termination.starts_with("Unable to connect to http data source: HTTP 404 Not Found "
                                "from " +
                                Url("/missing.raw")))
      << r.termination;
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------
// Block volumes

TEST_F(PodTest, DiskImageOntoABlockVolume) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 8 << 20, .fill = 0xAA});
  pod_.block_device = device.path();
  PodResult r =
      pod_.Run(Http("/disk.raw.gz", {{"PREALLOCATION", "true"}, {"IMPORTER_IMAGE_SIZE", "8Mi"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, kSuccessPreallocated);
  // The image, then zeros where the stale bytes were: nothing old shows through.
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(Image() + std::string((8 << 20) - Image().size(), '\0')));
  EXPECT_TRUE(Contains(
      r.log, "Successfully completed fsync(" + device.path() + ") syscall, committed to disk"))
      << r.log;
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

TEST_F(PodTest, BlockVolumeTooSmallIsLeftUntouched) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 2 << 20, .fill = 0xAA});
  pod_.block_device = device.path();
  PodResult r = pod_.Run(Http("/disk.raw"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.termination,
            "Unable to process data: Unable to transfer source data to target file: virtual image "
            "size 4194304 is larger than the reported available storage 2097152. A larger PVC is "
            "required");
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(2 << 20, '\xAA')));
}

// ---------------------------------------------------------------------------
// Checksums

TEST_F(PodTest, ChecksumOfTheBytesAsServedIsVerified) {
  std::string md5 = Sh("md5sum " + site_->www.File("disk.raw.gz") + " | cut -d' ' -f1");
  md5.pop_back();
  PodResult r = pod_.Run(Http("/disk.raw.gz", {{"IMPORTER_CHECKSUM", "md5:" + md5}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, kSuccess);
  EXPECT_TRUE(Contains(r.log, "Checksum verification passed: md5:" + md5)) << r.log;
}

TEST_F(PodTest, ChecksumMismatchExitsZeroAndLeavesNothing) {
  std::string sha256 = Sha256File(site_->www.File("disk.raw.gz"));
  std::string wrong(64, '0');
  PodResult r = pod_.Run(Http(
      "/disk.raw.gz", {{"IMPORTER_CHECKSUM", "sha256:" + wrong}, {"IMPORTER_IMAGE_SIZE", "64Mi"}}));
  EXPECT_EQ(r.exit_code, 0) << r.log;  // the pod must not restart for the same bytes
  EXPECT_EQ(r.termination,
            "{\"message\":\"Unable to process data: Unable to transfer source data to target file: "
            "checksum validation failed: checksum mismatch: expected sha256:" +
                wrong + ", calculated sha256:" + sha256 + "\"}");
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------
// The environment

TEST_F(PodTest, BadVariablesFailWithTheirMessage) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string termination;  // a prefix of the termination message
  };
  const std::vector<Case> cases = {
      {Http("/disk.raw", {{"PREALLOCATION", "maybe"}}),
       "the PREALLOCATION environment variable is with a wrong value \"maybe\"; should be \"true\" "
       "or \"false\""},
      {Http("/disk.raw", {{"IMPORTER_SOURCE", "ftp"}}), "Unknown data source: ftp"},
      {Http("/disk.raw", {{"IMPORTER_SOURCE", "gcs"}}),
       "Unable to connect to gcs data source: IMPORTER_SOURCE=gcs is not supported by this importer"},
      {Http("/disk.raw", {{"IMPORTER_SOURCE", "registry"}}),
       "Unable to connect to registry data source: endpoint \"http://127.0.0.1:"},
      {Http("/disk.raw", {{"IMPORTER_IMAGE_SIZE", "ten gigs"}}),
       "Unable to process data: IMPORTER_IMAGE_SIZE: invalid quantity \"ten gigs\""},
      {Http("/disk.raw", {{"FILESYSTEM_OVERHEAD", "1.06"}}),
       "Unable to process data: FILESYSTEM_OVERHEAD: "},
      {Http("/disk.raw", {{"IMPORTER_CONTENTTYPE", "iso"}}),
       "Unable to process data: Unknown content type: iso"},
      {Http("/disk.raw", {{"IMPORTER_CHECKSUM", "sha256:xyz"}}),
       "Unable to connect to http data source: invalid checksum: invalid sha256 hash length"},
      {Http("/disk.raw", {{"IMPORTER_ENDPOINT", ""}}),
       "Unable to connect to http data source: endpoint \"IMPORTER_ENDPOINT\" is missing or blank"},
  };
  for (const Case& c : cases) {
    PodResult r = pod_.Run(c.env);
    EXPECT_EQ(r.exit_code, 1) << c.termination;
    EXPECT_TRUE(r.termination.starts_with(c.termination)) << r.termination;
    EXPECT_TRUE(Contains(r.log, c.termination)) << r.log;  // the log says it too
    EXPECT_EQ(DataDir(), std::vector<std::string>{}) << c.termination;
  }
}

// ---------------------------------------------------------------------------
// Blank disks

TEST_F(PodTest, BlankDiskIsASparseFileOfTheUsableSize) {
  PodResult r = pod_.Run({{"IMPORTER_SOURCE", "none"},
                          {"IMPORTER_IMAGE_SIZE", "1Gi"},
                          {"FILESYSTEM_OVERHEAD", "0.06"},
                          {"PREALLOCATION", "false"}});
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, R"({"preallocationApplied":false,"message":"Import Complete"})");
  std::string disk = pod_.data_dir() + "/disk.img";
  EXPECT_EQ(FileSize(disk), UsableAt6Percent(1ull << 30));
  EXPECT_EQ(FileSize(disk), 966u << 20);
  EXPECT_EQ(AllocatedBytes(disk), 0u);
  EXPECT_EQ(Sh("stat -c %a " + disk), "660\n");
}

TEST_F(PodTest, PreallocatedBlankDiskIsAllocated) {
  PodResult r = pod_.Run(
      {{"IMPORTER_SOURCE", "none"}, {"IMPORTER_IMAGE_SIZE", "16Mi"}, {"PREALLOCATION", "true"}});
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, R"({"preallocationApplied":true,"message":"Import Complete"})");
  EXPECT_EQ(FileSize(pod_.data_dir() + "/disk.img"), 16u << 20);
  EXPECT_GE(AllocatedBytes(pod_.data_dir() + "/disk.img"), 16u << 20);
}

TEST_F(PodTest, BlankBlockVolumeIsZeroed) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 4 << 20, .fill = 0xAA});
  pod_.block_device = device.path();
  PodResult r = pod_.Run(
      {{"IMPORTER_SOURCE", "none"}, {"IMPORTER_IMAGE_SIZE", "4Mi"}, {"PREALLOCATION", "false"}});
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, R"({"preallocationApplied":false,"message":"Import Complete"})");
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(4 << 20, '\0')));
}

TEST_F(PodTest, BlankArchiveIsRefused) {
  PodResult r = pod_.Run({{"IMPORTER_SOURCE", "none"},
                          {"IMPORTER_CONTENTTYPE", "archive"},
                          {"IMPORTER_IMAGE_SIZE", "1Gi"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.termination, "Cannot create empty disk with content type archive");
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

TEST_F(PodTest, BlankDiskLargerThanTheVolumeIsCutToItsFreeSpace) {
  CDI_SKIP_UNLESS_MOUNT();
  ScopedMount volume({"-t", "tmpfs", "-o", "size=8m", "tmpfs"}, pod_.data_dir());
  PodResult r = pod_.Run({{"IMPORTER_SOURCE", "none"},
                          {"IMPORTER_IMAGE_SIZE", "1Gi"},
                          {"FILESYSTEM_OVERHEAD", "0.06"}});
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(FileSize(pod_.data_dir() + "/disk.img"), 7u << 20);  // RoundDown(8Mi / 1.06, 1Mi)
}

TEST_F(PodTest, BlankDiskOnAFullVolumeFails) {
  CDI_SKIP_UNLESS_MOUNT();
  // 512 KiB less 6% rounds down to 0 MiB: no room at all.
  ScopedMount volume({"-t", "tmpfs", "-o", "size=512k", "tmpfs"}, pod_.data_dir());
  PodResult r = pod_.Run({{"IMPORTER_SOURCE", "none"},
                          {"IMPORTER_IMAGE_SIZE", "1Gi"},
                          {"FILESYSTEM_OVERHEAD", "0.06"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.termination, "Unable to create blank image: no room for a blank disk image at " +
                               pod_.data_dir() +
                               "/disk.img: any size is larger than the reported available "
                               "storage 0. A larger PVC is required");
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------
// The pod's own plumbing

TEST_F(PodTest, AnUnwritableTerminationLogFailsTheImport) {
  PodHarness pod;
  std::vector<std::string> argv = pod.Argv();
  auto log = std::find(argv.begin(), argv.end(), "--termination-log");
  *(log + 1) = pod.work("no-such-dir/termination-log");
  RunResult r = test::Run(argv, pod.Options(Http("/disk.raw")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "cannot write the termination message to " +
                                  pod.work("no-such-dir/termination-log") +
                                  ": No such file or directory"))
      << r.err;
}

TEST_F(PodTest, ABusyMetricsPortDoesNotStopTheImport) {
  BackgroundProcess holder({"python3", "-c",
                            "import socket,time; s=socket.socket(); s.bind(('127.0.0.1'," +
                                std::to_string(pod_.metrics_port) +
                                ")); s.listen(1); print('listening', flush=True); time.sleep(60)"},
                           pod_.work("holder.log"));
  while (!FileExists(pod_.work("holder.log")) ||
         !Contains(ReadFile(pod_.work("holder.log")), "listening")) {
    ASSERT_EQ(holder.Wait(std::chrono::milliseconds(20)), -1) << ReadFile(pod_.work("holder.log"));
  }
  PodResult r = pod_.Run(Http("/disk.raw"));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination, kSuccess);
  EXPECT_TRUE(Contains(
      r.log, "no progress metric: cannot listen on 127.0.0.1:" + std::to_string(pod_.metrics_port) +
                 " for metrics: Address already in use"))
      << r.log;
}

TEST_F(PodTest, UnknownFlagsAreUsageErrors) {
  RunResult r = test::Run({BinDir() + "/cdi-importer", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--no-such-flag")) << r.err;
  RunResult help = test::Run({BinDir() + "/cdi-importer", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "--metrics-address")) << help.out;
}

// ---------------------------------------------------------------------------
// Archives

TEST_F(PodTest, ArchivesAreExtractedIntoTheVolume) {
  for (const char* name : {"/tree.tar", "/tree.tar.gz"}) {
    PodHarness pod;
    // Preallocation never applies to archives, as in CDI.
    PodResult r = pod.Run(Archive(name, {{"PREALLOCATION", "true"},
                                         {"FILESYSTEM_OVERHEAD", "0.06"},
                                         {"IMPORTER_IMAGE_SIZE", "1Gi"}}));
    ASSERT_EQ(r.exit_code, 0) << name << r.log;
    EXPECT_EQ(r.termination, kSuccess) << name;
    EXPECT_EQ(ListDir(pod.data_dir()), (std::vector<std::string>{"README.txt", "vm"})) << name;
    for (const TreeFile& f : site_->tree) {
      std::string path = pod.data_dir() + "/" + f.path;
      EXPECT_EQ(ReadFile(path), f.content) << name << " " << f.path;
      EXPECT_EQ(Sh("stat -c %a " + path), std::string(f.mode) + "\n") << name << " " << f.path;
    }
    EXPECT_EQ(Sh("stat -c %a " + pod.data_dir() + "/vm/config"), "750\n");
    EXPECT_EQ(ListDir(pod.data_dir() + "/vm/empty"), std::vector<std::string>{});
    // The zero run inside vm/disk.img stayed a hole.
    EXPECT_LT(AllocatedBytes(pod.data_dir() + "/vm/disk.img"), 200000u + 131072u);
    EXPECT_TRUE(Contains(
        r.log, "Successfully completed fsync(" + pod.data_dir() + ") syscall, committed to disk"))
        << r.log;
  }
}

TEST_F(PodTest, HostileArchivesAreRefusedByNameAndLeaveNothing) {
  const std::string prefix =
      "Unable to process data: Unable to transfer source data to target directory: ";
  const std::string outside = site_->outside.path();
  struct Case {
    const char* name;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"absolute", "archive entry '" + outside + "/escaped': it has an absolute path"},
      {"dotdot", "archive entry 'subdir/../../escaped': its path has a '..' component"},
      {"symlink", "archive entry 'subdir/link' is a symbolic link (to '/etc/passwd')"},
      {"hardlink", "archive entry 'hard' is a hard link (to 'good.txt')"},
      {"device", "archive entry 'dev/null' is a character device"},
      {"fifo", "archive entry 'pipe' is a FIFO (named pipe)"},
      {"large", "archive entry 'big.bin': writing " + pod_.data_dir() +
                    "/big.bin (2097152 bytes) would bring the files written to 2097164 bytes, "
                    "which is larger than the reported available storage 1048576. A larger PVC "
                    "is required"},
  };
  for (const Case& c : cases) {
    PodResult r =
        pod_.Run(Archive(std::string("/") + c.name + ".tar", {{"IMPORTER_IMAGE_SIZE", "1Mi"}}));
    EXPECT_EQ(r.exit_code, 1) << c.name;
    EXPECT_TRUE(r.termination.starts_with(prefix + c.expected)) << c.name << ": " << r.termination;
    // good.txt and subdir/ came first and were extracted: they are gone again.
    EXPECT_EQ(DataDir(), std::vector<std::string>{}) << c.name;
    EXPECT_EQ(ListDir(outside), std::vector<std::string>{}) << c.name;
    EXPECT_FALSE(FileExists(pod_.work("escaped"))) << c.name;
  }
}

TEST_F(PodTest, ArchiveChecksumMismatchRemovesWhatWasExtracted) {
  std::string md5 = Sh("md5sum " + site_->www.File("tree.tar.gz") + " | cut -d' ' -f1");
  md5.pop_back();
  std::string wrong(32, 'f');
  PodResult r = pod_.Run(Archive("/tree.tar.gz", {{"IMPORTER_CHECKSUM", "md5:" + wrong}}));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.termination,
            "{\"message\":\"Unable to process data: Unable to transfer source data to target "
            "directory: checksum validation failed: checksum mismatch: expected md5:" +
                wrong + ", calculated md5:" + md5 + "\"}");
  EXPECT_EQ(DataDir(), std::vector<std::string>{});
}

TEST_F(PodTest, ArchiveOntoABlockVolumeIsRefused) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 4 << 20, .fill = 0xAA});
  pod_.block_device = device.path();
  PodResult r = pod_.Run(Archive("/tree.tar"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.termination,
            "Unable to process data: archive content (IMPORTER_CONTENTTYPE=archive) is extracted "
            "into a filesystem volume, and this pod has a block volume (" +
                device.path() + ")");
  EXPECT_EQ(Sha256File(device.path()), Sha256Bytes(std::string(4 << 20, '\xAA')));
}

}  // namespace
}  // namespace cdi::test
