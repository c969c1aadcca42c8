// cdi-uploadserver end to end: the built binary under CDI's environment,
// real TLS with generated CAs, curl as the client (as CDI's upload proxy
// forwards: a client certificate, POST to /v1beta1/...), images made by
// qemu-img and compressed by gzip, xz and zstd, compared byte for byte.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/support/certs.h"
#include "test/support/drop_relay.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

constexpr uint64_t kVirtualSize = 8ull << 20;
constexpr const char* kComplete = R"({"preallocationApplied":false,"message":"Upload Complete"})";
constexpr const char* kClientName = "cdi-test client";

// The guest (random MiBs among zero ones) and its containers, made once.
std::string Corpus() {
  return CachedFixtureDir("uploadserver-v2", [](const std::string& dir) {
    std::string raw(kVirtualSize, '\0');
    std::mt19937 rng(7);
    for (uint64_t mib = 0; mib < kVirtualSize >> 20; ++mib) {
      if (rng() % 3 == 0) continue;
      std::string data = RandomBytes(1 << 20, static_cast<uint32_t>(mib + 100));
      std::copy(data.begin(), data.end(), raw.begin() + static_cast<long>(mib << 20));
    }
    WriteFile(dir + "/guest.raw", raw);
    Sh("cd " + dir +
       " && qemu-img convert -q -c -f raw -O qcow2 guest.raw guest.qcow2"
       " && qemu-img convert -q -f raw -O vpc -o subformat=dynamic,force_size=on guest.raw guest.vhd"
       " && gzip -k guest.raw && xz -k -T1 guest.qcow2 && zstd -q guest.raw -o guest.raw.zst"
       " && mkdir -p tree/sub && printf hello > tree/a.txt && printf world > tree/sub/b.txt"
       " && tar -C tree -czf tree.tar.gz .");
  });
}

// Clone streams as CDI's cloner sends them: framed by the Go snappy package
// the cloner uses (test/tools/snappy_frame.go, built in GOPATH mode against
// Debian's golang-github-golang-snappy-dev). Empty when Go or the package is
// missing.
std::string CloneCorpus() {
  if (!HaveProgram("go") || !FileExists("/usr/share/gocode/src/github.com/golang/snappy/snappy.go")) {
    return "";
  }
  const std::string corpus = Corpus();
  return CachedFixtureDir("uploadserver-clone-v2", [&](const std::string& dir) {
    // A filesystem volume as CDI's cloner streams it: tar -S of its root.
    Sh("cd " + dir + " && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=" + dir +
       "/gocache go build -o snappy_frame " + SourceDir() + "/test/tools/snappy_frame.go" +
       " && ./snappy_frame < " + corpus + "/guest.raw > guest.raw.sz" +
       " && ./snappy_frame < " + corpus + "/guest.qcow2 > guest.qcow2.sz && rm -rf gocache" +
       " && mkdir -p volume/sub && cp --sparse=always " + corpus + "/guest.raw volume/disk.img" +
       " && printf hello > volume/sub/a.txt && tar -S -C volume -cf - . | ./snappy_frame" +
       " > filesystem.tar.sz && rm -rf volume");
  });
}

