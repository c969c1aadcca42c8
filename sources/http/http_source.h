// The HTTP(S) source: one streaming GET through libcurl.
//
// A transfer thread runs the request and fills a fixed 4 MiB TransferBuffer;
// Read() drains it. Redirects are followed here, not by curl, so that every
// target is checked (http and https only, at most max_redirects) and
// credentials (basic auth, URL user info, extra headers) go only to the
// origin (scheme, host, port) of the URL as given.
//
// The rooms of sources/http/: http_transfer.h runs the requests (retries,
// redirects, the loop around curl); curl_handles.h sets up curl's handles
// and options; http_response.h reads responses; curl_failure.h turns a
// CURLcode into Status; resume.h decides how a dropped download continues;
// stall_watch.h detects stalls; proxy.h and retry_policy.h choose proxies
// and back-off.
#ifndef CDI_SOURCES_HTTP_HTTP_SOURCE_H_
#define CDI_SOURCES_HTTP_HTTP_SOURCE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/source.h"

namespace cdi::importer {

// Bytes the HTTP source holds between the network and Read(), whatever the
// size of the image.
inline constexpr size_t kHttpBufferBytes = 4 * kMiB;

// The User-Agent of every request.
inline constexpr const char* kHttpUserAgent = "cdi-image/0.1";

// Where a download stands: the image's identity as the server states it
// (length, validators) and the offset its body starts at.
struct HttpResumePoint {
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  std::string etag;
  std::string last_modified;
};

// What a source built on this one (sources/s3/) adds to its requests, and
// how a download that an earlier process began continues.
struct HttpSourceOptions {
  // When set, spec.auth.user and spec.auth.password are an access key pair
  // that signs every request to the URL's origin with AWS Signature Version
  // 4 (curl's CURLOPT_AWS_SIGV4 parameter, "aws:amz:REGION:SERVICE"), the
  // extra headers and a resume's Range included; basic auth is not sent.
  std::string aws_sigv4;
  // Reads the first bytes (at most 4 KiB) of an error response's body (a
  // status of 400 or more) into words that the message adds after the status
  // line; "" adds nothing. Unset: error bodies are not read.
  std::function<std::string(std::string_view body)> explain_error;
  // Continues the download of the image an earlier process recorded: the
  // first request asks for "Range: bytes=OFFSET-" with If-Range (the strong
  // ETag, else Last-Modified), and a 206 whose Content-Range and validators
  // show the rest of that very image delivers bytes from OFFSET (size() is
  // then length - OFFSET). Whatever shows another image (a 200: the whole,
  // changed image, or a server without ranges; a 416; another length or
  // validator) starts over at byte 0, with a log line saying why.
  std::optional<HttpResumePoint> resume_from;
  // When set, filled once the first response is accepted (before
  // OpenHttpSource returns): where the body starts (resume_from's offset, or
  // 0) and the image's identity.
  std::shared_ptr<HttpResumePoint> served;
};

// Connects, follows redirects and returns once the final response's headers
// are in and its status is 2xx, so that size() is known (Content-Length, when
// the server sends one and no compressing Content-Encoding).
//
// Errors, all naming the URL redacted (cdi::RedactUrl):
//   kInvalidArgument  a malformed URL or extra header ("Name: value" each)
//   kUnsupported      a scheme other than http or https
//   kNetwork          "HTTP 404 Not Found from https://host/path" (retryable for
//                     408, 429, 500, 502, 503, 504); DNS failure, connection
//                     refused or reset, connect timeout, a stall, a body shorter
//                     than its Content-Length (retryable); too many redirects, a
//                     redirect to another scheme (not retryable)
//   kTls              certificate verification, handshake, client certificate
//   kCancelled        `cancel` was cancelled; checked at least every 100 ms
// No message and no log line holds a password, a header value, URL user info
// or a query string.
//
// The returned source is not thread-safe (one reader), but `cancel` may be
// cancelled from any thread: a waiting Read() then returns kCancelled within a
// second. Destroying the source stops the transfer.
Result<std::unique_ptr<ByteSource>> OpenHttpSource(const SourceSpec& spec,
                                                   const CancelToken* cancel,
                                                   HttpSourceOptions options = {});

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_HTTP_SOURCE_H_
