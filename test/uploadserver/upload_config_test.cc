// CDI's upload server environment, read as CDI's server reads it.
#include "uploadserver/upload_config.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

namespace cdi::uploadserver {
namespace {

const std::vector<std::string> kTls = {"TLS_KEY_FILE=/certs/tls.key",
                                       "TLS_CERT_FILE=/certs/tls.crt"};

Result<UploadConfig> Parse(std::vector<std::string> entries, const UploadPaths& paths = {}) {
  entries.insert(entries.end(), kTls.begin(), kTls.end());
  return ParseUploadEnvironment(pod::Environment(entries), paths);
}

TEST(UploadConfigTest, DefaultsAreCdis) {
  auto config = Parse({});
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->listen_host, "0.0.0.0");
  EXPECT_EQ(config->listen_port, 8443);
  EXPECT_EQ(config->destination, "/data/disk.img");
  EXPECT_FALSE(config->image_size.has_value());
  EXPECT_EQ(config->preallocation, Preallocation::kOff);
  EXPECT_FALSE(config->deadline.has_value());
}

TEST(UploadConfigTest, ReadsEveryVariable) {
  auto config = Parse({"LISTEN_ADDRESS=", "LISTEN_PORT=9443", "DESTINATION=/dev/cdi-block-volume",
                       "CLIENT_CERT_FILE=/certs/ca.crt", "CLIENT_NAME=cdi-uploadproxy",
                       "UPLOAD_IMAGE_SIZE=10Gi", "FILESYSTEM_OVERHEAD=0.055", "PREALLOCATION=true",
                       "TLS_CIPHERS=TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                       "TLS_MIN_VERSION=VersionTLS13", "DEADLINE=2026-01-02T03:04:05Z"},
                      {.data_dir = "/mnt"});
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->listen_host, "");
  EXPECT_EQ(config->listen_port, 9443);
  EXPECT_EQ(config->destination, "/dev/cdi-block-volume");
  EXPECT_EQ(config->data_dir, "/mnt");
  EXPECT_EQ(config->client_ca_file, "/certs/ca.crt");
  EXPECT_EQ(config->client_name, "cdi-uploadproxy");
  EXPECT_EQ(config->image_size, 10ull << 30);
  EXPECT_DOUBLE_EQ(config->filesystem_overhead, 0.055);
  EXPECT_EQ(config->preallocation, Preallocation::kOn);
  EXPECT_EQ(config->cipher_suites.size(), 2u);
  EXPECT_EQ(config->min_tls_version, TLS1_3_VERSION);
  ASSERT_TRUE(config->deadline.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*config->deadline), 1767323045);
}

TEST(UploadConfigTest, LenientWhereCdiIsAndStrictWhereItFails) {
  auto lenient = Parse({"LISTEN_PORT=http", "FILESYSTEM_OVERHEAD=lots", "PREALLOCATION=maybe",
                        "TLS_MIN_VERSION=VersionSSL30"});
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->listen_port, 8443);
  EXPECT_EQ(lenient->filesystem_overhead, 0.0);
  EXPECT_EQ(lenient->preallocation, Preallocation::kOff);
  EXPECT_EQ(lenient->min_tls_version, 0);
  auto no_tls = ParseUploadEnvironment(pod::Environment({}), {});
  ASSERT_FALSE(no_tls.ok());
  EXPECT_NE(no_tls.status().message().find("invalid TLS config"), std::string::npos);
  EXPECT_FALSE(Parse({"DEADLINE=tomorrow"}).ok());
  EXPECT_FALSE(Parse({"UPLOAD_IMAGE_SIZE=big"}).ok());
}

TEST(UploadConfigTest, Rfc3339) {
  auto zulu = ParseRfc3339("2026-01-02T03:04:05Z");
  auto offset = ParseRfc3339("2026-01-02T05:04:05.250+02:00");
  ASSERT_TRUE(zulu.ok());
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(*offset - *zulu, std::chrono::milliseconds(250));
  EXPECT_FALSE(ParseRfc3339("2026-01-02 03:04:05Z").ok());
  EXPECT_FALSE(ParseRfc3339("2026-01-02T03:04:05").ok());
  EXPECT_FALSE(ParseRfc3339("2026-13-02T03:04:05Z").ok());
}

}  // namespace
}  // namespace cdi::uploadserver
