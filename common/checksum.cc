#include "cdi/checksum.h"

#include <algorithm>
#include <cctype>

#include "common/text.h"

namespace cdi {
namespace {

// Hex digits of each digest the importer computes; 0 for any other name.
size_t HexLength(std::string_view algorithm) {
  if (algorithm == "md5") return 32;
  if (algorithm == "sha1") return 40;
  if (algorithm == "sha256") return 64;
  if (algorithm == "sha512") return 128;
  return 0;
}

}  // namespace

Result<ExpectedChecksum> ParseChecksum(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("invalid checksum format: expected 'algorithm:hash', got '" +
                                std::string(text) + "'");
  }
  ExpectedChecksum parsed{AsciiLower(TrimSpace(text.substr(0, colon))),
                          AsciiLower(TrimSpace(text.substr(colon + 1)))};
  if (parsed.hex.empty()) return InvalidArgumentError("checksum hash value cannot be empty");
  size_t expected_length = HexLength(parsed.algorithm);
  if (expected_length == 0) {
    return InvalidArgumentError("unsupported hash algorithm '" + parsed.algorithm +
                                "': supported algorithms are: md5, sha1, sha256, sha512");
  }
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

}  // namespace cdi
