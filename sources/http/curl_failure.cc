#include "sources/http/curl_failure.h"

#include <netdb.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/text.h"
#include "sources/http/http_response.h"

namespace cdi::importer {
namespace {

using Clock = std::chrono::steady_clock;

// How often a waiting name check looks at `stopping`.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// How long a second look at a host name curl could not resolve may take.
constexpr auto kNameCheckTimeout = std::chrono::seconds(10);

std::string ThroughProxy(const Proxy* proxy) {
  return proxy != nullptr ? " (through the proxy " + proxy->redacted + ")" : "";
}

// True when a TLS failure is the proxy's: an https:// proxy whose own
// handshake failed before it could open a tunnel to the server.
bool TlsFailureIsTheProxys(const CurlFailureFacts& facts, const CurlFailureContext& context) {
  if (context.proxy == nullptr || context.proxy->origin.scheme != "https") return false;
  return context.request.origin.scheme != "https" || facts.connect_code == 0;
}

// The failures that only a request through a proxy has; nullopt for the
// others.
std::optional<Status> ProxyFailure(const CurlFailureFacts& facts, const CurlFailureContext& context,
                                   const std::string& detail) {
  const Proxy& proxy = *context.proxy;
  const std::string& url = context.request.redacted;
  const std::string endpoint =
      context.request.origin.host + ":" + std::to_string(context.request.origin.port);
  if (long connect = facts.connect_code; connect >= 300) {  // NOLINT(google-runtime-int)
    std::string message = "the proxy " + proxy.redacted + " refused to open a tunnel to " +
                          endpoint + " for " + url + ": " +
                          StatusLine(static_cast<int>(connect), "");
    if (connect == 407) {
      message +=
          "; give the proxy's credentials in its URL (http://user:password@host:port, "
          "in " +
          proxy.setting + ")";
    }
    return NetworkError(std::move(message), RetryableStatus(static_cast<int>(connect)));
  }
  std::string proxy_endpoint = proxy.origin.host + ":" + std::to_string(proxy.origin.port);
  switch (facts.code) {
    case CURLE_COULDNT_RESOLVE_PROXY: {
      NameCheck check = context.check_host_name(proxy.origin.host);
      return NetworkError("cannot resolve the host name '" + proxy.origin.host + "' of the proxy " +
                              proxy.redacted + " (from " + proxy.setting + ") for " + url +
                              (check == NameCheck::kDoesNotExist ? ": no such host" : ""),
                          check == NameCheck::kDoesNotExist ? Retryable::kNo : Retryable::kYes);
    }
    case CURLE_COULDNT_CONNECT:
      return NetworkError("cannot connect to the proxy " + proxy.redacted + " (from " +
                              proxy.setting + "): " +
                              (facts.os_errno == ECONNREFUSED ? std::string("connection refused")
                               : facts.os_errno == ENETUNREACH || facts.os_errno == EHOSTUNREACH
                                   ? "no route to " + proxy_endpoint
                                   : detail) +
                              " (for " + url + "); check the proxy settings",
                          Retryable::kYes);
    case CURLE_OPERATION_TIMEDOUT:
      if (!facts.published && facts.progress.received == 0 && facts.response_status == 0) {
        return NetworkError("connecting to the proxy " + proxy.redacted + " timed out after " +
                                std::to_string(context.network.connect_timeout.count()) +
                                " s (for " + url + ")",
                            Retryable::kYes);
      }
      break;
    default:
      break;
  }
  return std::nullopt;
}

// libcurl's limit on one header line (CURL_MAX_HTTP_HEADER, public) and,
// as libcurl 7.84 to 8.x set it, on all the headers of a response (internal
// to libcurl; its message names the value in force).
constexpr size_t kCurlHeaderLineLimit = CURL_MAX_HTTP_HEADER;
constexpr size_t kCurlHeadersLimit = 300 * 1024;

std::string KiB(size_t bytes) { return std::to_string(bytes / 1024) + " KiB"; }

// The limit libcurl names in "Too large response headers: 308086 > 307200";
// its usual value when the message has none.
size_t HeadersLimitFrom(std::string_view message) {
  size_t greater = message.rfind("> ");
  if (greater == std::string_view::npos) return kCurlHeadersLimit;
  std::optional<uint64_t> limit = ParseUnsigned(TrimSpace(message.substr(greater + 2)));
  return limit ? static_cast<size_t>(*limit) : kCurlHeadersLimit;
}

// The server's response headers went beyond what libcurl accepts: a
// protocol error of the server's that another attempt repeats.
Status HeadersTooLarge(std::string what, const std::string& url, const Proxy* proxy) {
  return NetworkError("the response from " + url + ThroughProxy(proxy) + " has " + what +
                      "; the server sends a broken response, not tried again: fix "
                      "the server, or whatever adds the headers between it and this importer");
}

}  // namespace

NameCheck CheckHostName(const std::string& host, const std::function<bool()>& stopping) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    int result = 0;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, host] {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int result = getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (found != nullptr) freeaddrinfo(found);
    std::lock_guard lock(shared->mutex);
    shared->result = result;
    shared->done = true;
    shared->done_cv.notify_all();
  }).detach();
  const auto deadline = Clock::now() + kNameCheckTimeout;
  std::unique_lock lock(shared->mutex);
  while (!shared->done) {
    if (stopping() || Clock::now() >= deadline) return NameCheck::kMayResolveLater;
    shared->done_cv.wait_for(lock, kPollInterval);
  }
  // The one conversion of getaddrinfo's codes: only "no such name" (and "no
  // address for it") is an answer; everything else is a resolver's trouble.
  if (shared->result == EAI_NONAME || shared->result == EAI_NODATA) {
    return NameCheck::kDoesNotExist;
  }
  return NameCheck::kMayResolveLater;
}

