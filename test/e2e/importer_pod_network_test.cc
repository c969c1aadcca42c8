// cdi-importer end to end, the network side of CDI's contract: CA
// certificates mounted under any key name, the proxy CA bundle, credentials
// and extra headers, proxy variables, the progress metric while an import
// runs, and SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <set>

#include "test/e2e/e2e_util.h"
#include "test/e2e/pod_harness.h"
#include "test/support/certs.h"
#include "test/support/controller_scrape.h"
#include "test/support/http_server.h"

namespace cdi::test {
namespace {

constexpr const char* kSuccess =
    R"({"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"})";
constexpr const char* kOwnerUid = "9d0a7c55-1111-4aaa-8bbb-cccccccccccc";

std::map<std::string, std::string> HttpImport(const std::string& url,
                                              std::map<std::string, std::string> more = {}) {
  more.emplace("IMPORTER_SOURCE", "http");
  more.emplace("IMPORTER_ENDPOINT", url);
  more.emplace("IMPORTER_CONTENTTYPE", "kubevirt");
  more.emplace("PREALLOCATION", "false");
  more.emplace("OWNER_UID", kOwnerUid);
  return more;
}

class PodTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = MakeRawImage(16, 4, 41);  // 1 MiB
    WriteFile(www_.File("disk.raw"), image_);
    server_ =
        std::make_unique<NginxServer>(NginxOptions{.root = www_.path(), .tls = certs_.server});
  }
  // A directory as a ConfigMap mount: the key a link into "..data".
  std::string CertDir(const std::string& key) {
    std::string dir = pod_.work("certs-" + key);
    Sh("mkdir -p " + dir + "/..2024_05_01 && ln -s ..2024_05_01 " + dir + "/..data");
    Sh("cp " + certs_.ca.cert + " " + dir + "/..data/" + key + " && ln -s ..data/" + key + " " +
       dir + "/" + key);
    return dir;
  }
  const TestCertificates& certs_ = SharedTestCertificates();
  TempDir www_;
  std::string image_;
  std::unique_ptr<NginxServer> server_;
  PodHarness pod_;
};

TEST_F(PodTlsTest, CaCertificatesUnderAnyKeyName) {
  for (const char* key : {"tls.crt", "my-ca", "ca.pem"}) {
    std::string dir = CertDir(key);
    // Dot files (Kubernetes' own) are not read, whatever they hold.
    WriteFile(dir + "/.not-a-certificate", "garbage");
    PodResult r = pod_.Run(HttpImport(server_->Url("/disk.raw"), {{"IMPORTER_CERT_DIR", dir}}));
    ASSERT_EQ(r.exit_code, 0) << key << ": " << r.log;
    EXPECT_EQ(r.termination, kSuccess);
    EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(image_)) << key;
  }
}

TEST_F(PodTlsTest, WithoutTheCaTheServerIsNotTrusted) {
  PodResult r = pod_.Run(HttpImport(server_->Url("/disk.raw")));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.termination.starts_with("Unable to connect to http data source: "))
      << r.termination;
  EXPECT_TRUE(Contains(r.termination, TestCertificates::kCaName)) << r.termination;
  EXPECT_EQ(ListDir(pod_.data_dir()), std::vector<std::string>{});
}

TEST_F(PodTlsTest, TheProxyCaBundleIsTrustedToo) {
  Sh("mkdir -p " + pod_.proxy_cert_dir + " && cp " + certs_.ca.cert + " " + pod_.proxy_cert_dir +
     "/ca.crt");
  PodResult r = pod_.Run(HttpImport(server_->Url("/disk.raw")));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(image_));
}

