// The HTTP source as a ByteSource: it checks the settings, starts the
// transfer thread (HttpTransfer), waits for the first response, and hands
// the body out of the TransferBuffer to its one reader. When the image is
// fetched over several connections (range_fetch.h), the first GET's buffer
// holds its first part and the reader goes on through the parts' buffers in
// order.
#include "sources/http/http_source.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cdi/headers.h"
#include "common/log.h"
#include "sources/http/curl_handles.h"
#include "sources/http/http_transfer.h"
#include "sources/http/proxy.h"
#include "sources/http/range_fetch.h"
#include "sources/transfer_buffer.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {
namespace {

// How often a waiting reader looks at the cancel token.
constexpr auto kPollInterval = std::chrono::milliseconds(100);

// Checks the extra headers. Messages name the header by position and name,
// never by value.
Status CheckHeaders(const std::vector<std::string>& headers) {
  for (size_t i = 0; i < headers.size(); ++i) {
    CDI_RETURN_IF_ERROR(ValidateHeaderLine(headers[i], "extra header #" + std::to_string(i + 1)));
  }
  return Status::Ok();
}

class HttpSource final : public ByteSource {
 public:
  HttpSource(const SourceSpec& spec, HttpUrl url, std::unique_ptr<tls::CurlTls> tls,
             ProxyConfig proxies, const CancelToken* cancel, HttpSourceOptions options)
      : redacted_url_(url.redacted),
        cancel_(cancel),
        spec_(spec),
        url_(url),
        options_(options),
        buffer_(kHttpBufferBytes),
        transfer_(spec, std::move(url), std::move(tls), std::move(proxies), cancel, buffer_,
                  [this](std::optional<uint64_t> size) { Opened(size); }, std::move(options)) {}

  ~HttpSource() override {
    Stop();
    if (worker_.joinable()) worker_.join();
  }

  HttpSource(const HttpSource&) = delete;
  HttpSource& operator=(const HttpSource&) = delete;

  // Starts the transfer and waits for the first response's headers (through
  // retries of transient failures).
  Status Start() {
    CDI_RETURN_IF_ERROR(transfer_.Configure());
    worker_ = std::thread([this] { Run(); });
    std::unique_lock lock(open_mutex_);
    while (!opened_) {
      if (Cancelled()) {
        lock.unlock();
        Stop();
        return CancelledError("cancelled while connecting to " + redacted_url_);
      }
      opened_cv_.wait_for(lock, kPollInterval);
    }
    // The transfer may see the cancellation first (in a back-off wait): the
    // same words whichever thread saw it.
    if (open_status_.code() == ErrorCode::kCancelled && Cancelled()) {
      return CancelledError("cancelled while connecting to " + redacted_url_);
    }
    if (!open_status_.ok() || !plan_ || spec_.network.adaptive_connections) return open_status_;
    lock.unlock();
    std::lock_guard fetch_lock(fetch_mutex_);
    fetch_ = std::make_unique<RangeFetch>(spec_, url_, *body_url_, identity_, cancel_, options_,
                                          *plan_);
    return fetch_->Start();
  }

  Result<size_t> Read(std::span<uint8_t> buffer) override {
    if (buffer.empty()) return size_t{0};
    while (true) {
      if (Cancelled()) {
        Stop();
        return CancelledError("cancelled while downloading " + redacted_url_);
      }
      TransferBuffer* current = Current();
      if (current == nullptr) continue;
      std::optional<Result<size_t>> taken = current->Take(buffer, kPollInterval);
      if (!taken.has_value()) continue;
      if (taken->ok() && **taken == 0 && Advance()) continue;
      return *std::move(taken);
    }
  }

  // Lends the bytes in place in the transfer buffer: no copy between the
  // network thread and the decoder.
  Result<std::span<const uint8_t>> ReadView(size_t max) override {
    // Lent bytes are in the buffer being read: it is left only after an
    // empty view.
    if (lent_ > 0) Current()->Release(std::exchange(lent_, 0));
    while (true) {
      if (Cancelled()) {
        Stop();
        return CancelledError("cancelled while downloading " + redacted_url_);
      }
      TransferBuffer* current = Current();
      if (current == nullptr) continue;
      std::optional<Result<std::span<const uint8_t>>> view = current->Peek(max, kPollInterval);
      if (!view.has_value()) continue;
      if (view->ok() && (*view)->empty() && Advance()) continue;
      if (view->ok()) lent_ = (*view)->size();
      return *std::move(view);
    }
  }

  std::optional<uint64_t> size() const override { return size_; }

  std::string Describe() const override { return redacted_url_; }

 private:
  bool Cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  // Stops the transfers, a back-off wait and the writers.
  void Stop() {
    std::lock_guard lock(fetch_mutex_);
    stopped_ = true;
    transfer_.Stop();
    if (fetch_) fetch_->Stop();
  }