std::string SanitizeCurlMessage(std::string_view message) {
  message = TrimSpace(message);
  std::string clean;
  size_t start = 0;
  while (start <= message.size()) {
    size_t end = message.find(' ', start);
    if (end == std::string_view::npos) end = message.size();
    std::string_view word = message.substr(start, end - start);
    if (!clean.empty() || start > 0) clean += ' ';
    clean += word.find("://") != std::string_view::npos ? RedactUrl(word) : std::string(word);
    start = end + 1;
  }
  return clean;
}

Status ShortBodyError(const Progress& progress, std::string_view url) {
  if (progress.expected.has_value()) {
    return NetworkError("connection closed early: received " + std::to_string(progress.received) +
                            " of " + std::to_string(*progress.expected) + " bytes from " +
                            std::string(url),
                        Retryable::kYes);
  }
  return NetworkError("connection closed early: received " + std::to_string(progress.received) +
                          " bytes from " + std::string(url) + " before the end of the chunked body",
                      Retryable::kYes);
}

Status CurlFailure(const CurlFailureFacts& facts, const CurlFailureContext& context) {
  const CURLcode code = facts.code;
  const HttpUrl& request = context.request;
  const Proxy* proxy = context.proxy;
  const std::string& url = request.redacted;
  std::string detail = SanitizeCurlMessage(!facts.curl_message.empty() ? facts.curl_message
                                                                       : curl_easy_strerror(code));
  std::string endpoint = request.origin.host + ":" + std::to_string(request.origin.port);
  std::string received = ReceivedText(facts.progress);
  if (code == CURLE_ABORTED_BY_CALLBACK || code == CURLE_WRITE_ERROR) {
    // Only the transfer stops a request: on cancellation, or because the
    // reader went away.
    return CancelledError(
        (facts.published ? "cancelled while downloading " : "cancelled while connecting to ") +
        url);
  }
  if (code == CURLE_FAILED_INIT)
    return InternalError("libcurl failed to run the transfer of " + url);
  if (facts.stalled) {
    return NetworkError("stalled: less than " +
                            std::to_string(context.network.stall_bytes_per_second) +
                            " bytes/s for " + std::to_string(context.network.stall_window.count()) +
                            " s, " + received + " from " + url + ThroughProxy(proxy),
                        Retryable::kYes);
  }
  if (proxy != nullptr) {
    if (std::optional<Status> failure = ProxyFailure(facts, context, detail)) {
      return *std::move(failure);
    }
  }
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST: {
      NameCheck check = context.check_host_name(request.origin.host);
      if (check == NameCheck::kDoesNotExist) {
        return NetworkError("cannot resolve host name '" + request.origin.host + "' of " + url +
                            ": no such host");
      }
      return NetworkError("cannot resolve host name '" + request.origin.host + "' of " + url +
                              ": the name server did not answer",
                          Retryable::kYes);
    }
    case CURLE_COULDNT_RESOLVE_PROXY:
      return NetworkError("cannot resolve the proxy host for " + url + ": " + detail,
                          Retryable::kYes);
    case CURLE_COULDNT_CONNECT:
      if (facts.os_errno == ECONNREFUSED) {
        return NetworkError("connection refused by " + endpoint + " (" + url + ")",
                            Retryable::kYes);
      }
      if (facts.os_errno == ENETUNREACH || facts.os_errno == EHOSTUNREACH) {
        return NetworkError("no route to " + endpoint + " (" + url + ")", Retryable::kYes);
      }
      return NetworkError("cannot connect to " + endpoint + " (" + url + "): " + detail,
                          Retryable::kYes);
    case CURLE_OPERATION_TIMEDOUT:
      return NetworkError("connecting to " + endpoint + " timed out after " +
                              std::to_string(context.network.connect_timeout.count()) + " s (" +
                              url + ")",
                          Retryable::kYes);
    case CURLE_PARTIAL_FILE:
      return ShortBodyError(facts.progress, url);
    case CURLE_GOT_NOTHING:
      return NetworkError(
          "the server closed the connection without answering (" + url + ")" + ThroughProxy(proxy),
          Retryable::kYes);
#if LIBCURL_VERSION_NUM >= 0x080600
    case CURLE_TOO_LARGE:
      return HeadersTooLarge("headers larger than libcurl's limits (" + detail + ")", url, proxy);
#endif
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      if (code == CURLE_RECV_ERROR && detail.starts_with("Too large response headers")) {
        return HeadersTooLarge("headers larger than libcurl's limit of " +
                                   KiB(HeadersLimitFrom(detail)) + " in all",
                               url, proxy);
      }
      if (context.tls.handshake_facts().client_certificate_requested) {
        return context.tls.TranslateFailure(CURLE_SSL_CLIENTCERT, detail, url, request.origin.host);
      }
      if (facts.os_errno == ECONNRESET || facts.os_errno == EPIPE) {
        return NetworkError("connection reset by " + endpoint + " " + received + " (" + url + ")" +
                                ThroughProxy(proxy),
                            Retryable::kYes);
      }
      return NetworkError("connection to " + endpoint + " failed " + received + " (" + url +
                              "): " + detail + ThroughProxy(proxy),
                          Retryable::kYes);
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
      return NetworkError("invalid HTTP response from " + url + ": " + detail +
                          ThroughProxy(proxy));
    case CURLE_OUT_OF_MEMORY:
      // What runs out while headers arrive is libcurl's buffer of one header
      // line, which it caps: the line is too long, not this machine short of
      // memory.
      if (facts.in_headers) {
        return HeadersTooLarge(
            "a header line longer than libcurl's limit of " + KiB(kCurlHeaderLineLimit), url,
            proxy);
      }
      return InternalError("out of memory downloading " + url);
    default:
      break;
  }
  if (tls::CurlTls::IsTlsFailure(code)) {
    if (TlsFailureIsTheProxys(facts, context)) {
      return context.tls.TranslateFailure(code, detail, "the proxy " + proxy->redacted,
                                          proxy->origin.host, tls::TlsPeer::kProxy);
    }
    return context.tls.TranslateFailure(code, detail, url, request.origin.host);
  }
  return NetworkError("downloading " + url + " failed: " + detail + " (curl error " +
                          std::to_string(static_cast<int>(code)) + ")" + ThroughProxy(proxy),
                      Retryable::kYes);
}

}  // namespace cdi::importer
