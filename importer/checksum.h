// Digest of the bytes as served, checked against an expected "alg:hex".
#ifndef CDI_IMPORTER_CHECKSUM_H_
#define CDI_IMPORTER_CHECKSUM_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::importer {

struct ExpectedChecksum {
  std::string algorithm;  // md5, sha1, sha256, sha512 (lower case)
  std::string hex;        // lower case, of the algorithm's length
};

// Parses "alg:hex" as CDI does (case-insensitive, surrounding spaces trimmed),
// with CDI's messages for each kind of bad value.
Result<ExpectedChecksum> ParseChecksum(std::string_view text);

// Incremental digest. Not thread-safe.
class Checksum {
 public:
  // Precondition: `algorithm` is one ParseChecksum accepts.
  explicit Checksum(const std::string& algorithm);
  ~Checksum();
  Checksum(const Checksum&) = delete;
  Checksum& operator=(const Checksum&) = delete;

  void Update(std::span<const uint8_t> bytes);
  // "alg:hex" of everything passed to Update. Call once.
  std::string Finish();

 private:
  struct State;
  std::string algorithm_;
  std::unique_ptr<State> state_;
};

// kChecksumMismatch with CDI's message when `computed` ("alg:hex") differs.
Status VerifyChecksum(const ExpectedChecksum& expected, const std::string& computed);

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_CHECKSUM_H_
