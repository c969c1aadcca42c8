// Reading CDI's importer environment: defaults, CDI's treatment of bad
// values, headers from variables and secret files, and the import spec made
// from it.
#include "pod/pod_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

using pod::Environment;
using pod::ParsePodEnvironment;
using pod::PodConfig;
using pod::PodPaths;

class PodConfigTest : public ::testing::Test {
 protected:
  PodConfigTest() {
    paths_.data_dir = dir_.File("data");
    paths_.block_device = dir_.File("block");
    paths_.scratch_dir = dir_.File("scratch");
    paths_.proxy_cert_dir = dir_.File("proxycerts");
    paths_.extra_headers_dir = dir_.File("extraheaders");
  }
  Result<PodConfig> Parse(std::vector<std::string> entries) {
    return ParsePodEnvironment(Environment(std::move(entries)), paths_);
  }
  // A valid http import plus `more`.
  Result<PodConfig> ParseHttp(std::vector<std::string> more) {
    std::vector<std::string> entries = {"IMPORTER_SOURCE=http",
                                        "IMPORTER_ENDPOINT=https://images.example/disk.img",
                                        "PREALLOCATION=false"};
    entries.insert(entries.end(), more.begin(), more.end());
    return Parse(entries);
  }
  std::string Refusal(std::vector<std::string> entries) {
    auto config = Parse(std::move(entries));
    EXPECT_FALSE(config.ok());
    return config.ok() ? "" : config.status().message();
  }
  TempDir dir_;
  PodPaths paths_;
};

TEST_F(PodConfigTest, DefaultsAreCdis) {
  auto config = Parse({"IMPORTER_ENDPOINT=http://h/d"});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->source, pod::SourceKind::kHttp);  // empty source is http
  EXPECT_EQ(config->content_type, ContentType::kDiskImage);
  EXPECT_FALSE(config->image_size.has_value());
  EXPECT_EQ(config->filesystem_overhead, 0.0);
  EXPECT_EQ(config->preallocation, Preallocation::kOff);
  EXPECT_EQ(config->tls_verify, TlsVerify::kOn);
  EXPECT_TRUE(config->extra_headers.empty());
  PodPaths defaults;
  EXPECT_EQ(defaults.data_dir, "/data");
  EXPECT_EQ(defaults.block_device, "/dev/cdi-block-volume");
  EXPECT_EQ(defaults.scratch_dir, "/scratch");
  EXPECT_EQ(defaults.termination_log, "/dev/termination-log");
  EXPECT_EQ(defaults.proxy_cert_dir, "/proxycerts");
  EXPECT_EQ(defaults.extra_headers_dir, "/extraheaders");
  EXPECT_EQ(defaults.metrics_address, ":8443");
}

TEST_F(PodConfigTest, ValuesAsTheControllerWritesThem) {
  auto config = ParseHttp({"IMPORTER_CONTENTTYPE=kubevirt", "IMPORTER_IMAGE_SIZE=11381663335",
                           "FILESYSTEM_OVERHEAD=0.06", "PREALLOCATION=true", "INSECURE_TLS=true",
                           "IMPORTER_CERT_DIR=/certs", "OWNER_UID=uid-1", "CACHE_MODE=TRYNONE",
                           "IMPORTER_CHECKSUM=sha256:" + std::string(64, 'a')});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->image_size, 11381663335u);
  EXPECT_EQ(config->filesystem_overhead, 0.06);
  EXPECT_EQ(config->preallocation, Preallocation::kOn);
  EXPECT_EQ(config->tls_verify, TlsVerify::kOff);
  EXPECT_EQ(config->cert_dir, "/certs");
  EXPECT_EQ(config->owner_uid, "uid-1");
  EXPECT_EQ(config->cache_mode, "TRYNONE");
  EXPECT_EQ(config->checksum, "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(ParseHttp({"IMPORTER_IMAGE_SIZE=10Gi"})->image_size, 10ull << 30);
  EXPECT_EQ(ParseHttp({"IMPORTER_CONTENTTYPE=archive"})->content_type, ContentType::kArchive);
  EXPECT_EQ(Parse({"IMPORTER_SOURCE=none", "IMPORTER_IMAGE_SIZE=1G"})->source,
            pod::SourceKind::kBlank);
}

