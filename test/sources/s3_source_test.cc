// The S3 source: s3:// URLs and endpoints into requests (pure), S3's error
// bodies into messages (pure), and imports from the project's S3 server,
// which recomputes every request's SigV4 signature with botocore (AWS's own
// signer) and refuses a mismatch, as S3 does.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "sources/s3/s3_error.h"
#include "sources/s3/s3_location.h"
#include "test/sources/source_test_util.h"
#include "test/support/certs.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

using test::S3LoggedRequest;
using test::S3Server;
using test::S3ServerOptions;

// ---------------------------------------------------------------------------
// Locations

TEST(S3LocationTest, ParsesBucketAndKeyLiterally) {
  Result<S3Object> object = ParseS3Url("s3://images/fedora/39/disk a%20b.qcow2");
  ASSERT_TRUE(object.ok()) << object.status().ToString();
  EXPECT_EQ(object->bucket, "images");
  EXPECT_EQ(object->key, "fedora/39/disk a%20b.qcow2");
  EXPECT_EQ(ParseS3Url("S3://b/k")->bucket, "b");
}

TEST(S3LocationTest, RefusesUrlsWithoutBucketOrKey) {
  struct Case {
    const char* url;
    const char* message;
  };
  for (const Case& c : {
           Case{"s3://bucket", "no object key in s3://bucket: expected s3://BUCKET/KEY, the "
                               "object to import"},
           Case{"s3://bucket/", "no object key in s3://bucket/: expected s3://BUCKET/KEY, the "
                                "object to import"},
           Case{"s3:///key", "no bucket in s3:///key: expected s3://BUCKET/KEY"},
           Case{"s3://host:9000/bucket/key",
                "invalid bucket name in s3://host:9000/bucket/key: expected s3://BUCKET/KEY (the "
                "service goes in the endpoint)"},
       }) {
    Result<S3Object> object = ParseS3Url(c.url);
    ASSERT_FALSE(object.ok()) << c.url;
    EXPECT_EQ(object.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(object.status().message(), c.message);
  }
}

TEST(S3LocationTest, EncodesKeysAsAwsDoes) {
  EXPECT_EQ(EncodeS3Key("a/b c/d+e=f~g_h-i.j%k"), "a/b%20c/d%2Be%3Df~g_h-i.j%25k");
  EXPECT_EQ(EncodeS3Key("\xc3\xa9t\xc3\xa9"), "%C3%A9t%C3%A9");
  std::string decoded;
  ASSERT_TRUE(PercentDecode("a%20b/%C3%A9", &decoded));
  EXPECT_EQ(decoded, "a b/\xc3\xa9");
  EXPECT_FALSE(PercentDecode("a%2", &decoded));
  EXPECT_FALSE(PercentDecode("a%zz", &decoded));
}

TEST(S3LocationTest, AwsByDefaultVirtualHostedWhereTheNameAllows) {
  S3Settings settings;
  settings.region = "eu-west-1";
  Result<S3Request> request = ResolveS3Request({"images", "a b.img"}, settings);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->url, "https://images.s3.eu-west-1.amazonaws.com/a%20b.img");
  EXPECT_EQ(request->region, "eu-west-1");
  EXPECT_EQ(request->addressing, S3Addressing::kVirtualHost);

  // Dots do not fit a TLS wildcard; upper case is no host name.
  request = ResolveS3Request({"my.images", "k"}, settings);
  EXPECT_EQ(request->url, "https://s3.eu-west-1.amazonaws.com/my.images/k");
  EXPECT_EQ(request->addressing, S3Addressing::kPath);

  settings.region.clear();
  EXPECT_EQ(ResolveS3Request({"images", "k"}, settings)->url,
            "https://images.s3.us-east-1.amazonaws.com/k");
}

