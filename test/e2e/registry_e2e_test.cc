// cdi-image and cdi-importer reading containerDisks from a real registry
// (docker-registry on 127.0.0.1, images pushed with skopeo).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/e2e/pod_harness.h"
#include "test/support/certs.h"
#include "test/support/registry_server.h"
#include "test/support/tar_builder.h"

namespace cdi::test {
namespace {

bool HaveRegistryTools() {
  return HaveProgram("docker-registry") && HaveProgram("skopeo") && HaveProgram("qemu-img") &&
         HaveProgram("htpasswd");
}

class RegistryE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRegistryTools()) GTEST_SKIP() << "docker-registry, skopeo or qemu-img missing";
    raw_ = RandomBytes(1 << 20, 11) + std::string(1 << 20, '\0') + RandomBytes(4096, 12);
    WriteFile(dir_.File("disk.raw"), raw_);
    Sh("qemu-img convert -f raw -O qcow2 " + dir_.File("disk.raw") + " " + dir_.File("disk.qcow2"));
  }
  // Pushes the qcow2 disk as disks/e2e:v1, with an instancetype variable.
  void Push(RegistryServer& registry) {
    OciLayout layout(dir_.File("layout"));
    const std::string tar = TarBuilder()
                                .Directory("disk/")
                                .File("disk/disk.qcow2", ReadFile(dir_.File("disk.qcow2")))
                                .End()
                                .bytes;
    layout.Tag(layout.AddImage({layout.AddLayer(tar, OciLayout::Compression::kGzip)}, "amd64",
                               {"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small",
                                "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora"}),
               "v1");
    registry.Push(layout, "v1", "disks/e2e:v1");
  }

  TempDir dir_;
  std::string raw_;
};

TEST_F(RegistryE2eTest, CdiImageImportsADockerReference) {
  RegistryServer registry(
      {.tls = SharedTestCertificates().server, .basic_user = "carol", .basic_password = "pw-123"});
  Push(registry);
  WriteFile(dir_.File("password"), "pw-123\n");
  RunResult r = CdiImage({"import", registry.Reference("disks/e2e:v1"), dir_.File("out.img"),
                          "--ca-bundle", SharedTestCertificates().ca.cert, "--user", "carol",
                          "--password-file", dir_.File("password")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir_.File("out.img")), Sha256Bytes(raw_));

  RunResult anonymous =
      CdiImage({"import", registry.Reference("disks/e2e:v1"), dir_.File("anon.img"), "--ca-bundle",
                SharedTestCertificates().ca.cert, "--retries", "0"});
  EXPECT_NE(anonymous.exit_code, 0);
  EXPECT_TRUE(Contains(anonymous.err, "asks for credentials")) << anonymous.err;
  EXPECT_FALSE(FileExists(dir_.File("anon.img")));
}

TEST_F(RegistryE2eTest, CdiImageInsecureReachesAPlainHttpRegistry) {
  RegistryServer registry({});
  Push(registry);
  RunResult refused = CdiImage(
      {"import", registry.Reference("disks/e2e:v1"), dir_.File("a.img"), "--retries", "0"});
  EXPECT_NE(refused.exit_code, 0) << refused.err;
  RunResult r =
      CdiImage({"import", registry.Reference("disks/e2e:v1"), dir_.File("out.img"), "--insecure"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir_.File("out.img")), Sha256Bytes(raw_));

  RunResult info = CdiImage({"info", registry.Reference("disks/e2e:v1"), "--insecure", "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_TRUE(Contains(info.out, "qcow2")) << info.out;
  EXPECT_TRUE(Contains(info.out, std::to_string(raw_.size()))) << info.out;
}

TEST_F(RegistryE2eTest, ImporterPodReadsARegistrySourceWithCdisEnvironment) {
  RegistryServer registry({.tls = SharedTestCertificates().server,
                           .token_auth = true,
                           .token_user = "robot",
                           .token_password = "tok-pw"});
  Push(registry);
  PodHarness pod;
  Sh("mkdir -p " + pod.work("certs") + " && cp " + SharedTestCertificates().ca.cert + " " +
     pod.work("certs/ca.crt"));
  std::map<std::string, std::string> env = {
      {"IMPORTER_SOURCE", "registry"},
      {"IMPORTER_ENDPOINT", registry.Reference("disks/e2e:v1")},
      {"IMPORTER_CONTENTTYPE", "kubevirt"},
      {"IMPORTER_ACCESS_KEY_ID", "robot"},
      {"IMPORTER_SECRET_KEY", "tok-pw"},
      {"IMPORTER_CERT_DIR", pod.work("certs")},
      {"IMPORTER_IMAGE_SIZE", "8Mi"},
      {"FILESYSTEM_OVERHEAD", "0"},
      {"PREALLOCATION", "false"},
      {"OWNER_UID", "registry-pod"}};
  PodResult r = pod.Run(env);
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination,
            "{\"scratchSpaceRequired\":false,\"preallocationApplied\":false,\"labels\":{"
            "\"instancetype.kubevirt.io/default-instancetype\":\"u1.small\","
            "\"instancetype.kubevirt.io/default-preference\":\"fedora\"},"
            "\"message\":\"Import Complete\"}");
  EXPECT_EQ(Sha256File(pod.data_dir() + "/disk.img", raw_.size()), Sha256Bytes(raw_));
  EXPECT_FALSE(Contains(r.log, "tok-pw")) << r.log;

  // An unknown tag: CDI's controller reads "failed to pull image".
  env["IMPORTER_ENDPOINT"] = registry.Reference("disks/e2e:missing");
  PodResult missing = pod.Run(env);
  EXPECT_EQ(missing.exit_code, 1) << missing.log;
  EXPECT_TRUE(Contains(missing.termination,
                       "Unable to process data: Failed to read registry image: failed to pull "
                       "image: "))
      << missing.termination;
  EXPECT_TRUE(Contains(missing.termination, "has no manifest 'missing'")) << missing.termination;
}

TEST_F(RegistryE2eTest, ImporterPodTakesInsecureTlsForAPlainHttpRegistry) {
  RegistryServer registry({});
  Push(registry);
  PodHarness pod;
  PodResult r = pod.Run({{"IMPORTER_SOURCE", "registry"},
                         {"IMPORTER_ENDPOINT", registry.Reference("disks/e2e:v1")},
                         {"INSECURE_TLS", "true"},
                         {"IMPORTER_REGISTRY_IMAGE_ARCHITECTURE", "amd64"},
                         {"PREALLOCATION", "false"},
                         {"OWNER_UID", "registry-pod"}});
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_TRUE(Contains(r.termination, "\"message\":\"Import Complete\"")) << r.termination;
  EXPECT_EQ(Sha256File(pod.data_dir() + "/disk.img"), Sha256Bytes(raw_));
}

}  // namespace
}  // namespace cdi::test