TEST_F(PodConfigTest, RegistrySourcesAsCdiPassesThem) {
  auto config = Parse({"IMPORTER_SOURCE=registry", "IMPORTER_ENDPOINT=docker://quay.io/a/b:1",
                       "INSECURE_TLS=true", "IMPORTER_REGISTRY_IMAGE_ARCHITECTURE=arm64",
                       "IMPORTER_ACCESS_KEY_ID=u", "IMPORTER_SECRET_KEY=p",
                       "IMPORTER_CHECKSUM=bogus", "IMPORTER_EXTRA_HEADER_0=X-A: b"});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->source, pod::SourceKind::kRegistry);
  EXPECT_EQ(config->registry_architecture, "arm64");
  EXPECT_TRUE(config->checksum.empty());       // CDI checks no checksum of a registry image
  EXPECT_TRUE(config->extra_headers.empty());  // nor sends extra headers to it
  ImportSpec spec = pod::MakeImportSpec(*config, paths_, pod::VolumeMode::kFilesystem);
  EXPECT_TRUE(spec.source.registry.insecure);
  EXPECT_EQ(spec.source.registry.architecture, "arm64");
  EXPECT_EQ(spec.source.auth.user, "u");
  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=registry", "IMPORTER_ENDPOINT=docker://h/a",
                     "IMPORTER_CONTENTTYPE=archive"}),
            "Unsupported content type archive when importing from registry");
  EXPECT_TRUE(Refusal({"IMPORTER_SOURCE=registry", "IMPORTER_ENDPOINT=http://h/a"})
                  .starts_with("Unable to connect to registry data source: endpoint \"http://h/a\" "
                               "is not a docker:// image reference"));
}

// IMPORTER_ENDPOINT of an s3 source, read as CDI's importer reads it.
TEST_F(PodConfigTest, S3EndpointsAsCdiReadsThem) {
  auto config = Parse({"IMPORTER_SOURCE=s3",
                       "IMPORTER_ENDPOINT=http://minio.storage:9000/images/fedora/disk%201.qcow2",
                       "IMPORTER_ACCESS_KEY_ID=AKID", "IMPORTER_SECRET_KEY=secret",
                       "IMPORTER_CERT_DIR=/certs", "AWS_ACCESS_KEY_ID=ignored",
                       "AWS_SECRET_ACCESS_KEY=ignored"});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->source, pod::SourceKind::kS3);
  EXPECT_EQ(config->s3_url, "s3://images/fedora/disk 1.qcow2");
  EXPECT_EQ(config->s3.endpoint, "http://minio.storage:9000");
  EXPECT_EQ(config->s3.region, "minio");
  EXPECT_EQ(config->s3.addressing, S3Addressing::kPath);
  EXPECT_EQ(config->s3.access_key_id, "AKID");
  EXPECT_EQ(config->s3.secret_access_key, "secret");
  EXPECT_EQ(config->s3.session_token, "");
  ImportSpec spec = pod::MakeImportSpec(*config, paths_, pod::VolumeMode::kFilesystem);
  EXPECT_EQ(spec.source.url, "s3://images/fedora/disk 1.qcow2");
  EXPECT_EQ(spec.source.s3.endpoint, "http://minio.storage:9000");
  EXPECT_EQ(spec.source.tls.ca_dirs, std::vector<std::string>{"/certs"});
  EXPECT_EQ(spec.source.auth.user, "");

  // Any scheme but http is https; AWS's hosts give their region.
  config = Parse({"IMPORTER_SOURCE=s3",
                  "IMPORTER_ENDPOINT=s3://s3.eu-west-3.amazonaws.com/bucket/disk.img"});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->s3.endpoint, "https://s3.eu-west-3.amazonaws.com");
  EXPECT_EQ(config->s3.region, "eu-west-3");
  EXPECT_EQ(config->s3.access_key_id, "");  // unsigned

  // No Secret: the pod's AWS_* variables, as the SDK's default chain reads them.
  config = Parse({"IMPORTER_SOURCE=s3", "IMPORTER_ENDPOINT=https://10.0.0.5/b/k",
                  "AWS_ACCESS_KEY_ID=ASIA", "AWS_SECRET_ACCESS_KEY=s", "AWS_SESSION_TOKEN=t"});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->s3.access_key_id, "ASIA");
  EXPECT_EQ(config->s3.session_token, "t");
  EXPECT_EQ(config->s3.region, "10");

  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=s3", "IMPORTER_ENDPOINT=https://host/bucket-only"}),
            "Unable to connect to s3 data source: endpoint \"https://host/bucket-only\" does not "
            "name an object: expected http(s)://HOST[:PORT]/BUCKET/KEY");
  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=s3", "IMPORTER_ENDPOINT=host/b/k"}),
            "Unable to connect to s3 data source: endpoint \"host/b/k\" is not a URL: expected "
            "http(s)://HOST[:PORT]/BUCKET/KEY");
  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=s3", "IMPORTER_ENDPOINT=https://h/b/k",
                     "IMPORTER_ACCESS_KEY_ID=AKID"}),
            "Unable to connect to s3 data source: could not build s3 client: s3 access key and "
            "secret key must be set together or not at all (IMPORTER_ACCESS_KEY_ID, "
            "IMPORTER_SECRET_KEY)");
  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=s3"}),
            "Unable to connect to s3 data source: endpoint \"IMPORTER_ENDPOINT\" is missing or "
            "blank");
}