TEST(S3LocationTest, OtherEndpointsArePathStyleUnlessAsked) {
  S3Settings settings;
  settings.endpoint = "http://MinIO.example:9000/";
  Result<S3Request> request = ResolveS3Request({"images", "disk.img"}, settings);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->url, "http://minio.example:9000/images/disk.img");
  EXPECT_EQ(request->region, "us-east-1");
  EXPECT_EQ(request->describe, "s3://images/disk.img at http://minio.example:9000");

  settings.addressing = S3Addressing::kVirtualHost;
  EXPECT_EQ(ResolveS3Request({"images", "disk.img"}, settings)->url,
            "http://images.minio.example:9000/disk.img");

  settings.endpoint = "https://s3.ap-south-1.amazonaws.com";
  settings.addressing = S3Addressing::kPath;
  request = ResolveS3Request({"images", "disk.img"}, settings);
  EXPECT_EQ(request->url, "https://s3.ap-south-1.amazonaws.com/images/disk.img");
  EXPECT_EQ(request->region, "ap-south-1");
  settings.region = "eu-central-1";
  EXPECT_EQ(ResolveS3Request({"images", "disk.img"}, settings)->region, "eu-central-1");
}

TEST(S3LocationTest, RefusesWhatCannotBeAddressed) {
  struct Case {
    S3Settings settings;
    std::string bucket;
    std::string message;
  };
  S3Settings with_path{.endpoint = "http://host:9000/bucket"};
  S3Settings ftp{.endpoint = "ftp://host"};
  S3Settings user{.endpoint = "https://key:secret@host"};
  S3Settings virtual_ip{.endpoint = "http://127.0.0.1:9000",
                        .addressing = S3Addressing::kVirtualHost};
  S3Settings virtual_name{.endpoint = "http://host", .addressing = S3Addressing::kVirtualHost};
  S3Settings region{.region = "us east"};
  for (const Case& c : {
           Case{with_path, "b",
                "invalid S3 endpoint http://host:9000/bucket: it has a path (the bucket and key "
                "go in s3://BUCKET/KEY); give the service's base URL, http(s)://host[:port]"},
           Case{ftp, "b",
                "invalid S3 endpoint ftp://host: not an http:// or https:// URL; give the "
                "service's base URL, http(s)://host[:port]"},
           Case{user, "b",
                "invalid S3 endpoint https://host: credentials do not go in the URL; give the "
                "service's base URL, http(s)://host[:port]"},
           Case{virtual_ip, "bucket",
                "virtual-hosted addressing needs an endpoint with a host name, not an IP "
                "address: use path-style addressing"},
           Case{virtual_name, "My_Bucket",
                "the bucket name \"My_Bucket\" cannot be a host name (3 to 63 lower-case "
                "letters, digits and '-'): use path-style addressing for it"},
           Case{region, "b", "invalid S3 region \"us east\": a region is a DNS name such as "
                             "us-east-1"},
       }) {
    Result<S3Request> request = ResolveS3Request({c.bucket, "k"}, c.settings);
    ASSERT_FALSE(request.ok()) << c.message;
    EXPECT_EQ(request.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(request.status().message(), c.message);
  }
}

// CDI's importer signs for the region it reads from the endpoint's host.
TEST(S3LocationTest, RegionFromHostAsCdiReadsIt) {
  EXPECT_EQ(RegionFromHost("s3.eu-west-3.amazonaws.com"), "eu-west-3");
  EXPECT_EQ(RegionFromHost("s3.eu-west-3.amazonaws.com:443"), "eu-west-3");
  EXPECT_EQ(RegionFromHost("minio.storage.svc:9000"), "minio");
  EXPECT_EQ(RegionFromHost("127.0.0.1:9000"), "127");
  EXPECT_EQ(RegionFromHost("[::1]:9000"), "us-east-1");
  EXPECT_EQ(RegionFromHost("my_host"), "us-east-1");
  EXPECT_EQ(AwsRegionOfHost("bucket.s3.dualstack.us-west-2.amazonaws.com"), "us-west-2");
  EXPECT_EQ(AwsRegionOfHost("minio.example"), "");
}

// ---------------------------------------------------------------------------
// Error bodies

TEST(S3ErrorTest, ReadsCodeAndMessageAndSaysWhatToDo) {
  EXPECT_EQ(ExplainS3Error(R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key &amp; signing method.</Message></Error>)"),
            "S3 error SignatureDoesNotMatch (The request signature we calculated does not match "
            "the signature you provided. Check your key & signing method.): check the secret "
            "access key (and the region the request is signed for)");
  EXPECT_EQ(ExplainS3Error("<Error><Code>NoSuchKey</Code></Error>"),
            "S3 error NoSuchKey: no object has this key in the bucket; check the key");
  EXPECT_EQ(ExplainS3Error("<Error><Code>SlowDown</Code><Message>a\nb</Message></Error>"),
            "S3 error SlowDown (a b)");
  EXPECT_EQ(ExplainS3Error("<html>Forbidden</html>"), "");
  EXPECT_EQ(ExplainS3Error(""), "");
}

// ---------------------------------------------------------------------------
// Against the S3 server

class S3SourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new test::TempDir();
    test::Sh("mkdir -p " + root_->File("images") + " " + root_->File("public"));
    // A raw disk with holes, and qemu-img's own images of it.
    const std::string raw = test::RandomBytes(3 << 20, 77);
    std::string sparse = raw;
    std::fill(sparse.begin() + (1 << 20), sparse.begin() + (2 << 20), '\0');
    test::WriteFile(root_->File("images/disk.raw"), sparse);
    const std::string dir = root_->File("images");
    test::Sh("cd " + dir +
             " && qemu-img convert -q -f raw -O qcow2 disk.raw disk.qcow2"
             " && qemu-img convert -q -f qcow2 -O raw disk.qcow2 ../reference.raw"
             " && xz -T1 -0 -k -c disk.qcow2 > disk.qcow2.xz"
             " && zstd -q -1 -c disk.raw > disk.raw.zst"
             " && mkdir dir && cp disk.raw 'dir/x y.raw' && cp disk.qcow2 dropped.qcow2"
             " && cp disk.raw curl.raw"
             " && cp disk.raw ../public/disk.raw");
    server_ = new S3Server(root_->path(), {.public_buckets = {"public"},
                                           .drops = {"images/dropped.qcow2:1500000"}});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete root_;
  }

  static ImportSpec Spec(const std::string& url, const std::string& target) {
    ImportSpec spec;
    spec.source.url = url;
    spec.source.s3.endpoint = server_->endpoint();
    spec.source.s3.access_key_id = server_->options().access_key;
    spec.source.s3.secret_access_key = server_->options().secret_key;
    spec.source.network.retry_initial_delay = std::chrono::milliseconds(10);
    spec.targets.push_back({.path = target});
    return spec;
  }

  // The requests for `path` (path-style or virtual-hosted) so far.
  static std::vector<S3LoggedRequest> RequestsFor(const std::string& path) {
    std::vector<S3LoggedRequest> found;
    for (S3LoggedRequest& request : server_->Requests()) {
      if (request.path == path) found.push_back(std::move(request));
    }
    return found;
  }

  static inline test::TempDir* root_ = nullptr;
  static inline S3Server* server_ = nullptr;
  test::TempDir out_;
};

