// Resolving manifests into a plan, without servers: which DataVolumes, where,
// how large, from which download, and every message for what is wrong.
#include "manifests/resolve.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "manifests/targets.h"
#include "test/manifests/apply_test_util.h"
#include "test/support/temp_dir.h"

namespace cdi::apply {
namespace {

using test::Contains;
using test::ReplaceAll;

constexpr uint64_t k10Gi = 10ull << 30;
// CDI's numbers for a 10Gi request at 6% overhead, worked out by hand:
// UsableSpace: ceil(10737418240 / 1.06) = 10129639850, down to whole MiB.
constexpr uint64_t kUsableOf10GiPvc = 9660ull << 20;
// RequiredSpace: ceil(10737418240 * 1.06) = 11381663334.4 -> 11381663335.
constexpr uint64_t kPvcFor10GiStorage = 11381663335ull;

ResolveOptions Options() {
  ResolveOptions options;
  options.pvc_dir = "/pvcs";
  return options;
}

Resolution ResolveText(const std::string& yaml, const ResolveOptions& options = Options()) {
  auto documents = ParseManifest(yaml, "m.yaml");
  EXPECT_TRUE(documents.ok()) << documents.status().ToString();
  if (!documents.ok()) return {};
  return Resolve(*documents, options);
}

std::string ProblemsText(const Resolution& resolution) {
  return resolution.problems.ToStatus().message();
}

// A DataSource "ds" and a VirtualMachine "vm" whose template "disk" uses it;
// tests vary it with ReplaceAll. Line 16 is the storage request.
constexpr char kVm[] = R"(apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm
spec:
  dataVolumeTemplates:
  - metadata:
      name: disk
    spec:
      sourceRef:
        kind: DataSource
        name: ds
      pvc:
        resources:
          requests:
            storage: 10Gi
)";

constexpr char kDataSource[] = R"(---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataSource
metadata:
  name: ds
spec:
  source:
    http:
      url: https://images.example/disk.qcow2
)";

std::string VmAndDataSource() {
  std::string text(std::string_view{kVm});
  text.append(std::string_view{kDataSource});
  return text;
}

// A pool of `replicas` whose template "pooled" uses DataSource "ds".
std::string Pool(const std::string& replicas, const std::string& selector_value = "member") {
  return R"(apiVersion: kubevirt.io/v1alpha1
kind: VirtualMachinePool
metadata:
  name: pool
spec:
  replicas: )" +
         replicas + R"(
  selector:
    matchLabels:
      app: )" +
         selector_value + R"(
  virtualMachineTemplate:
    metadata:
      labels:
        app: member
    spec:
      dataVolumeTemplates:
      - metadata:
          name: pooled
        spec:
          sourceRef:
            kind: DataSource
            name: ds
          storage:
            resources:
              requests:
                storage: 1Gi
)" + kDataSource;
}

// ---------------------------------------------------------------------------
// The documentation's manifests

TEST(ResolveTest, DocumentationVirtualMachineIsOneDataVolumeOfTenGi) {
  Resolution r = ResolveText(test::Manifest(test::kVmManifest));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  ASSERT_EQ(r.plan.data_volumes.size(), 1u);
  const DataVolumePlan& dv = r.plan.data_volumes[0];
  EXPECT_EQ(dv.QualifiedName(), "default/my-http-data-volume");
  EXPECT_EQ(dv.target, "/pvcs/default/my-http-data-volume/disk.img");
  EXPECT_EQ(dv.volume_mode, VolumeMode::kFilesystem);
  EXPECT_EQ(dv.size_rule, SizeRule::kPvc);
  EXPECT_EQ(dv.requested, k10Gi);
  EXPECT_EQ(dv.pvc_size, k10Gi);  // spec.pvc: the PVC is the request
  EXPECT_DOUBLE_EQ(dv.filesystem_overhead, 0.06);
  EXPECT_EQ(dv.usable_size, kUsableOf10GiPvc);
  EXPECT_EQ(dv.declared_in.ToString(), "VirtualMachine default/my-vm-with-http-data-volume");
  EXPECT_EQ(dv.field, "spec.dataVolumeTemplates[0]");
  ASSERT_EQ(r.plan.downloads.size(), 1u);
  EXPECT_EQ(r.plan.downloads[0].source.url, test::kPlaceholderUrl);
  EXPECT_EQ(r.plan.downloads[0].origin, "DataSource default/my-http-datasource");
  EXPECT_EQ(r.plan.downloads[0].data_volumes, std::vector<size_t>{0});
}

