#include "sources/http/http_transfer.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <span>
#include <utility>

#include "common/log.h"
#include "common/text.h"
#include "sources/http/curl_failure.h"
#include "sources/http/retry_policy.h"

namespace cdi::importer {
namespace {

using Clock = std::chrono::steady_clock;

// How often waiting threads look at the cancel token and the stop flag.
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// A write into the transfer buffer that waits this long means the reader is
// the bottleneck: the wait is not the network's fault.
constexpr auto kBackPressure = std::chrono::milliseconds(50);
// How much of an error response's body is kept to explain it: nginx's
// error pages are a few hundred bytes.
constexpr size_t kErrorBodyBytes = 4096;

std::string SecondsText(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(duration).count());
  return text;
}

// Credentials in HttpAuth win over user info in the URL.
Credentials CredentialsFor(const SourceSpec& spec, const HttpUrl& url, std::string aws_sigv4) {
  if (!spec.auth.user.empty()) {
    return {spec.auth.user, spec.auth.password, spec.auth.headers, std::move(aws_sigv4)};
  }
  return {url.user, url.password, spec.auth.headers, std::move(aws_sigv4)};
}

}  // namespace

HttpTransfer::HttpTransfer(const SourceSpec& spec, HttpUrl url, std::unique_ptr<tls::CurlTls> tls,
                           ProxyConfig proxies, const CancelToken* cancel, TransferBuffer& buffer,
                           OpenedCallback opened, HttpSourceOptions options)
    : network_(spec.network),
      url_(std::move(url)),
      credentials_(CredentialsFor(spec, url_, std::move(options.aws_sigv4))),
      tls_(std::move(tls)),
      proxies_(std::move(proxies)),
      cancel_(cancel),
      buffer_(&buffer),
      opened_(std::move(opened)),
      explain_error_(std::move(options.explain_error)),
      served_(std::move(options.served)),
      resume_(url_.redacted),
      stall_(network_.stall_bytes_per_second, network_.stall_window) {
  if (options.resume_from && options.resume_from->offset > 0) {
    const HttpResumePoint& from = *options.resume_from;
    continued_ = true;
    bytes_received_ = start_offset_ = from.offset;
    resume_.Assume({from.length, from.etag, from.last_modified, "bytes"});
  }
}

Status HttpTransfer::Configure() {
  CurlHandles::Callbacks callbacks{&HttpTransfer::OnHeader, &HttpTransfer::OnBody,
                                   static_cast<void*>(this)};
  return handles_.Configure(network_, callbacks, *tls_);
}

void HttpTransfer::Stop() {
  stop_.store(true);  // before the buffer is looked at: FetchPart checks it after
  buffer_.load()->Close();
  { std::lock_guard lock(wake_mutex_); }
  wake_cv_.notify_all();
  handles_.Wakeup();
}

void HttpTransfer::FetchPart(TransferBuffer& buffer, uint64_t first, uint64_t end,
                             const ImageIdentity& identity, const HttpUrl& from) {
  buffer_.store(&buffer);
  if (stop_.load()) buffer.Close();  // stopped meanwhile
  resume_.Remember(identity, end);
  effective_url_ = from;
  published_ = true;
  bytes_received_ = first;
  first_byte_ = first;
  expected_length_ = end;
  part_end_ = end;
  bytes_discarded_ = 0;
  skip_remaining_ = 0;
  requests_ = 0;
}