TEST_F(PodConfigTest, BadValuesGetCdisMessages) {
  EXPECT_EQ(Refusal({"PREALLOCATION=maybe"}),
            "the PREALLOCATION environment variable is with a wrong value \"maybe\"; should be "
            "\"true\" or \"false\"");
  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=ftp"}), "Unknown data source: ftp");
  for (const char* source : {"gcs", "imageio", "vddk"}) {
    auto config = Parse({std::string("IMPORTER_SOURCE=") + source});
    ASSERT_FALSE(config.ok()) << source;
    EXPECT_EQ(config.status().code(), ErrorCode::kUnsupported);
    EXPECT_TRUE(config.status().message().starts_with(
        std::string("Unable to connect to ") + source + " data source: IMPORTER_SOURCE=" + source +
        " is not supported by this importer"))
        << config.status().message();
  }
  EXPECT_EQ(Refusal({"IMPORTER_CONTENTTYPE=iso", "IMPORTER_ENDPOINT=http://h/"}),
            "Unable to process data: Unknown content type: iso");
  EXPECT_TRUE(Refusal({"IMPORTER_IMAGE_SIZE=10GB"})
                  .starts_with("Unable to process data: IMPORTER_IMAGE_SIZE: invalid quantity "
                               "\"10GB\": unknown suffix \"GB\""));
  for (const char* overhead : {"1.5", "abc", "-0.1", "6%"}) {
    EXPECT_TRUE(Refusal({std::string("FILESYSTEM_OVERHEAD=") + overhead})
                    .starts_with("Unable to process data: FILESYSTEM_OVERHEAD: "))
        << overhead;
  }
  EXPECT_EQ(Refusal({"IMPORTER_SOURCE=http"}),
            "Unable to connect to http data source: endpoint \"IMPORTER_ENDPOINT\" is missing or "
            "blank");
  EXPECT_EQ(Refusal({"IMPORTER_ENDPOINT=/etc/shadow"}),
            "Unable to connect to http data source: endpoint \"/etc/shadow\" is not an http:// or "
            "https:// URL");
  EXPECT_EQ(Refusal({"IMPORTER_ENDPOINT=file:///etc/shadow"}),
            "Unable to connect to http data source: endpoint \"file:///etc/shadow\" is not an "
            "http:// or https:// URL");
  EXPECT_EQ(Refusal({"IMPORTER_ENDPOINT=http://h/", "IMPORTER_CHECKSUM=sha3:abcd"}),
            "Unable to connect to http data source: invalid checksum: unsupported hash algorithm "
            "'sha3': supported algorithms are: md5, sha1, sha256, sha512");
  EXPECT_EQ(Refusal({"IMPORTER_ENDPOINT=http://h/", "IMPORTER_CHECKSUM=md5:abc"}),
            "Unable to connect to http data source: invalid checksum: invalid md5 hash length: "
            "expected 32 hex characters, got 3");
  EXPECT_TRUE(Refusal({"IMPORTER_ENDPOINT=http://h/", "IMPORTER_PULL_METHOD=node"})
                  .find("IMPORTER_PULL_METHOD=node") != std::string::npos);
}

TEST_F(PodConfigTest, GoBooleans) {
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"})
    EXPECT_EQ(pod::ParseGoBool(yes), true);
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"})
    EXPECT_EQ(pod::ParseGoBool(no), false);
  for (const char* bad : {"", "yes", "tRUE", " true", "2"})
    EXPECT_FALSE(pod::ParseGoBool(bad)) << bad;
  // INSECURE_TLS that is not a boolean keeps verification on (CDI ignores it too).
  EXPECT_EQ(ParseHttp({"INSECURE_TLS=yes"})->tls_verify, TlsVerify::kOn);
}