TEST(ResolveTest, DocumentationPoolMakesOneDataVolumePerReplicaNamedByIndex) {
  Resolution r = ResolveText(test::Manifest(test::kPoolManifest));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  ASSERT_EQ(r.plan.data_volumes.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const DataVolumePlan& dv = r.plan.data_volumes[static_cast<size_t>(i)];
    EXPECT_EQ(dv.name, "my-pool-vm-data-volume-" + std::to_string(i));
    EXPECT_EQ(dv.replica, i);
    EXPECT_EQ(dv.target, "/pvcs/default/" + dv.name + "/disk.img");
    EXPECT_EQ(dv.download, 0u);
    EXPECT_EQ(dv.field, "spec.virtualMachineTemplate.spec.dataVolumeTemplates[0]");
  }
  ASSERT_EQ(r.plan.downloads.size(), 1u);  // one image for the whole pool
  EXPECT_EQ(r.plan.downloads[0].data_volumes, (std::vector<size_t>{0, 1, 2}));
}

TEST(ResolveTest, BothDocumentationManifestsShareTheirIdenticalDataSourceAndOneDownload) {
  Resolution r = ResolveText(test::Manifest(test::kVmManifest) + "---\n" +
                             test::Manifest(test::kPoolManifest));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.data_volumes.size(), 4u);
  EXPECT_EQ(r.plan.downloads.size(), 1u);
  ASSERT_EQ(r.plan.notes.size(), 1u);
  EXPECT_TRUE(Contains(r.plan.notes[0],
                       "DataSource default/my-http-datasource is also defined, "
                       "identically, at m.yaml:50; using it once"))
      << r.plan.notes[0];
}

// ---------------------------------------------------------------------------
// Sizes, as CDI's controller and importer compute them