  // The buffer the reader is on: the first GET's, then each part's; nullptr
  // while the part's request has not started (after a short wait).
  TransferBuffer* Current() {
    if (part_ == 0) return &buffer_;
    if (!current_) current_ = fetch_->Part(part_ - 1, kPollInterval);
    return current_.get();
  }

  // At the end of the buffer being read: moves on to the next part, false
  // when there is none (the image ended).
  bool Advance() {
    if (!fetch_ || part_ >= fetch_->parts()) return false;
    ++part_;
    current_.reset();
    return true;
  }

  // The transfer thread, once the first response is accepted: decides
  // whether the rest comes over several connections, and lets Start()
  // return.
  void Opened(std::optional<uint64_t> size) {
    // A download that continues an earlier process's stays on one
    // connection: parts are planned over the whole image, from byte 0.
    std::optional<RangePlan> plan =
        options_.resume_from ? std::nullopt
                             : PlanRanges(spec_.network, size, transfer_.identity());
    if (plan && spec_.network.adaptive_connections) {
      transfer_.SplitWhenBound(plan->first,
                               [this, plan](uint64_t end) { return Split(*plan, end); });
    } else if (plan) {
      transfer_.StopAt(plan->first);
    }
    {
      std::lock_guard lock(open_mutex_);
      plan_ = plan;
      identity_ = transfer_.identity();
      body_url_ = transfer_.body_url();
      size_ = size;
      open_status_ = Status::Ok();
      opened_ = true;
    }
    opened_cv_.notify_all();
  }

  // The transfer thread, once the first GET was seen to be the bound at
  // image offset `end`: fetches the rest over several connections, if
  // enough of it is left to be worth the parts.
  bool Split(RangePlan plan, uint64_t end) {
    if (end >= plan.end || plan.end - end <= plan.part * static_cast<uint64_t>(plan.connections)) {
      return false;
    }
    plan.first = end;
    std::lock_guard lock(fetch_mutex_);
    if (stopped_) return false;
    auto fetch = std::make_unique<RangeFetch>(spec_, url_, transfer_.body_url(),
                                              transfer_.identity(), cancel_, options_, plan);
    Status started = fetch->Start();
    if (!started.ok()) {
      Logger()->warn("Going on over one connection: {}", started.message());
      return false;
    }
    Logger()->info("One connection was the bound: {} goes on in parts from byte {}", redacted_url_,
                   end);
    fetch_ = std::move(fetch);
    return true;
  }

  // The transfer thread.
  void Run() {
    Status status = transfer_.Download();
    if (transfer_.published()) {
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

  const std::string redacted_url_;
  const CancelToken* const cancel_;
  const SourceSpec spec_;
  const HttpUrl url_;
  const HttpSourceOptions options_;
  TransferBuffer buffer_;
  size_t lent_ = 0;  // bytes of the current buffer the last ReadView lent out

  // Several connections (range_fetch.h): the parts after the first GET's.
  // Set by Start(), or by Split() on the transfer thread before the first
  // GET's buffer ends (which the reader sees first); fetch_mutex_ orders it
  // with Stop().
  std::mutex fetch_mutex_;
  bool stopped_ = false;                     // guarded by fetch_mutex_
  std::unique_ptr<RangeFetch> fetch_;
  size_t part_ = 0;                          // 0: the first GET's buffer; i: part i - 1
  std::shared_ptr<TransferBuffer> current_;  // part part_ - 1's buffer, once started

  // Start() waits for these; the transfer thread sets them once.
  std::mutex open_mutex_;
  std::condition_variable opened_cv_;
  bool opened_ = false;           // guarded by open_mutex_
  Status open_status_;            // guarded by open_mutex_
  std::optional<uint64_t> size_;  // written before opened_, read after Start()
  std::optional<RangePlan> plan_;     // the same
  ImageIdentity identity_;            // the same
  std::optional<HttpUrl> body_url_;   // the same

  HttpTransfer transfer_;  // after what its callbacks use
  std::thread worker_;     // last: started after everything above exists
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenHttpSource(const SourceSpec& spec,
                                                   const CancelToken* cancel,
                                                   HttpSourceOptions options) {
  InitCurlOnce();
  CDI_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(spec.url));
  CDI_RETURN_IF_ERROR(CheckHeaders(spec.auth.headers));
  CDI_ASSIGN_OR_RETURN(ProxyConfig proxies, ResolveProxyConfig(spec.network.proxy));
  if (spec.network.max_retries < 0) {
    return InvalidArgumentError("the number of retries must not be negative");
  }
  if (spec.network.connections < 1 || spec.network.connections > kMaxConnections) {
    return InvalidArgumentError("the number of connections must be between 1 and " +
                                std::to_string(kMaxConnections) + ", got " +
                                std::to_string(spec.network.connections));
  }
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(spec.tls));
  auto source = std::make_unique<HttpSource>(spec, std::move(url), std::move(tls),
                                             std::move(proxies), cancel, std::move(options));
  CDI_RETURN_IF_ERROR(source->Start());
  return std::unique_ptr<ByteSource>(std::move(source));
}

}  // namespace cdi::importer