std::string TrimmedSh(const std::string& command) {
  std::string out = Sh(command);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

class UploadServer {
 public:
  // `wait_listening`: return once the server listens (a failure when it
  // does not); false returns at once (a server that may end first).
  explicit UploadServer(std::map<std::string, std::string> extra_env = {},
                        std::vector<std::string> extra_args = {}, bool wait_listening = true) {
    Sh("mkdir -p " + data_dir());
    const TestCertificates& certs = SharedTestCertificates();
    std::map<std::string, std::string> env = {
        {"LISTEN_ADDRESS", "127.0.0.1"},      {"LISTEN_PORT", std::to_string(port_)},
        {"TLS_KEY_FILE", certs.server.key},   {"TLS_CERT_FILE", certs.server.cert},
        {"CLIENT_CERT_FILE", certs.ca.cert},  {"CLIENT_NAME", kClientName},
        {"DESTINATION", data_dir() + "/disk.img"}};
    for (auto& [name, value] : extra_env) env[name] = value;
    RunOptions options;
    options.env = env;
    options.unset_env = {"UPLOAD_IMAGE_SIZE", "FILESYSTEM_OVERHEAD", "PREALLOCATION", "DEADLINE",
                         "TLS_CIPHERS", "TLS_MIN_VERSION"};
    std::vector<std::string> argv = {BinDir() + "/cdi-uploadserver", "--data-dir", data_dir(),
                                     "--scratch-dir", work_.File("scratch"), "--termination-log",
                                     termination_log(), "-v=1"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<BackgroundProcess>(argv, log_path(), options);
    if (wait_listening && !WaitListening(port_, *process_, std::chrono::seconds(20))) {
      ADD_FAILURE() << "the upload server did not listen:\n" << Log();
    }
  }

  std::string data_dir() const { return work_.File("data"); }
  std::string disk() const { return data_dir() + "/disk.img"; }
  std::string termination_log() const { return work_.File("termination-log"); }
  std::string log_path() const { return work_.File("server.log"); }
  std::string Log() const { return FileExists(log_path()) ? ReadFile(log_path()) : ""; }
  std::string Url(const std::string& path) const {
    return "https://localhost:" + std::to_string(port_) + path;
  }
  uint16_t port() const { return port_; }

  struct Answer {
    std::string code;  // "200", or "000" when there was no HTTP answer
    std::string body;
    std::string err;
  };
  // curl with the test CA, the client certificate (unless `cert` says
  // otherwise) and `args`.
  Answer Curl(const std::vector<std::string>& args, const CertKey* cert = nullptr,
              bool with_cert = true) const {
    const TestCertificates& certs = SharedTestCertificates();
    const std::string out = work_.File("answer");
    std::vector<std::string> argv = {"curl", "-sS", "--cacert", certs.ca.cert, "-o", out, "-w",
                                     "%{http_code}"};
    if (with_cert) {
      const CertKey& client = cert != nullptr ? *cert : certs.client;
      argv.insert(argv.end(), {"--cert", client.cert, "--key", client.key});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    Sh("rm -f " + out);
    RunResult r = Run(argv);
    return {r.out, FileExists(out) ? ReadFile(out) : "", r.err};
  }

  // Waits for the server to exit; its exit code.
  int Wait(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    return process_->Wait(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  }
  std::string Termination() const {
    return FileExists(termination_log()) ? ReadFile(termination_log()) : "";
  }

 private:
  TempDir work_;
  uint16_t port_ = UnusedPort();
  std::unique_ptr<BackgroundProcess> process_;
};

void ExpectDiskIsGuest(const std::string& disk, const std::string& corpus) {
  ASSERT_TRUE(FileExists(disk));
  const std::string guest = ReadFile(corpus + "/guest.raw");
  const std::string written = ReadFile(disk);
  EXPECT_EQ(written.size(), guest.size());
  EXPECT_TRUE(written == guest) << FirstDifference(written, guest);
}

TEST(UploadServerTest, HealthzAndSyncQcow2Upload) {
  const std::string corpus = Corpus();
  UploadServer server;
  auto health = server.Curl({server.Url("/healthz")}, nullptr, false);
  EXPECT_EQ(health.code, "200");
  EXPECT_EQ(health.body, "OK");
  auto answer = server.Curl({"--data-binary", "@" + corpus + "/guest.qcow2",
                             server.Url("/v1beta1/upload")});
  EXPECT_EQ(answer.code, "200") << answer.body << answer.err << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(server.Termination(), kComplete);
  ExpectDiskIsGuest(server.disk(), corpus);
  // Converted while it arrived: the zero MiBs are holes.
  EXPECT_LT(AllocatedBytes(server.disk()), kVirtualSize);
}

TEST(UploadServerTest, AsyncUploadAnswersHeadAndTakesGzipChunked) {
  const std::string corpus = Corpus();
  UploadServer server;
  // The proxy asks whether async is supported: no certificate needed.
  auto head = server.Curl({"-I", server.Url("/v1beta1/upload-async")}, nullptr, false);
  EXPECT_EQ(head.code, "200");
  auto answer = server.Curl({"-H", "Transfer-Encoding: chunked", "--data-binary",
                             "@" + corpus + "/guest.raw.gz", server.Url("/v1beta1/upload-async")});
  EXPECT_EQ(answer.code, "200") << answer.body << answer.err;
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(server.Termination(), kComplete);
  ExpectDiskIsGuest(server.disk(), corpus);
}

TEST(UploadServerTest, FormUploadTakesThePartNamedFile) {
  const std::string corpus = Corpus();
  UploadServer server;
  auto answer = server.Curl({"-F", "comment=not the image", "-F",
                             "file=@" + corpus + "/guest.qcow2.xz",
                             server.Url("/v1beta1/upload-form")});
  EXPECT_EQ(answer.code, "200") << answer.body << answer.err << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  ExpectDiskIsGuest(server.disk(), corpus);
  EXPECT_TRUE(Contains(server.Log(), "Ignoring part comment")) << server.Log();
}

TEST(UploadServerTest, AlphaFormAsyncTakesZstdAndVhd) {
  const std::string corpus = Corpus();
  {
    UploadServer server;
    auto answer = server.Curl({"-F", "file=@" + corpus + "/guest.raw.zst",
                               server.Url("/v1alpha1/upload-form-async")});
    EXPECT_EQ(answer.code, "200") << answer.body << answer.err;
    EXPECT_EQ(server.Wait(), 0) << server.Log();
    ExpectDiskIsGuest(server.disk(), corpus);
  }
  {
    UploadServer server;
    auto answer = server.Curl({"-T", corpus + "/guest.vhd", "-X", "POST",
                               server.Url("/v1alpha1/upload")});
    EXPECT_EQ(answer.code, "200") << answer.body << answer.err;
    EXPECT_EQ(server.Wait(), 0) << server.Log();
    ExpectDiskIsGuest(server.disk(), corpus);
  }
}

TEST(UploadServerTest, FormWithoutFilePartIsABadRequest) {
  const std::string corpus = Corpus();
  UploadServer server;
  auto answer = server.Curl({"-F", "image=@" + corpus + "/guest.qcow2",
                             server.Url("/v1beta1/upload-form")});
  EXPECT_EQ(answer.code, "400");
  EXPECT_TRUE(Contains(answer.body, "no part named 'file'")) << answer.body;
  EXPECT_FALSE(FileExists(server.disk()));
  // The server waits for the next try.
  auto retry = server.Curl({"-F", "file=@" + corpus + "/guest.qcow2",
                            server.Url("/v1beta1/upload-form")});
  EXPECT_EQ(retry.code, "200") << retry.body;
  EXPECT_EQ(server.Wait(), 0);
}

TEST(UploadServerTest, ArchiveIsExtractedIntoTheDataDirectory) {
  const std::string corpus = Corpus();
  UploadServer server;
  auto answer = server.Curl({"--data-binary", "@" + corpus + "/tree.tar.gz",
                             server.Url("/v1beta1/upload-archive")});
  EXPECT_EQ(answer.code, "200") << answer.body << answer.err << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(ReadFile(server.data_dir() + "/a.txt"), "hello");
  EXPECT_EQ(ReadFile(server.data_dir() + "/sub/b.txt"), "world");
  EXPECT_EQ(server.Termination(), kComplete);
}

TEST(UploadServerTest, ClientCertificateMustVerifyAndCarryTheClientName) {
  const std::string corpus = Corpus();
  const TestCertificates& certs = SharedTestCertificates();
  UploadServer server;
  const std::vector<std::string> upload = {"--data-binary", "@" + corpus + "/guest.qcow2",
                                           server.Url("/v1beta1/upload")};
  EXPECT_EQ(server.Curl(upload, nullptr, false).code, "401");
  EXPECT_EQ(server.Curl(upload, &certs.other_client).code, "401");
  // Verified by the CA, but not the name the server expects.
  UploadServer other_name(std::map<std::string, std::string>{{"CLIENT_NAME", "cdi-uploadproxy"}});
  EXPECT_EQ(other_name.Curl({"--data-binary", "@" + corpus + "/guest.qcow2",
                             other_name.Url("/v1beta1/upload")})
                .code,
            "401");
  EXPECT_TRUE(Contains(other_name.Log(), "is not 'cdi-uploadproxy'")) << other_name.Log();
  EXPECT_FALSE(FileExists(server.disk()));
  // Other methods: 404; unknown paths: 404.
  EXPECT_EQ(server.Curl({server.Url("/v1beta1/upload")}).code, "404");
  EXPECT_EQ(server.Curl({"-X", "POST", server.Url("/v1beta1/nothing")}).code, "404");
  EXPECT_EQ(server.Curl(upload).code, "200");
  EXPECT_EQ(server.Wait(), 0);
}

TEST(UploadServerTest, SecondUploadWhileOneRunsIs503AndAfterItIs409) {
  const std::string corpus = Corpus();
  const TestCertificates& certs = SharedTestCertificates();
  UploadServer server;
  // A slow upload: half the image, a pause, the rest (chunked from a pipe).
  const std::string slow = "(head -c 1000000 " + corpus + "/guest.qcow2; sleep 2; tail -c +1000001 " +
                           corpus + "/guest.qcow2) | curl -sS -o /dev/null -w '%{http_code}' "
                           "--cacert " + certs.ca.cert + " --cert " + certs.client.cert +
                           " --key " + certs.client.key + " -H 'Transfer-Encoding: chunked' -X POST "
                           "-T - " + server.Url("/v1beta1/upload") + " > " +
                           server.data_dir() + "/../slow-code";
  BackgroundProcess first({"sh", "-c", slow}, server.data_dir() + "/../slow.log");
  // A connection opened now whose request comes once the first upload is done.
  const std::string late = "(sleep 4; printf 'POST /v1beta1/upload HTTP/1.1\\r\\nHost: localhost\\r\\n"
                           "Content-Length: 0\\r\\n\\r\\n'; sleep 2) | openssl s_client -quiet "
                           "-connect 127.0.0.1:" + std::to_string(server.port()) +
                           " -cert " + certs.client.cert + " -key " + certs.client.key +
                           " > " + server.data_dir() + "/../late.out 2>/dev/null";
  BackgroundProcess later({"sh", "-c", late}, server.data_dir() + "/../late.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto busy = server.Curl({"--data-binary", "@" + corpus + "/guest.qcow2",
                           server.Url("/v1beta1/upload")});
  EXPECT_EQ(busy.code, "503");
  EXPECT_EQ(first.Wait(std::chrono::seconds(20)), 0);
  EXPECT_EQ(ReadFile(server.data_dir() + "/../slow-code"), "200");
  EXPECT_EQ(later.Wait(std::chrono::seconds(20)), 0);
  EXPECT_TRUE(Contains(ReadFile(server.data_dir() + "/../late.out"), "HTTP/1.1 409"))
      << ReadFile(server.data_dir() + "/../late.out");
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  ExpectDiskIsGuest(server.disk(), corpus);
}

TEST(UploadServerTest, ImageLargerThanTheVolumeIs400AndLeavesNothing) {
  const std::string corpus = Corpus();
  UploadServer server(std::map<std::string, std::string>{{"UPLOAD_IMAGE_SIZE", "4Mi"}});
  auto answer = server.Curl({"--data-binary", "@" + corpus + "/guest.qcow2",
                             server.Url("/v1beta1/upload")});
  EXPECT_EQ(answer.code, "400") << answer.err;
  EXPECT_TRUE(Contains(answer.body,
                       "Saving stream failed: effective image size is larger than the reported "
                       "available storage: "))
      << answer.body;
  EXPECT_TRUE(ListDir(server.data_dir()).empty());
  // A raw upload whose length says it does not fit, asynchronously.
  auto raw = server.Curl({"--data-binary", "@" + corpus + "/guest.raw",
                          server.Url("/v1beta1/upload-async")});
  EXPECT_EQ(raw.code, "400") << raw.err;
  EXPECT_TRUE(ListDir(server.data_dir()).empty());
  EXPECT_EQ(server.Wait(std::chrono::seconds(0)), -1) << "the server waits for another try";
}

TEST(UploadServerTest, ChecksumHeadersAreVerified) {
  const std::string corpus = Corpus();
  UploadServer server;
  const std::string sha256 =
      TrimmedSh("sha256sum " + corpus + "/guest.qcow2 | cut -d' ' -f1");
  const std::string wrong(64, '0');
  auto mismatch = server.Curl({"-H", "X-CDI-Checksum: sha256:" + wrong, "--data-binary",
                               "@" + corpus + "/guest.qcow2", server.Url("/v1beta1/upload-async")});
  EXPECT_EQ(mismatch.code, "400");
  EXPECT_TRUE(Contains(mismatch.body, "checksum mismatch: expected sha256:" + wrong)) << mismatch.body;
  EXPECT_TRUE(Contains(mismatch.body, sha256)) << mismatch.body;
  EXPECT_TRUE(ListDir(server.data_dir()).empty());
  const std::string base64 =
      TrimmedSh("openssl dgst -sha256 -binary " + corpus + "/guest.qcow2 | base64 -w0");
  auto good = server.Curl({"-H", "Repr-Digest: sha-256=:" + base64 + ":", "--data-binary",
                           "@" + corpus + "/guest.qcow2", server.Url("/v1beta1/upload")});
  EXPECT_EQ(good.code, "200") << good.body;
  EXPECT_EQ(server.Wait(), 0);
  ExpectDiskIsGuest(server.disk(), corpus);
}

TEST(UploadServerTest, DeadlinePassedEndsTheServer) {
  const std::time_t soon = std::time(nullptr) + 2;
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&soon));
  // The deadline may pass before a slow start listens: the server must end
  // either way.
  UploadServer server(std::map<std::string, std::string>{{"DEADLINE", when}}, {},
                      /*wait_listening=*/false);
  EXPECT_EQ(server.Wait(std::chrono::seconds(20)), 0) << server.Log();
  EXPECT_EQ(server.Termination(), R"({"deadlinePassed":true,"message":"Deadline Passed"})");
}

TEST(UploadServerTest, MissingTlsFilesAreRefused) {
  TempDir dir;
  RunOptions options;
  options.unset_env = {"TLS_KEY_FILE", "TLS_CERT_FILE"};
  RunResult r = test::Run({BinDir() + "/cdi-uploadserver", "--termination-log",
                     dir.File("termination-log")},
                    options);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(ReadFile(dir.File("termination-log")), "invalid TLS config"));
}