TEST(ResolveTest, StorageRequestIsInflatedSoThatTheRequestIsUsable) {
  Resolution r = ResolveText(ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n"));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  const DataVolumePlan& dv = r.plan.data_volumes[0];
  EXPECT_EQ(dv.size_rule, SizeRule::kStorage);
  EXPECT_EQ(dv.requested, k10Gi);
  EXPECT_EQ(dv.pvc_size, kPvcFor10GiStorage);
  EXPECT_EQ(dv.usable_size, k10Gi);
}

TEST(ResolveTest, OverheadFlagAppliesToFilesystemVolumes) {
  ResolveOptions options = Options();
  options.filesystem_overhead = 0;
  Resolution r = ResolveText(VmAndDataSource(), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_DOUBLE_EQ(r.plan.data_volumes[0].filesystem_overhead, 0);
  EXPECT_EQ(r.plan.data_volumes[0].usable_size, k10Gi);
  options.filesystem_overhead = 0.1;
  r = ResolveText(ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n"), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.data_volumes[0].pvc_size, 11811160064ull);  // 10Gi * 1.1
  EXPECT_EQ(r.plan.data_volumes[0].usable_size, k10Gi);
}

TEST(ResolveTest, BlockVolumesHaveNoOverheadAndNoInflation) {
  ResolveOptions options = Options();
  options.block_devices = {{"disk", "/dev/sdz"}};
  Resolution r = ResolveText(
      ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n        volumeMode: Block\n"),
      options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  const DataVolumePlan& dv = r.plan.data_volumes[0];
  EXPECT_EQ(dv.volume_mode, VolumeMode::kBlock);
  EXPECT_EQ(dv.target, "/dev/sdz");
  EXPECT_DOUBLE_EQ(dv.filesystem_overhead, 0);
  EXPECT_EQ(dv.pvc_size, k10Gi);
  TargetSpec target = ToTargetSpec(dv, ExistingFile::kRefuse);
  EXPECT_EQ(target.kind, TargetKind::kBlockDevice);
  EXPECT_EQ(target.path, "/dev/sdz");
  // Its checkpoints go where its file would go as a Filesystem volume.
  EXPECT_EQ(dv.checkpoint_dir, options.pvc_dir + "/default/disk");
  options.pvc_dir.clear();
  r = ResolveText(
      ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n        volumeMode: Block\n"),
      options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.data_volumes[0].checkpoint_dir, "");
}

TEST(ResolveTest, StorageWithoutVolumeModeGoesToTheDeviceGiven) {
  ResolveOptions options = Options();
  options.block_devices = {{"default/disk", "/dev/sdz"}};
  Resolution r =
      ResolveText(ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n"), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.data_volumes[0].volume_mode, VolumeMode::kBlock);
}

TEST(ResolveTest, StorageWithoutSizeIsSizedToTheImage) {
  Resolution r =
      ResolveText(ReplaceAll(ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n"),
                             "        resources:\n          requests:\n            storage: 10Gi\n",
                             "        accessModes: [ReadWriteOnce]\n"));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  const DataVolumePlan& dv = r.plan.data_volumes[0];
  EXPECT_EQ(dv.size_rule, SizeRule::kStorageImage);
  EXPECT_FALSE(dv.pvc_size.has_value());
  EXPECT_FALSE(ToTargetSpec(dv, ExistingFile::kRefuse).requested_size.has_value());
}

TEST(ResolveTest, TargetSpecCarriesThePvcSizeAndTheOverhead) {
  Resolution r = ResolveText(ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n"));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  TargetSpec target = ToTargetSpec(r.plan.data_volumes[0], ExistingFile::kReplace);
  EXPECT_EQ(target.kind, TargetKind::kFile);
  EXPECT_EQ(target.path, "/pvcs/default/disk/disk.img");
  EXPECT_EQ(target.requested_size, kPvcFor10GiStorage);
  EXPECT_DOUBLE_EQ(target.filesystem_overhead, 0.06);
  EXPECT_EQ(target.existing, ExistingFile::kReplace);
}

// ---------------------------------------------------------------------------
// Names, namespaces, selection, sharing

TEST(ResolveTest, NamespacesAreHonouredAndDefaultToTheOption) {
  std::string yaml =
      ReplaceAll(VmAndDataSource(), "  name: vm\n", "  name: vm\n  namespace: prod\n");
  Resolution r = ResolveText(yaml);
  // The DataSource is in "default", the VM in "prod": a sourceRef without a
  // namespace looks in the DataVolume's own namespace.
  EXPECT_TRUE(Contains(ProblemsText(r),
                       "m.yaml:13: VirtualMachine prod/vm: "
                       "spec.dataVolumeTemplates[0].spec.sourceRef.name: "
                       "DataSource prod/ds is not in the manifests given with -f"))
      << ProblemsText(r);
  r = ResolveText(
      ReplaceAll(yaml, "        name: ds\n", "        name: ds\n        namespace: default\n"));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.data_volumes[0].target, "/pvcs/prod/disk/disk.img");

  ResolveOptions options = Options();
  options.default_namespace = "prod";
  r = ResolveText(VmAndDataSource(), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.data_volumes[0].QualifiedName(), "prod/disk");
}

TEST(ResolveTest, OnlySelectsDataVolumesAndIgnoresTheProblemsOfOthers) {
  std::string yaml =
      Pool("3") + "---\n" +
      ReplaceAll(ReplaceAll(kVm, "storage: 10Gi", "storage: 10Gx"), "name: ds", "name: ds");
  ResolveOptions options = Options();
  options.only = {"pooled-1", "default/pooled-2"};
  Resolution r = ResolveText(yaml, options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  ASSERT_EQ(r.plan.data_volumes.size(), 2u);
  EXPECT_EQ(r.plan.data_volumes[0].name, "pooled-1");
  EXPECT_EQ(r.plan.data_volumes[1].name, "pooled-2");

  options.only = {"disk"};
  r = ResolveText(yaml, options);
  EXPECT_TRUE(Contains(ProblemsText(r), "invalid quantity \"10Gx\"")) << ProblemsText(r);
}

TEST(ResolveTest, DifferentSourcesAreDifferentDownloads) {
  std::string yaml =
      VmAndDataSource() + "---\n" +
      ReplaceAll(ReplaceAll(kVm, "name: vm", "name: vm2"), "name: disk", "name: disk2") + "---\n" +
      ReplaceAll(ReplaceAll(ReplaceAll(kVm, "name: vm", "name: vm3"), "name: disk", "name: disk3"),
                 "name: ds", "name: ds3") +
      ReplaceAll(ReplaceAll(kDataSource, "name: ds", "name: ds3"), "disk.qcow2", "other.qcow2");
  Resolution r = ResolveText(yaml);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  ASSERT_EQ(r.plan.downloads.size(), 2u);
  EXPECT_EQ(r.plan.downloads[0].data_volumes, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(r.plan.downloads[1].data_volumes, std::vector<size_t>{2});
  EXPECT_EQ(r.plan.downloads[1].display_url, "https://images.example/other.qcow2");
}

TEST(ResolveTest, SameUrlWithOtherCredentialsIsAnotherDownload) {
  std::string yaml = R"(apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: a
spec:
  source:
    http:
      url: https://images.example/disk.raw
  pvc:
    resources: {requests: {storage: 1Gi}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: b
spec:
  source:
    http:
      url: https://images.example/disk.raw
      extraHeaders: ["X-Token: 1"]
  pvc:
    resources: {requests: {storage: 1Gi}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: c
spec:
  source:
    http:
      url: https://images.example/disk.raw
  pvc:
    resources: {requests: {storage: 2Gi}}
)";
  Resolution r = ResolveText(yaml);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  ASSERT_EQ(r.plan.downloads.size(), 2u);
  EXPECT_EQ(r.plan.downloads[0].data_volumes, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(r.plan.downloads[1].source.auth.headers, std::vector<std::string>{"X-Token: 1"});
}

TEST(ResolveTest, UnknownKindsAreSkippedWithANote) {
  Resolution r = ResolveText("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\n" +
                             VmAndDataSource());
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  ASSERT_EQ(r.plan.notes.size(), 1u);
  EXPECT_EQ(r.plan.notes[0],
            "m.yaml:1: skipped Service default/web (cdi-image apply does not use this kind)");
  EXPECT_EQ(r.plan.data_volumes.size(), 1u);
}

TEST(ResolveTest, PoolApiVersionsOfTheDocumentationAndOfKubeVirtAreBothAccepted) {
  for (const char* version : {"kubevirt.io/v1alpha1", "pool.kubevirt.io/v1alpha1"}) {
    Resolution r = ResolveText(ReplaceAll(Pool("2"), "kubevirt.io/v1alpha1", version));
    ASSERT_TRUE(r.problems.empty()) << version << ": " << ProblemsText(r);
    EXPECT_EQ(r.plan.data_volumes.size(), 2u);
  }
}

TEST(ResolveTest, PoolWithZeroReplicasHasNoDataVolumesAndSaysSo) {
  Resolution r = ResolveText(Pool("0"));
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_TRUE(r.plan.data_volumes.empty());
  ASSERT_EQ(r.plan.notes.size(), 1u);
  EXPECT_EQ(r.plan.notes[0],
            "m.yaml:1: VirtualMachinePool default/pool has replicas: 0, so no DataVolumes");
}

TEST(ResolveTest, PoolSelectorMatchExpressionsAreChecked) {
  std::string yaml = ReplaceAll(Pool("1"), "    matchLabels:\n      app: member\n",
                                "    matchExpressions:\n    - {key: app, operator: In, values: "
                                "[member, other]}\n    - {key: tier, operator: DoesNotExist}\n");
  Resolution r = ResolveText(yaml);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  r = ResolveText(ReplaceAll(yaml, "operator: In", "operator: NotIn"));
  EXPECT_EQ(ProblemsText(r),
            "m.yaml:9: VirtualMachinePool default/pool: spec.selector.matchExpressions[0]: app "
            "NotIn (member, other) does not match the VMs the pool makes: the template's label is "
            "app=member (spec.virtualMachineTemplate.metadata.labels)");
}

// ---------------------------------------------------------------------------
// TLS and credentials

constexpr char kCaPem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

std::string WithCertConfig(const std::string& cert_config) {
  return VmAndDataSource() + "      certConfig:\n" + cert_config;
}

std::string Secret(const std::string& name, const std::string& data) {
  return "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name + "\n" + data;
}

TEST(ResolveTest, CertConfigFromCaBundleAndSecrets) {
  std::string yaml =
      WithCertConfig("        caBundle: " + test::Base64(kCaPem) +
                     "\n        secretRef:\n          name: cert\n"
                     "        cert:\n          secretRef:\n            name: cert\n"
                     "        key:\n          secretRef:\n            name: key\n") +
      Secret("cert", "data:\n  ca.crt: " + test::Base64("second\n" + std::string(kCaPem)) +
                         "\n  tls.crt: " + test::Base64("CLIENT CERT") + "\n") +
      Secret("key", "stringData:\n  tls.key: CLIENT KEY\n");
  Resolution r = ResolveText(yaml);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  const DownloadPlan& download = r.plan.downloads[0];
  EXPECT_EQ(download.source.tls.ca_pem,
            (std::vector<std::string>{kCaPem, "second\n" + std::string(kCaPem)}));
  EXPECT_EQ(download.source.tls.client_cert_pem, "CLIENT CERT");
  EXPECT_EQ(download.source.tls.client_key_pem, "CLIENT KEY");
  EXPECT_EQ(download.security,
            (std::vector<std::string>{"CA from certConfig.caBundle",
                                      "CA from Secret default/cert (ca.crt)",
                                      "client certificate from Secret default/cert (tls.crt), key "
                                      "from Secret default/key (tls.key)"}));
}

TEST(ResolveTest, SecretsComeFromTheSecretsDirectoryWhenNotGivenWithF) {
  test::TempDir secrets;
  std::filesystem::create_directories(secrets.File("default/cert/..data"));
  test::WriteFile(secrets.File("default/cert/tls.crt"), "MOUNTED CERT");
  test::WriteFile(secrets.File("default/cert/..data/ignored"), "x");
  test::WriteFile(secrets.File("default/cert/.hidden"), "x");
  std::filesystem::create_directories(secrets.File("default/key"));
  test::WriteFile(secrets.File("default/key/tls.key"), "MOUNTED KEY");
  ResolveOptions options = Options();
  options.secrets_dir = secrets.path();
  std::string yaml = WithCertConfig(
      "        cert:\n          secretRef:\n            name: cert\n"
      "        key:\n          secretRef:\n            name: key\n");
  Resolution r = ResolveText(yaml, options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.downloads[0].source.tls.client_cert_pem, "MOUNTED CERT");
  EXPECT_EQ(r.plan.downloads[0].source.tls.client_key_pem, "MOUNTED KEY");

  // A Secret given with -f wins over the directory.
  r = ResolveText(yaml + Secret("cert", "stringData:\n  tls.crt: DOCUMENT CERT\n"), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  EXPECT_EQ(r.plan.downloads[0].source.tls.client_cert_pem, "DOCUMENT CERT");

  // Not found anywhere: the message says where it looked.
  std::filesystem::remove_all(secrets.File("default/key"));
  r = ResolveText(yaml, options);
  EXPECT_EQ(ProblemsText(r),
            "m.yaml:32: DataSource default/ds: spec.source.http.certConfig.key.secretRef.name: "
            "Secret default/key is not in the manifests given with -f nor in --secrets-dir (no "
            "directory " +
                secrets.path() + "/default/key)");
}

TEST(ResolveTest, CdiHttpSourceFieldsOfADataVolume) {
  std::string yaml = R"(apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: dv
  namespace: team
spec:
  source:
    http:
      url: https://user@images.example/disk.raw?token=abc
      secretRef: auth
      certConfigMap: cas
      extraHeaders:
      - "X-Plain: 1"
      secretExtraHeaders: [hidden]
      checksum: "SHA256:)" +
                     std::string(64, 'A') + R"("
  pvc:
    volumeMode: Filesystem
    resources:
      requests:
        storage: 100Mi
  preallocation: true
---
apiVersion: v1
kind: Secret
metadata: {name: auth, namespace: team}
stringData: {accessKeyId: alice, secretKey: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: hidden, namespace: team}
stringData: {header: "X-Secret: 42\n"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cas, namespace: team}
data:
  ca.pem: |
    -----BEGIN CERTIFICATE-----
    MIIB
    -----END CERTIFICATE-----
)";
  Resolution r = ResolveText(yaml);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  const DownloadPlan& download = r.plan.downloads[0];
  EXPECT_EQ(download.source.auth.user, "alice");
  EXPECT_EQ(download.source.auth.password, "s3cret");
  EXPECT_EQ(download.source.auth.headers, (std::vector<std::string>{"X-Plain: 1", "X-Secret: 42"}));
  EXPECT_EQ(download.source.tls.ca_pem, std::vector<std::string>{kCaPem});
  EXPECT_EQ(download.checksum, "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(download.display_url, "https://images.example/disk.raw");  // no user, no query
  EXPECT_EQ(download.origin, "DataVolume team/dv");
  EXPECT_EQ(r.plan.data_volumes[0].preallocation, Preallocation::kOn);
  EXPECT_EQ(r.plan.data_volumes[0].target, "/pvcs/team/dv/disk.img");
}

// ---------------------------------------------------------------------------
// Every problem, with its message

struct ProblemCase {
  const char* title;
  std::string yaml;
  std::string expected;  // the whole message, or a part of it when partial
  bool partial = false;
};

void ExpectProblem(const ProblemCase& c, const ResolveOptions& options = Options()) {
  Resolution r = ResolveText(c.yaml, options);
  const std::string text = ProblemsText(r);
  if (c.partial) {
    EXPECT_TRUE(Contains(text, c.expected)) << c.title << ":\n" << text;
  } else {
    EXPECT_EQ(text, c.expected) << c.title;
  }
  EXPECT_TRUE(r.plan.data_volumes.empty() || !r.problems.empty()) << c.title;
}

TEST(ResolveProblemTest, MissingDataSource) {
  ExpectProblem({"missing DataSource", kVm,
                 "m.yaml:12: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].spec.sourceRef.name: DataSource default/ds is not "
                 "in the manifests given with -f (give its manifest too)"});
}

TEST(ResolveProblemTest, MissingSecretAndMissingKey) {
  ExpectProblem({"missing Secret", WithCertConfig("        secretRef:\n          name: cas\n"),
                 "m.yaml:28: DataSource default/ds: spec.source.http.certConfig.secretRef.name: "
                 "Secret default/cas is not in the manifests given with -f (give its manifest "
                 "with -f, or pass --secrets-dir DIR holding DIR/default/cas/<key> files)"});
  ExpectProblem({"missing key",
                 WithCertConfig("        secretRef:\n          name: cas\n") +
                     Secret("cas", "stringData:\n  tls.crt: x\n  other: y\n"),
                 "m.yaml:28: DataSource default/ds: spec.source.http.certConfig.secretRef.name: "
                 "Secret default/cas (m.yaml) has no key \"ca.crt\" (its keys: other, tls.crt)"});
  ExpectProblem(
      {"basic auth key",
       ReplaceAll(VmAndDataSource(), "disk.qcow2\n", "disk.qcow2\n      secretRef: auth\n") +
           Secret("auth", "stringData:\n  accessKeyId: alice\n"),
       "m.yaml:26: DataSource default/ds: spec.source.http.secretRef: Secret "
       "default/auth (m.yaml) has no key \"secretKey\" (its keys: accessKeyId)"});
}

TEST(ResolveProblemTest, SelectorThatDoesNotMatchTheTemplate) {
  ExpectProblem({"selector", Pool("3", "other"),
                 "m.yaml:9: VirtualMachinePool default/pool: spec.selector.matchLabels.app: "
                 "app=other does not match the VMs the pool makes: the template's label is "
                 "app=member (spec.virtualMachineTemplate.metadata.labels)"});
  ExpectProblem({"no selector",
                 ReplaceAll(Pool("3"), "  selector:\n    matchLabels:\n      app: member\n", ""),
                 "m.yaml:5: VirtualMachinePool default/pool: spec.selector: is required: "
                 "matchLabels that match spec.virtualMachineTemplate.metadata.labels"});
}

TEST(ResolveProblemTest, BadQuantities) {
  ExpectProblem({"bad quantity", ReplaceAll(VmAndDataSource(), "10Gi", "10Gx"),
                 "m.yaml:16: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].spec.pvc.resources.requests.storage: invalid "
                 "quantity \"10Gx\"",
                 /*partial=*/true});
  ExpectProblem({"too small", ReplaceAll(VmAndDataSource(), "10Gi", "512Ki"),
                 "m.yaml:16: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].spec.pvc.resources.requests.storage: \"512Ki\" is "
                 "524288 bytes: it must be at least 1Mi (KubeVirt refuses smaller disks)"});
  ExpectProblem({"zero", ReplaceAll(VmAndDataSource(), "10Gi", "0"),
                 "m.yaml:16: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].spec.pvc.resources.requests.storage: must be more "
                 "than zero"});
  ExpectProblem({"missing", ReplaceAll(VmAndDataSource(), "            storage: 10Gi\n", ""),
                 "m.yaml:14: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].spec.pvc.resources.requests.storage: is required: "
                 "the size of the PVC, e.g. 10Gi"});
  ExpectProblem({"replicas quoted", Pool("\"3\""),
                 "m.yaml:6: VirtualMachinePool default/pool: spec.replicas: must be a whole "
                 "number from 0 (unquoted), not the quoted text \"3\""});
}

TEST(ResolveProblemTest, UrlProblems) {
  ExpectProblem({"missing url",
                 ReplaceAll(VmAndDataSource(), "      url: https://images.example/disk.qcow2\n",
                            "      extraHeaders: []\n"),
                 "m.yaml:24: DataSource default/ds: spec.source.http.url: is required: the "
                 "http(s) URL of the disk image"});
  ExpectProblem({"empty url",
                 ReplaceAll(VmAndDataSource(), "https://images.example/disk.qcow2", "\"\""),
                 "m.yaml:25: DataSource default/ds: spec.source.http.url: must not be empty: the "
                 "http(s) URL of the disk image"});
  ExpectProblem({"scheme", ReplaceAll(VmAndDataSource(), "https://", "ftp://"),
                 "m.yaml:25: DataSource default/ds: spec.source.http.url: invalid source URL "
                 "scheme: ftp://images.example/disk.qcow2 (only http:// and https:// URLs can be "
                 "imported)"});
  ExpectProblem(
      {"no http",
       ReplaceAll(VmAndDataSource(), "    http:\n      url: https://images.example/disk.qcow2\n",
                  "    pvc:\n      name: golden\n      namespace: images\n"),
       "m.yaml:24: DataSource default/ds: spec.source.pvc: cdi-image apply imports only "
       "spec.source.http (a DataSource pointing at a PVC, a snapshot or another "
       "DataSource is a clone inside a cluster)"});
}

TEST(ResolveProblemTest, DuplicateNames) {
  ExpectProblem({"duplicate DataSource, different",
                 VmAndDataSource() + ReplaceAll(kDataSource, "disk.qcow2", "other.qcow2"),
                 "m.yaml:27: DataSource default/ds: is defined twice, differently: also at "
                 "m.yaml:18"});
  ExpectProblem(
      {"duplicate DataVolume",
       VmAndDataSource() + "---\n" + ReplaceAll(kVm, "name: vm", "name: vm2"),
       "m.yaml:33: VirtualMachine default/vm2: spec.dataVolumeTemplates[0].metadata.name: "
       "DataVolume default/disk is declared twice (its PVC would be shared): first by "
       "VirtualMachine default/vm spec.dataVolumeTemplates[0] at m.yaml:7"});
  ExpectProblem(
      {"pool replica clashes with a DataVolume",
       Pool("2") + "---\n" +
           ReplaceAll(ReplaceAll(kVm, "name: disk", "name: pooled-1"), "name: vm", "name: vm"),
       "DataVolume default/pooled-1 is declared twice", /*partial=*/true});
}

TEST(ResolveProblemTest, ShapeOfTheDataVolume) {
  ExpectProblem({"no pvc or storage",
                 ReplaceAll(VmAndDataSource(),
                            "      pvc:\n        resources:\n          requests:\n            "
                            "storage: 10Gi\n",
                            ""),
                 "m.yaml:9: VirtualMachine default/vm: spec.dataVolumeTemplates[0].spec.pvc: is "
                 "required (or storage): the volume the image is imported into, with "
                 "resources.requests.storage"});
  ExpectProblem({"both source and sourceRef",
                 ReplaceAll(VmAndDataSource(), "      sourceRef:\n",
                            "      source:\n        http: {url: https://x/y}\n      sourceRef:\n"),
                 "m.yaml:9: VirtualMachine default/vm: spec.dataVolumeTemplates[0].spec: has both "
                 "source and sourceRef: give one"});
  ExpectProblem(
      {"archive",
       ReplaceAll(VmAndDataSource(), "      pvc:\n", "      contentType: archive\n      pvc:\n"),
       "m.yaml:13: VirtualMachine default/vm: spec.dataVolumeTemplates[0].spec.contentType: "
       "archive content (a tar extracted into the volume) is not supported by cdi-image "
       "apply; only disk images (kubevirt)"});
  ExpectProblem(
      {"sourceRef kind",
       ReplaceAll(VmAndDataSource(), "kind: DataSource\n        name: ds",
                  "kind: PersistentVolumeClaim\n        name: ds"),
       "m.yaml:11: VirtualMachine default/vm: spec.dataVolumeTemplates[0].spec.sourceRef.kind: "
       "unsupported sourceRef kind \"PersistentVolumeClaim\", currently only DataSource is "
       "supported"});
  ExpectProblem({"no name",
                 ReplaceAll(VmAndDataSource(), "  - metadata:\n      name: disk\n",
                            "  - metadata:\n      labels: {a: b}\n"),
                 "m.yaml:7: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].metadata.name: is required: the DataVolume's name"});
  ExpectProblem({"bad name", ReplaceAll(VmAndDataSource(), "name: disk", "name: Disk_1"),
                 "m.yaml:8: VirtualMachine default/vm: spec.dataVolumeTemplates[0].metadata.name: "
                 "\"Disk_1\" is not a valid name: lower-case letters, digits, '-' and '.', "
                 "starting and ending with a letter or digit"});
}

TEST(ResolveProblemTest, DocumentsWithoutKindNameOrRightApiVersion) {
  ExpectProblem({"no kind", "apiVersion: v1\nmetadata: {name: x}\n",
                 "m.yaml:1: (no kind) default/x: kind: is required"});
  ExpectProblem({"no name",
                 std::string(kDataSource).substr(4) + "---\nkind: Secret\napiVersion: v1\n",
                 "m.yaml:10: Secret default/(unnamed): metadata.name: is required"});
  ExpectProblem({"api version",
                 ReplaceAll(VmAndDataSource(), "cdi.kubevirt.io/v1beta1", "kubevirt.io/v1"),
                 "m.yaml:18: DataSource default/ds: apiVersion: \"kubevirt.io/v1\" is not an API "
                 "version of DataSource (expected cdi.kubevirt.io/v1beta1)",
                 /*partial=*/true});
  ExpectProblem({"not a map", "- a\n- b\n",
                 "m.yaml:1: a manifest document must be a map with apiVersion, kind and metadata, "
                 "not a list"});
}

TEST(ResolveProblemTest, CertConfigProblems) {
  ExpectProblem({"PEM instead of base64",
                 WithCertConfig("        caBundle: |\n          -----BEGIN CERTIFICATE-----\n"
                                "          MIIB\n          -----END CERTIFICATE-----\n"),
                 "m.yaml:27: DataSource default/ds: spec.source.http.certConfig.caBundle: holds "
                 "PEM text, but caBundle is the base64 of a PEM bundle: encode it, e.g. with "
                 "'base64 -w0 ca.pem'"});
  ExpectProblem({"not base64", WithCertConfig("        caBundle: \"not base64!\"\n"),
                 "m.yaml:27: DataSource default/ds: spec.source.http.certConfig.caBundle: is not "
                 "valid base64 (expected the base64 of a PEM CA bundle)"});
  ExpectProblem({"cert without key",
                 WithCertConfig("        cert:\n          secretRef:\n            name: c\n") +
                     Secret("c", "stringData: {tls.crt: x}\n"),
                 "m.yaml:27: DataSource default/ds: spec.source.http.certConfig.key: is required "
                 "with spec.source.http.certConfig.cert: a client certificate needs its private "
                 "key and the other way round"});
  ExpectProblem({"misspelt field", WithCertConfig("        cabundle: abc\n"),
                 "m.yaml:27: DataSource default/ds: spec.source.http.certConfig.cabundle: unknown "
                 "field (known here: caBundle, secretRef, cert, key)"});
  ExpectProblem(
      {"bad Secret data",
       WithCertConfig("        secretRef: {name: s}\n") + Secret("s", "data:\n  ca.crt: \"!!\"\n"),
       "m.yaml:34: Secret default/s: data.ca.crt: is not valid base64 (values under "
       "data are base64; put plain text under stringData instead)",
       /*partial=*/true});
}

TEST(ResolveProblemTest, BlockDevicesAndSelections) {
  ResolveOptions options = Options();
  options.block_devices = {{"nope", "/dev/sdz"}};
  ExpectProblem({"--block unknown name", VmAndDataSource(),
                 "--block nope=/dev/sdz: no DataVolume is named \"nope\" (the manifests declare: "
                 "default/disk)"},
                options);
  options.block_devices = {{"disk", "/dev/sdz"}};
  ExpectProblem({"--block on a Filesystem pvc", VmAndDataSource(),
                 "m.yaml:7: VirtualMachine default/vm: "
                 "spec.dataVolumeTemplates[0].spec.pvc.volumeMode: --block disk=/dev/sdz: the "
                 "DataVolume is a Filesystem volume (volumeMode is Filesystem, or unset under "
                 "pvc); set volumeMode: Block to import it onto a device"},
                options);
  ExpectProblem(
      {"Block without --block",
       ReplaceAll(VmAndDataSource(), "      pvc:\n", "      pvc:\n        volumeMode: Block\n"),
       "m.yaml:7: VirtualMachine default/vm: "
       "spec.dataVolumeTemplates[0].spec.pvc.volumeMode: volumeMode: Block needs a "
       "device: pass --block disk=/dev/..."});
  options = Options();
  options.only = {"nope"};
  ExpectProblem({"--only unknown name", VmAndDataSource(),
                 "--only nope: no DataVolume is named \"nope\" (the manifests declare: "
                 "default/disk)"},
                options);
  options = Options();
  options.pvc_dir = "";
  ExpectProblem({"no --pvc-dir", VmAndDataSource(),
                 "--pvc-dir DIR is required: Filesystem DataVolumes are imported into "
                 "DIR/<namespace>/<name>/disk.img"},
                options);
}

TEST(ResolveProblemTest, EveryProblemIsReportedNotJustTheFirst) {
  Resolution r = ResolveText(ReplaceAll(kVm, "10Gi", "ten") + "---\n" + Pool("2", "other"));
  EXPECT_EQ(r.problems.size(), 2u) << ProblemsText(r);
  EXPECT_TRUE(Contains(ProblemsText(r), "invalid quantity \"ten\"")) << ProblemsText(r);
  EXPECT_TRUE(Contains(ProblemsText(r), "app=other does not match")) << ProblemsText(r);
}

// ---------------------------------------------------------------------------
// Target checks (the local side, before any download)

TEST(CheckTargetsTest, ExistingDiskIsRefusedUnlessReplaced) {
  test::TempDir pvcs;
  ResolveOptions options;
  options.pvc_dir = pvcs.path();
  Resolution r = ResolveText(VmAndDataSource(), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  std::filesystem::create_directories(pvcs.File("default/disk"));
  test::WriteFile(pvcs.File("default/disk/disk.img"), "old");
  Problems problems;
  CheckTargets(ExistingFile::kRefuse, &r.plan, &problems);
  EXPECT_EQ(problems.ToStatus().message(),
            "m.yaml:7: VirtualMachine default/vm: DataVolume disk: " + pvcs.path() +
                "/default/disk/disk.img already exists; pass --force to replace it");
  Problems none;
  CheckTargets(ExistingFile::kReplace, &r.plan, &none);
  EXPECT_TRUE(none.empty()) << none.ToStatus().message();
}

TEST(CheckTargetsTest, DeviceThatIsNotABlockDeviceIsRefused) {
  test::TempDir dir;
  test::WriteFile(dir.File("file"), "x");
  ResolveOptions options = Options();
  options.block_devices = {{"disk", dir.File("file")}};
  Resolution r =
      ResolveText(ReplaceAll(VmAndDataSource(), "      pvc:\n", "      storage:\n"), options);
  ASSERT_TRUE(r.problems.empty()) << ProblemsText(r);
  Problems problems;
  CheckTargets(ExistingFile::kRefuse, &r.plan, &problems);
  EXPECT_EQ(problems.ToStatus().message(),
            "m.yaml:7: VirtualMachine default/vm: DataVolume disk: --block disk=" +
                dir.File("file") + ": " + dir.File("file") + " is not a block device");
}

}  // namespace
}  // namespace cdi::apply
