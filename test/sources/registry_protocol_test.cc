// The registry client's pure parts: image references, authentication
// challenges, manifests and indexes, platform choice, digests.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sources/registry/challenge.h"
#include "sources/registry/digest.h"
#include "sources/registry/manifest.h"
#include "sources/registry/reference.h"

namespace cdi::importer::registry {
namespace {

std::span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

const std::string kDigestA = "sha256:" + std::string(64, 'a');
const std::string kDigestB = "sha256:" + std::string(64, 'b');
const std::string kDigestC = "sha256:" + std::string(64, 'c');

TEST(ImageReferenceTest, ReadsHostPortRepositoryAndTag) {
  Result<ImageReference> ref = ParseImageReference("docker://127.0.0.1:5000/disks/fedora:40");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->registry, "127.0.0.1:5000");
  EXPECT_EQ(ref->repository, "disks/fedora");
  EXPECT_EQ(ref->tag, "40");
  EXPECT_EQ(ref->manifest_reference(), "40");
  EXPECT_EQ(ref->Describe(), "docker://127.0.0.1:5000/disks/fedora:40");
}

TEST(ImageReferenceTest, DefaultsToLatestAndDockerHub) {
  Result<ImageReference> ref = ParseImageReference("docker://fedora");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->registry, "registry-1.docker.io");
  EXPECT_EQ(ref->repository, "library/fedora");
  EXPECT_EQ(ref->tag, "latest");
  Result<ImageReference> quay = ParseImageReference("DOCKER://quay.io/containerdisks/fedora");
  ASSERT_TRUE(quay.ok());
  EXPECT_EQ(quay->registry, "quay.io");
  EXPECT_EQ(quay->repository, "containerdisks/fedora");
  Result<ImageReference> local = ParseImageReference("docker://localhost/disk");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->registry, "localhost");
  EXPECT_EQ(local->repository, "disk");
}

TEST(ImageReferenceTest, ADigestPinsTheManifest) {
  Result<ImageReference> ref = ParseImageReference("docker://reg.example:443/a/b:v1@" + kDigestA);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->manifest_reference(), kDigestA);
  EXPECT_EQ(ref->tag, "v1");
  EXPECT_EQ(ref->Describe(), "docker://reg.example:443/a/b@" + kDigestA);
}

TEST(ImageReferenceTest, RefusesMalformedReferences) {
  for (const char* bad :
       {"docker://", "docker://reg.example/", "docker://reg.example/Upper",
        "docker://reg.example/a:-tag", "docker://reg.example/a@sha256:abc",
        "docker://reg.example/a@md5:"
        "0123",
        "docker://reg.example/a..b", "docker://reg.example/a b", "http://reg.example/a"}) {
    Result<ImageReference> ref = ParseImageReference(bad);
    EXPECT_FALSE(ref.ok()) << bad;
    if (!ref.ok()) {
      EXPECT_EQ(ref.status().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
}

TEST(ChallengeTest, ReadsBearerParameters) {
  std::vector<Challenge> challenges = ParseChallenges(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull")");
  ASSERT_EQ(challenges.size(), 1u);
  EXPECT_EQ(challenges[0].scheme, "bearer");
  EXPECT_EQ(challenges[0].params["realm"], "https://auth.example/token");
  EXPECT_EQ(challenges[0].params["service"], "registry.example");
  EXPECT_EQ(challenges[0].params["scope"], "repository:a/b:pull");
}

TEST(ChallengeTest, ReadsSeveralChallengesInOneValue) {
  std::vector<Challenge> challenges =
      ParseChallenges(R"(Basic realm="Registry Realm", Bearer realm="https://a/t", service=x)");
  ASSERT_EQ(challenges.size(), 2u);
  EXPECT_EQ(challenges[0].scheme, "basic");
  EXPECT_EQ(challenges[0].params["realm"], "Registry Realm");
  EXPECT_EQ(challenges[1].scheme, "bearer");
  EXPECT_EQ(challenges[1].params["service"], "x");
}

TEST(ChallengeTest, TokenUrlEncodesServiceAndScope) {
  EXPECT_EQ(TokenRequestUrl("https://a/token", "reg x", "repository:a/b:pull"),
            "https://a/token?service=reg%20x&scope=repository%3Aa%2Fb%3Apull");
  EXPECT_EQ(TokenRequestUrl("https://a/token?x=1", "", "s"), "https://a/token?x=1&scope=s");
}

TEST(DigestTest, VerifiesAndRefuses) {
  const std::string text = "hello";
  const std::string digest = Sha256Digest(Bytes(text));
  EXPECT_EQ(digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  Result<DigestHasher> good = DigestHasher::For(digest);
  ASSERT_TRUE(good.ok());
  good->Update(Bytes(text));
  EXPECT_TRUE(good->Verify("blob").ok());
  Result<DigestHasher> bad = DigestHasher::For(digest);
  ASSERT_TRUE(bad.ok());
  bad->Update(Bytes("hellO"));
  Status mismatch = bad->Verify("layer x");
  EXPECT_EQ(mismatch.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(mismatch.message().find("does not match its digest"), std::string::npos);
  EXPECT_FALSE(CheckDigest("sha256:ABC").ok());
  EXPECT_FALSE(CheckDigest("md5:" + std::string(32, 'a')).ok());
}

TEST(ManifestTest, ReadsAnOciManifest) {
  const std::string json =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      kDigestA + R"(","size":10},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
      kDigestB + R"(","size":20},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
      kDigestC + R"(","size":30}]})";
  Result<Manifest> manifest = ParseManifest(Bytes(json), "");
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->kind, Manifest::Kind::kImage);
  EXPECT_EQ(manifest->config.digest, kDigestA);
  ASSERT_EQ(manifest->layers.size(), 2u);
  EXPECT_EQ(manifest->layers[1].size, 30u);
}

