#include "sources/s3/s3_error.h"

#include <array>
#include <utility>

namespace cdi::importer {
namespace {

constexpr size_t kMessageBytes = 300;

// The text of the first <name>...</name> in `xml`, "" when none.
std::string_view Element(std::string_view xml, std::string_view name) {
  const std::string open = "<" + std::string(name) + ">";
  const std::string close = "</" + std::string(name) + ">";
  size_t start = xml.find(open);
  if (start == std::string_view::npos) return {};
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return {};
  return xml.substr(start, end - start);
}

// XML's five entities decoded, control characters escaped, cut to `limit`.
std::string PlainText(std::string_view text, size_t limit) {
  static constexpr std::array<std::pair<std::string_view, char>, 5> kEntities = {{
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}}};
  std::string out;
  for (size_t i = 0; i < text.size() && out.size() < limit; ++i) {
    bool decoded = false;
    if (text[i] == '&') {
      for (const auto& [entity, c] : kEntities) {
        if (text.substr(i, entity.size()) == entity) {
          out += c;
          i += entity.size() - 1;
          decoded = true;
          break;
        }
      }
    }
    if (decoded) continue;
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f) {
      out += ' ';
    } else {
      out += text[i];
    }
  }
  if (out.size() >= limit) out += "...";
  return out;
}

std::string_view Advice(std::string_view code) {
  if (code == "SignatureDoesNotMatch") {
    return "check the secret access key (and the region the request is signed for)";
  }
  if (code == "InvalidAccessKeyId") return "check the access key ID";
  if (code == "AccessDenied") {
    return "the credentials may not read this object, or the object needs credentials";
  }
  if (code == "NoSuchKey") return "no object has this key in the bucket; check the key";
  if (code == "NoSuchBucket") return "check the bucket name and the endpoint";
  if (code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired") {
    return "the session token is expired or not valid: get fresh temporary credentials";
  }
  if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" ||
      code == "IllegalLocationConstraintException") {
    return "the bucket lives in another region: give its region (or its regional endpoint)";
  }
  if (code == "RequestTimeTooSkewed") {
    return "this machine's clock is off from the service's: correct it (NTP)";
  }
  return {};
}

}  // namespace

std::string ExplainS3Error(std::string_view body) {
  const std::string code = PlainText(Element(body, "Code"), 64);
  if (code.empty()) return "";
  std::string text = "S3 error " + code;
  const std::string message = PlainText(Element(body, "Message"), kMessageBytes);
  if (!message.empty()) text += " (" + message + ")";
  const std::string_view advice = Advice(code);
  if (!advice.empty()) text += ": " + std::string(advice);
  return text;
}

}  // namespace cdi::importer
