// cdi-image import end to end when things go wrong: connections that drop or
// stall (resumed, byte-identical), servers that refuse for a while (retried)
// or for good (not retried), proxies, storage that fills up or fails (the
// exit code tells which), and signals (a clean stop, whatever the import is
// waiting for).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "cdi/import.h"
#include "test/e2e/e2e_util.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/proxy_server.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

size_t Count(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

constexpr size_t kImageSize = 4 << 20;

// Retries on, with short waits (unless `more` sets --retry-delay); progress off.
std::vector<std::string> Import(const std::string& url, const std::string& target,
                                std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"import", url, target, "--progress", "none", "-v"};
  if (std::find(more.begin(), more.end(), "--retry-delay") == more.end()) {
    args.insert(args.end(), {"--retry-delay", "0.01"});
  }
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// The test servers put 127.0.0.1 into no_proxy; proxies are given here
// explicitly, and the variables a child would inherit are cleared.
RunOptions NoProxyVariables() {
  RunOptions options;
  options.unset_env = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",   "no_proxy",
                       "NO_PROXY",   "all_proxy",  "ALL_PROXY",   "REQUEST_METHOD"};
  return options;
}

class ResilienceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = RandomBytes(kImageSize, 77);  // no zero block: every byte is written
    WriteFile(www_.File("disk.raw"), image_);
  }

  std::string Target() const { return out_.File("disk.img"); }
  void ExpectNothingLeft() { EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{}); }

  TempDir www_;
  TempDir out_;
  std::string image_;
};

// ---------------------------------------------------------------------------
// The network

TEST_F(ResilienceTest, ThreeDropsAreResumedAndTheImageIsByteIdentical) {
  FaultServer server(www_.path(), R"({"/disk.raw": {
      "file": "disk.raw", "close_after": 1000000, "times": 1,
      "then": {"file": "disk.raw", "stall_after": 2000000, "times": 1,
               "then": {"file": "disk.raw", "close_after": 3000000, "times": 1}}}})");
  RunResult r = CdiImage(Import(server.Url("/disk.raw"), Target(), {"--stall-timeout", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(Target()), Sha256Bytes(image_));
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=1000000-");
  EXPECT_EQ(requests[2].Header("range"), "bytes=2000000-");
  EXPECT_EQ(requests[3].Header("range"), "bytes=3000000-");
  // Nothing was downloaded twice.
  EXPECT_EQ(server.BytesSent("/disk.raw", 4), kImageSize);
  EXPECT_EQ(Count(r.err, "warning: "), 3u) << r.err;
  EXPECT_TRUE(Contains(r.err,
                       "warning: stalled: less than 1024 bytes/s for 1 s, after 2000000 of "
                       "4194304 bytes from " +
                           server.Url("/disk.raw") + "; retry 1 of 5 in "))
      << r.err;
}

TEST_F(ResilienceTest, TheDecoderAndTheChecksumContinueAcrossResumes) {
  Sh("cd " + www_.path() + " && gzip -1 -k disk.raw");
  const std::string digest = Sh("sha256sum " + www_.File("disk.raw.gz") + " | cut -d' ' -f1");
  FaultServer server(www_.path(),
                     R"({"/disk.raw.gz": {"file": "disk.raw.gz", "close_every": 700000}})");
  RunResult r = CdiImage(Import(server.Url("/disk.raw.gz"), Target(),
                                {"--checksum", "sha256:" + digest.substr(0, 64)}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(Target()), Sha256Bytes(image_));
  EXPECT_GE(server.RequestsFor("/disk.raw.gz").size(), 2u);
  EXPECT_TRUE(Contains(r.err, "Checksum verification passed: sha256:" + digest.substr(0, 64)))
      << r.err;
}

TEST_F(ResilienceTest, ServiceUnavailableIsRetriedThenServed) {
  FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "status": 503,
                                      "headers": {"Retry-After": "0"}, "times": 2}})");
  RunResult r = CdiImage(Import(server.Url("/disk.raw"), Target()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(Target()), Sha256Bytes(image_));
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 3u);
  EXPECT_TRUE(Contains(r.err, "warning: HTTP 503 Service Unavailable from " +
                                  server.Url("/disk.raw") +
                                  "; retry 2 of 5 in 0.0 s (as Retry-After asks)"))
      << r.err;
}