Status HttpTransfer::Download() {
  RetryBudget budget(network_);
  while (true) {
    const uint64_t position = bytes_received_;
    Status status = Attempt();
    if (status.ok()) {
      if (budget.total_retries() > 0) {
        const int retries = budget.total_retries();
        Logger()->info("Downloaded {} bytes from {} in {} requests ({} {}{})",
                       bytes_received_ - first_byte_,
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
    if (start_over_) {
      // The download an earlier process began cannot go on: this is not the
      // rest of its image.
      Logger()->info("{}; starting over from byte 0", status.message());
      StartOver();
      continue;
    }
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

bool HttpTransfer::SleepFor(std::chrono::milliseconds delay) {
  const auto deadline = Clock::now() + delay;
  std::unique_lock lock(wake_mutex_);
  while (!Stopping()) {
    auto now = Clock::now();
    if (now >= deadline) return true;
    wake_cv_.wait_for(lock, std::min<Clock::duration>(deadline - now, kPollInterval));
  }
  return false;
}

Status HttpTransfer::PrepareRequest(const HttpUrl& request) {
  proxy_ = ProxyFor(proxies_, request.origin);
  range_text_.clear();
  std::string if_range;
  if (kind_ == RequestKind::kRange) {
    range_text_ = std::to_string(bytes_received_) + "-" +
                  (part_end_ ? std::to_string(*part_end_ - 1) : std::string());
    if_range = resume_.IfRangeValidator();
  }
  RequestOptions options;
  options.url = &request;
  options.proxy = proxy_ ? &*proxy_ : nullptr;
  options.credentials = SameOrigin(request.origin, url_.origin) ? &credentials_ : nullptr;
  options.range = range_text_;
  options.if_range = std::move(if_range);
  return handles_.Prepare(options);
}

Status HttpTransfer::Attempt() {
  retry_after_.reset();
  // A part (FetchPart) is always a range, also one from byte 0.
  kind_ = part_end_ ? RequestKind::kRange : resume_.NextRequest(bytes_received_);
  if (kind_ == RequestKind::kRange && !resume_.HasValidator() && !warned_no_validator_) {
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
    skip_remaining_ = 0;
    stalled_ = false;
    window_.reset();  // a back-off wait says nothing about who is the bound
    bound_windows_ = 0;
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
    if (outcome_ == HopOutcome::kErrorBody) return Refused(request);
    if (reached_stop_) return Status::Ok();  // the rest comes over other connections
    if (code != CURLE_OK) return Failure(code, request);
    if (outcome_ != HopOutcome::kBody) {
      return NetworkError("no response from " + request.redacted, Retryable::kYes);
    }
    if (expected_length_.has_value() && bytes_received_ < *expected_length_) {
      return ShortBodyError(progress(), request.redacted);
    }
    if (handles_.excess_found()) {
      // The declared length and the bytes sent disagree: which end is the
      // image's cannot be told, so neither is taken.
      return NetworkError("the server sent bytes beyond its 'Content-Length: " +
                          response_.content_length + "' for " + request.redacted +
                          "; the end of the body is ambiguous (RFC 9112 section 6.3), so none "
                          "of it is used: the server, or a proxy between, sends broken responses");
    }
    return Status::Ok();
  }
}

CURLcode HttpTransfer::Perform() {
  CURLM* multi = handles_.multi();
  stall_.Restart(Clock::now(), wire_bytes_);
  if (curl_multi_add_handle(multi, handles_.easy()) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode result = CURLE_OK;
  while (true) {
    int running = 0;
    CURLMcode multi_code = curl_multi_perform(multi, &running);
    if (multi_code != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    bool done = false;
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
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
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(kPollInterval.count()), nullptr);
  }
  curl_multi_remove_handle(multi, handles_.easy());
  return result;
}

Status HttpTransfer::Failure(CURLcode code, const HttpUrl& request) const {
  CurlFailureFacts facts;
  facts.code = code;
  facts.curl_message = handles_.error_message();
  facts.os_errno = handles_.os_errno();
  facts.connect_code = handles_.connect_code();
  facts.stalled = stalled_;
  facts.published = published_;
  facts.response_status = response_.status;
  facts.in_headers = outcome_ == HopOutcome::kPending;
  facts.progress = progress();
  CurlFailureContext context{
      .request = request,
      .proxy = proxy_ ? &*proxy_ : nullptr,
      .network = network_,
      .tls = *tls_,
      .check_host_name =
          [this](const std::string& host) {
            return CheckHostName(host, [this] { return Stopping(); });
          },
  };
  return CurlFailure(facts, context);
}

Status HttpTransfer::Refused(const HttpUrl& request) {
  const int status = response_.status;
  if (status == 400 && request.origin.scheme == "https") {
    // A TLS configuration problem, whatever status carried it: say so with the TLS code.
    std::optional<Status> tls = tls_->ExplainClientCertificateRefusal(
        status, StatusLine(status, response_.reason), error_body_, request.redacted);
    if (tls.has_value()) return *std::move(tls);
  }
  Status refused = HttpStatusError(response_, request, proxy_ ? &*proxy_ : nullptr);
  if (explain_error_ && status >= 400) {
    const std::string explained = explain_error_(error_body_);
    if (!explained.empty()) {
      refused = Status(refused.code(), refused.message() + ": " + explained,
                       refused.retryable() ? Retryable::kYes : Retryable::kNo);
    }
  }
  if (refused.retryable() && !response_.retry_after.empty()) {
    retry_after_ = ParseRetryAfter(response_.retry_after, std::time(nullptr));
  }
  return refused;
}

bool HttpTransfer::Refuse(Status status) {
  refusal_ = std::move(status);
  outcome_ = HopOutcome::kRefused;
  return false;
}

bool HttpTransfer::OnHeadersComplete() {
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
    // body says which (Refused).
    error_body_.clear();
    outcome_ = HopOutcome::kErrorBody;
    return true;
  }
  if (explain_error_ && status >= 400 && status != 416) {
    // The source reads what went wrong from the body (Refused).
    error_body_.clear();
    outcome_ = HopOutcome::kErrorBody;
    return true;
  }
  switch (kind_) {
    case RequestKind::kWhole:
      if (status < 200 || status >= 300 || status == 206) return Refuse(Refused(*request_));
      return published_ ? AcceptWholeAgain() : Publish();
    case RequestKind::kRange:
      if (continued_ && !published_) return AcceptContinued(status);
      if (status == 206) return AcceptRest();
      if (status == 200) return AcceptWholeAndSkip();
      if (status == 416) return Refuse(resume_.RangeNotSatisfiable(progress(), request_->redacted));
      return Refuse(Refused(*request_));
    case RequestKind::kWholeAndSkip:
      if (status < 200 || status >= 300 || status == 206) return Refuse(Refused(*request_));
      return AcceptWholeAndSkip();
  }
  return Refuse(InternalError("unknown request kind"));
}

bool HttpTransfer::Publish() {
  Result<std::optional<uint64_t>> length = DeclaredLength(response_, request_->redacted);
  if (!length.ok()) return Refuse(length.status());
  expected_length_ = *length;
  resume_.Remember(response_, *length);
  effective_url_ = *request_;
  std::string encoding = AsciiLower(response_.content_encoding);
  bool identity_encoding = encoding.empty() || encoding == "identity";
  outcome_ = HopOutcome::kBody;
  published_ = true;
  Logger()->debug("HTTP {} from {}, {} bytes{}", response_.status, request_->redacted,
                  length->has_value() ? std::to_string(**length) : std::string("unknown"),
                  identity_encoding ? "" : ", Content-Encoding " + encoding);
  if (served_) {
    *served_ = {0, identity_encoding ? *length : std::nullopt, response_.etag,
                response_.last_modified};
  }
  // A compressed Content-Encoding: the length counts encoded bytes, which
  // says nothing about the image.
  opened_(identity_encoding ? *length : std::nullopt);
  return true;
}

void HttpTransfer::StartOver() {
  continued_ = false;
  bytes_received_ = start_offset_ = 0;
  resume_.Assume({});
  effective_url_.reset();
  expected_length_.reset();
  start_over_ = false;
}

bool HttpTransfer::AcceptContinued(int status) {
  if (status == 200) {
    const ImageIdentity& known = resume_.identity();
    const bool same = (!known.etag.empty() && known.etag == response_.etag) ||
                      (known.etag.empty() && !known.last_modified.empty() &&
                       known.last_modified == response_.last_modified);
    Logger()->info(
        "{} answered the request for bytes {}- with the whole image ({}): starting "
        "over from byte 0",
        request_->redacted, start_offset_,
        same ? "it serves no ranges" : "it changed since the earlier download");
    StartOver();
    return Publish();
  }
  if (status == 416) {
    start_over_ = true;
    return Refuse(resume_.RangeNotSatisfiable(progress(), request_->redacted));
  }
  if (status != 206) return Refuse(Refused(*request_));
  Result<std::optional<uint64_t>> length = DeclaredLength(response_, request_->redacted);
  Result<ContentRange> range =
      length.ok() ? resume_.CheckRest(response_, length, progress(), request_->redacted)
                  : Result<ContentRange>(length.status());
  if (!range.ok()) {
    start_over_ = true;
    return Refuse(range.status());
  }
  expected_length_ = range->complete ? range->complete : resume_.identity().length;
  effective_url_ = *request_;
  outcome_ = HopOutcome::kBody;
  published_ = true;
  Logger()->info("Continuing the download of {} at byte {}", url_.redacted, start_offset_);
  if (served_) {
    *served_ = {start_offset_, expected_length_, resume_.identity().etag,
                resume_.identity().last_modified};
  }
  opened_(expected_length_ ? std::optional<uint64_t>(*expected_length_ - start_offset_)
                           : std::nullopt);
  return true;
}

bool HttpTransfer::AcceptWholeAgain() {
  Result<std::optional<uint64_t>> length = DeclaredLength(response_, request_->redacted);
  if (!length.ok()) return Refuse(length.status());
  Status same = resume_.CheckWholeAgain(*length, bytes_received_);
  if (!same.ok()) return Refuse(std::move(same));
  resume_.Remember(response_, *length);
  effective_url_ = *request_;
  outcome_ = HopOutcome::kBody;
  return true;
}

bool HttpTransfer::AcceptRest() {
  Result<std::optional<uint64_t>> length = DeclaredLength(response_, request_->redacted);
  // A length that cannot be read says nothing about the range: refuse it as
  // such (conflicting Content-Lengths above all).
  if (!length.ok()) return Refuse(length.status());
  Result<ContentRange> range =
      resume_.CheckRest(response_, length, progress(), request_->redacted);
  if (!range.ok()) return Refuse(range.status());
  if (!expected_length_ && range->complete) expected_length_ = range->complete;
  effective_url_ = *request_;
  outcome_ = HopOutcome::kBody;
  Logger()->debug("HTTP 206 from {}: resuming at byte {}", request_->redacted, bytes_received_);
  return true;
}

bool HttpTransfer::AcceptWholeAndSkip() {
  Result<std::optional<uint64_t>> length = DeclaredLength(response_, request_->redacted);
  if (!length.ok()) return Refuse(length.status());
  Status same = resume_.CheckWholeAndSkip(response_, *length, progress(), request_->redacted);
  if (!same.ok()) return Refuse(std::move(same));
  if (part_end_) {
    // The same image, whole, where a part of it was asked for: this server
    // serves no ranges after all.
    return Refuse(NetworkError(
        request_->redacted + " answered the request for bytes " + range_text_ +
        " with the whole image (HTTP " + std::to_string(response_.status) +
        ") although it announced 'Accept-Ranges: bytes'; import it over one connection "
        "(--connections 1)"));
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

size_t HttpTransfer::OnHeader(char* data, size_t size, size_t count, void* self_pointer) {
  auto* self = static_cast<HttpTransfer*>(self_pointer);
  size_t length = size * count;
  // Trailers of a chunked body arrive here too, after the body started.
  if (self->outcome_ != HopOutcome::kPending) return length;
  std::string_view line = TrimSpace(std::string_view(data, length));
  if (line.empty()) return self->OnHeadersComplete() ? length : 0;
  ParseHeaderLine(line, &self->response_);
  return length;
}

size_t HttpTransfer::OnBody(char* data, size_t size, size_t count, void* self_pointer) {
  auto* self = static_cast<HttpTransfer*>(self_pointer);
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
  if (self->stop_at_) {
    const uint64_t room =
        *self->stop_at_ > self->bytes_received_ ? *self->stop_at_ - self->bytes_received_ : 0;
    if (bytes.size() >= room) {
      bytes = bytes.first(static_cast<size_t>(room));
      self->reached_stop_ = true;
    }
  }
  // Waits while the buffer is full: the reader sets the pace.
  auto before = Clock::now();
  if (!bytes.empty() && !self->buffer_.load()->Put(bytes)) return 0;
  auto after = Clock::now();
  if (after - before >= kBackPressure) self->stall_.Restart(after, self->wire_bytes_);
  self->bytes_received_ += bytes.size();
  if (self->split_ && !self->stop_at_) {
    // Was this connection the bound over the last window: did the reader
    // keep up, so that Put seldom waited for room?
    if (!self->window_) {
      self->window_ = before;
      self->waited_ = {};
      self->fill_sum_ = 0;
      self->arrivals_ = 0;
    }
    self->waited_ += after - before;
    self->fill_sum_ += self->buffer_.load()->filled();
    ++self->arrivals_;
    const Clock::duration elapsed = after - *self->window_;
    if (elapsed >= kSplitWindow) {
      const uint64_t end = self->bytes_received_ + self->split_ahead_;
      const bool bound = self->waited_ < elapsed / 5 &&
                         self->fill_sum_ < self->arrivals_ * (self->buffer_.load()->capacity() / 4);
      self->bound_windows_ = bound ? self->bound_windows_ + 1 : 0;
      if (self->bound_windows_ >= kSplitWindows && self->split_(end)) {
        self->stop_at_ = end;
        return length;
      }
      self->window_ = after;
      self->waited_ = {};
      self->fill_sum_ = 0;
      self->arrivals_ = 0;
    }
  }
  // Past StopAt: ending the transfer here is a write error to curl.
  return self->reached_stop_ ? 0 : length;
}

}  // namespace cdi::importer