TEST(UploadServerTest, BlockDeviceCloneStreamIsWrittenRawWithItsHoles) {
  const std::string clones = CloneCorpus();
  if (clones.empty()) GTEST_SKIP() << "needs go and golang-github-golang-snappy-dev";
  const std::string corpus = Corpus();
  UploadServer server(std::map<std::string, std::string>{{"UPLOAD_IMAGE_SIZE", "1Gi"}});
  auto answer = server.Curl({"-H", "x-cdi-content-type: blockdevice-clone", "--data-binary",
                             "@" + clones + "/guest.raw.sz", server.Url("/v1beta1/upload")});
  EXPECT_EQ(answer.code, "200") << answer.body << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(server.Termination(), R"({"preallocationApplied":false,"message":"Clone Complete"})");
  // As long as the device, not the request; its zero MiBs are holes.
  ExpectDiskIsGuest(server.disk(), corpus);
  EXPECT_LT(AllocatedBytes(server.disk()), kVirtualSize);
}

TEST(UploadServerTest, BlockDeviceCloneHoldingAQcow2StaysAsItIs) {
  const std::string clones = CloneCorpus();
  if (clones.empty()) GTEST_SKIP() << "needs go and golang-github-golang-snappy-dev";
  const std::string corpus = Corpus();
  UploadServer server;
  auto answer = server.Curl({"-H", "x-cdi-content-type: blockdevice-clone", "-H",
                             "Transfer-Encoding: chunked", "--data-binary",
                             "@" + clones + "/guest.qcow2.sz", server.Url("/v1alpha1/upload")});
  EXPECT_EQ(answer.code, "200") << answer.body << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_TRUE(ReadFile(server.disk()) == ReadFile(corpus + "/guest.qcow2"));
}