TEST_F(ResilienceTest, RetriesAndTheirBudgetComeFromTheFlags) {
  FaultServer server(www_.path(), R"({"/disk.raw": {"status": 502}})");
  RunResult r = CdiImage(Import(server.Url("/disk.raw"), Target(), {"--retries", "2"}));
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_TRUE(Contains(r.err, "error: giving up after 2 retries in ")) << r.err;
  EXPECT_TRUE(Contains(r.err, ": HTTP 502 Bad Gateway from " + server.Url("/disk.raw") + "\n"))
      << r.err;
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 3u);
  ExpectNothingLeft();

  RunResult none = CdiImage(Import(server.Url("/disk.raw"), Target(), {"--retries", "0"}));
  EXPECT_EQ(none.exit_code, 5);
  EXPECT_TRUE(Contains(none.err, "error: HTTP 502 Bad Gateway from " + server.Url("/disk.raw")))
      << none.err;
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 4u);

  RunResult budget =
      CdiImage(Import(server.Url("/disk.raw"), Target(),
                      {"--retries", "100", "--retry-delay", "0.4", "--retry-budget", "1"}));
  EXPECT_EQ(budget.exit_code, 5);
  // With jitter, one or two retries fit in the budget.
  EXPECT_TRUE(Contains(budget.err, "error: giving up after ")) << budget.err;
  EXPECT_TRUE(Contains(budget.err, ": the retry budget of 1 s would be spent: HTTP 502"))
      << budget.err;
}

TEST_F(ResilienceTest, PermanentFailuresAreNeverRetried) {
  // A qcow2 image cut in half: served completely, it is corrupt.
  Sh("qemu-img convert -f raw -O qcow2 " + www_.File("disk.raw") + " " + www_.File("bad.qcow2") +
     " && truncate -s 1M " + www_.File("bad.qcow2"));
  // The 4 MiB image with a second Content-Length of 2 MiB (once imported as a
  // 2 MiB disk); a 10 MB header line; 400 KB of headers.
  FaultServer server(www_.path(), R"({"/gone": {"status": 404},
      "/forbidden": {"status": 403},
      "/dup": {"file": "disk.raw", "header_lines": [["Content-Length", "2097152"]]},
      "/bigheader": {"file": "disk.raw", "filler_headers": {"count": 1, "bytes": 10485760}},
      "/manyheaders": {"file": "disk.raw", "filler_headers": {"count": 400, "bytes": 1000}}})");
  struct Case {
    std::string path;
    std::vector<std::string> flags;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"/gone", {}, 5, "error: HTTP 404 Not Found from " + server.Url("/gone")},
      {"/forbidden", {}, 5, "error: HTTP 403 Forbidden from " + server.Url("/forbidden")},
      {"/dup", {}, 5,
       "error: conflicting Content-Length headers from " + server.Url("/dup") +
           ": 'Content-Length: 4194304', 'Content-Length: 2097152'"},
      {"/bigheader", {}, 5,
       "error: the response from " + server.Url("/bigheader") +
           " has a header line longer than libcurl's limit of 100 KiB"},
      {"/manyheaders", {}, 5,
       "error: the response from " + server.Url("/manyheaders") +
           " has headers larger than libcurl's limit of 300 KiB in all"},
      {"/bad.qcow2", {}, 4, "error: "},
      {"/disk.raw", {"--checksum", "sha256:" + std::string(64, '0')}, 9, "checksum mismatch"},
      {"/disk.raw", {"--size", "1Mi"}, 7, "is larger than the reported available storage"},
  };
  for (const Case& c : cases) {
    size_t before = server.RequestsFor(c.path).size();
    std::vector<std::string> flags = c.flags;
    flags.insert(flags.end(), {"--retries", "5", "--retry-delay", "1"});
    RunResult r = CdiImage(Import(server.Url(c.path), Target(), flags));
    EXPECT_EQ(r.exit_code, c.exit_code) << c.path << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << c.path << ": " << r.err;
    EXPECT_FALSE(Contains(r.err, "retry")) << c.path << ": " << r.err;
    EXPECT_EQ(server.RequestsFor(c.path).size(), before + 1) << c.path;
    ExpectNothingLeft();
  }
  RunResult dns =
      CdiImage(Import("http://no-such-host.invalid/disk.raw", Target(), {"--retry-delay", "1"}));
  EXPECT_EQ(dns.exit_code, 5);
  EXPECT_TRUE(Contains(dns.err,
                       "error: cannot resolve host name 'no-such-host.invalid' of "
                       "http://no-such-host.invalid/disk.raw: no such host"))
      << dns.err;
  EXPECT_FALSE(Contains(dns.err, "retry")) << dns.err;
}

