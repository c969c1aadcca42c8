// The transfer loop of the HTTP source: the requests of one download, run on
// the source's transfer thread, until the image's body arrived to its end.
//
// Each attempt is one request and the redirects it leads to. Redirects are
// followed here, not by curl, so that every target is checked and
// credentials go only to the origin of the URL as given. A retryable
// failure is retried within the RetryBudget, resuming where the body stopped
// (ImageResume). While a request runs the loop wakes every 100 ms to look for
// cancellation and stalls (StallWatch). Body bytes go into the
// TransferBuffer, in image order, each once.
//
//   HttpTransfer transfer(spec, url, std::move(tls), proxies, cancel, buffer, on_open);
//   CDI_RETURN_IF_ERROR(transfer.Configure());
//   thread: Status status = transfer.Download();
//   any thread: transfer.Stop();
//
// Thread-safety: Configure() before the transfer thread starts; Download()
// and published() on the transfer thread; Stop() from any thread.
#ifndef CDI_SOURCES_HTTP_HTTP_TRANSFER_H_
#define CDI_SOURCES_HTTP_HTTP_TRANSFER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/http/curl_handles.h"
#include "sources/http/http_source.h"
#include "sources/http/http_response.h"
#include "sources/http/proxy.h"
#include "sources/http/resume.h"
#include "sources/http/stall_watch.h"
#include "sources/transfer_buffer.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {

// SplitWhenBound looks at windows of kSplitWindow of body; kSplitWindows
// in a row must show the one connection to be the bound (a server or a
// reader held up for a moment on a busy machine says nothing).
inline constexpr auto kSplitWindow = std::chrono::milliseconds(50);
inline constexpr int kSplitWindows = 3;

class HttpTransfer {
 public:
  // Called once, on the transfer thread, when the first response is accepted
  // and its body starts: the image's size when the response declares it and
  // no compressing Content-Encoding.
  using OpenedCallback = std::function<void(std::optional<uint64_t> size)>;

  // `buffer` and `cancel` (may be null) must outlive the transfer.
  HttpTransfer(const SourceSpec& spec, HttpUrl url, std::unique_ptr<tls::CurlTls> tls,
               ProxyConfig proxies, const CancelToken* cancel, TransferBuffer& buffer,
               OpenedCallback opened, HttpSourceOptions options = {});
  HttpTransfer(const HttpTransfer&) = delete;
  HttpTransfer& operator=(const HttpTransfer&) = delete;

  // Creates the curl handles. kInternal when libcurl refuses.
  Status Configure();

  // Attempts until the whole body arrived (Ok), a failure is permanent, the
  // retry budget is spent, or the transfer is stopped or cancelled
  // (kCancelled). The errors are those of OpenHttpSource.
  Status Download();

  // True once the first response was accepted (OpenedCallback ran).
  bool published() const { return published_; }

  // What the first response said about the image, and the URL its body came
  // from (the end of the redirects): valid from OpenedCallback on, on the
  // transfer thread.
  const ImageIdentity& identity() const { return resume_.identity(); }
  const HttpUrl& body_url() const { return effective_url_ ? *effective_url_ : url_; }

  // In OpenedCallback: the body ends after byte `end` of the image (cut
  // there; Download() returns Ok), the rest being fetched by other
  // connections (range_fetch.h).
  void StopAt(uint64_t end) { stop_at_ = end; }

  // In OpenedCallback, instead of StopAt: the body may be cut once this one
  // connection is seen to be the bound. Every kSplitWindow of body the
  // transfer looks at how long it waited for room in its buffer and how full
  // the buffer was as bytes arrived; once kSplitWindows windows in a row it
  // waited less than a fifth of the time and found the buffer less than a
  // quarter full on average (the reader kept up with the network; a reader
  // that shares one CPU with the transfer and is the bound leaves it full),
  // it calls `split(end)` on the
  // transfer thread, `end` being the image offset `ahead` bytes after those
  // delivered so far (so that the body goes on while other connections
  // start). When it returns true (the
  // rest is fetched by other connections from `end` on) the body ends at
  // `end` and Download() returns Ok; false, it goes on.
  void SplitWhenBound(uint64_t ahead, std::function<bool(uint64_t end)> split) {
    split_ahead_ = ahead;
    split_ = std::move(split);
  }

  // Makes the next Download() fetch bytes [first, end) of the image that
  // another transfer published (`identity`, its body from `from`) into
  // `buffer`: every request asks "Range: bytes=P-(end-1)" with If-Range, and
  // only a 206 carrying exactly that part of the same image is taken; a
  // dropped part resumes where it stopped, within its own retry budget. A
  // transfer fetches parts one after another over the same connection. On
  // the thread that runs Download(), between downloads.
  void FetchPart(TransferBuffer& buffer, uint64_t first, uint64_t end,
                 const ImageIdentity& identity, const HttpUrl& from);

