// An HTTP/1.1 request's header as the upload server reads it: the request
// line and the header fields, and the body's framing they declare. Pure:
// tested without a server.
#ifndef CDI_UPLOADSERVER_HTTP_REQUEST_H_
#define CDI_UPLOADSERVER_HTTP_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdi/status.h"

namespace cdi::uploadserver {

struct HttpRequest {
  std::string method;   // "POST"
  std::string target;   // "/v1beta1/upload?x=1"
  std::string path;     // "/v1beta1/upload"
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, values trimmed

  // The first field named `name` (lowercase), when present.
  std::optional<std::string> Header(std::string_view name) const;
  // Content-Length, when present (every copy must agree).
  std::optional<uint64_t> content_length;
  // Transfer-Encoding: chunked.
  bool chunked = false;
  // Expect: 100-continue.
  bool expects_continue = false;
};

// Parses the header block `text`: everything before the blank line that ends
// it. kInvalidArgument for a malformed request line or field, a
// Content-Length that is not a number or that disagrees with another, a
// Transfer-Encoding other than chunked.
Result<HttpRequest> ParseRequestHeader(std::string_view text);

// A resumed upload's Content-Range: "bytes FIRST-LAST/TOTAL" (RFC 9110
// 14.4), both ends inclusive, TOTAL the whole upload's length.
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t total = 0;
};

// Parses a Content-Range value. kInvalidArgument, saying what is expected,
// for another unit, a missing or unknown ("*") total, LAST before FIRST or
// past TOTAL.
Result<ContentRange> ParseContentRange(std::string_view value);

// "HTTP/1.1 <code> <reason>" with Content-Length, Connection: close and, when
// the body is not empty, Content-Type text/plain. `extra_headers`: more
// header lines, each ending in CRLF.
std::string HttpResponse(int code, std::string_view body = {},
                         std::string_view extra_headers = {});

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_HTTP_REQUEST_H_