// ---------------------------------------------------------------------------
// Proxies

TEST_F(ResilienceTest, ProxyVariablesAndFlags) {
  NginxServer origin({.root = www_.path()});
  ProxyServer proxy;
  const std::string url = origin.Url("/disk.raw");
  const std::string through = "GET " + url + " HTTP/1.1";
  // http_proxy, and HTTP_PROXY (older CDI controllers set the upper-case one).
  for (const char* variable : {"http_proxy", "HTTP_PROXY"}) {
    RunOptions options = NoProxyVariables();
    options.env[variable] = proxy.Url();
    RunResult r = CdiImage(Import(url, Target(), {"--force"}), options);
    ASSERT_EQ(r.exit_code, 0) << variable << ": " << r.err;
    EXPECT_EQ(Sha256File(Target()), Sha256Bytes(image_));
  }
  EXPECT_EQ(proxy.WaitForRequests(2), (std::vector<std::string>{through, through}));

  // In a CGI program HTTP_PROXY comes from a request header: not trusted.
  RunOptions cgi = NoProxyVariables();
  cgi.env["HTTP_PROXY"] = proxy.Url();
  cgi.env["REQUEST_METHOD"] = "GET";
  ASSERT_EQ(CdiImage(Import(url, Target(), {"--force"}), cgi).exit_code, 0);
  // no_proxy, and the flags, which win over the variables.
  RunOptions bypass = NoProxyVariables();
  bypass.env["http_proxy"] = proxy.Url();
  bypass.env["no_proxy"] = "localhost,127.0.0.0/8";
  ASSERT_EQ(CdiImage(Import(url, Target(), {"--force"}), bypass).exit_code, 0);
  ASSERT_EQ(CdiImage(Import(url, Target(), {"--force", "--proxy", ""}), bypass).exit_code, 0);
  EXPECT_EQ(proxy.RequestLines().size(), 2u);
  ASSERT_EQ(
      CdiImage(Import(url, Target(), {"--force", "--proxy", proxy.Url(), "--no-proxy", ""}), bypass)
          .exit_code,
      0);
  EXPECT_EQ(proxy.WaitForRequests(3).size(), 3u);
  EXPECT_EQ(origin.WaitForRequests(6).size(), 6u);
}

TEST_F(ResilienceTest, AnUnreachableProxyIsAClearNetworkError) {
  const std::string proxy = "http://user:proxy-SECRET@127.0.0.1:" + std::to_string(UnusedPort());
  RunOptions options = NoProxyVariables();
  options.env["https_proxy"] = proxy;
  RunResult r =
      CdiImage(Import("https://images.example/disk.raw", Target(), {"--retries", "1"}), options);
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_TRUE(Contains(r.err, "error: giving up after 1 retry in ")) << r.err;
  EXPECT_TRUE(Contains(r.err, ": cannot connect to the proxy " + RedactUrl(proxy) +
                                  " (from https_proxy): connection refused (for "
                                  "https://images.example/disk.raw); check the proxy settings"))
      << r.err;
  EXPECT_FALSE(Contains(r.err + r.out, "proxy-SECRET")) << r.err;
  ExpectNothingLeft();
}

// ---------------------------------------------------------------------------
// Storage

