#include "importer/checksum.h"

#include <gtest/gtest.h>

#include <string>

namespace cdi::importer {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(ChecksumTest, KnownDigestsOfAbc) {
  const std::pair<const char*, const char*> cases[] = {
      {"md5", "md5:900150983cd24fb0d6963f7d28e17f72"},
      {"sha1", "sha1:a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"sha256", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
  };
  for (const auto& [algorithm, expected] : cases) {
    Checksum checksum(algorithm);
    checksum.Update(Bytes("a"));
    checksum.Update(Bytes("bc"));
    EXPECT_EQ(checksum.Finish(), expected);
  }
  Checksum sha512("sha512");
  sha512.Update(Bytes("abc"));
  EXPECT_EQ(sha512.Finish().substr(0, 23), "sha512:ddaf35a193617aba");
}

TEST(ChecksumTest, ParsesAsCdiDoes) {
  auto parsed = ParseChecksum(" SHA256 : BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD ");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->algorithm, "sha256");
  EXPECT_EQ(parsed->hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ChecksumTest, BadValuesGetCdiMessages) {
  const std::pair<const char*, const char*> cases[] = {
      {"abc", "invalid checksum format: expected 'algorithm:hash', got 'abc'"},
      {"sha256:", "checksum hash value cannot be empty"},
      {"crc32:1234", "unsupported hash algorithm 'crc32': supported algorithms are: md5, sha1, "
                     "sha256, sha512"},
      {"md5:1234", "invalid md5 hash length: expected 32 hex characters, got 4"},
      {"md5:900150983cd24fb0d6963f7d28e17fzz",
       "checksum hash is not valid hexadecimal: invalid byte 'z'"},
  };
  for (const auto& [text, message] : cases) {
    auto parsed = ParseChecksum(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(), message);
  }
}

TEST(ChecksumTest, MismatchNamesBothDigests) {
  ExpectedChecksum expected{"md5", std::string(32, '0')};
  Status status = VerifyChecksum(expected, "md5:900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(status.code(), ErrorCode::kChecksumMismatch);
  EXPECT_EQ(status.message(), "checksum mismatch: expected md5:" + std::string(32, '0') +
                                  ", calculated md5:900150983cd24fb0d6963f7d28e17f72");
  EXPECT_TRUE(VerifyChecksum({"md5", "900150983cd24fb0d6963f7d28e17f72"},
                             "md5:900150983cd24fb0d6963f7d28e17f72")
                  .ok());
}

}  // namespace
}  // namespace cdi::importer