// The server's check, proven with an independent signer: curl's.
TEST_F(S3SourceTest, ServerRefusesWhatCurlSignsWithAnotherSecret) {
  const std::string url = server_->endpoint() + "/images/curl.raw";
  const std::string sha_header =
      "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  auto status_of = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     "-H", sha_header};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    test::RunResult r = test::Run(argv);
    return r.out + r.err;
  };
  const std::string signer = "aws:amz:us-east-1:s3";
  const std::string key = server_->options().access_key;
  EXPECT_EQ(status_of({"--aws-sigv4", signer, "-u", key + ":" + server_->options().secret_key}),
            "200");
  EXPECT_EQ(status_of({"--aws-sigv4", signer, "-u", key + ":not-the-secret"}), "403");
  EXPECT_EQ(status_of({"--aws-sigv4", signer, "-u", "AKIDOTHER:" + server_->options().secret_key}),
            "403");
  EXPECT_EQ(status_of({}), "403");
  const std::vector<S3LoggedRequest> requests = RequestsFor("/images/curl.raw");
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].status, 200);
  EXPECT_EQ(requests[0].signed_headers, "host;x-amz-content-sha256;x-amz-date");
}

TEST_F(S3SourceTest, ImportsEachFormatAsQemuImgConvertsIt) {
  const std::string reference = test::Sha256File(root_->File("reference.raw"));
  struct Case {
    const char* key;
    std::vector<std::string> chain;
  };
  for (const Case& c : {Case{"disk.raw", {"raw"}}, Case{"disk.qcow2", {"qcow2"}},
                        Case{"disk.qcow2.xz", {"xz", "qcow2"}},
                        Case{"disk.raw.zst", {"zstd", "raw"}}}) {
    const std::string target = out_.File(std::string(c.key) + ".img");
    Result<ImportResult> result = Import(Spec("s3://images/" + std::string(c.key), target));
    ASSERT_TRUE(result.ok()) << c.key << ": " << result.status().ToString();
    EXPECT_EQ(result->format_chain, c.chain) << c.key;
    EXPECT_EQ(test::Sha256File(target), reference) << c.key;
    const std::vector<S3LoggedRequest> requests = RequestsFor("/images/" + std::string(c.key));
    ASSERT_EQ(requests.size(), 1u) << c.key;
    EXPECT_EQ(requests[0].status, 200);
    EXPECT_EQ(requests[0].signed_headers, "host;x-amz-content-sha256;x-amz-date");
  }
}

