// URL helpers for sources: which scheme a source string names, HTTP URLs
// split into what curl connects to and the credentials they carry, origins,
// and redirect targets. cdi::RedactUrl (cdi/import.h) is defined beside them.
//
// Thread-safety: free functions without shared state; safe from any thread.
#ifndef CDI_SOURCES_URL_H_
#define CDI_SOURCES_URL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::importer {

// The lower-case scheme of `reference` when it starts with one as RFC 3986
// spells it ("HTTPS://x" -> "https", "file:///x" -> "file"), else "" (a path,
// "-", a relative reference).
std::string UrlScheme(std::string_view reference);

// http and https: the only schemes a source or a redirect may use.
bool IsHttpScheme(std::string_view scheme);

// Scheme, host and port: where credentials may be sent (RFC 6454).
struct Origin {
  std::string scheme;  // lower case
  std::string host;    // lower case; IPv6 literals without brackets
  uint16_t port = 0;   // explicit, or the scheme's default
  bool operator==(const Origin&) const = default;
};

struct HttpUrl {
  // The URL curl is given: userinfo removed, fragment removed, everything
  // else (path, query) as given.
  std::string request_url;
  Origin origin;
  // Userinfo from the URL, percent-decoded; empty when none.
  std::string user;
  std::string password;
  // For messages and logs (RedactUrl of the URL).
  std::string redacted;
};

// Parses an absolute http:// or https:// URL. Errors: kUnsupported for any
// other scheme (naming it), kInvalidArgument for a URL that does not parse.
// Messages never contain userinfo or the query.
Result<HttpUrl> ParseHttpUrl(std::string_view url);

// Resolves a Location header value against the URL that answered with it
// (RFC 3986 section 5). Only http and https targets are returned: any other
// scheme is kNetwork naming it ("redirect to a file:// URL refused").
Result<std::string> ResolveRedirect(std::string_view base_url, std::string_view location);

// True when both URLs share an origin.
bool SameOrigin(const Origin& a, const Origin& b);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_URL_H_