TEST(UploadServerTest, FilesystemCloneStreamIsExtractedWithItsHoles) {
  const std::string clones = CloneCorpus();
  if (clones.empty()) GTEST_SKIP() << "needs go and golang-github-golang-snappy-dev";
  const std::string corpus = Corpus();
  UploadServer server(std::map<std::string, std::string>{{"UPLOAD_IMAGE_SIZE", "1Gi"}});
  auto answer = server.Curl({"-H", "x-cdi-content-type: filesystem-clone", "--data-binary",
                             "@" + clones + "/filesystem.tar.sz", server.Url("/v1beta1/upload")});
  EXPECT_EQ(answer.code, "200") << answer.body << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(server.Termination(), R"({"preallocationApplied":false,"message":"Clone Complete"})");
  ExpectDiskIsGuest(server.disk(), corpus);
  EXPECT_LT(AllocatedBytes(server.disk()), kVirtualSize);
  EXPECT_EQ(ReadFile(server.data_dir() + "/sub/a.txt"), "hello");
}

TEST(UploadServerTest, DamagedOrUnsupportedCloneStreamsAreRefused) {
  const std::string clones = CloneCorpus();
  if (clones.empty()) GTEST_SKIP() << "needs go and golang-github-golang-snappy-dev";
  UploadServer server;
  std::string damaged = ReadFile(clones + "/guest.raw.sz");
  damaged[damaged.size() / 2] ^= 0x40;
  WriteFile(server.data_dir() + "/../damaged.sz", damaged);
  auto answer = server.Curl({"-H", "x-cdi-content-type: blockdevice-clone", "--data-binary",
                             "@" + server.data_dir() + "/../damaged.sz",
                             server.Url("/v1beta1/upload")});
  EXPECT_EQ(answer.code, "500");
  EXPECT_TRUE(Contains(answer.body, "Saving stream failed: the snappy-framed stream is damaged"))
      << answer.body;
  EXPECT_TRUE(ListDir(server.data_dir()).empty());
  auto async = server.Curl({"-H", "x-cdi-content-type: blockdevice-clone", "--data-binary",
                            "@" + clones + "/guest.raw.sz", server.Url("/v1beta1/upload-async")});
  EXPECT_EQ(async.code, "500");
  EXPECT_EQ(async.body, "Saving stream failed: async clone not supported");
  auto filesystem = server.Curl({"-H", "x-cdi-content-type: filesystem-clone", "--data-binary",
                                 "@" + clones + "/guest.raw.sz", server.Url("/v1beta1/upload")});
  EXPECT_EQ(filesystem.code, "500");
  // A disk image is no tar: here its first MiB of zeros reads as the
  // archive's end, and what follows it is refused.
  EXPECT_TRUE(Contains(filesystem.body, "Saving stream failed: data follows the tar archive's end"))
      << filesystem.body;
  EXPECT_TRUE(ListDir(server.data_dir()).empty());
}