TEST_F(PodConfigTest, BasicAuthNeedsBothHalves) {
  auto both = ParseHttp({"IMPORTER_ACCESS_KEY_ID=alice", "IMPORTER_SECRET_KEY=s3cret"});
  EXPECT_EQ(both->user, "alice");
  EXPECT_EQ(both->password, "s3cret");
  auto half = ParseHttp({"IMPORTER_ACCESS_KEY_ID=alice"});
  EXPECT_EQ(half->user, "");
  EXPECT_EQ(half->password, "");
}

TEST_F(PodConfigTest, ExtraHeadersFromVariablesThenSecretFiles) {
  // As Kubernetes mounts a secret: keys are links into a "..data" directory.
  Sh("mkdir -p " + dir_.File("extraheaders/0/..2024_01_01") + " " +
     dir_.File("extraheaders/1/..2024_01_01"));
  WriteFile(dir_.File("extraheaders/0/..2024_01_01/token"), "Authorization: Bearer abc\n");
  WriteFile(dir_.File("extraheaders/1/..2024_01_01/x-b"), "X-B: two\r\n");
  WriteFile(dir_.File("extraheaders/1/..2024_01_01/broken"), "no colon here");
  for (const char* i : {"0", "1"}) {
    std::string base = dir_.File(std::string("extraheaders/") + i);
    Sh("ln -s ..2024_01_01 " + base + "/..data");
  }
  Sh("ln -s ..data/token " + dir_.File("extraheaders/0/token"));
  Sh("ln -s ..data/x-b " + dir_.File("extraheaders/1/x-b"));
  Sh("ln -s ..data/broken " + dir_.File("extraheaders/1/broken"));
  WriteFile(dir_.File("extraheaders/1/.hidden"), "X-Hidden: no");

  auto config = ParseHttp({"IMPORTER_EXTRA_HEADER_0=X-First: 1", "IMPORTER_EXTRA_HEADER_1=bad",
                           "IMPORTER_EXTRA_HEADER_2=X-Third:  spaced value "});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->extra_headers,
            (std::vector<std::string>{"X-First: 1", "X-Third:  spaced value",
                                      "Authorization: Bearer abc", "X-B: two"}));
}

TEST_F(PodConfigTest, UnreadableSecretHeadersAreConnectionErrors) {
  WriteFile(paths_.extra_headers_dir, "a file where the mount should be");
  EXPECT_EQ(Refusal({"IMPORTER_ENDPOINT=http://h/"}),
            "Unable to connect to http data source: Error getting extra headers for HTTP client: "
            "cannot list " +
                paths_.extra_headers_dir + ": Not a directory");
  Sh("rm " + paths_.extra_headers_dir + " && mkdir -p " + paths_.extra_headers_dir +
     "/0 && ln -s "
     "missing-target " +
     paths_.extra_headers_dir + "/0/token");
  EXPECT_EQ(Refusal({"IMPORTER_ENDPOINT=http://h/"}),
            "Unable to connect to http data source: Error getting extra headers for HTTP client: "
            "cannot read " +
                paths_.extra_headers_dir + "/0/token");
}

