#include "sources/registry/digest.h"

#include <openssl/evp.h>

#include <algorithm>

namespace cdi::importer::registry {
namespace {

bool AllLowerHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string Hex(const unsigned char* bytes, unsigned length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(length * 2);
  for (unsigned i = 0; i < length; ++i) {
    text += kDigits[bytes[i] >> 4];
    text += kDigits[bytes[i] & 0xf];
  }
  return text;
}

}  // namespace

struct DigestHasher::State {
  EVP_MD_CTX* context = nullptr;
  std::string algorithm;
  ~State() { EVP_MD_CTX_free(context); }
};

Status CheckDigest(std::string_view digest) {
  size_t colon = digest.find(':');
  std::string_view algorithm = digest.substr(0, colon);
  std::string_view hex = colon == std::string_view::npos ? "" : digest.substr(colon + 1);
  if ((algorithm == "sha256" && hex.size() == 64 && AllLowerHex(hex)) ||
      (algorithm == "sha512" && hex.size() == 128 && AllLowerHex(hex))) {
    return Status::Ok();
  }
  return InvalidArgumentError("'" + std::string(digest.substr(0, 140)) +
                              "' is not a digest this importer checks (sha256:<64 hex digits> "
                              "or sha512:<128 hex digits>)");
}

std::string Sha256Digest(std::span<const uint8_t> bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &length, EVP_sha256(), nullptr);
  return "sha256:" + Hex(out, length);
}

Result<DigestHasher> DigestHasher::For(std::string_view expected) {
  CDI_RETURN_IF_ERROR(CheckDigest(expected));
  auto state = std::make_unique<State>();
  state->algorithm = std::string(expected.substr(0, expected.find(':')));
  state->context = EVP_MD_CTX_new();
  const EVP_MD* md = state->algorithm == "sha512" ? EVP_sha512() : EVP_sha256();
  if (state->context == nullptr || EVP_DigestInit_ex(state->context, md, nullptr) != 1) {
    return InternalError("cannot set up " + state->algorithm + " hashing");
  }
  return DigestHasher(std::string(expected), std::move(state));
}

DigestHasher::DigestHasher(std::string expected, std::unique_ptr<State> state)
    : expected_(std::move(expected)), state_(std::move(state)) {}
DigestHasher::DigestHasher(DigestHasher&&) noexcept = default;
DigestHasher& DigestHasher::operator=(DigestHasher&&) noexcept = default;
DigestHasher::~DigestHasher() = default;

void DigestHasher::Update(std::span<const uint8_t> bytes) {
  EVP_DigestUpdate(state_->context, bytes.data(), bytes.size());
  bytes_ += bytes.size();
}

std::string DigestHasher::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_DigestFinal_ex(state_->context, out, &length);
  return state_->algorithm + ":" + Hex(out, length);
}

Status DigestHasher::Verify(std::string_view what) {
  std::string actual = Finish();
  if (actual == expected_) return Status::Ok();
  return CorruptImageError(
      "the " + std::string(what) + " does not match its digest: the registry sent " +
      std::to_string(bytes_) + " bytes with digest " + actual + ", expected " + expected_ +
      "; nothing of it is used (the registry's storage or something between "
      "it and this importer altered the content)");
}

}  // namespace cdi::importer::registry