namespace cdi::test {
namespace {

// cdi-source-update-poller in its CronJob's pod: the digest from the
// registry, recorded on the DataImportCron through the API server (played by
// test/server/kube_api_server.py).
TEST_F(RegistryE2eTest, PollerRecordsTheDigestOnTheDataImportCron) {
  RegistryServer registry({});
  Push(registry);
  const std::string digest = Sh("skopeo --insecure-policy inspect --tls-verify=false --format "
                                "'{{.Digest}}' " +
                                registry.Reference("disks/e2e:v1"))
                                 .substr(0, 71);
  const CertKey& server_cert = SharedTestCertificates().server;
  Sh("mkdir -p " + dir_.File("sa") + " && printf 'sa-token\\n' > " + dir_.File("sa/token") +
     " && cp " + SharedTestCertificates().ca.cert + " " + dir_.File("sa/ca.crt"));
  BackgroundProcess api(
      {"python3", SourceDir() + "/test/server/kube_api_server.py", "--namespace", "golden",
       "--name", "fedora", "--annotations",
       "{\"cdi.kubevirt.io/storage.import.sourceDesiredDigest\": \"sha256:old\"}", "--token",
       "sa-token", "--tls-cert", server_cert.cert, "--tls-key", server_cert.key, "--ports-file",
       dir_.File("api-ports.json"), "--log", dir_.File("api.log")},
      dir_.File("api.out"));
  for (int i = 0; i < 500 && !FileExists(dir_.File("api-ports.json")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(FileExists(dir_.File("api-ports.json")));
  const std::string ports = ReadFile(dir_.File("api-ports.json"));
  const std::string port = std::to_string(std::stoi(ports.substr(ports.find(':') + 1)));
  RunOptions options;
  options.env = {{"KUBERNETES_SERVICE_HOST", "127.0.0.1"},
                 {"KUBERNETES_SERVICE_PORT", port},
                 {"INSECURE_TLS", "true"}};
  options.unset_env = {"KUBECONFIG", "IMPORTER_ACCESS_KEY_ID", "IMPORTER_SECRET_KEY"};
  const std::vector<std::string> argv = {BinDir() + "/cdi-source-update-poller",
                                         "-ns",
                                         "golden",
                                         "-cron",
                                         "fedora",
                                         "-url",
                                         registry.Reference("disks/e2e:v1"),
                                         "-service-account-dir",
                                         dir_.File("sa"),
                                         "-handover-program",
                                         dir_.File("no-cdi-poller")};
  RunResult first = test::Run(argv, options);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_TRUE(Contains(first.err, "Digest is " + digest)) << first.err;
  EXPECT_TRUE(Contains(first.err, "Digest updated")) << first.err;
  const std::string log = ReadFile(dir_.File("api.log"));
  EXPECT_TRUE(Contains(log, "\"method\": \"PATCH\"")) << log;
  EXPECT_TRUE(Contains(log, "application/json-patch+json")) << log;
  EXPECT_TRUE(Contains(log, "cdi.kubevirt.io~1storage.import.sourceDesiredDigest")) << log;
  EXPECT_TRUE(Contains(log, digest)) << log;
  EXPECT_TRUE(Contains(log, "cdi.kubevirt.io~1storage.import.lastCronTime")) << log;

  // The digest is recorded: the next run only notes its time.
  RunResult second = test::Run(argv, options);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(Contains(second.err, "No digest update")) << second.err;

  // A tag the registry lacks: CDI's words, exit 1, nothing patched.
  std::vector<std::string> missing = argv;
  missing[6] = registry.Reference("disks/e2e:gone");
  const size_t patches = ReadFile(dir_.File("api.log")).size();
  RunResult gone = test::Run(missing, options);
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_TRUE(Contains(gone.err, "Failed to get image digest: ")) << gone.err;
  EXPECT_EQ(ReadFile(dir_.File("api.log")).size(), patches);
}

}  // namespace
}  // namespace cdi::test
