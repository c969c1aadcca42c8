#include "importer/checksum.h"

#include <openssl/evp.h>

namespace cdi::importer {
namespace {

const EVP_MD* Digest(const std::string& algorithm) {
  if (algorithm == "md5") return EVP_md5();
  if (algorithm == "sha1") return EVP_sha1();
  if (algorithm == "sha256") return EVP_sha256();
  if (algorithm == "sha512") return EVP_sha512();
  return nullptr;
}

}  // namespace

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
