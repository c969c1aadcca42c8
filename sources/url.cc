#include "sources/url.h"

#include <curl/curl.h>

#include <charconv>
#include <memory>

#include "cdi/import.h"
#include "common/text.h"

namespace cdi {

// Redaction works on the text alone, without a URL parser, so that it also
// hides secrets in strings no parser accepts ("http://user:pa?ss@host/" is
// malformed, yet holds a password). When unsure it removes too much rather
// than too little.
std::string RedactUrl(std::string_view url) {
  size_t authority_start = std::string_view::npos;
  std::string scheme = importer::UrlScheme(url);
  if (!scheme.empty() && url.substr(scheme.size(), 3) == "://") {
    authority_start = scheme.size() + 3;
  } else if (url.starts_with("//")) {
    authority_start = 2;
  }
  std::string text;
  if (authority_start != std::string_view::npos) {
    // Userinfo ends at the last '@' before the path: passwords may hold '@',
    // '?' or '#' that their owner forgot to percent-encode.
    size_t path_start = url.find('/', authority_start);
    std::string_view authority = url.substr(authority_start, path_start == std::string_view::npos
                                                                 ? std::string_view::npos
                                                                 : path_start - authority_start);
    size_t at = authority.rfind('@');
    text = url.substr(0, authority_start);
    text += url.substr(at == std::string_view::npos ? authority_start : authority_start + at + 1);
  } else {
    text = url;
  }
  size_t query = text.find_first_of("?#");
  if (query != std::string::npos) text.resize(query);
  // Control characters would let a URL forge log lines.
  std::string safe;
  safe.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      constexpr char kHex[] = "0123456789ABCDEF";
      safe += '%';
      safe += kHex[byte >> 4];
      safe += kHex[byte & 0xf];
    } else {
      safe += c;
    }
  }
  return safe;
}

namespace importer {
namespace {

struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

// A part of a parsed URL, or "" when the URL has none.
std::string GetPart(CURLU* url, CURLUPart part, unsigned int flags) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return "";
  std::string text(value);
  curl_free(value);
  return text;
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string UrlScheme(std::string_view reference) {
  // RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
  if (reference.empty() || !IsAlpha(reference[0])) return "";
  for (size_t i = 1; i < reference.size(); ++i) {
    char c = reference[i];
    if (c == ':') return AsciiLower(reference.substr(0, i));
    if (!IsAlpha(c) && !IsDigit(c) && c != '+' && c != '-' && c != '.') return "";
  }
  return "";
}

bool IsHttpScheme(std::string_view scheme) { return scheme == "http" || scheme == "https"; }

bool SameOrigin(const Origin& a, const Origin& b) { return a == b; }

Result<HttpUrl> ParseHttpUrl(std::string_view url) {
  std::string scheme = UrlScheme(url);
  if (scheme.empty()) {
    return InvalidArgumentError("not an absolute URL: " + RedactUrl(url));
  }
  if (!IsHttpScheme(scheme)) {
    return UnsupportedError(scheme + ":// URLs are not supported: only http and https are");
  }
  UrlHandle handle(curl_url());
  if (!handle) return InternalError("cannot allocate a URL parser");
  std::string text(url);
  CURLUcode code = curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0);
  if (code != CURLUE_OK) {
    return InvalidArgumentError("invalid URL " + RedactUrl(url) + ": " + curl_url_strerror(code));
  }
  HttpUrl parsed;
  parsed.redacted = RedactUrl(url);
  parsed.origin.scheme = AsciiLower(GetPart(handle.get(), CURLUPART_SCHEME, 0));
  std::string host = AsciiLower(GetPart(handle.get(), CURLUPART_HOST, 0));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return InvalidArgumentError("URL without a host: " + parsed.redacted);
  parsed.origin.host = host;
  std::string port = GetPart(handle.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  unsigned int port_number = 0;
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (error != std::errc() || end != port.data() + port.size() || port_number == 0 ||
      port_number > 65535) {
    return InvalidArgumentError("URL with an invalid port: " + parsed.redacted);
  }
  parsed.origin.port = static_cast<uint16_t>(port_number);
  parsed.user = GetPart(handle.get(), CURLUPART_USER, CURLU_URLDECODE);
  parsed.password = GetPart(handle.get(), CURLUPART_PASSWORD, CURLU_URLDECODE);
  // What curl is given carries no credentials: they are set per request, and
  // only for the URL's own origin.
  curl_url_set(handle.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(handle.get(), CURLUPART_PASSWORD, nullptr, 0);
  curl_url_set(handle.get(), CURLUPART_OPTIONS, nullptr, 0);
  curl_url_set(handle.get(), CURLUPART_FRAGMENT, nullptr, 0);
  parsed.request_url = GetPart(handle.get(), CURLUPART_URL, 0);
  if (parsed.request_url.empty()) return InvalidArgumentError("invalid URL " + parsed.redacted);
  return parsed;
}

Result<std::string> ResolveRedirect(std::string_view base_url, std::string_view location) {
  while (!location.empty() && (location.front() == ' ' || location.front() == '\t')) {
    location.remove_prefix(1);
  }
  while (!location.empty() && (location.back() == ' ' || location.back() == '\t' ||
                               location.back() == '\r' || location.back() == '\n')) {
    location.remove_suffix(1);
  }
  if (location.empty()) {
    return NetworkError("redirect from " + RedactUrl(base_url) + " has an empty Location");
  }
  std::string scheme = UrlScheme(location);
  if (!scheme.empty() && !IsHttpScheme(scheme)) {
    return NetworkError("redirect from " + RedactUrl(base_url) + " to a " + scheme +
                        ":// URL refused: only http and https are allowed");
  }
  UrlHandle handle(curl_url());
  if (!handle) return InternalError("cannot allocate a URL parser");
  std::string base(base_url);
  if (curl_url_set(handle.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK) {
    return InternalError("cannot parse the URL being redirected from: " + RedactUrl(base_url));
  }
  // The same leniency curl uses when it follows redirects itself: servers
  // send spaces and raw bytes in Location.
  std::string target(location);
  CURLUcode code = curl_url_set(handle.get(), CURLUPART_URL, target.c_str(),
                                CURLU_URLENCODE | CURLU_ALLOW_SPACE);
  if (code != CURLUE_OK) {
    return NetworkError("redirect from " + RedactUrl(base_url) + " has an invalid Location " +
                        RedactUrl(location) + ": " + curl_url_strerror(code));
  }
  std::string resolved = GetPart(handle.get(), CURLUPART_URL, 0);
  std::string resolved_scheme = UrlScheme(resolved);
  if (!IsHttpScheme(resolved_scheme)) {
    return NetworkError("redirect from " + RedactUrl(base_url) + " to a " + resolved_scheme +
                        ":// URL refused: only http and https are allowed");
  }
  return resolved;
}

}  // namespace importer
}  // namespace cdi