  // Any thread: stops the running request, a back-off wait, and the writer
  // into the buffer (which is closed).
  void Stop();

 private:
  // What the response to the request under way turned out to be.
  enum class HopOutcome {
    kPending,    // headers of the final response not complete yet
    kRedirect,   // a 3xx with Location: the transfer was stopped after its headers
    kRefused,    // a status that is not wanted: stopped after its headers
    kErrorBody,  // a status that is not wanted, whose body may explain it: kept
    kBody,       // its body streams into the buffer
  };

  bool Cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }
  bool Stopping() const { return stop_.load(std::memory_order_relaxed) || Cancelled(); }
  Progress progress() const { return {bytes_received_, expected_length_}; }

  // Waits, waking at once when stopped or cancelled. False when it was.
  bool SleepFor(std::chrono::milliseconds delay);

  // One request and its redirects: the whole image, or the rest of it. Ok
  // when the body arrived to its end.
  Status Attempt();
  // Sets the handles up for a request to `request`, as kind_ says.
  Status PrepareRequest(const HttpUrl& request);
  // Runs the prepared request to its end, waking every 100 ms to look for
  // cancellation and stalls.
  CURLcode Perform();

  // The Status of a request curl ended with `code`.
  Status Failure(CURLcode code, const HttpUrl& request) const;
  // The Status of an unwanted response status; notes its Retry-After.
  Status Refused(const HttpUrl& request);
  bool Refuse(Status status);

  // At the end of a response's headers: decide what happens to its body.
  // Returns false to stop the transfer.
  bool OnHeadersComplete();
  // The first response: makes its facts known through OpenedCallback.
  bool Publish();
  // A complete response after an earlier one failed before its first byte.
  bool AcceptWholeAgain();
  // The answer to "Range: bytes=N-": exactly the rest of the same image.
  bool AcceptRest();
  // A complete response where the rest was asked for: drop what arrived.
  bool AcceptWholeAndSkip();
  // The answer to the first request of a download continued from an
  // earlier process (HttpSourceOptions::resume_from).
  bool AcceptContinued(int status);
  // Forgets the earlier process's download: the next attempt starts at byte 0.
  void StartOver();

  // curl's callbacks, on the transfer thread.
  static size_t OnHeader(char* data, size_t size, size_t count, void* self_pointer);
  static size_t OnBody(char* data, size_t size, size_t count, void* self_pointer);

  // Fixed at construction.
  const NetworkSettings network_;
  const HttpUrl url_;
  const Credentials credentials_;  // for url_'s origin only
  const std::unique_ptr<tls::CurlTls> tls_;
  const ProxyConfig proxies_;
  const CancelToken* const cancel_;
  std::atomic<TransferBuffer*> buffer_;  // changes between parts (FetchPart)
  const OpenedCallback opened_;
  const std::function<std::string(std::string_view)> explain_error_;
  const std::shared_ptr<HttpResumePoint> served_;

  std::atomic<bool> stop_{false};
  std::mutex wake_mutex_;  // with wake_cv_: interrupts a back-off wait
  std::condition_variable wake_cv_;

  // Configured before the transfer thread starts; used by it only, except
  // Wakeup() in Stop().
  CurlHandles handles_;

  // Used by the transfer thread only (and by curl's callbacks on it).
  const HttpUrl* request_ = nullptr;  // the request being made
  std::optional<Proxy> proxy_;        // the proxy it goes through
  std::string range_text_;
  RequestKind kind_ = RequestKind::kWhole;
  ResponseHeaders response_;
  HopOutcome outcome_ = HopOutcome::kPending;
  std::string error_body_;  // of a kErrorBody response, its first bytes
  Status refusal_;
  std::optional<std::chrono::seconds> retry_after_;
  bool published_ = false;
  ImageResume resume_;
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
  uint64_t start_offset_ = 0;  // where the body of the first response starts
  bool continued_ = false;     // the first request continues an earlier process's download
  bool start_over_ = false;    // its answer shows another image: begin at byte 0
  std::optional<uint64_t> stop_at_;  // StopAt
  bool reached_stop_ = false;
  std::function<bool(uint64_t)> split_;  // SplitWhenBound
  uint64_t split_ahead_ = 0;
  // SplitWhenBound: the window under way, from its first body bytes, and the
  // time Put waited for the reader in it.
  std::optional<std::chrono::steady_clock::time_point> window_;
  std::chrono::steady_clock::duration waited_{};
  uint64_t fill_sum_ = 0;  // the buffer's fill at each arrival in the window ...
  uint64_t arrivals_ = 0;  // ... and the arrivals
  int bound_windows_ = 0;  // windows in a row that showed the connection to be the bound
  std::optional<uint64_t> part_end_;  // FetchPart: the end of the part asked for
  uint64_t first_byte_ = 0;           // FetchPart: where the part starts
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_HTTP_TRANSFER_H_
