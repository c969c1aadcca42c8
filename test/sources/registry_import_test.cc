// Imports from a real registry (Debian's docker-registry on 127.0.0.1) of
// containerDisk images built here as OCI layouts and pushed with skopeo:
// each import is compared with qemu-img's conversion of the disk file.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "test/support/certs.h"
#include "test/support/files.h"
#include "test/support/fixture_cache.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/registry_server.h"
#include "test/support/tar_builder.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

using Compression = OciLayout::Compression;

bool HaveRegistryTools() {
  return HaveProgram("docker-registry") && HaveProgram("skopeo") && HaveProgram("qemu-img") &&
         HaveProgram("htpasswd");
}

// A containerDisk layer: disk/<name> holding `disk`, after the directory.
std::string DiskLayerTar(const std::string& disk, const std::string& name = "disk.img") {
  return TarBuilder().Directory("disk/").File("disk/" + name, disk).End().bytes;
}

// The images every test shares, built once, and the raw conversion qemu-img
// makes of each disk file.
struct Images {
  TempDir dir;
  std::string raw, qcow2, compressed_qcow2, arm_raw;
  std::string expected_raw, expected_qcow2, expected_arm;
  Images() {
    // 3 MiB: data, a run of zeros, data (and a ragged tail).
    raw = RandomBytes(1 << 20, 1) + std::string(1 << 20, '\0') + RandomBytes((1 << 20) + 4096, 2);
    arm_raw = RandomBytes(1 << 20, 3);
    WriteFile(dir.File("disk.raw"), raw);
    Sh("qemu-img convert -f raw -O qcow2 " + dir.File("disk.raw") + " " + dir.File("disk.qcow2"));
    Sh("qemu-img convert -c -f raw -O qcow2 " + dir.File("disk.raw") + " " +
       dir.File("disk.cqcow2"));
    qcow2 = ReadFile(dir.File("disk.qcow2"));
    compressed_qcow2 = ReadFile(dir.File("disk.cqcow2"));
    Sh("qemu-img convert -O raw " + dir.File("disk.qcow2") + " " + dir.File("expected.raw"));
    expected_qcow2 = Sha256File(dir.File("expected.raw"));
    expected_raw = Sha256Bytes(raw);
    expected_arm = Sha256Bytes(arm_raw);
  }
};

class RegistryImportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveRegistryTools()) return;
    images_ = new Images();
    // The pushes take seconds: made once per build tree, the registry's
    // storage is copied for each test process.
    const std::string cache = CachedFixtureDir("registry-images-v1", [](const std::string& dir) {
      RegistryServer builder({});
      Push(builder, *images_, dir);
      Sh("cp -a '" + builder.storage_dir() + "' '" + dir + "/storage'");
    });
    registry_ = new RegistryServer({.storage_from = cache + "/storage"});
    corrupt_layer_digest_ = new std::string(ReadFile(cache + "/corrupt-layer-digest"));
  }

  // Pushes every image the tests import to `registry`; the digest of the
  // damaged layer goes to `dir`/corrupt-layer-digest.
  static void Push(RegistryServer& registry, const Images& images, const std::string& dir) {
    OciLayout l(images.dir.File("layout"));
    const std::vector<std::string> env = {"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small",
                                          "PATH=/usr/bin"};
    auto push = [&](const OciLayout::Descriptor& image, const std::string& name,
                    const std::string& format = "") {
      l.Tag(image, name);
      registry.Push(l, name, "disks/" + name, format);
    };
    push(l.AddImage({l.AddLayer(DiskLayerTar(images.qcow2), Compression::kGzip)}, "amd64", env),
         "qcow2-gzip");
    push(l.AddImage({l.AddLayer(DiskLayerTar(images.raw), Compression::kNone)}), "raw-plain");
    push(l.AddImage({l.AddLayer(DiskLayerTar(images.compressed_qcow2), Compression::kZstd)}),
         "cqcow2-zstd");
    // A base layer with what base images hold (a link, a whiteout, a
    // directory named like the disk's), then the disk.
    const std::string base = TarBuilder()
                                 .Directory("etc/")
                                 .File("etc/hosts", "127.0.0.1 localhost\n")
                                 .Header({.name = "bin/sh", .typeflag = '2', .linkname = "busybox"})
                                 .Header({.name = "dev/null", .typeflag = '3'})
                                 .File("disk/.wh.old.img", "")
                                 .Directory("disk/")
                                 .End()
                                 .bytes;
    push(l.AddImage({l.AddLayer(base, Compression::kGzip),
                     l.AddLayer(DiskLayerTar(images.raw), Compression::kGzip),
                     l.AddLayer(TarBuilder().File("late.txt", "after the disk").End().bytes,
                                Compression::kNone)}),
         "later-layer");
    push(l.AddImage({l.AddLayer(DiskLayerTar(images.qcow2), Compression::kGzip)}), "v2s2",
         "v2s2");
    push(
        l.AddIndex(
            {{l.AddImage({l.AddLayer(DiskLayerTar(images.raw), Compression::kGzip)}, "amd64"),
              "amd64"},
             {l.AddImage({l.AddLayer(DiskLayerTar(images.arm_raw), Compression::kGzip)}, "arm64"),
              "arm64"}}),
        "multiarch");
    push(l.AddImage(
             {l.AddLayer(TarBuilder().File("etc/hosts", "x").End().bytes, Compression::kGzip)}),
         "no-disk");
    push(l.AddImage({l.AddLayer(TarBuilder().File("disk/sub/disk.img", images.raw).End().bytes,
                                Compression::kGzip)}),
         "subdirectory");
    const OciLayout::Descriptor corrupt_layer =
        l.AddLayer(DiskLayerTar(images.raw, "corrupt.img"), Compression::kGzip);
    push(l.AddImage({corrupt_layer}), "corrupted");
    WriteFile(dir + "/corrupt-layer-digest", corrupt_layer.digest);
    // Damage the stored blob, same size: the registry serves it as it is.
    const std::string path = registry.BlobDataPath(corrupt_layer.digest);
    std::string blob = ReadFile(path);
    blob[blob.size() / 2] = static_cast<char>(blob[blob.size() / 2] ^ 0x55);
    WriteFile(path, blob);
  }
  static void TearDownTestSuite() {
    delete corrupt_layer_digest_;
    delete registry_;
    delete images_;
  }

  void SetUp() override {
    if (images_ == nullptr) GTEST_SKIP() << "docker-registry, skopeo, htpasswd or qemu-img missing";
  }

  ImportSpec Spec(const std::string& url) {
    ImportSpec spec;
    spec.source.url = url;
    spec.source.registry.insecure = true;  // plain HTTP, as CDI's insecureRegistries
    spec.source.network.max_retries = 0;
    spec.targets.push_back({.path = target_.File("disk.img")});
    return spec;
  }
  std::string TargetPath() const { return target_.File("disk.img"); }

  static Images* images_;
  static RegistryServer* registry_;
  static std::string* corrupt_layer_digest_;
  TempDir target_;
};

Images* RegistryImportTest::images_ = nullptr;
RegistryServer* RegistryImportTest::registry_ = nullptr;
std::string* RegistryImportTest::corrupt_layer_digest_ = nullptr;

TEST_F(RegistryImportTest, Qcow2ContainerDiskInAGzipLayer) {
  Progress last;
  ImportHooks hooks;
  hooks.on_progress = [&last](const Progress& progress) { last = progress; };
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/qcow2-gzip")), hooks);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_qcow2);
  EXPECT_EQ(result->format_chain, (std::vector<std::string>{"qcow2"}));
  EXPECT_EQ(result->virtual_size, images_->raw.size());
  // Progress counts the layer's bytes as served (one gzip layer here).
  EXPECT_EQ(last.phase, Phase::kDone);
  ASSERT_TRUE(last.source_size.has_value());
  EXPECT_EQ(last.source_bytes, *last.source_size);
  EXPECT_EQ(result->bytes_read, *last.source_size);
  EXPECT_LT(*last.source_size, images_->qcow2.size());  // compressed
  EXPECT_EQ(result->image_env,
            (std::vector<std::string>{"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small",
                                      "PATH=/usr/bin"}));
}

