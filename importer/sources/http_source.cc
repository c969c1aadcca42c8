#include "importer/sources/http_source.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "importer/sources/transfer_buffer.h"
#include "importer/sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {
namespace {

// How often waiting threads look at the cancel token.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// curl's receive buffer: its largest size, so that a fast link costs few
// callbacks.
constexpr long kCurlReceiveBuffer = 512 * 1024;  // NOLINT(google-runtime-int): curl's type

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct HeaderListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using HeaderList = std::unique_ptr<curl_slist, HeaderListDeleter>;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string AsciiLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

bool IsTokenChar(char c) {
  // RFC 9110 tchar.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Checks the extra headers and builds curl's list. Messages name the header
// by position and name, never by value.
Result<HeaderList> BuildHeaderList(const std::vector<std::string>& headers) {
  HeaderList list;
  for (size_t i = 0; i < headers.size(); ++i) {
    const std::string& header = headers[i];
    std::string position = "extra header #" + std::to_string(i + 1);
    size_t colon = header.find(':');
    if (colon == std::string::npos || colon == 0) {
      return InvalidArgumentError(position + " is not of the form 'Name: value'");
    }
    std::string_view name(header.data(), colon);
    for (char c : name) {
      if (!IsTokenChar(c)) {
        return InvalidArgumentError(position + " has an invalid name; expected 'Name: value'");
      }
    }
    if (header.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      return InvalidArgumentError(position + " (" + std::string(name) + ") contains a line break");
    }
    curl_slist* appended = curl_slist_append(list.get(), header.c_str());
    if (appended == nullptr) return InternalError("out of memory building request headers");
    list.release();
    list.reset(appended);
  }
  return list;
}

// Redacts every URL inside a message from curl, which may quote one.
std::string SanitizeCurlMessage(std::string_view message) {
  message = Trim(message);
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

const char* StandardReason(int status) {
  switch (status) {
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

bool IsRedirectStatus(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

Retryable RetryableStatus(int status) {
  switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return Retryable::kYes;
    default:
      return Retryable::kNo;
  }
}

// One response's status and the headers the source acts on, as they arrive.
struct ResponseHeaders {
  int status = 0;
  std::string reason;
  std::string location;
  std::string content_length;
  std::string content_encoding;
  std::string transfer_encoding;
  // Validators and capabilities, kept so that a dropped transfer can later be
  // resumed with "Range: bytes=N-" and If-Range.
  std::string etag;
  std::string last_modified;
  std::string accept_ranges;
};

enum class HopOutcome {
  kPending,   // headers of the final response not complete yet
  kRedirect,  // a 3xx with Location: the transfer was stopped after its headers
  kRefused,   // a status that is not success: stopped after its headers
  kBody,      // a 2xx: its body streams into the buffer
};

enum class SendCredentials { kNo, kYes };

class HttpSource final : public ByteSource {
 public:
  HttpSource(const SourceSpec& spec, HttpUrl url, HeaderList extra_headers,
             std::unique_ptr<tls::CurlTls> tls, const CancelToken* cancel)
      : network_(spec.network),
        url_(std::move(url)),
        extra_headers_(std::move(extra_headers)),
        tls_(std::move(tls)),
        cancel_(cancel),
        buffer_(kHttpBufferBytes) {
    // Credentials in HttpAuth win over user info in the URL.
    if (!spec.auth.user.empty()) {
      user_ = spec.auth.user;
      password_ = spec.auth.password;
    } else {
      user_ = url_.user;
      password_ = url_.password;
    }
  }

  ~HttpSource() override {
    Stop();
    if (worker_.joinable()) worker_.join();
  }

  HttpSource(const HttpSource&) = delete;
  HttpSource& operator=(const HttpSource&) = delete;

  // Starts the transfer and waits for the final response's headers.
  Status Start() {
    CDI_RETURN_IF_ERROR(ConfigureHandle());
    worker_ = std::thread([this] { Run(); });
    std::unique_lock lock(open_mutex_);
    while (!opened_) {
      if (Cancelled()) {
        lock.unlock();
        Stop();
        return CancelledError("cancelled while connecting to " + url_.redacted);
      }
      opened_cv_.wait_for(lock, kPollInterval);
    }
    return open_status_;
  }

  Result<size_t> Read(std::span<uint8_t> buffer) override {
    if (buffer.empty()) return size_t{0};
    while (true) {
      if (Cancelled()) {
        Stop();
        return CancelledError("cancelled while downloading " + url_.redacted);
      }
      std::optional<Result<size_t>> taken = buffer_.Take(buffer, kPollInterval);
      if (taken.has_value()) return *std::move(taken);
    }
  }

  std::optional<uint64_t> size() const override { return size_; }

  std::string Describe() const override { return url_.redacted; }

 private:
  bool Cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  void Stop() {
    stop_.store(true, std::memory_order_relaxed);
    buffer_.Close();
  }

  template <typename T>
  Status SetOption(CURLoption option, T value, const char* name) {
    CURLcode code = curl_easy_setopt(curl_.get(), option, value);
    if (code != CURLE_OK) {
      return InternalError(std::string("libcurl refused ") + name + ": " +
                           curl_easy_strerror(code));
    }
    return Status::Ok();
  }

  // Options that hold for every request of the transfer.
  Status ConfigureHandle() {
    curl_.reset(curl_easy_init());
    if (!curl_) return InternalError("cannot create a libcurl handle");
    error_buffer_[0] = '\0';
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_ERRORBUFFER, error_buffer_, "CURLOPT_ERRORBUFFER"));
    // Only http and https, also for anything curl might follow on its own.
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROTOCOLS_STR, "http,https", "CURLOPT_PROTOCOLS_STR"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_REDIR_PROTOCOLS_STR, "http,https", "CURLOPT_REDIR_PROTOCOLS_STR"));
    // Redirects are followed by Transfer(), which checks each target and
    // decides where credentials go.
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_FOLLOWLOCATION, 0L, "CURLOPT_FOLLOWLOCATION"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HTTPGET, 1L, "CURLOPT_HTTPGET"));
    // One long sequential stream gains nothing from HTTP/2 multiplexing, and
    // HTTP/1.1 leaves no stream window to cap throughput on long links.
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HTTP_VERSION,
                                  static_cast<long>(CURL_HTTP_VERSION_1_1),  // NOLINT
                                  "CURLOPT_HTTP_VERSION"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_USERAGENT, kHttpUserAgent, "CURLOPT_USERAGENT"));
    // The transfer runs in its own thread: no signals (curl's DNS timeouts
    // would use SIGALRM otherwise).
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_NOSIGNAL, 1L, "CURLOPT_NOSIGNAL"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_TCP_KEEPALIVE, 1L, "CURLOPT_TCP_KEEPALIVE"));
    // A proxy's CONNECT response is not the server's response.
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L, "CURLOPT_SUPPRESS_CONNECT_HEADERS"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_BUFFERSIZE, kCurlReceiveBuffer, "CURLOPT_BUFFERSIZE"));
    if (network_.connect_timeout.count() > 0) {
      CDI_RETURN_IF_ERROR(SetOption(
          CURLOPT_CONNECTTIMEOUT_MS,
          static_cast<long>(  // NOLINT(google-runtime-int)
              std::chrono::duration_cast<std::chrono::milliseconds>(network_.connect_timeout)
                  .count()),
          "CURLOPT_CONNECTTIMEOUT_MS"));
    }
    if (network_.stall_bytes_per_second > 0 && network_.stall_window.count() > 0) {
      CDI_RETURN_IF_ERROR(SetOption(
          CURLOPT_LOW_SPEED_LIMIT,
          static_cast<long>(network_.stall_bytes_per_second),  // NOLINT(google-runtime-int)
          "CURLOPT_LOW_SPEED_LIMIT"));
      CDI_RETURN_IF_ERROR(SetOption(CURLOPT_LOW_SPEED_TIME,
                                    static_cast<long>(network_.stall_window.count()),  // NOLINT
                                    "CURLOPT_LOW_SPEED_TIME"));
    }
    curl_write_callback header_callback = &HttpSource::OnHeader;
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_HEADERFUNCTION, header_callback, "CURLOPT_HEADERFUNCTION"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_HEADERDATA, static_cast<void*>(this), "CURLOPT_HEADERDATA"));
    curl_write_callback body_callback = &HttpSource::OnBody;
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_WRITEFUNCTION, body_callback, "CURLOPT_WRITEFUNCTION"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_WRITEDATA, static_cast<void*>(this), "CURLOPT_WRITEDATA"));
    curl_xferinfo_callback progress_callback = &HttpSource::OnProgress;
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_XFERINFOFUNCTION, progress_callback, "CURLOPT_XFERINFOFUNCTION"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_XFERINFODATA, static_cast<void*>(this), "CURLOPT_XFERINFODATA"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_NOPROGRESS, 0L, "CURLOPT_NOPROGRESS"));
    return tls_->Apply(curl_.get());
  }

  // Options for one request: its URL, and credentials only when it goes to
  // the origin of the URL as given.
  Status PrepareRequest(const HttpUrl& request) {
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_URL, request.request_url.c_str(), "CURLOPT_URL"));
    SendCredentials send =
        SameOrigin(request.origin, url_.origin) ? SendCredentials::kYes : SendCredentials::kNo;
    if (send == SendCredentials::kYes && !user_.empty()) {
      CDI_RETURN_IF_ERROR(SetOption(CURLOPT_USERNAME, user_.c_str(), "CURLOPT_USERNAME"));
      CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PASSWORD, password_.c_str(), "CURLOPT_PASSWORD"));
      CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HTTPAUTH,
                                    static_cast<unsigned long>(CURLAUTH_BASIC),  // NOLINT
                                    "CURLOPT_HTTPAUTH"));
    } else {
      CDI_RETURN_IF_ERROR(
          SetOption(CURLOPT_USERNAME, static_cast<const char*>(nullptr), "CURLOPT_USERNAME"));
      CDI_RETURN_IF_ERROR(
          SetOption(CURLOPT_PASSWORD, static_cast<const char*>(nullptr), "CURLOPT_PASSWORD"));
    }
    curl_slist* headers = send == SendCredentials::kYes ? extra_headers_.get() : nullptr;
    return SetOption(CURLOPT_HTTPHEADER, headers, "CURLOPT_HTTPHEADER");
  }

  // The transfer thread.
  void Run() {
    Status status = Transfer();
    if (published_) {
      buffer_.Finish(std::move(status));
      return;
    }
    if (status.ok()) status = InternalError("transfer ended without a response");
    {
      std::lock_guard lock(open_mutex_);
      open_status_ = std::move(status);
      opened_ = true;
    }
    opened_cv_.notify_all();
  }

  // Runs the request and every redirect. Ok when the whole body arrived.
  Status Transfer() {
    HttpUrl request = url_;
    int redirects = 0;
    while (true) {
      CDI_RETURN_IF_ERROR(PrepareRequest(request));
      response_ = ResponseHeaders();
      outcome_ = HopOutcome::kPending;
      request_ = &request;
      error_buffer_[0] = '\0';
      tls_->ResetHandshakeFacts();
      spdlog::debug("GET {}", request.redacted);
      CURLcode code = curl_easy_perform(curl_.get());

      if (outcome_ == HopOutcome::kRedirect) {
        if (redirects >= network_.max_redirects) {
          return NetworkError("too many redirects: stopped after " + std::to_string(redirects) +
                              " starting at " + url_.redacted);
        }
        ++redirects;
        Result<std::string> target = ResolveRedirect(request.request_url, response_.location);
        if (!target.ok()) return target.status();
        Result<HttpUrl> next = ParseHttpUrl(*target);
        if (!next.ok()) {
          return NetworkError("redirect from " + request.redacted +
                              " to an unusable URL: " + next.status().message());
        }
        spdlog::debug("HTTP {} from {}: redirected to {}", response_.status, request.redacted,
                      next->redacted);
        request = *std::move(next);
        continue;
      }
      if (outcome_ == HopOutcome::kRefused) return refusal_;
      if (code != CURLE_OK) return CurlFailure(code, request);
      if (!published_) {
        return NetworkError("no response from " + request.redacted, Retryable::kYes);
      }
      if (expected_length_.has_value() && bytes_received_ < *expected_length_) {
        return ShortBody(request);
      }
      spdlog::debug("{}: {} bytes received", request.redacted, bytes_received_);
      return Status::Ok();
    }
  }

  Status ShortBody(const HttpUrl& request) const {
    if (expected_length_.has_value()) {
      return NetworkError("connection closed early: received " + std::to_string(bytes_received_) +
                              " of " + std::to_string(*expected_length_) + " bytes from " +
                              request.redacted,
                          Retryable::kYes);
    }
    return NetworkError("connection closed early: received " + std::to_string(bytes_received_) +
                            " bytes from " + request.redacted +
                            " before the end of the chunked body",
                        Retryable::kYes);
  }

  // The one conversion of CURLcode into Status; TLS failures are explained by
  // the tls module.
  Status CurlFailure(CURLcode code, const HttpUrl& request) const {
    const std::string& url = request.redacted;
    std::string detail =
        SanitizeCurlMessage(error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(code));
    long os_errno = 0;  // NOLINT(google-runtime-int): curl's type
    curl_easy_getinfo(curl_.get(), CURLINFO_OS_ERRNO, &os_errno);
    std::string endpoint = request.origin.host + ":" + std::to_string(request.origin.port);
    std::string received = "after " + std::to_string(bytes_received_) + " bytes";
    if (expected_length_.has_value()) {
      received = "after " + std::to_string(bytes_received_) + " of " +
                 std::to_string(*expected_length_) + " bytes";
    }
    switch (code) {
      case CURLE_ABORTED_BY_CALLBACK:
      case CURLE_WRITE_ERROR:
        // Only our callbacks stop a transfer: on cancellation, or because
        // the reader went away.
        return CancelledError(
            (published_ ? "cancelled while downloading " : "cancelled while connecting to ") + url);
      case CURLE_COULDNT_RESOLVE_HOST:
        return NetworkError("cannot resolve host name '" + request.origin.host + "' of " + url,
                            Retryable::kYes);
      case CURLE_COULDNT_RESOLVE_PROXY:
        return NetworkError("cannot resolve the proxy host for " + url + ": " + detail,
                            Retryable::kYes);
      case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED) {
          return NetworkError("connection refused by " + endpoint + " (" + url + ")",
                              Retryable::kYes);
        }
        if (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH) {
          return NetworkError("no route to " + endpoint + " (" + url + ")", Retryable::kYes);
        }
        return NetworkError("cannot connect to " + endpoint + " (" + url + "): " + detail,
                            Retryable::kYes);
      case CURLE_OPERATION_TIMEDOUT:
        if (detail.find("too slow") != std::string::npos) {
          return NetworkError("stalled: less than " +
                                  std::to_string(network_.stall_bytes_per_second) +
                                  " bytes/s for " + std::to_string(network_.stall_window.count()) +
                                  " s, " + received + " from " + url,
                              Retryable::kYes);
        }
        return NetworkError("connecting to " + endpoint + " timed out after " +
                                std::to_string(network_.connect_timeout.count()) + " s (" + url +
                                ")",
                            Retryable::kYes);
      case CURLE_PARTIAL_FILE:
        return ShortBody(request);
      case CURLE_GOT_NOTHING:
        return NetworkError("the server closed the connection without answering (" + url + ")",
                            Retryable::kYes);
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
        if (tls_->handshake_facts().client_certificate_requested) {
          return tls_->TranslateFailure(CURLE_SSL_CLIENTCERT, detail, url, request.origin.host);
        }
        if (os_errno == ECONNRESET || os_errno == EPIPE) {
          return NetworkError("connection reset by " + endpoint + " " + received + " (" + url + ")",
                              Retryable::kYes);
        }
        return NetworkError(
            "connection to " + endpoint + " failed " + received + " (" + url + "): " + detail,
            Retryable::kYes);
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_BAD_CONTENT_ENCODING:
        return NetworkError("invalid HTTP response from " + url + ": " + detail);
      case CURLE_OUT_OF_MEMORY:
        return InternalError("out of memory downloading " + url);
      default:
        break;
    }
    if (tls::CurlTls::IsTlsFailure(code)) {
      return tls_->TranslateFailure(code, detail, url, request.origin.host);
    }
    return NetworkError("downloading " + url + " failed: " + detail + " (curl error " +
                            std::to_string(static_cast<int>(code)) + ")",
                        Retryable::kYes);
  }

  // A status that is not success, as users read it: "HTTP 404 Not Found from URL".
  Status RefusedStatus(const HttpUrl& request) const {
    int status = response_.status;
    std::string reason = response_.reason.empty() ? StandardReason(status) : response_.reason;
    std::string message = "HTTP " + std::to_string(status);
    if (!reason.empty()) message += " " + reason;
    message += " from " + request.redacted;
    if (status == 206) {
      message += ": partial content for a request of the whole file";
    } else if (status >= 300 && status < 400) {
      message += ": a redirect without a Location";
    } else if (status == 401) {
      message += ": the server wants credentials; check the user and password";
    } else if (status == 400 && tls_->handshake_facts().client_certificate_requested) {
      // A TLS configuration problem, whatever status carried it: say so with the TLS code.
      return TlsError(message + ": the server asked for a TLS client certificate and none is "
                                "configured; give one (--client-cert and --client-key)");
    }
    return NetworkError(std::move(message), RetryableStatus(status));
  }

  // At the end of a response's headers: decide what happens to its body.
  // Returns false to stop the transfer.
  bool OnHeadersComplete() {
    int status = response_.status;
    if (status >= 100 && status < 200) {
      response_ = ResponseHeaders();  // interim; the real response follows
      return true;
    }
    if (IsRedirectStatus(status) && !response_.location.empty()) {
      outcome_ = HopOutcome::kRedirect;
      return false;
    }
    if (status < 200 || status >= 300 || status == 206) {
      refusal_ = RefusedStatus(*request_);
      outcome_ = HopOutcome::kRefused;
      return false;
    }
    return Publish();
  }

  // Makes the final response's facts visible to Start() and lets it return.
  bool Publish() {
    std::optional<uint64_t> length;
    // RFC 9112 section 6.3: a Transfer-Encoding overrides Content-Length.
    if (response_.transfer_encoding.empty() && !response_.content_length.empty()) {
      uint64_t value = 0;
      const std::string& text = response_.content_length;
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (error != std::errc() || end != text.data() + text.size()) {
        refusal_ = NetworkError("invalid Content-Length from " + request_->redacted);
        outcome_ = HopOutcome::kRefused;
        return false;
      }
      length = value;
    }
    expected_length_ = length;
    std::string encoding = AsciiLower(response_.content_encoding);
    bool identity = encoding.empty() || encoding == "identity";
    outcome_ = HopOutcome::kBody;
    published_ = true;
    spdlog::debug("HTTP {} from {}, {} bytes{}", response_.status, request_->redacted,
                  length.has_value() ? std::to_string(*length) : std::string("unknown"),
                  identity ? "" : ", Content-Encoding " + encoding);
    {
      std::lock_guard lock(open_mutex_);
      // A compressed Content-Encoding: the length counts encoded bytes, which
      // says nothing about the image.
      size_ = identity ? length : std::nullopt;
      open_status_ = Status::Ok();
      opened_ = true;
    }
    opened_cv_.notify_all();
    return true;
  }

  void OnHeaderLine(std::string_view line) {
    if (line.starts_with("HTTP/")) {
      response_ = ResponseHeaders();
      size_t space = line.find(' ');
      if (space == std::string_view::npos) return;
      std::string_view rest = line.substr(space + 1);
      int status = 0;
      auto [end, error] =
          std::from_chars(rest.data(), rest.data() + std::min<size_t>(3, rest.size()), status);
      if (error == std::errc()) response_.status = status;
      std::string_view reason = Trim(rest.substr(std::min<size_t>(end - rest.data(), rest.size())));
      // The reason phrase goes into messages: keep it short and printable.
      for (char c : reason.substr(0, 64)) {
        if (c >= 0x20 && c < 0x7f) response_.reason += c;
      }
      return;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string name = AsciiLower(Trim(line.substr(0, colon)));
    std::string value(Trim(line.substr(colon + 1)));
    if (name == "location") {
      response_.location = value;
    } else if (name == "content-length") {
      response_.content_length = value;
    } else if (name == "content-encoding") {
      response_.content_encoding = value;
    } else if (name == "transfer-encoding") {
      response_.transfer_encoding = value;
    } else if (name == "etag") {
      response_.etag = value;
    } else if (name == "last-modified") {
      response_.last_modified = value;
    } else if (name == "accept-ranges") {
      response_.accept_ranges = value;
    }
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* self_pointer) {
    auto* self = static_cast<HttpSource*>(self_pointer);
    size_t length = size * count;
    // Trailers of a chunked body arrive here too, after the body started.
    if (self->outcome_ != HopOutcome::kPending) return length;
    std::string_view line = Trim(std::string_view(data, length));
    if (line.empty()) return self->OnHeadersComplete() ? length : 0;
    self->OnHeaderLine(line);
    return length;
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* self_pointer) {
    auto* self = static_cast<HttpSource*>(self_pointer);
    size_t length = size * count;
    if (self->outcome_ != HopOutcome::kBody) return length;
    // Waits while the buffer is full: the reader sets the pace.
    if (!self->buffer_.Put(std::span(reinterpret_cast<const uint8_t*>(data), length))) return 0;
    self->bytes_received_ += length;
    return length;
  }

  static int OnProgress(void* self_pointer, curl_off_t /*download_total*/,
                        curl_off_t /*downloaded*/, curl_off_t /*upload_total*/,
                        curl_off_t /*uploaded*/) {
    auto* self = static_cast<HttpSource*>(self_pointer);
    return self->stop_.load(std::memory_order_relaxed) || self->Cancelled() ? 1 : 0;
  }

  // Fixed at construction.
  const NetworkSettings network_;
  const HttpUrl url_;
  std::string user_;
  std::string password_;
  HeaderList extra_headers_;
  std::unique_ptr<tls::CurlTls> tls_;
  const CancelToken* const cancel_;

  TransferBuffer buffer_;
  std::atomic<bool> stop_{false};

  // Start() waits for these; the transfer thread sets them once.
  std::mutex open_mutex_;
  std::condition_variable opened_cv_;
  bool opened_ = false;           // guarded by open_mutex_
  Status open_status_;            // guarded by open_mutex_
  std::optional<uint64_t> size_;  // written before opened_, read after Start()

  // Used by the transfer thread only (and by curl's callbacks on it).
  CurlHandle curl_;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  const HttpUrl* request_ = nullptr;  // the request being made
  ResponseHeaders response_;
  HopOutcome outcome_ = HopOutcome::kPending;
  Status refusal_;
  bool published_ = false;
  uint64_t bytes_received_ = 0;
  std::optional<uint64_t> expected_length_;

  std::thread worker_;  // last: started after everything above exists
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenHttpSource(const SourceSpec& spec,
                                                   const CancelToken* cancel) {
  InitCurlOnce();
  CDI_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(spec.url));
  CDI_ASSIGN_OR_RETURN(HeaderList headers, BuildHeaderList(spec.auth.headers));
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(spec.tls));
  auto source = std::make_unique<HttpSource>(spec, std::move(url), std::move(headers),
                                             std::move(tls), cancel);
  CDI_RETURN_IF_ERROR(source->Start());
  return std::unique_ptr<ByteSource>(std::move(source));
}

}  // namespace cdi::importer