TEST(ManifestTest, ReadsADockerListAndChoosesThePlatform) {
  const std::string json =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" +
      kDigestA +
      R"(","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
                 {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":")" +
      kDigestB + R"(","size":2,"platform":{"architecture":"amd64","os":"linux"}}]})";
  Result<Manifest> index = ParseManifest(Bytes(json), std::string(kDockerList));
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  EXPECT_EQ(index->kind, Manifest::Kind::kIndex);
  Result<Descriptor> amd64 = ChoosePlatform(*index, "amd64");
  ASSERT_TRUE(amd64.ok());
  EXPECT_EQ(amd64->digest, kDigestB);
  Result<Descriptor> arm64 = ChoosePlatform(*index, "arm64");
  ASSERT_TRUE(arm64.ok());
  EXPECT_EQ(arm64->digest, kDigestA);
  Result<Descriptor> s390x = ChoosePlatform(*index, "s390x");
  ASSERT_FALSE(s390x.ok());
  EXPECT_NE(s390x.status().message().find("linux/arm64/v8, linux/amd64"), std::string::npos)
      << s390x.status().message();
}

TEST(ManifestTest, AnIndexWithoutMediaTypeIsKnownByItsShape) {
  const std::string json =
      R"({"schemaVersion":2,"manifests":[{"digest":")" + kDigestA + R"(","size":3}]})";
  Result<Manifest> index = ParseManifest(Bytes(json), "application/json");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(index->kind, Manifest::Kind::kIndex);
}

TEST(ManifestTest, RefusesSchemaOneAndDamage) {
  Result<Manifest> v1 = ParseManifest(Bytes(R"({"schemaVersion":1,"fsLayers":[]})"),
                                      "application/vnd.docker.distribution.manifest.v1+prettyjws");
  ASSERT_FALSE(v1.ok());
  EXPECT_EQ(v1.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(v1.status().message().find("schema 1"), std::string::npos);
  for (const std::string& bad :
       {std::string("not json"), std::string("[1,2]"),
        std::string(R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]})"),
        std::string(R"({"config":{"digest":"sha256:12","size":1},"layers":[]})"),
        R"({"config":{"digest":")" + kDigestA + R"(","size":-1},"layers":[]})"}) {
    Result<Manifest> manifest = ParseManifest(Bytes(bad), "");
    EXPECT_FALSE(manifest.ok()) << bad;
  }
}

TEST(ManifestTest, ReadsTheConfigEnvAndLabels) {
  Result<ImageConfig> config = ParseImageConfig(Bytes(
      R"({"architecture":"arm64","os":"linux","config":{"Env":["A=1","INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small"],
          "Labels":{"containers.bootc":"1"}}})"));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->architecture, "arm64");
  EXPECT_EQ(config->env.size(), 2u);
  ASSERT_EQ(config->labels.size(), 1u);
  EXPECT_EQ(config->labels[0].first, "containers.bootc");
}

TEST(ManifestTest, MachineArchitectureIsAGoArchName) {
  const std::string arch = MachineArchitecture();
  EXPECT_NE(arch, "x86_64");
  EXPECT_NE(arch, "aarch64");
  EXPECT_FALSE(arch.empty());
}

}  // namespace
}  // namespace cdi::importer::registry