TEST_F(RegistryImportTest, RawDiskInAnUncompressedLayer) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/raw-plain")));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_raw);
  // The zero run is a hole, not written.
  EXPECT_GE(result->bytes_zero, 1u << 20);
}

TEST_F(RegistryImportTest, CompressedQcow2InAZstdLayer) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/cqcow2-zstd")));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_qcow2);
}

TEST_F(RegistryImportTest, DiskInALaterLayerAfterLinksDevicesAndWhiteouts) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/later-layer")));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_raw);
}

TEST_F(RegistryImportTest, DockerSchema2Manifest) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/v2s2")));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_qcow2);
}

TEST_F(RegistryImportTest, MultiArchitectureIndexByArchitecture) {
  ImportSpec spec = Spec(registry_->Reference("disks/multiarch"));
  spec.source.registry.architecture = "arm64";
  Result<ImportResult> arm = Import(spec);
  ASSERT_TRUE(arm.ok()) << arm.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_arm);

  spec.source.registry.architecture = "amd64";
  spec.targets[0].existing = ExistingFile::kReplace;
  Result<ImportResult> amd = Import(spec);
  ASSERT_TRUE(amd.ok()) << amd.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_raw);

  spec.source.registry.architecture = "s390x";
  Result<ImportResult> none = Import(spec);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no image for linux/s390x (it has: linux/amd64, "
                                         "linux/arm64)"),
            std::string::npos)
      << none.status().message();
}

TEST_F(RegistryImportTest, AnArchitectureOtherThanTheImagesIsRefused) {
  ImportSpec spec = Spec(registry_->Reference("disks/raw-plain"));
  spec.source.registry.architecture = "arm64";
  Result<ImportResult> result = Import(spec);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("doesn't match requested architecture: \"arm64\""),
            std::string::npos)
      << result.status().message();
  EXPECT_FALSE(FileExists(TargetPath()));
}

TEST_F(RegistryImportTest, PinnedByDigest) {
  const std::string digest =
      Sh("skopeo --insecure-policy inspect --tls-verify=false --format '{{.Digest}}' " +
         registry_->Reference("disks/cqcow2-zstd"));
  Result<ImportResult> result =
      Import(Spec(registry_->Reference("disks/cqcow2-zstd@" + digest.substr(0, 71))));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(TargetPath()), images_->expected_qcow2);
}

TEST_F(RegistryImportTest, NoDiskFileIsAnError) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/no-disk")));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("Failed to find VM disk image file"), std::string::npos)
      << result.status().message();
  EXPECT_FALSE(FileExists(TargetPath()));
}

TEST_F(RegistryImportTest, ADiskInASubdirectoryIsRefusedAsCdiRefusesIt) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/subdirectory")));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("'disk/sub/disk.img' is in a subdirectory of /disk"),
            std::string::npos)
      << result.status().message();
  EXPECT_FALSE(FileExists(TargetPath()));
}

TEST_F(RegistryImportTest, ACorruptedBlobIsAnErrorAndLeavesNothing) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/corrupted")));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kCorruptImage) << result.status().ToString();
  EXPECT_NE(result.status().message().find(*corrupt_layer_digest_), std::string::npos)
      << result.status().message();
  EXPECT_FALSE(FileExists(TargetPath()));
  EXPECT_TRUE(ListDir(target_.path()).empty());
}

TEST_F(RegistryImportTest, AnUnknownTagIsAnError) {
  Result<ImportResult> result = Import(Spec(registry_->Reference("disks/qcow2-gzip:nope")));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("has no manifest 'nope' in disks/qcow2-gzip"),
            std::string::npos)
      << result.status().message();
  EXPECT_FALSE(FileExists(TargetPath()));
}

