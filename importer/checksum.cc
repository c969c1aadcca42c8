#include "importer/checksum.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

namespace cdi::importer {
namespace {

std::string Trim(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

const EVP_MD* Digest(const std::string& algorithm) {
  if (algorithm == "md5") return EVP_md5();
  if (algorithm == "sha1") return EVP_sha1();
  if (algorithm == "sha256") return EVP_sha256();
  if (algorithm == "sha512") return EVP_sha512();
  return nullptr;
}

}  // namespace

Result<ExpectedChecksum> ParseChecksum(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("invalid checksum format: expected 'algorithm:hash', got '" +
                                std::string(text) + "'");
  }
  ExpectedChecksum parsed{Lower(Trim(text.substr(0, colon))), Lower(Trim(text.substr(colon + 1)))};
  if (parsed.hex.empty()) return InvalidArgumentError("checksum hash value cannot be empty");
  const EVP_MD* md = Digest(parsed.algorithm);
  if (md == nullptr) {
    return InvalidArgumentError("unsupported hash algorithm '" + parsed.algorithm +
                                "': supported algorithms are: md5, sha1, sha256, sha512");
  }
  size_t expected_length = static_cast<size_t>(EVP_MD_get_size(md)) * 2;
  if (parsed.hex.size() != expected_length) {
    return InvalidArgumentError("invalid " + parsed.algorithm + " hash length: expected " +
                                std::to_string(expected_length) + " hex characters, got " +
                                std::to_string(parsed.hex.size()));
  }
  auto not_hex = std::find_if(parsed.hex.begin(), parsed.hex.end(),
                              [](unsigned char c) { return !std::isxdigit(c); });
  if (not_hex != parsed.hex.end()) {
    return InvalidArgumentError("checksum hash is not valid hexadecimal: invalid byte '" +
                                std::string(1, *not_hex) + "'");
  }
  return parsed;
}

struct Checksum::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~State() { EVP_MD_CTX_free(ctx); }
};

Checksum::Checksum(const std::string& algorithm)
    : algorithm_(algorithm), state_(std::make_unique<State>()) {
  EVP_DigestInit_ex(state_->ctx, Digest(algorithm), nullptr);
}

Checksum::~Checksum() = default;

void Checksum::Update(std::span<const uint8_t> bytes) {
  EVP_DigestUpdate(state_->ctx, bytes.data(), bytes.size());
}

std::string Checksum::Finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_DigestFinal_ex(state_->ctx, digest, &length);
  static const char kDigits[] = "0123456789abcdef";
  std::string text = algorithm_ + ":";
  for (unsigned i = 0; i < length; ++i) {
    text += kDigits[digest[i] >> 4];
    text += kDigits[digest[i] & 15];
  }
  return text;
}

Status VerifyChecksum(const ExpectedChecksum& expected, const std::string& computed) {
  std::string wanted = expected.algorithm + ":" + expected.hex;
  if (computed == wanted) return Status::Ok();
  return ChecksumMismatchError("checksum mismatch: expected " + wanted + ", calculated " +
                               computed);
}

}  // namespace cdi::importer