TEST_F(S3SourceTest, KeysAreEncodedAsSigned) {
  std::string body;
  ImportSpec spec = Spec("s3://images/dir/x y.raw", out_.File("x.img"));
  ASSERT_TRUE(testing::Fetch(spec.source, &body).ok());
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256File(root_->File("images/disk.raw")));
  EXPECT_EQ(RequestsFor("/images/dir/x%20y.raw").size(), 1u);
}

TEST_F(S3SourceTest, WrongSecretIsRefusedClearlyWithoutTheSecret) {
  const std::string target = out_.File("wrong.img");
  ImportSpec spec = Spec("s3://images/disk.raw", target);
  spec.source.s3.secret_access_key = "Sup3rSecretButWrong";
  Result<ImportResult> result = Import(spec);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNetwork);
  EXPECT_FALSE(result.status().retryable());
  EXPECT_EQ(result.status().message(),
            "HTTP 403 Forbidden from " + server_->endpoint() +
                "/images/disk.raw: S3 error SignatureDoesNotMatch (The request signature we "
                "calculated does not match the signature you provided. Check your key and signing "
                "method.): check the secret access key (and the region the request is signed "
                "for)");
  EXPECT_FALSE(test::FileExists(target));
}

TEST_F(S3SourceTest, MissingKeyAndBucketAreNamed) {
  std::string body;
  Status status = testing::Fetch(Spec("s3://images/nothing.img", "").source, &body);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(), "HTTP 404 Not Found from " + server_->endpoint() +
                                  "/images/nothing.img: S3 error NoSuchKey (The specified key "
                                  "does not exist.): no object has this key in the bucket; check "
                                  "the key");
  status = testing::Fetch(Spec("s3://nobucket/disk.raw", "").source, &body);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_NE(status.message().find("S3 error NoSuchBucket"), std::string::npos) << status.message();
}

TEST_F(S3SourceTest, VirtualHostedBucketOnLocalhost) {
  ImportSpec spec = Spec("s3://images/disk.qcow2", out_.File("virtual.img"));
  spec.source.s3.endpoint = server_->virtual_host_endpoint();
  spec.source.s3.addressing = S3Addressing::kVirtualHost;
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(test::Sha256File(out_.File("virtual.img")),
            test::Sha256File(root_->File("reference.raw")));
  const std::vector<S3LoggedRequest> requests = RequestsFor("/disk.qcow2");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].host, "images.localhost:" + std::to_string(server_->port()));
  EXPECT_EQ(requests[0].status, 200);
}

TEST_F(S3SourceTest, DroppedDownloadResumesWithASignedRange) {
  testing::LogCapture logs;
  ImportSpec spec = Spec("s3://images/dropped.qcow2", out_.File("dropped.img"));
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(test::Sha256File(out_.File("dropped.img")),
            test::Sha256File(root_->File("reference.raw")));
  EXPECT_EQ(result->bytes_read, test::FileSize(root_->File("images/dropped.qcow2")));
  const std::vector<S3LoggedRequest> requests = RequestsFor("/images/dropped.qcow2");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].status, 200);
  EXPECT_EQ(requests[0].body_bytes, 1500000u);
  EXPECT_EQ(requests[1].status, 206);
  EXPECT_EQ(requests[1].range, "bytes=1500000-");
  EXPECT_EQ(requests[1].signed_headers, "host;if-range;range;x-amz-content-sha256;x-amz-date");
  EXPECT_NE(logs.text().find("resuming at byte 1500000"), std::string::npos) << logs.text();
}