TEST_F(RegistryImportTest, PlainHttpNeedsTheRegistryToBeInsecure) {
  ImportSpec spec = Spec(registry_->Reference("disks/raw-plain"));
  spec.source.registry.insecure = false;
  Result<ImportResult> result = Import(spec);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kTls) << result.status().ToString();
}

TEST_F(RegistryImportTest, InspectReadsTheDiskHeader) {
  Result<ImageInfo> info = Inspect(Spec(registry_->Reference("disks/qcow2-gzip")).source);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->format_chain, (std::vector<std::string>{"qcow2"}));
  EXPECT_EQ(info->virtual_size, images_->raw.size());
}

TEST_F(RegistryImportTest, ArchiveContentIsRefused) {
  ImportSpec spec = Spec(registry_->Reference("disks/raw-plain"));
  spec.content_type = ContentType::kArchive;
  spec.targets[0].path = target_.path();
  Result<ImportResult> result = Import(spec);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("Unsupported content type archive"), std::string::npos);
}

// ---------------------------------------------------------------------------
// TLS and authentication

class RegistryAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRegistryTools()) GTEST_SKIP() << "docker-registry, skopeo or qemu-img missing";
  }
  // Pushes a raw containerDisk to `registry` as disks/auth:v1.
  void PushDisk(RegistryServer& registry) {
    OciLayout layout(dir_.File("layout"));
    layout.Tag(layout.AddImage({layout.AddLayer(DiskLayerTar(disk_), Compression::kGzip)}), "v1");
    registry.Push(layout, "v1", "disks/auth:v1");
  }
  ImportSpec Spec(const RegistryServer& registry) {
    ImportSpec spec;
    spec.source.url = registry.Reference("disks/auth:v1");
    spec.source.tls.ca_files = {SharedTestCertificates().ca.cert};
    spec.source.network.max_retries = 0;
    spec.targets.push_back({.path = dir_.File("disk.img"), .existing = ExistingFile::kReplace});
    return spec;
  }

  TempDir dir_;
  std::string disk_ = RandomBytes(256 << 10, 7);
};

TEST_F(RegistryAuthTest, TlsWithBasicAuth) {
  RegistryServer registry(
      {.tls = SharedTestCertificates().server, .basic_user = "alice", .basic_password = "s3cret"});
  PushDisk(registry);
  ImportSpec spec = Spec(registry);
  Result<ImportResult> anonymous = Import(spec);
  ASSERT_FALSE(anonymous.ok());
  EXPECT_NE(anonymous.status().message().find("asks for credentials (Basic authentication)"),
            std::string::npos)
      << anonymous.status().message();

  spec.source.auth = {.user = "alice", .password = "wrong"};
  Result<ImportResult> wrong = Import(spec);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("refused"), std::string::npos)
      << wrong.status().message();
  EXPECT_EQ(wrong.status().message().find("wrong\""), std::string::npos);  // no password shown

  spec.source.auth = {.user = "alice", .password = "s3cret"};
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(dir_.File("disk.img")), Sha256Bytes(disk_));
}

TEST_F(RegistryAuthTest, TlsNeedsTheRegistrysCaOrInsecure) {
  RegistryServer registry({.tls = SharedTestCertificates().server});
  PushDisk(registry);
  ImportSpec spec = Spec(registry);
  spec.source.tls.ca_files.clear();
  Result<ImportResult> untrusted = Import(spec);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.status().code(), ErrorCode::kTls) << untrusted.status().ToString();

  spec.source.registry.insecure = true;  // verification off, HTTPS still spoken
  Result<ImportResult> insecure = Import(spec);
  ASSERT_TRUE(insecure.ok()) << insecure.status().ToString();
  EXPECT_EQ(Sha256File(dir_.File("disk.img")), Sha256Bytes(disk_));
}

