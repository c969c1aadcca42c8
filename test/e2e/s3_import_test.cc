// S3 through the faces, end to end: `cdi-image import s3://BUCKET/KEY` with
// the AWS command line's variables, and cdi-importer with CDI's
// IMPORTER_SOURCE=s3 environment, against the project's S3 server (every
// signature checked with botocore). Each import is compared with
// `qemu-img convert`.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/e2e/pod_harness.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

class S3ImportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    const std::string bucket = root_->File("images");
    Sh("mkdir -p " + bucket);
    std::string raw = RandomBytes(2 << 20, 31);
    std::fill(raw.begin() + (512 << 10), raw.begin() + (1 << 20), '\0');
    WriteFile(bucket + "/disk.raw", raw);
    Sh("cd " + bucket +
       " && qemu-img convert -q -f raw -O qcow2 -c disk.raw disk.qcow2"
       " && qemu-img convert -q -f qcow2 -O raw disk.qcow2 ../reference.raw && rm disk.raw");
    server_ = new S3Server(root_->path());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete root_;
  }

  static std::map<std::string, std::string> AwsEnv(const std::string& secret) {
    return {{"AWS_ACCESS_KEY_ID", server_->options().access_key},
            {"AWS_SECRET_ACCESS_KEY", secret}};
  }

  static inline TempDir* root_ = nullptr;
  static inline S3Server* server_ = nullptr;
  TempDir out_;
};

TEST_F(S3ImportTest, CdiImageImportsAnObject) {
  RunOptions options;
  options.env = AwsEnv(server_->options().secret_key);
  options.unset_env = {"AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"};
  const std::string target = out_.File("disk.img");
  RunResult r = CdiImage({"import", "s3://images/disk.qcow2", target, "--s3-endpoint",
                          server_->endpoint(), "--s3-region", "eu-west-1", "--progress", "none"},
                         options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(target), Sha256File(root_->File("reference.raw")));
  ASSERT_FALSE(server_->Requests().empty());
  EXPECT_EQ(server_->Requests().back().status, 200);
}

TEST_F(S3ImportTest, CdiImageWrongSecretExitsWithTheNetworkCode) {
  RunOptions options;
  options.env = AwsEnv("not-the-secret-at-all");
  options.unset_env = {"AWS_SESSION_TOKEN"};
  const std::string target = out_.File("wrong.img");
  RunResult r = CdiImage({"import", "s3://images/disk.qcow2", target, "--s3-endpoint",
                          server_->endpoint(), "--progress", "none"},
                         options);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_TRUE(Contains(r.err, "HTTP 403 Forbidden from " + server_->endpoint() +
                                  "/images/disk.qcow2: S3 error SignatureDoesNotMatch"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "check the secret access key")) << r.err;
  EXPECT_FALSE(Contains(r.err, "not-the-secret-at-all")) << r.err;
  EXPECT_FALSE(FileExists(target));
}

TEST_F(S3ImportTest, CdiImageRefusesS3FlagsForOtherSources) {
  RunResult r = CdiImage({"import", out_.File("in.raw"), out_.File("out.img"), "--s3-region",
                          "eu-west-1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Contains(r.err, "--s3-endpoint, --s3-region and --s3-addressing apply to "
                              "s3://BUCKET/KEY sources only"))
      << r.err;
}

TEST_F(S3ImportTest, ImporterPodImportsWithCdisEnvironment) {
  PodHarness pod;
  // With CDI's importer beside it (the overlay image), s3 stays here all the same.
  WriteFile(pod.handover_program, "#!/bin/sh\nexit 42\n");
  Sh("chmod +x " + pod.handover_program);
  PodResult r = pod.Run({{"IMPORTER_SOURCE", "s3"},
                         {"IMPORTER_ENDPOINT", server_->endpoint() + "/images/disk.qcow2"},
                         {"IMPORTER_ACCESS_KEY_ID", server_->options().access_key},
                         {"IMPORTER_SECRET_KEY", server_->options().secret_key},
                         {"IMPORTER_IMAGE_SIZE", "4Mi"}});
  ASSERT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.termination,
            "{\"scratchSpaceRequired\":false,\"preallocationApplied\":false,\"message\":\"Import "
            "Complete\"}");
  const std::string image = pod.data_dir() + "/disk.img";
  EXPECT_EQ(Sha256File(image, FileSize(root_->File("reference.raw"))),
            Sha256File(root_->File("reference.raw")));
  EXPECT_FALSE(Contains(r.log, server_->options().secret_key)) << r.log;
  // CDI signs for the region it reads from the host: "127" here.
  EXPECT_TRUE(Contains(r.log, "(region 127)")) << r.log;
}

TEST_F(S3ImportTest, ImporterPodMissingObjectWritesCdisMessage) {
  PodHarness pod;
  PodResult r = pod.Run({{"IMPORTER_SOURCE", "s3"},
                         {"IMPORTER_ENDPOINT", server_->endpoint() + "/images/missing.qcow2"},
                         {"IMPORTER_ACCESS_KEY_ID", server_->options().access_key},
                         {"IMPORTER_SECRET_KEY", server_->options().secret_key}});
  EXPECT_EQ(r.exit_code, 1) << r.log;
  EXPECT_TRUE(r.termination.starts_with(
      "Unable to connect to s3 data source: HTTP 404 Not Found from " + server_->endpoint() +
      "/images/missing.qcow2: S3 error NoSuchKey"))
      << r.termination;
}

}  // namespace
}  // namespace cdi::test
