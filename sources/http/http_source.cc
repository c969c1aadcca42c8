#include "sources/http/http_source.h"

#include <curl/curl.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "cdi/headers.h"
#include "common/log.h"
#include "common/text.h"
#include "sources/http/proxy.h"
#include "sources/http/retry_policy.h"
#include "sources/transfer_buffer.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {
namespace {

using Clock = std::chrono::steady_clock;

// How often waiting threads look at the cancel token and the stop flag.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// curl's receive buffer: its largest size, so that a fast link costs few
// callbacks.
constexpr long kCurlReceiveBuffer = 512 * 1024;  // NOLINT(google-runtime-int): curl's type
// A write into the transfer buffer that waits this long means the reader is
// the bottleneck: the wait is not the network's fault.
constexpr auto kBackPressure = std::chrono::milliseconds(50);
// How long a second look at a host name curl could not resolve may take.
constexpr auto kNameCheckTimeout = std::chrono::seconds(10);
// How much of an error response's body is kept to explain it: nginx's
// error pages are a few hundred bytes.
constexpr size_t kErrorBodyBytes = 4096;

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct MultiDeleter {
  void operator()(CURLM* handle) const { curl_multi_cleanup(handle); }
};
using MultiHandle = std::unique_ptr<CURLM, MultiDeleter>;

struct HeaderListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using HeaderList = std::unique_ptr<curl_slist, HeaderListDeleter>;

// curl_global_init is not safe to call twice concurrently: once per process,
// whatever the number of imports running in parallel threads.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Checks the extra headers. Messages name the header by position and name,
// never by value.
Status CheckHeaders(const std::vector<std::string>& headers) {
  for (size_t i = 0; i < headers.size(); ++i) {
    CDI_RETURN_IF_ERROR(ValidateHeaderLine(headers[i], "extra header #" + std::to_string(i + 1)));
  }
  return Status::Ok();
}

Status AppendHeader(HeaderList& list, const std::string& header) {
  curl_slist* appended = curl_slist_append(list.get(), header.c_str());
  if (appended == nullptr) return InternalError("out of memory building request headers");
  list.release();
  list.reset(appended);
  return Status::Ok();
}

// Redacts every URL inside a message from curl, which may quote one.
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

std::string StatusLine(int status, const std::string& reason) {
  std::string text = "HTTP " + std::to_string(status);
  std::string shown = reason.empty() ? StandardReason(status) : reason;
  if (!shown.empty()) text += " " + shown;
  return text;
}

std::optional<uint64_t> ParseUnsigned(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// "bytes FIRST-LAST/COMPLETE" or "bytes FIRST-LAST/*" (RFC 9110 section 14.4).
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  std::optional<uint64_t> complete;
};

std::optional<ContentRange> ParseContentRange(std::string_view value) {
  value = TrimSpace(value);
  if (!value.starts_with("bytes ")) return std::nullopt;
  value.remove_prefix(6);
  size_t dash = value.find('-');
  size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) {
    return std::nullopt;
  }
  std::optional<uint64_t> first = ParseUnsigned(TrimSpace(value.substr(0, dash)));
  std::optional<uint64_t> last = ParseUnsigned(TrimSpace(value.substr(dash + 1, slash - dash - 1)));
  std::string_view complete_text = TrimSpace(value.substr(slash + 1));
  if (!first || !last || *last < *first) return std::nullopt;
  ContentRange range{*first, *last, std::nullopt};
  if (complete_text != "*") {
    range.complete = ParseUnsigned(complete_text);
    if (!range.complete || *range.complete <= *last) return std::nullopt;
  }
  return range;
}

bool IsWeakEtag(std::string_view etag) { return etag.starts_with("W/"); }

// Whether a host name that curl could not resolve may resolve later: a name
// that does not exist will not; a resolver that did not answer may. The
// second look runs on a thread of its own, so that a slow resolver cannot
// hold back cancellation: when `stopping` says so, it is left to finish alone.
enum class NameCheck { kDoesNotExist, kMayResolveLater };

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

// Watches the rate of one request: a stall is fewer than `min_rate` bytes/s
// over the last `window`. Samples are kept every 100 ms, so the window slides.
class StallWatch {
 public:
  StallWatch(uint64_t min_rate, std::chrono::seconds window)
      : min_rate_(min_rate), window_(window) {}

  void Restart(Clock::time_point now, uint64_t bytes) {
    samples_.clear();
    samples_.push_back({now, bytes});
  }

  bool Stalled(Clock::time_point now, uint64_t bytes) {
    if (min_rate_ == 0 || window_.count() <= 0) return false;
    if (samples_.empty() || now - samples_.back().time >= kPollInterval) {
      samples_.push_back({now, bytes});
    }
    // Keep the newest sample at least a window old: where the window starts.
    while (samples_.size() >= 2 && now - samples_[1].time >= window_) samples_.pop_front();
    const Sample& start = samples_.front();
    if (now - start.time < window_) return false;
    return bytes - start.bytes < min_rate_ * static_cast<uint64_t>(window_.count());
  }