// Runs cdi-image with the fault shim preloaded; `call` and `error` as the
// shim's header describes. The shim's log of calls goes to `shim_log`.
RunResult ImportWithFault(const std::string& url, const std::string& target,
                          const std::string& call, const std::string& error, uint64_t after,
                          const std::string& shim_log) {
  RunOptions options;
  options.env = {{"LD_PRELOAD", CDI_FAULT_PRELOAD},
                 // The target and its partial file, ".disk.img.partial".
                 {"CDI_FAULT_PATH", "disk.img"},
                 {"CDI_FAULT_CALL", call},
                 {"CDI_FAULT_ERRNO", error},
                 {"CDI_FAULT_AFTER", std::to_string(after)},
                 {"CDI_FAULT_LOG", shim_log}};
  return CdiImage(Import(url, target, {"--retries", "5"}), options);
}

TEST_F(ResilienceTest, WriteFailuresNameTheTargetAndTheOffsetAndAreNotRetried) {
  NginxServer server({.root = www_.path()});
  struct Case {
    const char* error;
    int exit_code;
    const char* cause;
  };
  for (const Case& c : {Case{"ENOSPC", 7,
                             "no space left on device; the image does not fit: a "
                             "larger volume is required"},
                        Case{"EDQUOT", 7,
                             "disk quota exceeded; the image does not fit: a larger "
                             "volume (or quota) is required"},
                        Case{"EIO", 8,
                             "input/output error: the storage failed; check the volume "
                             "and the node's kernel log"}}) {
    const std::string shim_log = out_.File("..") + "/shim-" + std::to_string(getpid()) + ".log";
    RunResult r =
        ImportWithFault(server.Url("/disk.raw"), Target(), "write", c.error, 1536000, shim_log);
    std::string calls = FileExists(shim_log) ? ReadFile(shim_log) : "";
    std::remove(shim_log.c_str());
    EXPECT_EQ(r.exit_code, c.exit_code) << c.error << ": " << r.err;
    // The write that crossed the mark was cut short there; the rest of it failed.
    EXPECT_TRUE(Contains(r.err, " bytes to " + Target() + " at offset 1536000: " + c.cause))
        << c.error << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "error: writing ")) << r.err;
    EXPECT_EQ(Count(calls, std::string(" ") + c.error + "\n"), 1u) << c.error << ":\n" << calls;
    EXPECT_EQ(Count(calls, "fsync"), 0u) << calls;
    EXPECT_FALSE(Contains(r.err, "retry")) << r.err;
    ExpectNothingLeft();
  }
  EXPECT_EQ(server.WaitForRequests(3).size(), 3u);
}

TEST_F(ResilienceTest, AFailedFlushIsReportedOnceAndNeverRetried) {
  NginxServer server({.root = www_.path()});
  for (const auto& [error, exit_code, cause] :
       {std::tuple{"EIO", 8, "flushing " + Target() + " to disk: input/output error"},
        std::tuple{"ENOSPC", 7, "flushing " + Target() + " to disk: no space left on device"}}) {
    const std::string shim_log = out_.File("..") + "/shim-" + std::to_string(getpid()) + ".log";
    RunResult r = ImportWithFault(server.Url("/disk.raw"), Target(), "fsync", error, 0, shim_log);
    std::string calls = FileExists(shim_log) ? ReadFile(shim_log) : "";
    std::remove(shim_log.c_str());
    EXPECT_EQ(r.exit_code, exit_code) << error << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, "error: " + cause)) << error << ": " << r.err;
    // Every byte was written, and the one flush failed: after a failed fsync
    // the kernel may have dropped the dirty pages, so a second one proves
    // nothing.
    EXPECT_EQ(Count(calls, "fsync -1 0 " + std::string(error) + "\n"), 1u) << calls;
    EXPECT_EQ(Count(calls, "fsync"), 1u) << calls;
    EXPECT_EQ(Count(calls, "fdatasync"), 0u) << calls;
    ExpectNothingLeft();
  }
}

