// cdi-image apply, end to end: the user documentation's manifests against
// nginx on 127.0.0.1 over TLS with a generated CA and a client certificate,
// with qemu-img as the oracle for what lands in the PVC files and devices.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string_view>
#include <thread>

#include "test/manifests/apply_test_util.h"
#include "test/support/certs.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

constexpr uint64_t kImageSize = 4ull << 20;
// What CDI's importer may use of the documentation's 10Gi pvc request at 6%
// overhead: RoundDown(ceil(10737418240 / 1.06), 1 MiB).
constexpr uint64_t kUsableOf10GiPvc = 9660ull << 20;
constexpr char kVmDisk[] = "pvcs/default/my-http-data-volume/disk.img";

// Byte ranges [start, end) of `image` that are not zero, at 4 KiB granularity.
ExtentMap NonZeroExtents(const std::string& image) {
  ExtentMap extents;
  for (size_t off = 0; off < image.size(); off += 4096) {
    const size_t end = std::min(image.size(), off + 4096);
    // Only this block: a search bounded by the image's end would cross every
    // zero block that follows, once per block.
    if (std::string_view(image).substr(off, end - off).find_first_not_of('\0') ==
        std::string_view::npos) {
      continue;
    }
    if (!extents.empty() && extents.back().second == off) {
      extents.back().second = end;
    } else {
      extents.emplace_back(off, end);
    }
  }
  return extents;
}

// One image in three forms, its qemu-img conversion (the oracle), and three
// nginx servers: plain HTTP, TLS, and TLS requiring a client certificate
// signed by the test CA. Made once per test process.
struct Site {
  Site() : certs(SharedTestCertificates()) {
    std::string image = RandomBytes(kImageSize, 7);
    for (size_t block = 0; block < kImageSize / 65536; block += 3) {  // a third is zero
      std::fill(image.begin() + static_cast<long>(block * 65536),
                image.begin() + static_cast<long>((block + 1) * 65536), '\0');
    }
    WriteFile(www.File("disk.raw"), image);
    WriteFile(www.File("sentinel.raw"), std::string(4096, 'x'));
    Sh("cd " + www.path() + " && qemu-img convert -q -f raw -O qcow2 disk.raw disk.qcow2 && " +
       "xz -0 -k -T1 disk.raw && qemu-img convert -q -f qcow2 -O raw disk.qcow2 oracle.raw");
    oracle = ReadFile(www.File("oracle.raw"));
    http = std::make_unique<NginxServer>(NginxOptions{.root = www.path()});
    tls = std::make_unique<NginxServer>(NginxOptions{.root = www.path(), .tls = certs.server});
    mtls = std::make_unique<NginxServer>(
        NginxOptions{.root = www.path(), .tls = certs.server, .client_ca = certs.ca.cert});
  }

  const TestCertificates& certs;
  TempDir www;
  std::string oracle;  // qemu-img's raw output for disk.qcow2
  std::unique_ptr<NginxServer> http;
  std::unique_ptr<NginxServer> tls;
  std::unique_ptr<NginxServer> mtls;
};