TEST_F(S3SourceTest, AnonymousRequestsReachPublicBucketsOnly) {
  std::string body;
  ImportSpec spec = Spec("s3://public/disk.raw", "");
  spec.source.s3.access_key_id.clear();
  spec.source.s3.secret_access_key.clear();
  ASSERT_TRUE(testing::Fetch(spec.source, &body).ok());
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256File(root_->File("public/disk.raw")));
  EXPECT_EQ(RequestsFor("/public/disk.raw").back().signed_headers, "");

  spec.source.url = "s3://images/disk.raw";
  Status status = testing::Fetch(spec.source, &body);
  EXPECT_NE(status.message().find("S3 error AccessDenied"), std::string::npos)
      << status.message();
}

TEST_F(S3SourceTest, HalfAKeyPairIsRefusedBeforeAnyRequest) {
  ImportSpec spec = Spec("s3://images/disk.raw", "");
  spec.source.s3.secret_access_key.clear();
  Status status = testing::Fetch(spec.source);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "S3 credentials need both the access key ID and the secret access key, or neither "
            "(an anonymous request); only the access key ID is set");
  spec = Spec("s3://images/disk.raw", "");
  spec.source.s3.access_key_id.clear();
  spec.source.s3.secret_access_key.clear();
  spec.source.s3.session_token = "token";
  EXPECT_EQ(testing::Fetch(spec.source).code(), ErrorCode::kInvalidArgument);
}

TEST(S3SessionTokenTest, TemporaryCredentialsSignTheirToken) {
  test::TempDir root;
  test::Sh("mkdir -p " + root.File("b"));
  const std::string image = test::RandomBytes(300000, 5);
  test::WriteFile(root.File("b/disk.raw"), image);
  S3Server server(root.path(), {.access_key = "ASIATEMPORARY",
                                .secret_key = "temporary/secret",
                                .session_token = "FwoGZXIvYXdzEJr//////////token=="});
  SourceSpec spec;
  spec.url = "s3://b/disk.raw";
  spec.s3 = {.endpoint = server.endpoint(),
             .region = "eu-west-1",
             .access_key_id = "ASIATEMPORARY",
             .secret_access_key = "temporary/secret",
             .session_token = "FwoGZXIvYXdzEJr//////////token=="};
  std::string body;
  Status status = testing::Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(body, image);
  ASSERT_EQ(server.Requests().size(), 1u);
  EXPECT_EQ(server.Requests()[0].signed_headers,
            "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");

  spec.s3.session_token = "expired";
  status = testing::Fetch(spec, &body);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_NE(status.message().find("S3 error InvalidToken"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("get fresh temporary credentials"), std::string::npos);
  EXPECT_EQ(status.message().find("expired\""), std::string::npos);
}

// CA bundles as for HTTP: the server's certificate is verified against them.
TEST(S3TlsTest, HttpsEndpointTrustsTheGivenCaBundle) {
  const test::TestCertificates& certs = test::SharedTestCertificates();
  test::TempDir root;
  test::Sh("mkdir -p " + root.File("b"));
  const std::string image = test::RandomBytes(200000, 9);
  test::WriteFile(root.File("b/disk.raw"), image);
  S3Server server(root.path(), {.tls = certs.server});
  SourceSpec spec;
  spec.url = "s3://b/disk.raw";
  spec.s3 = {.endpoint = server.endpoint(),
             .access_key_id = server.options().access_key,
             .secret_access_key = server.options().secret_key};
  std::string body;
  Status status = testing::Fetch(spec, &body);
  EXPECT_EQ(status.code(), ErrorCode::kTls) << status.ToString();

  spec.tls.ca_files = {certs.ca.cert};
  status = testing::Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(body, image);
  ASSERT_EQ(server.Requests().size(), 1u);
  EXPECT_EQ(server.Requests()[0].status, 200);
}

}  // namespace
}  // namespace cdi::importer