TEST_F(PodConfigTest, ImportSpecForEachVolume) {
  auto config = ParseHttp(
      {"IMPORTER_IMAGE_SIZE=1Gi", "FILESYSTEM_OVERHEAD=0.06", "PREALLOCATION=true",
       "IMPORTER_CERT_DIR=/certs", "IMPORTER_EXTRA_HEADER_0=X-A: a", "IMPORTER_ACCESS_KEY_ID=u",
       "IMPORTER_SECRET_KEY=p", "IMPORTER_CHECKSUM=md5:" + std::string(32, '0')});
  ASSERT_TRUE(config.ok());
  Sh("mkdir " + dir_.File("proxycerts") + " " + dir_.File("scratch"));

  ImportSpec file = pod::MakeImportSpec(*config, paths_, pod::VolumeMode::kFilesystem);
  EXPECT_EQ(file.source.url, "https://images.example/disk.img");
  EXPECT_EQ(file.source.tls.ca_dirs, (std::vector<std::string>{"/certs", dir_.File("proxycerts")}));
  EXPECT_EQ(file.source.auth.user, "u");
  EXPECT_EQ(file.source.auth.password, "p");
  EXPECT_EQ(file.source.auth.headers, std::vector<std::string>{"X-A: a"});
  EXPECT_EQ(file.checksum, "md5:" + std::string(32, '0'));
  EXPECT_EQ(file.scratch_dir, dir_.File("scratch"));
  ASSERT_EQ(file.targets.size(), 1u);
  EXPECT_EQ(file.targets[0].path, dir_.File("data/disk.img"));
  EXPECT_EQ(file.targets[0].kind, TargetKind::kFile);
  EXPECT_EQ(file.targets[0].requested_size, 1ull << 30);
  EXPECT_EQ(file.targets[0].filesystem_overhead, 0.06);
  EXPECT_EQ(file.targets[0].existing, ExistingFile::kReplace);
  EXPECT_EQ(file.targets[0].preallocation, Preallocation::kOn);

  ImportSpec block = pod::MakeImportSpec(*config, paths_, pod::VolumeMode::kBlock);
  EXPECT_EQ(block.targets[0].path, dir_.File("block"));
  EXPECT_EQ(block.targets[0].kind, TargetKind::kBlockDevice);
  EXPECT_FALSE(block.targets[0].requested_size.has_value());  // the device's size

  config->content_type = ContentType::kArchive;
  ImportSpec archive = pod::MakeImportSpec(*config, paths_, pod::VolumeMode::kFilesystem);
  EXPECT_EQ(archive.content_type, ContentType::kArchive);
  EXPECT_EQ(archive.targets[0].path, dir_.File("data"));

  // Without the directories, neither proxy CAs nor scratch space.
  Sh("rmdir " + dir_.File("proxycerts") + " " + dir_.File("scratch"));
  ImportSpec bare = pod::MakeImportSpec(*config, paths_, pod::VolumeMode::kFilesystem);
  EXPECT_EQ(bare.source.tls.ca_dirs, std::vector<std::string>{"/certs"});
  EXPECT_EQ(bare.scratch_dir, "");
}

TEST_F(PodConfigTest, VolumeModeIsBlockWhenTheDevicePathExists) {
  EXPECT_EQ(pod::DetectVolumeMode(paths_), pod::VolumeMode::kFilesystem);
  WriteFile(paths_.block_device, "");
  EXPECT_EQ(pod::DetectVolumeMode(paths_), pod::VolumeMode::kBlock);
}

TEST_F(PodConfigTest, EnvironmentLookups) {
  Environment env({"A=1", "AB=2", "A=3", "EMPTY=", "P_1=x", "P_0=y"});
  EXPECT_EQ(env.Get("A"), "3");
  EXPECT_EQ(env.Get("EMPTY"), "");
  EXPECT_FALSE(env.Get("MISSING").has_value());
  EXPECT_EQ(env.WithPrefix("P_"),
            (std::vector<std::pair<std::string, std::string>>{{"P_1", "x"}, {"P_0", "y"}}));
}

TEST(VerbosityArguments, KlogFormsBecomeFlags) {
  using pod::NormalizeVerbosityArguments;
  EXPECT_EQ(NormalizeVerbosityArguments({"-v=1"}), std::vector<std::string>{"--v=1"});
  EXPECT_EQ(NormalizeVerbosityArguments({"-v", "3", "--data-dir", "/x"}),
            (std::vector<std::string>{"--v=3", "--data-dir", "/x"}));
  EXPECT_EQ(NormalizeVerbosityArguments({"-v", "--data-dir=/x"}),
            (std::vector<std::string>{"--v=1", "--data-dir=/x"}));
  EXPECT_EQ(NormalizeVerbosityArguments({"-vvv"}), std::vector<std::string>{"--v=3"});
  EXPECT_EQ(NormalizeVerbosityArguments({"--v=2", "-x"}),
            (std::vector<std::string>{"--v=2", "-x"}));
  // klog's booleans, as CDI's image entrypoint passes -alsologtostderr.
  EXPECT_EQ(NormalizeVerbosityArguments({"-alsologtostderr", "-logtostderr=false", "--logtostderr"}),
            (std::vector<std::string>{"--alsologtostderr", "--logtostderr=false", "--logtostderr"}));
}

TEST(VerbosityArguments, KlogArgumentsAreWhatCdisImporterTakes) {
  using pod::KlogArguments;
  EXPECT_EQ(KlogArguments({"--data-dir", "/x", "-v=3", "-alsologtostderr", "--termination-log=/t"}),
            (std::vector<std::string>{"-v=3", "-alsologtostderr"}));
  EXPECT_EQ(KlogArguments({"-v", "2", "--logtostderr=false", "-vv"}),
            (std::vector<std::string>{"-v", "2", "--logtostderr=false", "-v=2"}));
  EXPECT_EQ(KlogArguments({"--metrics-address", "127.0.0.1:0"}), std::vector<std::string>{});
}

}  // namespace
}  // namespace cdi::test
