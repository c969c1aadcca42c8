// What an HTTP response says, read from its header lines: the status, the
// headers the HTTP source acts on, the body's declared length, byte ranges
// and validators, and the Status an unwanted status becomes.
//
//   ResponseHeaders response;
//   for (each header line, CRLF removed) ParseHeaderLine(line, &response);
//   CDI_ASSIGN_OR_RETURN(std::optional<uint64_t> length,
//                        DeclaredLength(response, url.redacted));
//
// Every value kept is printable ASCII, so that it may go into messages; no
// function here touches the network or curl.
//
// Thread-safety: free functions without shared state.
#ifndef CDI_SOURCES_HTTP_HTTP_RESPONSE_H_
#define CDI_SOURCES_HTTP_HTTP_RESPONSE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"
#include "sources/http/proxy.h"
#include "sources/url.h"

namespace cdi::importer {

// How many Content-Length values a response may send before the rest are
// ignored (they are in messages; a few show the conflict).
inline constexpr size_t kMaxContentLengths = 4;

// One response's status and the headers the source acts on, as they arrive.
// Empty strings are headers the response did not send.
struct ResponseHeaders {
  int status = 0;      // 0 until a status line arrived (or when it had none)
  std::string reason;  // at most 64 characters
  std::string location;
  std::string content_length;  // the last Content-Length
  // Every Content-Length value, in order (at most kMaxContentLengths kept):
  // more than one, or a comma-separated list, may disagree.
  std::vector<std::string> content_lengths;
  std::string content_encoding;
  std::string transfer_encoding;
  std::string content_range;
  std::string retry_after;
  std::string etag;           // at most 200 characters
  std::string last_modified;  // at most 100 characters
  std::string accept_ranges;
};

// Reads one header line of a response, its line ending and surrounding space
// removed. A status line ("HTTP/1.1 200 OK") starts a new response: it
// clears `response` and sets its status and reason. A "Name: value" line of a
// header the source acts on (names in any case) sets that field; the last of
// repeated headers wins. Anything else is ignored. Characters outside
// printable ASCII are dropped from what is kept.
void ParseHeaderLine(std::string_view line, ResponseHeaders* response);

// The reason phrase RFC 9110 gives `status`, for the statuses the source
// may report; "" for others.
const char* StandardReason(int status);

// "HTTP 404 Not Found": the status with the server's reason, or the standard
// one when the server sent none.
std::string StatusLine(int status, const std::string& reason);

// 301, 302, 303, 307 and 308: a redirect that names its target in Location.
bool IsRedirectStatus(int status);

// Whether a request answered with `status` may succeed later: 408, 429, 500,
// 502, 503 and 504.
Retryable RetryableStatus(int status);

// A decimal number without sign or space; nullopt for anything else,
// including a value that overflows.
std::optional<uint64_t> ParseUnsigned(std::string_view text);

// "bytes FIRST-LAST/COMPLETE" or "bytes FIRST-LAST/*" (RFC 9110 section 14.4).
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;                 // inclusive, >= first
  std::optional<uint64_t> complete;  // > last; nullopt for "*"
};

// Parses a Content-Range value; nullopt when it is not a satisfied byte range
// as above.
std::optional<ContentRange> ParseContentRange(std::string_view value);

// The length the response's headers declare for its body; nullopt when none
// (chunked, or ended by closing): a Transfer-Encoding overrides
// Content-Length (RFC 9112 section 6.3). A Content-Length that is not a
// number is kNetwork "invalid Content-Length from URL", `url` redacted.
// Content-Length values that disagree (repeated headers, or a
// comma-separated list) make the body's end ambiguous (RFC 9112 section
// 6.3, item 5): kNetwork, not retryable, naming the headers seen, whatever
// Transfer-Encoding says. Values that agree count as one.
Result<std::optional<uint64_t>> DeclaredLength(const ResponseHeaders& response,
                                               std::string_view url);

// True for a weak entity tag ("W/..."), which proves no byte equality.
bool IsWeakEtag(std::string_view etag);

// A status that is not wanted, as users read it: kNetwork "HTTP 404 Not Found
// from URL" with a hint for 206 (to a request of the whole file), a 3xx
// without Location, 401 and 407, and the proxy the request went through
// (`proxy`, null when none). Retryable for the statuses RetryableStatus
// names. `request` is the URL that answered.
Status HttpStatusError(const ResponseHeaders& response, const HttpUrl& request, const Proxy* proxy);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_HTTP_RESPONSE_H_