TEST_F(ResilienceTest, AFilesystemThatFillsUpDuringTheImportIsTooSmall) {
  CDI_SKIP_UNLESS_MOUNT();
  TempDir volume_dir;
  ScopedMount volume({"-t", "tmpfs", "-o", "size=8m", "tmpfs"}, volume_dir.path());
  const std::string gate = out_.File("gate");
  // The server holds the body at 1 MB until the test has filled the volume.
  FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw",
                                      "gate": {"after": 1000000, "file": ")" +
                                      gate + R"("}}})");
  const std::string target = volume_dir.File("disk.img");
  BackgroundProcess import(
      [&] {
        std::vector<std::string> argv = {BinDir() + "/cdi-image"};
        for (const std::string& arg : Import(server.Url("/disk.raw"), target)) {
          argv.push_back(arg);
        }
        return argv;
      }(),
      out_.File("import.log"));
  // The import has opened its target (measuring the free space) before it asks.
  while (server.RequestsFor("/disk.raw").empty()) {
    ASSERT_EQ(import.Wait(std::chrono::milliseconds(20)), -1) << ReadFile(out_.File("import.log"));
  }
  Sh("dd if=/dev/zero of=" + volume_dir.File("filler") + " bs=64k status=none 2>/dev/null || true");
  WriteFile(gate, "");
  const int exit_code = import.Wait(std::chrono::seconds(60));
  const std::string output = ReadFile(out_.File("import.log"));
  EXPECT_EQ(exit_code, 7) << output;
  EXPECT_TRUE(Contains(output, "error: writing ")) << output;
  EXPECT_TRUE(Contains(output, " bytes to " + target + " at offset ")) << output;
  EXPECT_TRUE(Contains(output,
                       ": no space left on device; the image does not fit: a larger "
                       "volume is required"))
      << output;
  EXPECT_EQ(ListDir(volume_dir.path()), std::vector<std::string>{"filler"});
}

// ---------------------------------------------------------------------------
// Signals

// Starts an import in the background, waits until the server has its
// request, lets it settle into what it waits for, then signals it.
int ImportThenSignal(const std::string& url, const std::string& target,
                     const std::vector<std::string>& flags, const FaultServer& server,
                     const std::string& path, int signal, const std::string& log) {
  std::vector<std::string> argv = {BinDir() + "/cdi-image"};
  for (const std::string& arg : Import(url, target, flags)) argv.push_back(arg);
  BackgroundProcess import(argv, log);
  while (server.RequestsFor(path).empty()) {
    if (import.Wait(std::chrono::milliseconds(20)) != -1) return -2;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  import.Signal(signal);
  // A safety net, not a measurement: what the import waits for lasts minutes.
  return import.Wait(std::chrono::seconds(30));
}

TEST_F(ResilienceTest, SigtermDuringAStallStopsCleanly) {
  FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "stall_after": 1000000}})");
  const std::string log = out_.File("..") + "/stall-" + std::to_string(getpid()) + ".log";
  int exit_code = ImportThenSignal(server.Url("/disk.raw"), Target(), {"--stall-timeout", "300"},
                                   server, "/disk.raw", SIGTERM, log);
  std::string output = ReadFile(log);
  std::remove(log.c_str());
  EXPECT_EQ(exit_code, 130) << output;
  EXPECT_TRUE(Contains(output, "error: cancelled while downloading " + server.Url("/disk.raw")) ||
              Contains(output, "error: import cancelled"))
      << output;
  ExpectNothingLeft();
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 1u);
}

TEST_F(ResilienceTest, SigintDuringABackOffWaitStopsCleanly) {
  FaultServer server(www_.path(), R"({"/disk.raw": {"status": 503,
                                      "headers": {"Retry-After": "120"}}})");
  const std::string log = out_.File("..") + "/backoff-" + std::to_string(getpid()) + ".log";
  int exit_code =
      ImportThenSignal(server.Url("/disk.raw"), Target(), {}, server, "/disk.raw", SIGINT, log);
  std::string output = ReadFile(log);
  std::remove(log.c_str());
  EXPECT_EQ(exit_code, 130) << output;
  EXPECT_TRUE(Contains(output, "retry 1 of 5 in 120.0 s (as Retry-After asks)")) << output;
  // Which thread notices first decides the wording; both name the URL.
  EXPECT_TRUE(
      Contains(output, "error: cancelled while connecting to " + server.Url("/disk.raw")) ||
      Contains(output, "error: cancelled while waiting to retry " + server.Url("/disk.raw")))
      << output;
  ExpectNothingLeft();
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 1u);
}

}  // namespace
}  // namespace cdi::test
