// Digest of the bytes as served, checked against an expected "alg:hex"
// (parsed by cdi/checksum.h).
#ifndef CDI_IMPORTER_CHECKSUM_H_
#define CDI_IMPORTER_CHECKSUM_H_

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cdi/checksum.h"
#include "cdi/status.h"

namespace cdi::importer {

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
