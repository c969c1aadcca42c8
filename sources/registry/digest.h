// Content digests of the OCI image spec ("sha256:<hex>", "sha512:<hex>"):
// parsing, and a hasher that checks bytes against one as they stream past.
//
//   CDI_ASSIGN_OR_RETURN(DigestHasher hasher, DigestHasher::For("sha256:ab..."));
//   hasher.Update(bytes); ...
//   CDI_RETURN_IF_ERROR(hasher.Verify("layer sha256:ab... of docker://..."));
//
// Thread-safety: a hasher is used by one thread.
#ifndef CDI_SOURCES_REGISTRY_DIGEST_H_
#define CDI_SOURCES_REGISTRY_DIGEST_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::importer::registry {

// kInvalidArgument unless `digest` is "sha256:" with 64 or "sha512:" with 128
// lower-case hex digits (the algorithms the image spec registers).
Status CheckDigest(std::string_view digest);

// "sha256:<hex>" of `bytes`.
std::string Sha256Digest(std::span<const uint8_t> bytes);

class DigestHasher {
 public:
  // A hasher for the algorithm of `expected`, which it is checked against.
  static Result<DigestHasher> For(std::string_view expected);
  DigestHasher(DigestHasher&&) noexcept;
  DigestHasher& operator=(DigestHasher&&) noexcept;
  ~DigestHasher();

  void Update(std::span<const uint8_t> bytes);
  // "alg:hex" of the bytes so far (finishes the hash: call once).
  std::string Finish();
  // Finishes and compares: kCorruptImage "the <what> does not match its
  // digest: the registry sent content with digest X, expected Y" on a mismatch.
  Status Verify(std::string_view what);
  const std::string& expected() const { return expected_; }
  uint64_t bytes() const { return bytes_; }

 private:
  struct State;
  DigestHasher(std::string expected, std::unique_ptr<State> state);
  std::string expected_;
  std::unique_ptr<State> state_;
  uint64_t bytes_ = 0;
};

}  // namespace cdi::importer::registry

#endif  // CDI_SOURCES_REGISTRY_DIGEST_H_