class ApplyE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { site_ = new Site(); }
  static void TearDownTestSuite() {
    delete site_;
    site_ = nullptr;
  }

  // A path of its own for this test's download ("/<name>.<ext>", a hard link
  // to the image), so that the access log tells its requests apart.
  static std::string Publish(const std::string& name, const std::string& ext = "qcow2") {
    const std::string path = "/" + name + "." + ext;
    std::filesystem::create_hard_link(
        site_->www.File(ext == "raw.xz" ? "disk.raw.xz" : "disk." + ext),
        site_->www.File(path.substr(1)));
    return path;
  }

  // How many requests `server` answered for `path`. A request for a path of
  // its own is made after the ones being counted and waited for: nginx (one
  // process) logs requests in the order it finishes them.
  static size_t Served(const NginxServer& server, const std::string& path) {
    static std::atomic<int> next{0};
    const std::string sentinel = Publish("sentinel-" + std::to_string(next++), "raw");
    std::vector<std::string> args = {BinDir() + "/cdi-image", "info", server.Url(sentinel)};
    if (&server != site_->http.get()) {
      args.insert(args.end(), {"--ca-bundle", site_->certs.ca.cert, "--client-cert",
                               site_->certs.client.cert, "--client-key", site_->certs.client.key});
    }
    RunResult info = test::Run(args);
    EXPECT_EQ(info.exit_code, 0) << info.err;
    const size_t logged = server.AccessLog().size();
    for (size_t want = logged + 1; server.CountRequests(sentinel) == 0; ++want) {
      if (server.WaitForRequests(want).size() < want) break;  // gave up waiting
    }
    return server.CountRequests(path);
  }

  // The documentation's manifest with the URL replaced and certConfig
  // uncommented (caBundle: the test CA).
  static std::string TlsManifest(const char* name, const std::string& url) {
    return UncommentCertConfig(ManifestFor(name, url), Base64(ReadFile(site_->certs.ca.cert)));
  }

  // The Secrets that the documentation's certConfig names, as Kubernetes TLS
  // Secrets hold them: the CA and client certificate in my-http-cert-secret,
  // the key in my-http-key-secret.
  static std::string TlsSecrets(const CertKey& client, const std::string& ca_file) {
    return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: my-http-cert-secret\ntype: "
           "kubernetes.io/tls\ndata:\n  ca.crt: " +
           Base64(ReadFile(ca_file)) + "\n  tls.crt: " + Base64(ReadFile(client.cert)) +
           "\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: my-http-key-secret\ndata:\n"
           "  tls.key: " +
           Base64(ReadFile(client.key)) + "\n";
  }

  std::string Write(const std::string& name, const std::string& text) {
    WriteFile(work_.File(name), text);
    return work_.File(name);
  }

  std::string Pvcs() const { return work_.File("pvcs"); }

  // Runs apply on `files` into this test's PVC directory.
  RunResult Apply(const std::vector<std::string>& files, std::vector<std::string> args = {}) {
    std::vector<std::string> argv;
    for (const std::string& file : files) argv.insert(argv.end(), {"-f", file});
    argv.insert(argv.end(), {"--pvc-dir", Pvcs()});
    argv.insert(argv.end(), args.begin(), args.end());
    return CdiImageApply(argv);
  }

  // The disk holds the oracle's bytes, written sparsely, and reads zero after them.
  void ExpectImported(const std::string& disk) {
    ASSERT_TRUE(FileExists(disk)) << disk;
    EXPECT_EQ(Sha256File(disk, kImageSize), Sha256Bytes(site_->oracle)) << disk;
    EXPECT_EQ(DataExtents(disk), NonZeroExtents(site_->oracle)) << disk;
    EXPECT_EQ(Sh("stat -c %a " + disk), "660\n");
  }

  static Site* site_;
  const TestCertificates& certs_ = SharedTestCertificates();
  TempDir work_;
};

Site* ApplyE2eTest::site_ = nullptr;

// ---------------------------------------------------------------------------
// The documentation's manifests over mutual TLS