TEST(UploadServerTest, BlockVolumeUpload) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  const std::string corpus = Corpus();
  LoopDevice device({.size = kVirtualSize, .fill = 0xAB});
  UploadServer server(std::map<std::string, std::string>{{"DESTINATION", device.path()}});
  auto answer = server.Curl({"--data-binary", "@" + corpus + "/guest.qcow2",
                             server.Url("/v1beta1/upload")});
  EXPECT_EQ(answer.code, "200") << answer.body << server.Log();
  EXPECT_EQ(server.Wait(), 0);
  EXPECT_EQ(server.Termination(), kComplete);
  ExpectDiskIsGuest(device.path(), corpus);
}


// Resumable uploads: HEAD answers Upload-Offset, PATCH with Content-Range
// continues; the relay drops the connection at chosen points, as a network
// that fails under the client.

// Waits until the server's log holds `text` `count` times.
bool WaitForLog(const UploadServer& server, const std::string& text, size_t count) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < until) {
    const std::string log = server.Log();
    size_t seen = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++seen;
    if (seen >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

constexpr const char* kWaiting = "for a request that continues it";

// The value of header `name` (lowercase) in curl's dump of a header block.
std::string HeaderValue(const std::string& block, const std::string& name) {
  std::string lower = block;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lower.find(name + ":");
  if (at == std::string::npos) return "";
  size_t start = at + name.size() + 1;
  while (start < block.size() && block[start] == ' ') ++start;
  return block.substr(start, block.find('\r', start) - start);
}

uint64_t UploadOffset(const UploadServer& server) {
  auto head = server.Curl({"-I", server.Url("/v1beta1/upload")});
  EXPECT_EQ(head.code, "200") << head.err;
  return std::stoull("0" + HeaderValue(head.body, "upload-offset"));
}

// PATCH with the image's bytes from `first` to `end` (exclusive) to `url`.
UploadServer::Answer SendPart(const UploadServer& server, const std::string& url,
                              const std::string& image, uint64_t first, uint64_t end,
                              const std::string& scratch) {
  const std::string whole = ReadFile(image);
  WriteFile(scratch, whole.substr(first, end - first));
  return server.Curl({"-X", "PATCH", "-H",
                      "Content-Range: bytes " + std::to_string(first) + "-" +
                          std::to_string(end - 1) + "/" + std::to_string(whole.size()),
                      "--data-binary", "@" + scratch, url});
}

// Sends `image` to `path` through a relay that drops the connection after
// each of `drops` bytes, continuing after every drop at the offset HEAD
// answers; the last answer.
UploadServer::Answer UploadThroughDrops(UploadServer& server, const std::string& image,
                                        const std::string& path,
                                        const std::vector<uint64_t>& drops) {
  DropRelay relay(server.port(), drops);
  const std::string url = "https://localhost:" + std::to_string(relay.port()) + path;
  const uint64_t size = ReadFile(image).size();
  auto answer = server.Curl({"--data-binary", "@" + image, url});
  uint64_t last = 0;
  for (size_t drop = 1; drop <= drops.size(); ++drop) {
    EXPECT_NE(answer.code, "200") << "the relay should have dropped the upload";
    EXPECT_TRUE(WaitForLog(server, kWaiting, drop)) << server.Log();
    const uint64_t offset = UploadOffset(server);
    EXPECT_GT(offset, last) << "each try moves the upload on";
    EXPECT_LT(offset, size);
    last = offset;
    answer = SendPart(server, url, image, offset, size, server.data_dir() + "/../part");
  }
  return answer;
}

TEST(UploadServerTest, RawUploadDroppedAtSeveralOffsetsIsContinuedWhole) {
  const std::string corpus = Corpus();
  UploadServer server;
  auto answer =
      UploadThroughDrops(server, corpus + "/guest.raw", "/v1beta1/upload", {1000000, 3000000, 2500000});
  EXPECT_EQ(answer.code, "200") << answer.body << answer.err << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(server.Termination(), kComplete);
  ExpectDiskIsGuest(server.disk(), corpus);
  EXPECT_LT(AllocatedBytes(server.disk()), kVirtualSize);
}

TEST(UploadServerTest, CompressedQcow2DroppedMidWayIsContinuedAsync) {
  const std::string corpus = Corpus();
  UploadServer server;
  const uint64_t size = ReadFile(corpus + "/guest.qcow2.xz").size();
  auto answer = UploadThroughDrops(server, corpus + "/guest.qcow2.xz", "/v1beta1/upload-async",
                                   {size / 4, size / 3});
  EXPECT_EQ(answer.code, "200") << answer.body << answer.err << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  // What qemu-img makes of the image, byte for byte.
  Sh("qemu-img convert -q -f qcow2 -O raw " + corpus + "/guest.qcow2 " + server.data_dir() +
     "/../expected.raw");
  EXPECT_TRUE(ReadFile(server.disk()) == ReadFile(server.data_dir() + "/../expected.raw"));
}

TEST(UploadServerTest, ContinuationAtTheWrongOffsetIsRefusedAndTheUploadGoesOn) {
  const std::string corpus = Corpus();
  const std::string image = corpus + "/guest.raw.gz";
  const uint64_t size = ReadFile(image).size();
  const std::string scratch = TrimmedSh("mktemp -u /tmp/cdi-part-XXXXXX");
  UploadServer server(std::map<std::string, std::string>{{"OWNER_UID", "upload-uid"}});
  DropRelay relay(server.port(), {size / 3});
  auto first = server.Curl({"--data-binary", "@" + image,
                            "https://localhost:" + std::to_string(relay.port()) + "/v1beta1/upload"});
  EXPECT_NE(first.code, "200");
  ASSERT_TRUE(WaitForLog(server, kWaiting, 1)) << server.Log();
  const uint64_t offset = UploadOffset(server);
  ASSERT_GT(offset, 0u);
  const std::string url = server.Url("/v1beta1/upload");
  // A body that does not continue where the upload is.
  auto wrong = SendPart(server, url, image, offset + 1, size, scratch);
  EXPECT_EQ(wrong.code, "416");
  EXPECT_TRUE(Contains(wrong.body, "the upload continues at byte " + std::to_string(offset)))
      << wrong.body;
  auto early = SendPart(server, url, image, offset - 1, size, scratch);
  EXPECT_EQ(early.code, "416");
  // No Content-Range, or one that is not the upload's length.
  auto missing = server.Curl({"-X", "PATCH", "--data-binary", "@" + image, url});
  EXPECT_EQ(missing.code, "400");
  EXPECT_TRUE(Contains(missing.body, "Content-Range: bytes FIRST-LAST/TOTAL")) << missing.body;
  auto other_length = server.Curl({"-X", "PATCH", "-H",
                                   "Content-Range: bytes " + std::to_string(offset) + "-" +
                                       std::to_string(offset) + "/" + std::to_string(size + 1),
                                   "--data-binary", "x", url});
  EXPECT_EQ(other_length.code, "400");
  EXPECT_TRUE(Contains(other_length.body, "the upload is " + std::to_string(size) + " bytes long"))
      << other_length.body;
  // Without a client certificate: 401, whatever the offset.
  EXPECT_EQ(server.Curl({"-X", "PATCH", url}, nullptr, false).code, "401");
  // A part of the rest: 204 and the new offset; then the rest.
  const uint64_t middle = offset + (size - offset) / 2;
  auto part = SendPart(server, url, image, offset, middle, scratch);
  EXPECT_EQ(part.code, "204") << part.body << server.Log();
  EXPECT_EQ(UploadOffset(server), middle);
  // The importer pod's progress metric, and the bytes received, on /metrics
  // (no client certificate needed, as a scraper has none).
  auto metrics = server.Curl({server.Url("/metrics")}, nullptr, false);
  EXPECT_EQ(metrics.code, "200");
  EXPECT_TRUE(Contains(metrics.body, "kubevirt_cdi_import_progress_total{ownerUID=\"upload-uid\"} "))
      << metrics.body;
  EXPECT_TRUE(Contains(metrics.body, "kubevirt_cdi_upload_bytes_received_total{ownerUID=\"upload-uid\"} "))
      << metrics.body;
  auto rest = SendPart(server, url, image, middle, size, scratch);
  Sh("rm -f " + scratch);
  EXPECT_EQ(rest.code, "200") << rest.body << server.Log();
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  ExpectDiskIsGuest(server.disk(), corpus);
}

TEST(UploadServerTest, DroppedUploadNotContinuedFailsCleanlyAndANewOneReplacesIt) {
  const std::string corpus = Corpus();
  const std::string image = corpus + "/guest.qcow2";
  const uint64_t size = ReadFile(image).size();
  {
    // Nothing continues it within --resume-wait: it fails as a dropped
    // upload does, what it wrote is removed, a continuation finds nothing.
    UploadServer server({}, {"--resume-wait", "0.5"});
    DropRelay relay(server.port(), {size / 2});
    auto first = server.Curl({"--data-binary", "@" + image,
                              "https://localhost:" + std::to_string(relay.port()) +
                                  "/v1beta1/upload"});
    EXPECT_NE(first.code, "200");
    EXPECT_TRUE(WaitForLog(server, "no request continued it within", 1)) << server.Log();
    EXPECT_TRUE(WaitForLog(server, "Saving stream failed", 1)) << server.Log();
    EXPECT_EQ(UploadOffset(server), 0u);
    EXPECT_TRUE(ListDir(server.data_dir()).empty());
    auto late = SendPart(server, server.Url("/v1beta1/upload"), image, size / 4, size,
                         server.data_dir() + "/../part");
    EXPECT_EQ(late.code, "404");
    EXPECT_TRUE(Contains(late.body, "send the whole image with POST")) << late.body;
  }
  {
    // A client that starts over (virtctl) while the upload waits: the new
    // upload replaces it.
    UploadServer server;
    DropRelay relay(server.port(), {size / 2});
    auto first = server.Curl({"--data-binary", "@" + image,
                              "https://localhost:" + std::to_string(relay.port()) +
                                  "/v1beta1/upload"});
    EXPECT_NE(first.code, "200");
    ASSERT_TRUE(WaitForLog(server, kWaiting, 1)) << server.Log();
    auto again = server.Curl({"--data-binary", "@" + image, server.Url("/v1beta1/upload")});
    EXPECT_EQ(again.code, "200") << again.body << server.Log();
    EXPECT_EQ(server.Wait(), 0) << server.Log();
    ExpectDiskIsGuest(server.disk(), corpus);
  }
}


// cdi-image upload: the client, over real TLS, continuing on its own.
RunResult CdiImageUpload(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinDir() + "/cdi-image", "upload", "--retry-delay", "0.1",
                                   "--progress", "plain"};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::Run(argv);
}

TEST(UploadServerTest, CdiImageUploadContinuesDroppedConnectionsOnItsOwn) {
  const std::string corpus = Corpus();
  const TestCertificates& certs = SharedTestCertificates();
  const std::string image = corpus + "/guest.qcow2";
  const uint64_t size = ReadFile(image).size();
  UploadServer server;
  DropRelay relay(server.port(), {size / 3, size / 4});
  RunResult r = CdiImageUpload({"--ca-bundle", certs.ca.cert, "--client-cert", certs.client.cert,
                                "--client-key", certs.client.key, image,
                                "https://localhost:" + std::to_string(relay.port()) +
                                    "/v1beta1/upload"});
  EXPECT_EQ(r.exit_code, 0) << r.err << server.Log();
  EXPECT_TRUE(Contains(r.out, "continued ")) << r.out << r.err;
  EXPECT_TRUE(Contains(r.err, "sending the rest")) << r.err;
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  EXPECT_EQ(server.Termination(), kComplete);
  // The client sent the image's digest, and the server checked it.
  EXPECT_TRUE(Contains(server.Log(), "Verifying the upload against sha256:" +
                                         TrimmedSh("sha256sum " + image + " | cut -d' ' -f1")))
      << server.Log();
  ExpectDiskIsGuest(server.disk(), corpus);
}

TEST(UploadServerTest, CdiImageUploadTlsAndRefusals) {
  const std::string corpus = Corpus();
  const TestCertificates& certs = SharedTestCertificates();
  const std::string image = corpus + "/guest.raw.zst";
  UploadServer server;
  const std::string url = server.Url("/v1beta1/upload-async");
  // The server's CA is not trusted: a TLS failure, not retried.
  RunResult untrusted = CdiImageUpload({"--client-cert", certs.client.cert, "--client-key",
                                        certs.client.key, image, url});
  EXPECT_NE(untrusted.exit_code, 0);
  EXPECT_TRUE(Contains(untrusted.err, "certificate")) << untrusted.err;
  // A client certificate the server refuses: 401, with what to check.
  RunResult refused = CdiImageUpload({"--ca-bundle", certs.ca.cert, "--client-cert",
                                      certs.other_client.cert, "--client-key",
                                      certs.other_client.key, image, url});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(Contains(refused.err, "answered HTTP 401")) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "--client-cert")) << refused.err;
  EXPECT_FALSE(FileExists(server.disk()));
  RunResult half = CdiImageUpload({"--client-cert", certs.client.cert, image, url});
  EXPECT_NE(half.exit_code, 0);
  // --insecure: the certificate goes unchecked, the upload goes through.
  RunResult insecure = CdiImageUpload({"--insecure", "--client-cert", certs.client.cert,
                                       "--client-key", certs.client.key, "--token", "t0ken",
                                       image, url});
  EXPECT_EQ(insecure.exit_code, 0) << insecure.err;
  EXPECT_EQ(server.Wait(), 0) << server.Log();
  ExpectDiskIsGuest(server.disk(), corpus);
}

}  // namespace
}  // namespace cdi::test