 private:
  struct Sample {
    Clock::time_point time;
    uint64_t bytes;
  };
  const uint64_t min_rate_;
  const std::chrono::seconds window_;
  std::deque<Sample> samples_;
};

// One response's status and the headers the source acts on, as they arrive.
struct ResponseHeaders {
  int status = 0;
  std::string reason;
  std::string location;
  std::string content_length;
  std::string content_encoding;
  std::string transfer_encoding;
  std::string content_range;
  std::string retry_after;
  std::string etag;
  std::string last_modified;
  std::string accept_ranges;
};

// What the first response said about the image: how long it is and how to
// recognise it again when resuming.
struct ImageIdentity {
  std::optional<uint64_t> length;
  std::string etag;
  std::string last_modified;
  std::string accept_ranges;
};

enum class HopOutcome {
  kPending,    // headers of the final response not complete yet
  kRedirect,   // a 3xx with Location: the transfer was stopped after its headers
  kRefused,    // a status that is not wanted: stopped after its headers
  kErrorBody,  // a status that is not wanted, whose body may explain it: kept
  kBody,       // its body streams into the buffer
};

// What a request asks for.
enum class RequestKind {
  kWhole,         // the whole image: nothing received yet
  kRange,         // "Range: bytes=N-": resume after N bytes
  kWholeAndSkip,  // the whole image again, dropping the N bytes already received
};

enum class SendCredentials { kNo, kYes };

std::string SecondsText(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(duration).count());
  return text;
}

class HttpSource final : public ByteSource {
 public:
  HttpSource(const SourceSpec& spec, HttpUrl url, std::unique_ptr<tls::CurlTls> tls,
             ProxyConfig proxies, const CancelToken* cancel)
      : network_(spec.network),
        url_(std::move(url)),
        extra_headers_(spec.auth.headers),
        tls_(std::move(tls)),
        proxies_(std::move(proxies)),
        cancel_(cancel),
        buffer_(kHttpBufferBytes),
        stall_(network_.stall_bytes_per_second, network_.stall_window) {
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

  // Starts the transfer and waits for the first response's headers (through
  // retries of transient failures).
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

  // Lends the bytes in place in the transfer buffer: no copy between the
  // network thread and the decoder.
  Result<std::span<const uint8_t>> ReadView(size_t max) override {
    buffer_.Release(std::exchange(lent_, 0));
    while (true) {
      if (Cancelled()) {
        Stop();
        return CancelledError("cancelled while downloading " + url_.redacted);
      }
      std::optional<Result<std::span<const uint8_t>>> view = buffer_.Peek(max, kPollInterval);
      if (!view.has_value()) continue;
      if (view->ok()) lent_ = (*view)->size();
      return *std::move(view);
    }
  }

  std::optional<uint64_t> size() const override { return size_; }

  std::string Describe() const override { return url_.redacted; }

 private:
  bool Cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }
  bool Stopping() const { return stop_.load(std::memory_order_relaxed) || Cancelled(); }

