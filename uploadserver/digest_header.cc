#include "uploadserver/digest_header.h"

#include "cdi/checksum.h"
#include "cdi/text.h"
#include "common/text.h"

namespace cdi::uploadserver {
namespace {

std::string HexBytes(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// "sha-256=:AAA=:, sha-512=:BBB=:" (an RFC 8941 dictionary of byte
// sequences): the sha-256 digest, else the sha-512 one, as "alg:hex".
Result<std::optional<std::string>> FromDigestField(const std::string& name,
                                                   const std::string& value) {
  std::optional<std::string> sha256;
  std::optional<std::string> sha512;
  std::string_view rest = value;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view member = TrimSpace(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (member.empty()) continue;
    const size_t equals = member.find('=');
    auto bad = [&] {
      return InvalidArgumentError(name + ": '" + std::string(member) +
                                  "' is not algorithm=:base64: (RFC 9530), e.g. sha-256=:" +
                                  "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:");
    };
    if (equals == std::string_view::npos) return bad();
    const std::string algorithm = AsciiLower(TrimSpace(member.substr(0, equals)));
    std::string_view encoded = TrimSpace(member.substr(equals + 1));
    const size_t parameters = encoded.find(';');
    encoded = TrimSpace(encoded.substr(0, parameters));
    if (encoded.size() < 2 || encoded.front() != ':' || encoded.back() != ':') return bad();
    std::string digest;
    if (!DecodeBase64(encoded.substr(1, encoded.size() - 2), &digest)) return bad();
    if (algorithm == "sha-256") {
      if (digest.size() != 32) return bad();
      sha256 = "sha256:" + HexBytes(digest);
    } else if (algorithm == "sha-512") {
      if (digest.size() != 64) return bad();
      sha512 = "sha512:" + HexBytes(digest);
    }
  }
  if (sha256) return sha256;
  return sha512;
}

}  // namespace

Result<std::optional<std::string>> ExpectedChecksum(const HttpRequest& request) {
  if (std::optional<std::string> cdi = request.Header("x-cdi-checksum")) {
    Result<cdi::ExpectedChecksum> parsed = ParseChecksum(*cdi);
    if (!parsed.ok()) return InvalidArgumentError("X-CDI-Checksum: " + parsed.status().message());
    return std::optional<std::string>(parsed->algorithm + ":" + parsed->hex);
  }
  for (const char* name : {"repr-digest", "content-digest"}) {
    if (std::optional<std::string> field = request.Header(name)) {
      CDI_ASSIGN_OR_RETURN(std::optional<std::string> found,
                           FromDigestField(name == std::string("repr-digest") ? "Repr-Digest"
                                                                              : "Content-Digest",
                                           *field));
      if (found) return found;
    }
  }
  return std::optional<std::string>();
}

}  // namespace cdi::uploadserver