TEST_F(PodTlsTest, InsecureTlsSkipsVerificationAndSaysSo) {
  PodResult r = pod_.Run(HttpImport(server_->Url("/disk.raw"), {{"INSECURE_TLS", "true"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_TRUE(Contains(r.log, "TLS certificate verification is off")) << r.log;
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(image_));
}

TEST_F(PodTlsTest, AnUnreadableCertDirIsAConnectionError) {
  PodResult r = pod_.Run(
      HttpImport(server_->Url("/disk.raw"), {{"IMPORTER_CERT_DIR", pod_.work("no-such-dir")}}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.termination.starts_with("Unable to connect to http data source: "))
      << r.termination;
  EXPECT_TRUE(Contains(r.termination, pod_.work("no-such-dir"))) << r.termination;
}

class PodFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = MakeRawImage(64, 4, 43);  // 4 MiB
    WriteFile(www_.File("disk.raw"), image_);
  }
  TempDir www_;
  std::string image_;
  PodHarness pod_;
};

TEST_F(PodFaultTest, CredentialsAndExtraHeadersReachTheServerAndNoLog) {
  FaultServer server(www_.path());
  // Secret headers as Kubernetes mounts them: /extraheaders/<i>/<key>, links into "..data".
  std::string secret = pod_.extra_headers_dir + "/0";
  Sh("mkdir -p " + secret + "/..2024_05_01 && ln -s ..2024_05_01 " + secret + "/..data");
  WriteFile(secret + "/..data/token", "X-Secret-Token: t0ps3cret\n");
  Sh("ln -s ..data/token " + secret + "/token");
  PodResult r =
      pod_.Run(HttpImport(server.Url("/disk.raw"), {{"IMPORTER_ACCESS_KEY_ID", "alice"},
                                                    {"IMPORTER_SECRET_KEY", "pa55word"},
                                                    {"IMPORTER_EXTRA_HEADER_0", "X-Plain: one"},
                                                    {"IMPORTER_EXTRA_HEADER_1", "X-Other: two"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_FALSE(requests.empty());
  for (const RecordedRequest& request : requests) {
    EXPECT_EQ(request.Header("authorization"), "Basic YWxpY2U6cGE1NXdvcmQ=");  // alice:pa55word
    EXPECT_EQ(request.Header("x-plain"), "one");
    EXPECT_EQ(request.Header("x-other"), "two");
    EXPECT_EQ(request.Header("x-secret-token"), "t0ps3cret");
  }
  for (const char* secret_text : {"pa55word", "t0ps3cret", "YWxpY2U6cGE1NXdvcmQ"}) {
    EXPECT_FALSE(Contains(r.log, secret_text)) << secret_text << " leaked into the log";
  }
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(image_));
}

TEST_F(PodFaultTest, HalfACredentialSendsNone) {
  FaultServer server(www_.path());
  PodResult r =
      pod_.Run(HttpImport(server.Url("/disk.raw"), {{"IMPORTER_ACCESS_KEY_ID", "alice"}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  for (const RecordedRequest& request : server.Requests()) {
    EXPECT_FALSE(request.HasHeader("authorization"));
  }
  EXPECT_TRUE(Contains(r.log, "only one of IMPORTER_ACCESS_KEY_ID and IMPORTER_SECRET_KEY is set"))
      << r.log;
}

TEST_F(PodFaultTest, ProxyVariablesReachLibcurl) {
  // The fault server answers proxy requests ("GET http://host/path") from its files.
  FaultServer proxy(www_.path());
  const std::string url = "http://images.example.invalid/disk.raw";
  PodResult r = pod_.Run(HttpImport(url, {{"http_proxy", proxy.Url("")}, {"no_proxy", ""}}));
  ASSERT_EQ(r.exit_code, 0) << r.log;
  std::vector<RecordedRequest> requests = proxy.Requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().target, url);
  EXPECT_EQ(requests.back().Header("host"), "images.example.invalid");
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(image_));
  // no_proxy keeps a host away from the proxy: now the name must resolve, and does not.
  PodResult direct = pod_.Run(
      HttpImport(url, {{"http_proxy", proxy.Url("")}, {"no_proxy", "images.example.invalid"}}));
  EXPECT_EQ(direct.exit_code, 1);
  EXPECT_TRUE(direct.termination.starts_with("Unable to connect to http data source: "))
      << direct.termination;
  EXPECT_EQ(proxy.Requests().size(), requests.size());
}

// Scrapes the metric as CDI's controller does; "" when the pod does not answer.
std::string ScrapeProgress(uint16_t port) {
  RunResult r = Run(
      {"curl", "-sk", "--max-time", "5", "https://127.0.0.1:" + std::to_string(port) + "/metrics"});
  if (r.exit_code != 0) return "";
  EXPECT_NE(r.out.find("# TYPE kubevirt_cdi_import_progress_total counter"), std::string::npos);
  return ControllerProgress(r.out, kOwnerUid);
}

TEST_F(PodFaultTest, ProgressMetricRisesWhileASlowImportRuns) {
  // 4 MiB in 128 KiB pieces, one every 0.1 s.
  FaultServer server(
      www_.path(),
      R"({"/slow.raw": {"file": "disk.raw", "trickle": {"bytes": 131072, "interval": 0.1}}})");
  BackgroundProcess importer(pod_.Argv(), pod_.work("pod.log"),
                             pod_.Options(HttpImport(server.Url("/slow.raw"))));
  std::vector<double> seen;
  int exit_code = -1;
  while ((exit_code = importer.Wait(std::chrono::milliseconds(0))) == -1) {
    std::string value = ScrapeProgress(pod_.metrics_port);
    if (!value.empty()) seen.push_back(std::stod(value));
  }
  ASSERT_EQ(exit_code, 0) << ReadFile(pod_.work("pod.log"));
  EXPECT_EQ(pod_.ReadTermination(), kSuccess);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));  // never goes back
  std::set<double> distinct(seen.begin(), seen.end());
  EXPECT_GE(distinct.size(), 3u) << "the metric did not move while the image trickled in";
  EXPECT_GT(seen.back(), 0);
  EXPECT_LE(seen.back(), 100);
  EXPECT_EQ(Sha256File(pod_.data_dir() + "/disk.img"), Sha256Bytes(image_));
}

TEST_F(PodFaultTest, SigtermCancelsAndLeavesNothing) {
  FaultServer server(
      www_.path(),
      R"({"/slow.raw": {"file": "disk.raw", "trickle": {"bytes": 65536, "interval": 0.5}}})");
  BackgroundProcess importer(
      pod_.Argv(), pod_.work("pod.log"),
      pod_.Options(HttpImport(server.Url("/slow.raw"), {{"IMPORTER_IMAGE_SIZE", "64Mi"}})));
  // Wait until data is arriving (the metric moves), then stop the pod as kubelet does.
  while (true) {
    ASSERT_EQ(importer.Wait(std::chrono::milliseconds(0)), -1) << ReadFile(pod_.work("pod.log"));
    std::string value = ScrapeProgress(pod_.metrics_port);
    if (!value.empty() && std::stod(value) > 0) break;
  }
  importer.Signal(SIGTERM);
  int exit_code = -1;
  while ((exit_code = importer.Wait(std::chrono::seconds(1))) == -1) {
  }
  EXPECT_EQ(exit_code, 130) << ReadFile(pod_.work("pod.log"));
  EXPECT_EQ(pod_.ReadTermination(),
            "Unable to process data: the import was cancelled by a signal; what it had written was "
            "removed");
  EXPECT_EQ(ListDir(pod_.data_dir()), std::vector<std::string>{});
}

}  // namespace
}  // namespace cdi::test
