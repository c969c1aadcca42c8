// The one conversion of a failed curl transfer (a CURLcode and what curl
// said about it) into Status, with messages that say what failed, where and
// what to do: DNS, connect, proxy, timeout and stall, a body cut short, a
// reset connection, an invalid response. TLS failures are explained by the
// tls module (tls::CurlTls::TranslateFailure).
//
//   CurlFailureFacts facts{.code = code, .curl_message = handles.error_message(), ...};
//   return CurlFailure(facts, {request, proxy, network, tls, check_host_name});
//
// CurlFailure is a pure function of its arguments except for the host name
// check, which the caller passes in (CheckHostName in production).
//
// Thread-safety: no shared state; CheckHostName may be called from any thread.
#ifndef CDI_SOURCES_HTTP_CURL_FAILURE_H_
#define CDI_SOURCES_HTTP_CURL_FAILURE_H_

#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/http/proxy.h"
#include "sources/http/resume.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {

// Whether a host name that curl could not resolve may resolve later: a name
// that does not exist will not; a resolver that did not answer may.
enum class NameCheck { kDoesNotExist, kMayResolveLater };

// Looks at `host` once more with getaddrinfo. The look runs on a thread of its
// own, so that a slow resolver cannot hold back cancellation: when `stopping`
// says so (polled every 100 ms), or after 10 s, it is left to finish alone and
// the answer is kMayResolveLater.
NameCheck CheckHostName(const std::string& host, const std::function<bool()>& stopping);

// What the transfer knew when curl ended a request with an error.
struct CurlFailureFacts {
  CURLcode code = CURLE_OK;
  // Curl's error buffer; "" when it holds nothing (curl_easy_strerror is used).
  std::string_view curl_message;
  long os_errno = 0;        // NOLINT(google-runtime-int): curl's CURLINFO_OS_ERRNO
  long connect_code = 0;    // NOLINT(google-runtime-int): a proxy's answer to CONNECT, 0: none
  bool stalled = false;     // the transfer stopped the request as stalled
  bool published = false;   // the first response of the download was accepted
  int response_status = 0;  // of the request's response; 0 when none arrived
  bool in_headers = false;  // the request's final response had not finished its headers
  Progress progress;        // of the download
};

// Where the failed request went and how.
struct CurlFailureContext {
  const HttpUrl& request;          // the URL of the request that failed
  const Proxy* proxy = nullptr;    // the proxy it went through; null: none
  const NetworkSettings& network;  // for the timeouts and the stall limit
  const tls::CurlTls& tls;         // explains TLS failures
  // Checks a host name curl could not resolve (CheckHostName bound to the
  // transfer's stop condition).
  std::function<NameCheck(const std::string& host)> check_host_name;
};

// The Status of a request that curl ended with `facts.code` (not CURLE_OK):
//   kCancelled  aborted by the transfer's callbacks (cancellation, the reader
//               went away)
//   kInternal   libcurl could not run the transfer; out of memory while a
//               body streams
//   kNetwork    a stall, a proxy's refusal to open a tunnel (as its HTTP
//               status), a host or proxy name that does not resolve (not
//               retryable when it does not exist), connection refused, no
//               route, connect timeout, a short body, an empty reply, a reset
//               connection (all retryable), an invalid HTTP response, a
//               header line or response headers beyond libcurl's limits (not
//               retryable: the server's protocol error), anything else curl
//               reports (retryable)
//   kTls        a TLS failure, the server's or an https:// proxy's; a
//               connection dropped after the server asked for a client
//               certificate that was not configured
// Every message names the redacted URL; none holds a secret.
Status CurlFailure(const CurlFailureFacts& facts, const CurlFailureContext& context);

// The kNetwork error, retryable, of a body that ended before its declared
// length (or before the end of a chunked body): "connection closed early:
// received N of M bytes from URL".
Status ShortBodyError(const Progress& progress, std::string_view url);

// Redacts every URL inside a message from curl, which may quote one, and
// trims it.
std::string SanitizeCurlMessage(std::string_view message);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_CURL_FAILURE_H_