TEST_F(ApplyE2eTest, DocumentationVirtualMachineOverMutualTls) {
  const std::string path = Publish("vm");
  RunResult r = Apply({Write("vm.yaml", TlsManifest(kVmManifest, site_->mtls->Url(path))),
                       Write("secrets.yaml", TlsSecrets(certs_.client, certs_.ca.cert))},
                      {"--progress", "plain"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const std::string disk = work_.File(kVmDisk);
  ExpectImported(disk);
  // 10Gi as a pvc request: the PVC is 10Gi, and the importer uses what is left
  // of it after the 6% overhead, as CDI's does (when this filesystem has room).
  if (std::filesystem::space(Pvcs()).available > (11ull << 30)) {
    EXPECT_EQ(FileSize(disk), kUsableOf10GiPvc);
  } else {
    EXPECT_LE(FileSize(disk), kUsableOf10GiPvc);
  }
  EXPECT_EQ(Served(*site_->mtls, path), 1u);
  for (const AccessLogEntry& entry : site_->mtls->AccessLog()) {
    if (entry.uri == path) {
      EXPECT_TRUE(Contains(entry.client_subject, "cdi-test client")) << entry.client_subject;
    }
  }
  EXPECT_TRUE(Contains(r.out, "default/my-http-data-volume")) << r.out;
  EXPECT_TRUE(Contains(r.out, "qcow2")) << r.out;
  EXPECT_TRUE(Contains(r.err, "default/my-http-data-volume: done: qcow2, 4.0 MiB")) << r.err;
}

TEST_F(ApplyE2eTest, ServerCertificateFromAnotherCaIsATlsError) {
  const std::string path = Publish("other-ca");
  std::string manifest = UncommentCertConfig(ManifestFor(kVmManifest, site_->mtls->Url(path)),
                                             Base64(ReadFile(certs_.other_ca.cert)));
  RunResult r = Apply({Write("vm.yaml", manifest),
                       Write("secrets.yaml", TlsSecrets(certs_.client, certs_.other_ca.cert))});
  EXPECT_EQ(r.exit_code, 6) << r.err << r.out;
  EXPECT_TRUE(Contains(r.out, "failed (tls)")) << r.out;
  EXPECT_TRUE(Contains(r.out, "default/my-http-data-volume: cannot verify the TLS certificate of " +
                                  site_->mtls->Url(path) +
                                  ": unknown issuer 'CN=cdi-test Root "
                                  "CA' of the server certificate 'CN=localhost'"))
      << r.out;
  EXPECT_FALSE(FileExists(work_.File(kVmDisk)));
}

TEST_F(ApplyE2eTest, ClientCertificateFromAnotherCaIsRefusedByTheServer) {
  const std::string path = Publish("other-client");
  RunResult r = Apply({Write("vm.yaml", TlsManifest(kVmManifest, site_->mtls->Url(path))),
                       Write("secrets.yaml", TlsSecrets(certs_.other_client, certs_.ca.cert))});
  // nginx answers a client certificate it does not trust with 400: a TLS error.
  EXPECT_EQ(r.exit_code, 6) << r.err << r.out;
  EXPECT_TRUE(Contains(r.out, "failed (tls)")) << r.out;
  EXPECT_TRUE(Contains(r.out, "default/my-http-data-volume: the server at " +
                                  site_->mtls->Url(path) +
                                  " rejected the TLS client certificate 'CN=cdi-test other "
                                  "client' (PEM text) (HTTP 400 \"The SSL certificate error\"): "
                                  "it is issued by 'CN=cdi-test Other CA', and the server accepts "
                                  "certificates issued by 'CN=cdi-test Root CA'; give such a "
                                  "certificate and its key"))
      << r.out;
  EXPECT_FALSE(FileExists(work_.File(kVmDisk)));
}

TEST_F(ApplyE2eTest, PoolOfThreeDownloadsTheImageOnceAndWritesThreeIdenticalDisks) {
  const std::string path = Publish("pool");
  RunResult r = Apply({Write("pool.yaml", TlsManifest(kPoolManifest, site_->mtls->Url(path))),
                       Write("secrets.yaml", TlsSecrets(certs_.client, certs_.ca.cert))},
                      {"--progress", "bar"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(Served(*site_->mtls, path), 1u);
  EXPECT_EQ(ListDir(Pvcs() + "/default"),
            (std::vector<std::string>{"my-pool-vm-data-volume-0", "my-pool-vm-data-volume-1",
                                      "my-pool-vm-data-volume-2"}));
  for (int i = 0; i < 3; ++i) {
    ExpectImported(Pvcs() + "/default/my-pool-vm-data-volume-" + std::to_string(i) + "/disk.img");
  }
  // One progress line per DataVolume, redrawn in place, each ending done.
  EXPECT_TRUE(Contains(r.err, "\033[3A")) << r.err;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Contains(
        r.err, "default/my-pool-vm-data-volume-" + std::to_string(i) + "  done: qcow2, 4.0 MiB"))
        << r.err;
  }
}

TEST_F(ApplyE2eTest, VirtualMachineAndPoolNamingTheSameDataSourceShareOneDownload) {
  const std::string path = Publish("shared");
  const std::string url = site_->mtls->Url(path);
  RunResult r = Apply({Write("vm.yaml", TlsManifest(kVmManifest, url)),
                       Write("pool.yaml", TlsManifest(kPoolManifest, url)),
                       Write("secrets.yaml", TlsSecrets(certs_.client, certs_.ca.cert))});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(Served(*site_->mtls, path), 1u);
  ExpectImported(work_.File(kVmDisk));
  ExpectImported(Pvcs() + "/default/my-pool-vm-data-volume-2/disk.img");
  EXPECT_TRUE(Contains(r.err,
                       "DataSource default/my-http-datasource is also defined, "
                       "identically, at " +
                           work_.File("vm.yaml") + ":50; using it once"))
      << r.err;
}

TEST_F(ApplyE2eTest, SecretsFromAMountedSecretsDirectory) {
  TempDir secrets;
  std::filesystem::create_directories(secrets.File("default/my-http-cert-secret"));
  std::filesystem::create_directories(secrets.File("default/my-http-key-secret"));
  WriteFile(secrets.File("default/my-http-cert-secret/ca.crt"), ReadFile(certs_.ca.cert));
  WriteFile(secrets.File("default/my-http-cert-secret/tls.crt"), ReadFile(certs_.client.cert));
  WriteFile(secrets.File("default/my-http-key-secret/tls.key"), ReadFile(certs_.client.key));
  const std::string path = Publish("mounted");
  RunResult r = Apply({Write("vm.yaml", TlsManifest(kVmManifest, site_->mtls->Url(path)))},
                      {"--secrets-dir", secrets.path()});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectImported(work_.File(kVmDisk));
}

// ---------------------------------------------------------------------------
// Plans, selections, devices, machines

TEST_F(ApplyE2eTest, DryRunPrintsThePlanAndWritesNothing) {
  const std::string path = Publish("dry");
  RunResult r = Apply({Write("pool.yaml", TlsManifest(kPoolManifest, site_->mtls->Url(path))),
                       Write("secrets.yaml", TlsSecrets(certs_.client, certs_.ca.cert))},
                      {"--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_TRUE(Contains(r.out, "3 DataVolumes from 1 download")) << r.out;
  EXPECT_TRUE(Contains(r.out, "download #1: " + site_->mtls->Url(path))) << r.out;
  EXPECT_TRUE(Contains(r.out,
                       "tls: client certificate from Secret default/my-http-cert-secret "
                       "(tls.crt), key from Secret default/my-http-key-secret (tls.key)"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, Pvcs() + "/default/my-pool-vm-data-volume-2/disk.img")) << r.out;
  EXPECT_TRUE(Contains(r.out, "10.0 GiB (pvc)  10.0 GiB  9.4 GiB")) << r.out;
  EXPECT_TRUE(Contains(r.out, "--dry-run: nothing was written")) << r.out;
  EXPECT_FALSE(FileExists(Pvcs()));
  EXPECT_EQ(Served(*site_->mtls, path), 0u);
}

TEST_F(ApplyE2eTest, OnlyImportsTheNamedDataVolume) {
  const std::string path = Publish("only");
  RunResult r = Apply({Write("pool.yaml", ManifestFor(kPoolManifest, site_->http->Url(path)))},
                      {"--only", "my-pool-vm-data-volume-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(ListDir(Pvcs() + "/default"), std::vector<std::string>{"my-pool-vm-data-volume-1"});
  ExpectImported(Pvcs() + "/default/my-pool-vm-data-volume-1/disk.img");

  r = Apply({work_.File("pool.yaml")}, {"--only", "my-pool-vm-data-volume-7"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err,
                       "error: --only my-pool-vm-data-volume-7: no DataVolume is named "
                       "\"my-pool-vm-data-volume-7\" (the manifests declare: "
                       "default/my-pool-vm-data-volume-0, default/my-pool-vm-data-volume-1, "
                       "default/my-pool-vm-data-volume-2)"))
      << r.err;
}

std::string BlockDataVolume(const std::string& url, const std::string& size) {
  return "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata:\n  name: "
         "block-disk\nspec:\n  source:\n    http:\n      url: " +
         url +
         "\n  pvc:\n    volumeMode: Block\n    accessModes: [ReadWriteOnce]\n    "
         "resources:\n      requests:\n        storage: " +
         size + "\n";
}

TEST_F(ApplyE2eTest, BlockVolumeIsImportedOntoTheDeviceGiven) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  LoopDevice device({.size = 16ull << 20, .fill = 0xAA});
  const std::string path = Publish("block");
  const std::string manifest = Write("dv.yaml", BlockDataVolume(site_->http->Url(path), "16Mi"));
  RunResult r = Apply({manifest}, {"--block", "block-disk=" + device.path()});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  // The image, then zeros to the end of the device: nothing of the old 0xAA.
  EXPECT_EQ(Sha256File(device.path()),
            Sha256Bytes(site_->oracle + std::string((16ull << 20) - kImageSize, '\0')));
  // Its checkpoint directory went with its last checkpoint.
  EXPECT_EQ(ListDir(Pvcs()), std::vector<std::string>{});

  r = Apply({Write("big.yaml", BlockDataVolume(site_->http->Url(path), "64Mi"))},
            {"--block", "block-disk=" + device.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "error: " + work_.File("big.yaml") +
                                  ":1: DataVolume default/block-disk: "
                                  "spec.pvc.resources.requests.storage: DataVolume block-disk: the "
                                  "device " +
                                  device.path() +
                                  " holds 16777216 bytes, less than the 67108864 bytes requested"))
      << r.err;
  r = Apply({manifest});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err,
                       "spec.pvc.volumeMode: volumeMode: Block needs a device: pass --block "
                       "block-disk=/dev/..."))
      << r.err;
  r = Apply({manifest}, {"--block", "nope=" + device.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "error: --block nope=" + device.path() +
                                  ": no DataVolume is named \"nope\" (the manifests declare: "
                                  "default/block-disk)"))
      << r.err;
}

TEST_F(ApplyE2eTest, JsonOutputForMachines) {
  const std::string path = Publish("json");
  RunResult r = Apply({Write("pool.yaml", ManifestFor(kPoolManifest, site_->http->Url(path)))},
                      {"--output", "json", "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  // A machine reads it with any JSON parser; python3 checks the facts here.
  RunResult check = test::Run(
      {"python3", "-c",
       "import json, sys\n"
       "d = json.load(sys.stdin)\n"
       "assert d['exit_code'] == 0 and not d['dry_run'] and d['problems'] == [], d\n"
       "assert len(d['downloads']) == 1 and len(d['downloads'][0]['data_volumes']) == 3, d\n"
       "for i, v in enumerate(d['data_volumes']):\n"
       "  assert v['name'] == 'my-pool-vm-data-volume-%d' % i and v['replica'] == i, v\n"
       "  assert v['result'] == 'ok' and v['format_chain'] == ['qcow2'], v\n"
       "  assert v['virtual_size'] == " +
           std::to_string(kImageSize) +
           ", v\n"
           "  assert v['requested_bytes'] == 10737418240 and v['pvc_bytes'] == 10737418240, v\n"
           "  assert v['usable_bytes'] == " +
           std::to_string(kUsableOf10GiPvc) +
           ", v\n"
           "  assert v['target'].endswith('/default/my-pool-vm-data-volume-%d/disk.img' % i), v\n"
           "print('ok')\n"},
      {.stdin_data = r.out});
  EXPECT_EQ(check.exit_code, 0) << check.err << r.out;
  EXPECT_EQ(check.out, "ok\n");
  EXPECT_EQ(r.err, "Importing 3 DataVolumes from 1 download\n");
}

// ---------------------------------------------------------------------------
// What goes wrong, and what the user is told

TEST_F(ApplyE2eTest, ProblemsInTheManifestsStopEverythingBeforeAnyDownload) {
  const std::string path = Publish("invalid");
  std::string pool = ReplaceAll(ManifestFor(kPoolManifest, site_->http->Url(path)),
                                "      app: my-vm-http-pool-member\n  virtualMachineTemplate:",
                                "      app: my-vm-pool\n  virtualMachineTemplate:");
  std::string vm = ReplaceAll(ManifestFor(kVmManifest, site_->http->Url(path)), "storage: 10Gi",
                              "storage: 10GB");
  vm = ReplaceAll(vm, "name: my-http-datasource\n          apiGroup",
                  "name: missing-datasource\n          apiGroup");
  RunResult r = Apply({Write("pool.yaml", pool), Write("vm.yaml", vm)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const std::string pool_file = work_.File("pool.yaml");
  const std::string vm_file = work_.File("vm.yaml");
  EXPECT_TRUE(Contains(r.err, "error: " + pool_file +
                                  ":9: VirtualMachinePool default/my-vm-http-pool: "
                                  "spec.selector.matchLabels.app: app=my-vm-pool does not match "
                                  "the VMs the pool makes: the template's label is "
                                  "app=my-vm-http-pool-member "
                                  "(spec.virtualMachineTemplate.metadata.labels)\n"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "error: " + vm_file +
                                  ":40: VirtualMachine default/my-vm-with-http-data-volume: "
                                  "spec.dataVolumeTemplates[0].spec.sourceRef.name: DataSource "
                                  "default/missing-datasource is not in the manifests given with "
                                  "-f (give its manifest too)\n"))
      << r.err;
  EXPECT_TRUE(
      Contains(r.err, "error: " + vm_file +
                          ":47: VirtualMachine default/my-vm-with-http-data-volume: "
                          "spec.dataVolumeTemplates[0].spec.pvc.resources.requests.storage: "
                          "invalid quantity \"10GB\": "))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "error: 3 problems; nothing was imported\n")) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(FileExists(Pvcs()));
  EXPECT_EQ(Served(*site_->http, path), 0u);

  r = Apply({Write("broken.yaml", "kind: VirtualMachine\nspec: [\n")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "error: " + work_.File("broken.yaml") + ":3: not valid YAML: "))
      << r.err;
}

TEST_F(ApplyE2eTest, ImageLargerThanTheRequestFailsWithCdisMessage) {
  const std::string path = Publish("small");
  std::string vm =
      ReplaceAll(ManifestFor(kVmManifest, site_->http->Url(path)), "storage: 10Gi", "storage: 3Mi");
  RunResult r = Apply({Write("vm.yaml", vm)});
  EXPECT_EQ(r.exit_code, 7) << r.err << r.out;
  // 3Mi less 6% is 2 MiB once rounded down to whole MiB.
  EXPECT_TRUE(Contains(r.out,
                       "default/my-http-data-volume: virtual image size 4194304 is larger "
                       "than the reported available storage 2097152. A larger PVC is "
                       "required\n"))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "failed (too-small)")) << r.out;
  EXPECT_EQ(ListDir(Pvcs() + "/default/my-http-data-volume"), std::vector<std::string>{});
}

TEST_F(ApplyE2eTest, OneDataVolumeTooSmallDoesNotFailTheOthersSharingItsDownload) {
  const std::string path = Publish("mixed");
  const std::string url = site_->http->Url(path);
  RunResult r = Apply(
      {Write("vm.yaml", ReplaceAll(ManifestFor(kVmManifest, url), "storage: 10Gi", "storage: 3Mi")),
       Write("pool.yaml", ManifestFor(kPoolManifest, url))},
      {"--output", "json"});
  EXPECT_EQ(r.exit_code, 7) << r.err << r.out;
  EXPECT_FALSE(FileExists(work_.File(kVmDisk)));
  for (int i = 0; i < 3; ++i) {
    ExpectImported(Pvcs() + "/default/my-pool-vm-data-volume-" + std::to_string(i) + "/disk.img");
  }
  RunResult check =
      test::Run({"python3", "-c",
                 "import json, sys\n"
                 "d = {v['name']: v for v in json.load(sys.stdin)['data_volumes']}\n"
                 "vm = d['my-http-data-volume']\n"
                 "assert vm['result'] == 'failed' and vm['error']['code'] == 'too-small', vm\n"
                 "assert vm['error']['exit_code'] == 7, vm\n"
                 "assert 'available storage 2097152' in vm['error']['message'], vm\n"
                 "print('ok')\n"},
                {.stdin_data = r.out});
  EXPECT_EQ(check.out, "ok\n") << check.err << r.out;
  // Once for all four: the disk that is too small drops out alone.
  EXPECT_EQ(Served(*site_->http, path), 1u);
}

TEST_F(ApplyE2eTest, CompressedRawTooLargeForOneDataVolumeSharingItsDownload) {
  // A raw image inside xz shows its size only at its end: the import stops
  // when the data passes the smallest disk, which is the one that failed.
  const std::string path = Publish("mixed-xz", "raw.xz");
  const std::string url = site_->http->Url(path);
  RunResult r = Apply(
      {Write("vm.yaml", ReplaceAll(ManifestFor(kVmManifest, url), "storage: 10Gi", "storage: 3Mi")),
       Write("pool.yaml", ManifestFor(kPoolManifest, url))});
  EXPECT_EQ(r.exit_code, 7) << r.err << r.out;
  EXPECT_TRUE(Contains(r.out,
                       "default/my-http-data-volume: the image is larger than the reported "
                       "available storage 2097152 (its data continues past that offset). "
                       "A larger PVC is required\n"))
      << r.out;
  EXPECT_FALSE(FileExists(work_.File(kVmDisk)));
  for (int i = 0; i < 3; ++i) {
    ExpectImported(Pvcs() + "/default/my-pool-vm-data-volume-" + std::to_string(i) + "/disk.img");
  }
  // One download: the small disk dropped out where the stream passed it.
  EXPECT_EQ(Served(*site_->http, path), 1u);
}

TEST_F(ApplyE2eTest, ExitCodeIsTheFirstFailuresAndEveryResultIsReported) {
  const std::string path = Publish("first");
  std::string missing = ReplaceAll(BlockDataVolume(site_->http->Url("/missing.qcow2"), "64Mi"),
                                   "    volumeMode: Block\n", "");
  missing = ReplaceAll(missing, "name: block-disk", "name: a-missing");
  std::string small = ReplaceAll(
      ReplaceAll(BlockDataVolume(site_->http->Url(path), "3Mi"), "    volumeMode: Block\n", ""),
      "name: block-disk", "name: b-small");
  RunResult r = Apply({Write("a.yaml", missing), Write("b.yaml", small)});
  EXPECT_EQ(r.exit_code, 5) << r.err << r.out;
  EXPECT_TRUE(Contains(r.out, "default/a-missing: HTTP 404")) << r.out;
  EXPECT_TRUE(Contains(r.out, "default/b-small: virtual image size 4194304 is larger")) << r.out;
  r = Apply({work_.File("b.yaml"), work_.File("a.yaml")}, {"--max-parallel", "1"});
  EXPECT_EQ(r.exit_code, 7) << r.err << r.out;
}

TEST_F(ApplyE2eTest, ExistingDiskIsKeptUnlessForced) {
  const std::string path = Publish("force");
  const std::string manifest = Write("vm.yaml", ManifestFor(kVmManifest, site_->http->Url(path)));
  std::filesystem::create_directories(Pvcs() + "/default/my-http-data-volume");
  WriteFile(work_.File(kVmDisk), "precious");
  RunResult r = Apply({manifest});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "DataVolume my-http-data-volume: " + work_.File(kVmDisk) +
                                  " already exists; pass --force to replace it"))
      << r.err;
  EXPECT_EQ(ReadFile(work_.File(kVmDisk)), "precious");
  r = Apply({manifest}, {"--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectImported(work_.File(kVmDisk));
}

// ---------------------------------------------------------------------------
// CDI's own DataVolume http source, and several images at once

TEST_F(ApplyE2eTest, CdiDataVolumeWithCertConfigMapAndChecksum) {
  const std::string path = Publish("cdi");
  const std::string sha = Sha256File(site_->www.File("disk.qcow2"));
  auto manifest = [&](const std::string& checksum) {
    return "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata:\n  name: cdi-disk\n"
           "  namespace: team\nspec:\n  source:\n    http:\n      url: " +
           site_->tls->Url(path) +
           "\n      certConfigMap: registry-ca\n      checksum: sha256:" + checksum +
           "\n  storage:\n    resources:\n      requests:\n        storage: 64Mi\n"
           "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: registry-ca\n  namespace: "
           "team\ndata:\n  ca.pem: |\n" +
           ReplaceAll("    " + ReadFile(certs_.ca.cert), "\n", "\n    ") + "\n";
  };
  RunResult r = Apply({Write("dv.yaml", manifest(sha))});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  const std::string disk = Pvcs() + "/team/cdi-disk/disk.img";
  ExpectImported(disk);
  EXPECT_EQ(FileSize(disk), 64ull << 20);  // storage: the request is usable

  r = Apply({Write("bad.yaml", manifest(std::string(64, '0')))}, {"--force"});
  EXPECT_EQ(r.exit_code, 9) << r.err << r.out;
  EXPECT_TRUE(Contains(r.out, "checksum mismatch: expected sha256:" + std::string(64, '0') +
                                  ", calculated sha256:" + sha))
      << r.out;
  // The replacement failed: the disk imported before is left as it was.
  ExpectImported(disk);
}

TEST_F(ApplyE2eTest, DistinctImagesStreamInParallel) {
  const std::string qcow2 = Publish("parallel");
  const std::string xz = Publish("parallel", "raw.xz");
  std::string second = ReplaceAll(ReplaceAll(ManifestFor(kVmManifest, site_->http->Url(xz)),
                                             "my-http-datasource", "xz-datasource"),
                                  "my-http-data-volume", "xz-data-volume");
  second = ReplaceAll(second, "name: my-vm-with-http-data-volume", "name: xz-vm");
  RunResult r = Apply({Write("vm.yaml", ManifestFor(kVmManifest, site_->http->Url(qcow2))),
                       Write("xz.yaml", second)},
                      {"--max-parallel", "2", "--progress", "plain"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectImported(work_.File(kVmDisk));
  ExpectImported(Pvcs() + "/default/xz-data-volume/disk.img");
  EXPECT_EQ(Served(*site_->http, qcow2), 1u);
  EXPECT_EQ(Served(*site_->http, xz), 1u);
  EXPECT_TRUE(Contains(r.out, "xz > raw")) << r.out;
}

TEST_F(ApplyE2eTest, InterruptCancelsEveryImportAndLeavesNoDisk) {
  FaultServer server(site_->www.path(), R"({"/slow.raw": {"file": "disk.raw",
                                             "trickle": {"bytes": 4096, "interval": 0.05}}})");
  const std::string manifest =
      Write("pool.yaml", ManifestFor(kPoolManifest, server.Url("/slow.raw")));
  const std::string log = work_.File("apply.log");
  BackgroundProcess apply({BinDir() + "/cdi-image", "apply", "-f", manifest, "--pvc-dir", Pvcs(),
                           "--progress", "plain"},
                          log);
  // Wait until the three disks are being written (their partial files
  // exist), then interrupt.
  auto writing = [&] {
    for (int i = 0; i < 3; ++i) {
      const std::string dir = Pvcs() + "/default/my-pool-vm-data-volume-" + std::to_string(i);
      if (!FileExists(dir) || ListDir(dir).empty()) return false;
    }
    return true;
  };
  for (int i = 0; i < 500 && !writing(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(writing()) << ReadFile(log);
  apply.Signal(SIGINT);
  const int code = apply.Wait(std::chrono::seconds(20));
  const std::string output = ReadFile(log);
  EXPECT_EQ(code, 130) << output;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "my-pool-vm-data-volume-" + std::to_string(i);
    // Its row of the summary says so.
    const size_t row = output.find("\ndefault/" + name + "  ");
    ASSERT_NE(row, std::string::npos) << output;
    const std::string line = output.substr(row + 1, output.find('\n', row + 1) - row - 1);
    EXPECT_TRUE(Contains(line, "failed (cancelled)")) << line;
    EXPECT_EQ(ListDir(Pvcs() + "/default/" + name), std::vector<std::string>{}) << name;
  }
}

// An apply killed part way continues each image from its checkpoint when it
// is run again (the default); --no-resume starts from byte 0.
TEST_F(ApplyE2eTest, KilledApplyContinuesFromItsCheckpointUnlessNoResume) {
  const std::string gate = work_.File("gate");
  FaultServer server(site_->www.path(),
                     R"({"/gated.raw": {"file": "disk.raw", "etag": "\"v1\"", "gate": {"after": )" +
                         std::to_string((5 << 20) / 2) + R"(, "file": ")" + gate + R"("}}})");
  const std::string manifest = Write("vm.yaml", ManifestFor(kVmManifest, server.Url("/gated.raw")));
  const std::string dir = Pvcs() + "/default/my-http-data-volume";
  const std::string checkpoint = dir + "/.disk.img.checkpoint";
  // Kills an apply once its checkpoint claims the image's first 2 MiB.
  auto kill_part_way = [&](const std::string& log) {
    BackgroundProcess apply({BinDir() + "/cdi-image", "apply", "-f", manifest, "--pvc-dir", Pvcs(),
                             "--progress", "none", "--checkpoint-every", "1Mi"},
                            log);
    bool claimed = false;
    for (int i = 0; i < 1000 && !claimed; ++i) {
      claimed = FileExists(checkpoint) &&
                Contains(ReadFile(checkpoint), "\nsource-offset 2097152\n");
      if (!claimed && apply.Wait(std::chrono::milliseconds(10)) != -1) break;
    }
    ASSERT_TRUE(claimed) << ReadFile(log);
    apply.Signal(SIGKILL);
    EXPECT_EQ(apply.Wait(std::chrono::seconds(10)), 128 + SIGKILL);
    EXPECT_EQ(ListDir(dir), (std::vector<std::string>{".disk.img.checkpoint", ".disk.img.partial"}));
  };
  kill_part_way(work_.File("first.log"));
  WriteFile(gate, "");
  RunResult r = Apply({manifest});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectImported(dir + "/disk.img");
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"disk.img"});
  std::vector<RecordedRequest> requests = server.RequestsFor("/gated.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=2097152-");

  // With --no-resume the partial file is emptied and the image fetched whole.
  std::filesystem::remove(dir + "/disk.img");
  std::filesystem::remove(gate);
  kill_part_way(work_.File("third.log"));
  WriteFile(gate, "");
  r = Apply({manifest}, {"--no-resume"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectImported(dir + "/disk.img");
  EXPECT_EQ(ListDir(dir), std::vector<std::string>{"disk.img"});
  requests = server.RequestsFor("/gated.raw");
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[3].Header("range"), "");
}

}  // namespace
}  // namespace cdi::test