TEST_F(RegistryAuthTest, BearerTokensFromTheTokenServer) {
  RegistryServer registry({.tls = SharedTestCertificates().server,
                           .token_auth = true,
                           .token_user = "bob",
                           .token_password = "t0ken-pass"});
  PushDisk(registry);
  ImportSpec spec = Spec(registry);
  Result<ImportResult> anonymous = Import(spec);
  ASSERT_FALSE(anonymous.ok());
  EXPECT_NE(anonymous.status().message().find("refused anonymous access"), std::string::npos)
      << anonymous.status().message();

  spec.source.auth = {.user = "bob", .password = "t0ken-pass"};
  const size_t requests_before = registry.TokenLog().size();
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(dir_.File("disk.img")), Sha256Bytes(disk_));
  const std::string log = registry.TokenLog().substr(requests_before);
  EXPECT_NE(log.find("\"authorization\": \"basic\""), std::string::npos) << log;
  EXPECT_NE(log.find("scope=repository%3Adisks%2Fauth%3Apull"), std::string::npos) << log;
}

}  // namespace
}  // namespace cdi::test

namespace cdi::test {
namespace {

// A registry played by the fault server: Basic auth asked for by /v2/, a
// layer blob redirected to storage on another origin that drops the first
// connection. The credentials go to the registry only; the layer resumes.
TEST(RegistryRedirectTest, BlobsRedirectedElsewhereGetNoCredentialsAndResume) {
  if (!HaveProgram("python3")) GTEST_SKIP() << "python3 missing";
  TempDir dir;
  OciLayout layout(dir.File("layout"));
  const std::string disk = RandomBytes(300 << 10, 21);
  const OciLayout::Descriptor layer =
      layout.AddLayer(DiskLayerTar(disk), OciLayout::Compression::kNone);
  const OciLayout::Descriptor image = layout.AddImage({layer});
  const std::string manifest = ReadFile(dir.File("layout/blobs/sha256/" + image.digest.substr(7)));
  const std::string config_digest =
      manifest.substr(manifest.find("sha256:"), 71);  // the config comes first
  auto blob_file = [](const std::string& digest) { return "blobs/sha256/" + digest.substr(7); };
  const std::string script =
      R"({"/v2/": {"status": 401, "body": "{}", "headers": {"WWW-Authenticate": "Basic realm=\"test\""}},
          "/v2/disks/r/manifests/v1": {"file": ")" +
      blob_file(image.digest) +
      R"(", "headers": {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}},
          "/v2/disks/r/blobs/)" +
      config_digest + R"(": {"file": ")" + blob_file(config_digest) +
      R"("},
          "/v2/disks/r/blobs/)" +
      layer.digest + R"(": {"redirect": "other:/storage/layer"},
          "/storage/layer": {"file": ")" +
      blob_file(layer.digest) + R"(", "close_after": 100000, "times": 1}})";
  FaultServer server(dir.File("layout"), script);

  ImportSpec spec;
  spec.source.url = "docker://127.0.0.1:" + std::to_string(server.port()) + "/disks/r:v1";
  spec.source.registry.insecure = true;
  spec.source.auth = {.user = "dave", .password = "pw"};
  spec.source.network.retry_initial_delay = std::chrono::milliseconds(10);
  spec.targets.push_back({.path = dir.File("disk.img")});
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Sha256File(dir.File("disk.img")), Sha256Bytes(disk));

  size_t storage_requests = 0;
  bool resumed = false;
  for (const RecordedRequest& request : server.Requests()) {
    if (request.origin == "other") {
      ++storage_requests;
      EXPECT_FALSE(request.HasHeader("authorization")) << request.target;
      if (request.HasHeader("range")) resumed = true;
    } else if (request.path != "/v2/" || request.HasHeader("authorization")) {
      EXPECT_TRUE(request.Header("authorization").starts_with("Basic ")) << request.target;
    }
  }
  EXPECT_EQ(storage_requests, 2u);
  EXPECT_TRUE(resumed);
}

}  // namespace
}  // namespace cdi::test