  // Any thread: stops the transfer, a back-off wait and the writer.
  void Stop() {
    stop_.store(true, std::memory_order_relaxed);
    buffer_.Close();
    { std::lock_guard lock(wake_mutex_); }
    wake_cv_.notify_all();
    // The one libcurl call that is safe from another thread: it interrupts
    // the transfer thread's wait for the network.
    if (multi_) curl_multi_wakeup(multi_.get());
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
    multi_.reset(curl_multi_init());
    if (!curl_ || !multi_) return InternalError("cannot create a libcurl handle");
    error_buffer_[0] = '\0';
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_ERRORBUFFER, error_buffer_, "CURLOPT_ERRORBUFFER"));
    // Only http and https, also for anything curl might follow on its own.
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROTOCOLS_STR, "http,https", "CURLOPT_PROTOCOLS_STR"));
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_REDIR_PROTOCOLS_STR, "http,https", "CURLOPT_REDIR_PROTOCOLS_STR"));
    // Redirects are followed by Attempt(), which checks each target and
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
    // The server's headers (secrets among them) go to the server only, never
    // into a proxy's CONNECT request.
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_HEADEROPT,
                                  static_cast<long>(CURLHEADER_SEPARATE),  // NOLINT
                                  "CURLOPT_HEADEROPT"));
    // Proxies are chosen per request by PrepareRequest, never by curl from
    // the environment.
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_NOPROXY, "", "CURLOPT_NOPROXY"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_BUFFERSIZE, kCurlReceiveBuffer, "CURLOPT_BUFFERSIZE"));
    if (network_.connect_timeout.count() > 0) {
      CDI_RETURN_IF_ERROR(SetOption(
          CURLOPT_CONNECTTIMEOUT_MS,
          static_cast<long>(  // NOLINT(google-runtime-int)
              std::chrono::duration_cast<std::chrono::milliseconds>(network_.connect_timeout)
                  .count()),
          "CURLOPT_CONNECTTIMEOUT_MS"));
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
    return tls_->Apply(curl_.get());
  }

  // Options for one request: its URL and proxy, the range it asks for, and
  // credentials only when it goes to the origin of the URL as given.
  Status PrepareRequest(const HttpUrl& request) {
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_URL, request.request_url.c_str(), "CURLOPT_URL"));
    proxy_ = ProxyFor(proxies_, request.origin);
    // "" is curl's "no proxy", which also keeps it from the environment.
    CDI_RETURN_IF_ERROR(
        SetOption(CURLOPT_PROXY, proxy_ ? proxy_->url.c_str() : "", "CURLOPT_PROXY"));
    const bool proxy_credentials = proxy_ && !proxy_->user.empty();
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROXYUSERNAME,
                                  proxy_credentials ? proxy_->user.c_str() : nullptr,
                                  "CURLOPT_PROXYUSERNAME"));
    CDI_RETURN_IF_ERROR(SetOption(CURLOPT_PROXYPASSWORD,
                                  proxy_credentials ? proxy_->password.c_str() : nullptr,
                                  "CURLOPT_PROXYPASSWORD"));

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
    request_headers_.reset();
    if (send == SendCredentials::kYes) {
      for (const std::string& header : extra_headers_) {
        CDI_RETURN_IF_ERROR(AppendHeader(request_headers_, header));
      }
    }
    range_text_.clear();
    if (kind_ == RequestKind::kRange) {
      range_text_ = std::to_string(bytes_received_) + "-";
      // A strong validator only (RFC 9110 section 13.1.5): the server sends
      // the rest of this very image, or all of a changed one.
      std::string validator = !identity_.etag.empty() && !IsWeakEtag(identity_.etag)
                                  ? identity_.etag
                                  : identity_.last_modified;
      if (!validator.empty()) {
        CDI_RETURN_IF_ERROR(AppendHeader(request_headers_, "If-Range: " + validator));
      }
    }
    CDI_RETURN_IF_ERROR(SetOption(
        CURLOPT_RANGE, range_text_.empty() ? nullptr : range_text_.c_str(), "CURLOPT_RANGE"));
    return SetOption(CURLOPT_HTTPHEADER, request_headers_.get(), "CURLOPT_HTTPHEADER");
  }

  // The transfer thread.
  void Run() {
    Status status = Download();
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

  // Attempts until the whole body arrived, a failure is permanent, or the
  // retry budget is spent.
  Status Download() {
    RetryBudget budget(network_);
    while (true) {
      const uint64_t position = bytes_received_;
      Status status = Attempt();
      if (status.ok()) {
        if (budget.total_retries() > 0) {
          const int retries = budget.total_retries();
          Logger()->info("Downloaded {} bytes from {} in {} requests ({} {}{})", bytes_received_,
                       url_.redacted, requests_, retries, retries == 1 ? "retry" : "retries",
                       bytes_discarded_ > 0
                           ? ", " + std::to_string(bytes_discarded_) + " bytes downloaded twice"
                           : std::string());
        } else {
          Logger()->debug("{}: {} bytes received", url_.redacted, bytes_received_);
        }
        return status;
      }
      if (status.code() == ErrorCode::kCancelled) return status;
      if (Stopping()) return CancelledError("cancelled while downloading " + url_.redacted);
      if (!status.retryable()) return status;
      if (bytes_received_ > position) budget.Recovered();
      Result<RetryBudget::Wait> wait = budget.Next(status, retry_after_, Clock::now());
      if (!wait.ok()) return wait.status();
      Logger()->warn("{}; retry {} of {} in {}{}{}", status.message(), wait->retry,
                   network_.max_retries, SecondsText(wait->delay),
                   wait->from_retry_after ? " (as Retry-After asks)" : "",
                   bytes_received_ > 0 ? ", resuming at byte " + std::to_string(bytes_received_)
                                       : std::string());
      if (!SleepFor(wait->delay)) {
        return CancelledError("cancelled while waiting to retry " + url_.redacted);
      }
    }
  }

  // Waits, waking at once when stopped or cancelled. False when it was.
  bool SleepFor(std::chrono::milliseconds delay) {
    const auto deadline = Clock::now() + delay;
    std::unique_lock lock(wake_mutex_);
    while (!Stopping()) {
      auto now = Clock::now();
      if (now >= deadline) return true;
      wake_cv_.wait_for(lock, std::min<Clock::duration>(deadline - now, kPollInterval));
    }
    return false;
  }

  // One request and its redirects: the whole image, or the rest of it. Ok
  // when the body arrived to its end.
  Status Attempt() {
    retry_after_.reset();
    if (bytes_received_ == 0) {
      kind_ = RequestKind::kWhole;
    } else if (AsciiLower(identity_.accept_ranges) == "none") {
      kind_ = RequestKind::kWholeAndSkip;
    } else {
      kind_ = RequestKind::kRange;
    }
    if (kind_ == RequestKind::kRange && identity_.etag.empty() && identity_.last_modified.empty() &&
        !warned_no_validator_) {
      warned_no_validator_ = true;
      Logger()->warn(
          "{} has no ETag or Last-Modified: resuming without a way to tell whether the image "
          "changed meanwhile (only its length is compared; a checksum would tell)",
          url_.redacted);
    }
    // The rest comes from where the first bytes came from (the end of the
    // redirects); the start, from the URL as given.
    HttpUrl request = kind_ != RequestKind::kWhole && effective_url_ ? *effective_url_ : url_;
    int redirects = 0;
    while (true) {
      CDI_RETURN_IF_ERROR(PrepareRequest(request));
      response_ = ResponseHeaders();
      outcome_ = HopOutcome::kPending;
      request_ = &request;
      error_buffer_[0] = '\0';
      skip_remaining_ = 0;
      stalled_ = false;
      tls_->ResetHandshakeFacts();
      ++requests_;
      Logger()->debug("GET {}{}{}", request.redacted,
                    range_text_.empty() ? "" : " (bytes " + range_text_ + ")",
                    proxy_ ? " through the proxy " + proxy_->redacted : "");
      CURLcode code = Perform();

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
        Logger()->debug("HTTP {} from {}: redirected to {}", response_.status, request.redacted,
                      next->redacted);
        request = *std::move(next);
        continue;
      }
      if (outcome_ == HopOutcome::kRefused) return refusal_;
      // Whatever ended its transfer: the body that arrived is all there is.
      if (outcome_ == HopOutcome::kErrorBody) return RefusedStatus(request);
      if (code != CURLE_OK) return CurlFailure(code, request);
      if (outcome_ != HopOutcome::kBody) {
        return NetworkError("no response from " + request.redacted, Retryable::kYes);
      }
      if (expected_length_.has_value() && bytes_received_ < *expected_length_) {
        return ShortBody(request);
      }
      return Status::Ok();
    }
  }

  // Runs the prepared request to its end, waking every 100 ms to look for
  // cancellation and stalls.
  CURLcode Perform() {
    stall_.Restart(Clock::now(), wire_bytes_);
    if (curl_multi_add_handle(multi_.get(), curl_.get()) != CURLM_OK) return CURLE_FAILED_INIT;
    CURLcode result = CURLE_OK;
    while (true) {
      int running = 0;
      CURLMcode multi_code = curl_multi_perform(multi_.get(), &running);
      if (multi_code != CURLM_OK) {
        result = CURLE_FAILED_INIT;
        break;
      }
      bool done = false;
      int left = 0;
      while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
        if (message->msg == CURLMSG_DONE) {
          result = message->data.result;
          done = true;
        }
      }
      if (done) break;
      if (Stopping()) {
        result = CURLE_ABORTED_BY_CALLBACK;
        break;
      }
      if (stall_.Stalled(Clock::now(), wire_bytes_)) {
        stalled_ = true;
        result = CURLE_OPERATION_TIMEDOUT;
        break;
      }
      curl_multi_poll(multi_.get(), nullptr, 0, static_cast<int>(kPollInterval.count()), nullptr);
    }
    curl_multi_remove_handle(multi_.get(), curl_.get());
    return result;
  }

  std::string Received() const {
    if (expected_length_.has_value()) {
      return "after " + std::to_string(bytes_received_) + " of " +
             std::to_string(*expected_length_) + " bytes";
    }
    return "after " + std::to_string(bytes_received_) + " bytes";
  }

  std::string ThroughProxy() const {
    return proxy_ ? " (through the proxy " + proxy_->redacted + ")" : "";
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

  // Curl's code for an HTTP status of a proxy's answer to CONNECT, 0 when
  // there was none.
  long ConnectCode() const {  // NOLINT(google-runtime-int): curl's type
    long code = 0;            // NOLINT(google-runtime-int)
    curl_easy_getinfo(curl_.get(), CURLINFO_HTTP_CONNECTCODE, &code);
    return code;
  }

  // True when a TLS failure is the proxy's: an https:// proxy whose own
  // handshake failed before it could open a tunnel to the server.
  bool TlsFailureIsTheProxys(const HttpUrl& request) const {
    if (!proxy_ || proxy_->origin.scheme != "https") return false;
    return request.origin.scheme != "https" || ConnectCode() == 0;
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
    std::string received = Received();
    if (code == CURLE_ABORTED_BY_CALLBACK || code == CURLE_WRITE_ERROR) {
      // Only this source stops a transfer: on cancellation, or because the
      // reader went away.
      return CancelledError(
          (published_ ? "cancelled while downloading " : "cancelled while connecting to ") + url);
    }
    if (code == CURLE_FAILED_INIT)
      return InternalError("libcurl failed to run the transfer of " + url);
    if (stalled_) {
      return NetworkError("stalled: less than " + std::to_string(network_.stall_bytes_per_second) +
                              " bytes/s for " + std::to_string(network_.stall_window.count()) +
                              " s, " + received + " from " + url + ThroughProxy(),
                          Retryable::kYes);
    }
    if (proxy_) {
      if (long connect = ConnectCode(); connect >= 300) {  // NOLINT(google-runtime-int)
        std::string message = "the proxy " + proxy_->redacted + " refused to open a tunnel to " +
                              endpoint + " for " + url + ": " +
                              StatusLine(static_cast<int>(connect), "");
        if (connect == 407) {
          message +=
              "; give the proxy's credentials in its URL (http://user:password@host:port, "
              "in " +
              proxy_->setting + ")";
        }
        return NetworkError(std::move(message), RetryableStatus(static_cast<int>(connect)));
      }
      std::string proxy_endpoint = proxy_->origin.host + ":" + std::to_string(proxy_->origin.port);
      switch (code) {
        case CURLE_COULDNT_RESOLVE_PROXY: {
          NameCheck check = CheckHostName(proxy_->origin.host, [this] { return Stopping(); });
          return NetworkError("cannot resolve the host name '" + proxy_->origin.host +
                                  "' of the proxy " + proxy_->redacted + " (from " +
                                  proxy_->setting + ") for " + url +
                                  (check == NameCheck::kDoesNotExist ? ": no such host" : ""),
                              check == NameCheck::kDoesNotExist ? Retryable::kNo : Retryable::kYes);
        }
        case CURLE_COULDNT_CONNECT:
          return NetworkError("cannot connect to the proxy " + proxy_->redacted + " (from " +
                                  proxy_->setting + "): " +
                                  (os_errno == ECONNREFUSED ? std::string("connection refused")
                                   : os_errno == ENETUNREACH || os_errno == EHOSTUNREACH
                                       ? "no route to " + proxy_endpoint
                                       : detail) +
                                  " (for " + url + "); check the proxy settings",
                              Retryable::kYes);
        case CURLE_OPERATION_TIMEDOUT:
          if (!published_ && bytes_received_ == 0 && response_.status == 0) {
            return NetworkError(
                "connecting to the proxy " + proxy_->redacted + " timed out after " +
                    std::to_string(network_.connect_timeout.count()) + " s (for " + url + ")",
                Retryable::kYes);
          }
          break;
        default:
          break;
      }
    }
    switch (code) {
      case CURLE_COULDNT_RESOLVE_HOST: {
        NameCheck check = CheckHostName(request.origin.host, [this] { return Stopping(); });
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
        return NetworkError("connecting to " + endpoint + " timed out after " +
                                std::to_string(network_.connect_timeout.count()) + " s (" + url +
                                ")",
                            Retryable::kYes);
      case CURLE_PARTIAL_FILE:
        return ShortBody(request);
      case CURLE_GOT_NOTHING:
        return NetworkError(
            "the server closed the connection without answering (" + url + ")" + ThroughProxy(),
            Retryable::kYes);
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
        if (tls_->handshake_facts().client_certificate_requested) {
          return tls_->TranslateFailure(CURLE_SSL_CLIENTCERT, detail, url, request.origin.host);
        }
        if (os_errno == ECONNRESET || os_errno == EPIPE) {
          return NetworkError("connection reset by " + endpoint + " " + received + " (" + url +
                                  ")" + ThroughProxy(),
                              Retryable::kYes);
        }
        return NetworkError("connection to " + endpoint + " failed " + received + " (" + url +
                                "): " + detail + ThroughProxy(),
                            Retryable::kYes);
      case CURLE_WEIRD_SERVER_REPLY:
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_BAD_CONTENT_ENCODING:
        return NetworkError("invalid HTTP response from " + url + ": " + detail + ThroughProxy());
      case CURLE_OUT_OF_MEMORY:
        return InternalError("out of memory downloading " + url);
      default:
        break;
    }
    if (tls::CurlTls::IsTlsFailure(code)) {
      if (TlsFailureIsTheProxys(request)) {
        return tls_->TranslateFailure(code, detail, "the proxy " + proxy_->redacted,
                                      proxy_->origin.host, tls::TlsPeer::kProxy);
      }
      return tls_->TranslateFailure(code, detail, url, request.origin.host);
    }
    return NetworkError("downloading " + url + " failed: " + detail + " (curl error " +
                            std::to_string(static_cast<int>(code)) + ")" + ThroughProxy(),
                        Retryable::kYes);
  }

  // A status that is not wanted, as users read it: "HTTP 404 Not Found from URL".
  Status RefusedStatus(const HttpUrl& request) {
    int status = response_.status;
    std::string message = StatusLine(status, response_.reason) + " from " + request.redacted;
    if (status == 206) {
      message += ": partial content for a request of the whole file";
    } else if (status >= 300 && status < 400) {
      message += ": a redirect without a Location";
    } else if (status == 401) {
      message += ": the server wants credentials; check the user and password";
    } else if (status == 407 && proxy_) {
      message += ": the proxy " + proxy_->redacted +
                 " wants credentials; give them in its URL (http://user:password@host:port, in " +
                 proxy_->setting + ")";
    } else if (status == 400 && request.origin.scheme == "https") {
      // A TLS configuration problem, whatever status carried it: say so with the TLS code.
      std::optional<Status> tls = tls_->ExplainClientCertificateRefusal(
          status, StatusLine(status, response_.reason), error_body_, request.redacted);
      if (tls.has_value()) return *std::move(tls);
    }
    if (status != 407) message += ThroughProxy();
    Retryable retryable = RetryableStatus(status);
    if (retryable == Retryable::kYes && !response_.retry_after.empty()) {
      retry_after_ = ParseRetryAfter(response_.retry_after, std::time(nullptr));
    }
    return NetworkError(std::move(message), retryable);
  }

  bool Refuse(Status status) {
    refusal_ = std::move(status);
    outcome_ = HopOutcome::kRefused;
    return false;
  }

  // The length the response's headers declare for its body; nullopt when
  // none (chunked, or ended by closing). Refuses a malformed Content-Length.
  Result<std::optional<uint64_t>> DeclaredLength() const {
    // RFC 9112 section 6.3: a Transfer-Encoding overrides Content-Length.
    if (!response_.transfer_encoding.empty() || response_.content_length.empty()) {
      return std::optional<uint64_t>();
    }
    std::optional<uint64_t> length = ParseUnsigned(response_.content_length);
    if (!length) return NetworkError("invalid Content-Length from " + request_->redacted);
    return length;
  }

  std::string Changed(const std::string& what) const {
    return "the image at " + url_.redacted + " changed while it was being downloaded (" + what +
           ") after " + std::to_string(bytes_received_) + " bytes; import it again";
  }

  // Whether a complete response (200) describes the image whose first bytes
  // arrived already: "" when it provably does, otherwise why not (or, when
  // nothing tells, `*unknown` is set).
  std::string CompareWithImage(std::optional<uint64_t> length, bool* unknown) const {
    *unknown = false;
    if (identity_.length && length && *identity_.length != *length) {
      return Changed("its length was " + std::to_string(*identity_.length) + " bytes, now " +
                     std::to_string(*length));
    }
    if (!identity_.etag.empty() && !response_.etag.empty()) {
      if (identity_.etag != response_.etag) {
        return Changed("its ETag was " + identity_.etag + ", now " + response_.etag);
      }
      if (!IsWeakEtag(identity_.etag)) return "";
    }
    if (!identity_.last_modified.empty() && !response_.last_modified.empty()) {
      if (identity_.last_modified != response_.last_modified) {
        return Changed("it was last modified " + identity_.last_modified + ", now " +
                       response_.last_modified);
      }
      return "";
    }
    *unknown = true;
    return "";
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
    if (status == 400 && request_->origin.scheme == "https") {
      // A missing or rejected client certificate, as nginx tells it: the
      // body says which (RefusedStatus).
      error_body_.clear();
      outcome_ = HopOutcome::kErrorBody;
      return true;
    }
    switch (kind_) {
      case RequestKind::kWhole:
        if (status < 200 || status >= 300 || status == 206) return Refuse(RefusedStatus(*request_));
        return published_ ? AcceptWholeAgain() : Publish();
      case RequestKind::kRange:
        if (status == 206) return AcceptRest();
        if (status == 200) return AcceptWholeAndSkip();
        if (status == 416) {
          return Refuse(NetworkError(
              "cannot resume " + Received() + " from " + request_->redacted + ": the server " +
              "answered HTTP 416 Range Not Satisfiable, so the image on the server is shorter "
              "than it was; import it again"));
        }
        return Refuse(RefusedStatus(*request_));
      case RequestKind::kWholeAndSkip:
        if (status < 200 || status >= 300 || status == 206) return Refuse(RefusedStatus(*request_));
        return AcceptWholeAndSkip();
    }
    return Refuse(InternalError("unknown request kind"));
  }

  // The first response: makes its facts visible to Start() and lets it return.
  bool Publish() {
    Result<std::optional<uint64_t>> length = DeclaredLength();
    if (!length.ok()) return Refuse(length.status());
    expected_length_ = *length;
    identity_ = {*length, response_.etag, response_.last_modified, response_.accept_ranges};
    effective_url_ = *request_;
    std::string encoding = AsciiLower(response_.content_encoding);
    bool identity_encoding = encoding.empty() || encoding == "identity";
    outcome_ = HopOutcome::kBody;
    published_ = true;
    Logger()->debug("HTTP {} from {}, {} bytes{}", response_.status, request_->redacted,
                  length->has_value() ? std::to_string(**length) : std::string("unknown"),
                  identity_encoding ? "" : ", Content-Encoding " + encoding);
    {
      std::lock_guard lock(open_mutex_);
      // A compressed Content-Encoding: the length counts encoded bytes, which
      // says nothing about the image.
      size_ = identity_encoding ? *length : std::nullopt;
      open_status_ = Status::Ok();
      opened_ = true;
    }
    opened_cv_.notify_all();
    return true;
  }

  // A complete response after an earlier one failed before its first byte:
  // nothing to splice, but its length was already published.
  bool AcceptWholeAgain() {
    Result<std::optional<uint64_t>> length = DeclaredLength();
    if (!length.ok()) return Refuse(length.status());
    if (*length != identity_.length) {
      return Refuse(NetworkError(Changed(
          "its length was " +
          (identity_.length ? std::to_string(*identity_.length) + " bytes" : "unknown") + ", now " +
          (length->has_value() ? std::to_string(**length) + " bytes" : "unknown"))));
    }
    identity_ = {*length, response_.etag, response_.last_modified, response_.accept_ranges};
    effective_url_ = *request_;
    outcome_ = HopOutcome::kBody;
    return true;
  }

  // The answer to "Range: bytes=N-": exactly the rest of the same image.
  bool AcceptRest() {
    const std::string asked = "bytes " + std::to_string(bytes_received_) + "-";
    std::optional<ContentRange> range = ParseContentRange(response_.content_range);
    if (!range) {
      return Refuse(NetworkError(
          "the server answered the request for " + asked + " of " + request_->redacted + " with " +
          (response_.content_range.empty()
               ? std::string("no Content-Range")
               : "an invalid Content-Range '" + response_.content_range.substr(0, 80) + "'") +
          "; cannot resume"));
    }
    std::optional<uint64_t> total = identity_.length;
    bool wrong = range->first != bytes_received_ ||
                 (total && range->complete && *range->complete != *total) ||
                 (total && range->last + 1 != *total) ||
                 (!total && range->complete && range->last + 1 != *range->complete);
    if (wrong) {
      if (total && range->complete && *range->complete != *total) {
        return Refuse(NetworkError(Changed("its length was " + std::to_string(*total) +
                                           " bytes, now " + std::to_string(*range->complete))));
      }
      return Refuse(NetworkError("the server answered the request for " + asked + " of " +
                                 request_->redacted + " with Content-Range '" +
                                 response_.content_range.substr(0, 80) +
                                 "', not the rest of the image; cannot resume"));
    }
    Result<std::optional<uint64_t>> length = DeclaredLength();
    if (!length.ok()) return Refuse(length.status());
    if (length->has_value() && **length != range->last - range->first + 1) {
      return Refuse(NetworkError("the server's Content-Length " + std::to_string(**length) +
                                 " does not match its Content-Range '" +
                                 response_.content_range.substr(0, 80) + "' from " +
                                 request_->redacted + "; cannot resume"));
    }
    // If-Range made the server decide; a server that ignores If-Range still
    // names the image it sends.
    if (!identity_.etag.empty() && !response_.etag.empty() && identity_.etag != response_.etag) {
      return Refuse(
          NetworkError(Changed("its ETag was " + identity_.etag + ", now " + response_.etag)));
    }
    if (!identity_.last_modified.empty() && !response_.last_modified.empty() &&
        identity_.last_modified != response_.last_modified) {
      return Refuse(NetworkError(Changed("it was last modified " + identity_.last_modified +
                                         ", now " + response_.last_modified)));
    }
    if (!expected_length_ && range->complete) expected_length_ = range->complete;
    effective_url_ = *request_;
    outcome_ = HopOutcome::kBody;
    Logger()->debug("HTTP 206 from {}: resuming at byte {}", request_->redacted, bytes_received_);
    return true;
  }

  // A complete response (200) where the rest was asked for, or where the
  // server does not serve ranges: the bytes already received are dropped
  // from it, but only when it is provably the same image.
  bool AcceptWholeAndSkip() {
    Result<std::optional<uint64_t>> length = DeclaredLength();
    if (!length.ok()) return Refuse(length.status());
    bool unknown = false;
    std::string changed = CompareWithImage(*length, &unknown);
    if (!changed.empty()) return Refuse(NetworkError(changed));
    if (unknown) {
      return Refuse(NetworkError(
          "cannot resume " + Received() + " from " + request_->redacted +
          ": the server sends the whole image again (HTTP " + std::to_string(response_.status) +
          ", it does not serve ranges) and gives no ETag or Last-Modified to show that it is the "
          "same image; import it again"));
    }
    Logger()->warn(
        "{} does not serve ranges: downloading the image from its start again and skipping the "
        "{} bytes already received",
        request_->redacted, bytes_received_);
    skip_remaining_ = bytes_received_;
    effective_url_ = *request_;
    outcome_ = HopOutcome::kBody;
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
      std::string_view reason = TrimSpace(rest.substr(std::min<size_t>(end - rest.data(), rest.size())));
      // The reason phrase goes into messages: keep it short and printable.
      for (char c : reason.substr(0, 64)) {
        if (c >= 0x20 && c < 0x7f) response_.reason += c;
      }
      return;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string name = AsciiLower(TrimSpace(line.substr(0, colon)));
    // Values go into messages: keep them printable.
    std::string value;
    for (char c : TrimSpace(line.substr(colon + 1))) {
      if (c >= 0x20 && c < 0x7f) value += c;
    }
    if (name == "location") {
      response_.location = value;
    } else if (name == "content-length") {
      response_.content_length = value;
    } else if (name == "content-encoding") {
      response_.content_encoding = value;
    } else if (name == "transfer-encoding") {
      response_.transfer_encoding = value;
    } else if (name == "content-range") {
      response_.content_range = value;
    } else if (name == "retry-after") {
      response_.retry_after = value;
    } else if (name == "etag") {
      response_.etag = value.substr(0, 200);
    } else if (name == "last-modified") {
      response_.last_modified = value.substr(0, 100);
    } else if (name == "accept-ranges") {
      response_.accept_ranges = value;
    }
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* self_pointer) {
    auto* self = static_cast<HttpSource*>(self_pointer);
    size_t length = size * count;
    // Trailers of a chunked body arrive here too, after the body started.
    if (self->outcome_ != HopOutcome::kPending) return length;
    std::string_view line = TrimSpace(std::string_view(data, length));
    if (line.empty()) return self->OnHeadersComplete() ? length : 0;
    self->OnHeaderLine(line);
    return length;
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* self_pointer) {
    auto* self = static_cast<HttpSource*>(self_pointer);
    size_t length = size * count;
    if (self->outcome_ == HopOutcome::kErrorBody) {
      size_t kept = std::min(length, kErrorBodyBytes - self->error_body_.size());
      self->error_body_.append(data, kept);
      // Enough to explain it: stop the transfer.
      return self->error_body_.size() < kErrorBodyBytes ? length : 0;
    }
    if (self->outcome_ != HopOutcome::kBody) return length;
    self->wire_bytes_ += length;
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(data), length);
    if (self->skip_remaining_ > 0) {
      size_t skipped = static_cast<size_t>(std::min<uint64_t>(self->skip_remaining_, length));
      self->skip_remaining_ -= skipped;
      self->bytes_discarded_ += skipped;
      bytes = bytes.subspan(skipped);
      if (bytes.empty()) return length;
    }
    // Waits while the buffer is full: the reader sets the pace.
    auto before = Clock::now();
    if (!self->buffer_.Put(bytes)) return 0;
    auto after = Clock::now();
    if (after - before >= kBackPressure) self->stall_.Restart(after, self->wire_bytes_);
    self->bytes_received_ += bytes.size();
    return length;
  }

  // Fixed at construction.
  const NetworkSettings network_;
  const HttpUrl url_;
  std::string user_;
  std::string password_;
  const std::vector<std::string> extra_headers_;
  std::unique_ptr<tls::CurlTls> tls_;
  const ProxyConfig proxies_;
  const CancelToken* const cancel_;

  TransferBuffer buffer_;
  size_t lent_ = 0;  // bytes of buffer_ the last ReadView lent out
  std::atomic<bool> stop_{false};
  std::mutex wake_mutex_;  // with wake_cv_: interrupts a back-off wait
  std::condition_variable wake_cv_;

  // Start() waits for these; the transfer thread sets them once.
  std::mutex open_mutex_;
  std::condition_variable opened_cv_;
  bool opened_ = false;           // guarded by open_mutex_
  Status open_status_;            // guarded by open_mutex_
  std::optional<uint64_t> size_;  // written before opened_, read after Start()

  // Created before the transfer thread starts and destroyed after it ends;
  // used by the transfer thread only, except curl_multi_wakeup in Stop().
  CurlHandle curl_;
  MultiHandle multi_;

  // Used by the transfer thread only (and by curl's callbacks on it).
  char error_buffer_[CURL_ERROR_SIZE] = {};
  const HttpUrl* request_ = nullptr;  // the request being made
  std::optional<Proxy> proxy_;        // the proxy it goes through
  HeaderList request_headers_;
  std::string range_text_;
  RequestKind kind_ = RequestKind::kWhole;
  ResponseHeaders response_;
  HopOutcome outcome_ = HopOutcome::kPending;
  std::string error_body_;  // of a kErrorBody response, its first kErrorBodyBytes
  Status refusal_;
  std::optional<std::chrono::seconds> retry_after_;
  bool published_ = false;
  ImageIdentity identity_;
  std::optional<HttpUrl> effective_url_;  // where the body came from
  uint64_t bytes_received_ = 0;           // into the buffer: the position in the image
  uint64_t wire_bytes_ = 0;               // body bytes that arrived, skipped ones too
  uint64_t bytes_discarded_ = 0;          // arrived again after a restart, and dropped
  uint64_t skip_remaining_ = 0;
  std::optional<uint64_t> expected_length_;
  StallWatch stall_;
  bool stalled_ = false;
  bool warned_no_validator_ = false;
  int requests_ = 0;

  std::thread worker_;  // last: started after everything above exists
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenHttpSource(const SourceSpec& spec,
                                                   const CancelToken* cancel) {
  InitCurlOnce();
  CDI_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(spec.url));
  CDI_RETURN_IF_ERROR(CheckHeaders(spec.auth.headers));
  CDI_ASSIGN_OR_RETURN(ProxyConfig proxies, ResolveProxyConfig(spec.network.proxy));
  if (spec.network.max_retries < 0) {
    return InvalidArgumentError("the number of retries must not be negative");
  }
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(spec.tls));
  auto source = std::make_unique<HttpSource>(spec, std::move(url), std::move(tls),
                                             std::move(proxies), cancel);
  CDI_RETURN_IF_ERROR(source->Start());
  return std::unique_ptr<ByteSource>(std::move(source));
}

}  // namespace cdi::importer
