// Fetching ahead over several connections: the parts of an image after its
// first bytes, each fetched by a ranged GET of its own, handed to the one
// reader in image order.
//
// The HTTP source's first GET names the image (its length, its ETag or
// Last-Modified, "Accept-Ranges: bytes"). When the server serves ranges,
// names the image by a validator, and the image is larger than the memory
// the connections may hold, that GET is cut after its first part
// (HttpTransfer::StopAt) and a RangeFetch fetches the rest: the image after
// `first` in parts of `part` bytes, each by one of `connections` workers
// with a transfer of its own (HttpTransfer::FetchPart: "Range: bytes=A-B"
// with If-Range, its own retries, resume and stall detection, its connection
// kept alive from part to part). At most `connections` transfers run at
// once, the first GET included while it runs, and parts start no more than
// 2 x connections past the one being read. The bytes they hold stay within the plan's memory whatever the part size: the
// parts ahead of the reader share a BufferBudget of `ahead` bytes (a part
// that would hold more waits, its connection paused by TCP), the one being
// read may hold `lead` bytes more, and the pages of bytes read go back to
// the system as the reader moves on.
//
// Parts are larger than their share of the memory: each costs its
// connection one round trip between its last byte and the next part's
// first, so the fewer the better, while in the steady state the parts
// ahead hold only about half of what they will: the part after the one
// being read is mostly in, the one after that half, and so on.
//
// A part that the server answers with another image (If-Range fails when
// the validator changed, and the whole new image comes back) or with the
// whole image fails with kNetwork saying so: bytes of two versions of an
// image are never mixed. Once a part failed, no new part starts.
//
//   RangeFetch fetch(spec, url, body_url, identity, cancel, options, plan);
//   CDI_RETURN_IF_ERROR(fetch.Start());
//   reader: for i in [0, fetch.parts()): buffer = fetch.Part(i, wait); read it to its end
//   any thread: fetch.Stop();
//
// Thread-safety: Part() on the reader's thread; Stop() from any thread.
#ifndef CDI_SOURCES_HTTP_RANGE_FETCH_H_
#define CDI_SOURCES_HTTP_RANGE_FETCH_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/http/http_source.h"
#include "sources/http/resume.h"
#include "sources/transfer_buffer.h"
#include "sources/url.h"

namespace cdi::importer {

class HttpTransfer;

// What the connections may hold when NetworkSettings::connection_memory is 0.
inline constexpr uint64_t kDefaultConnectionMemory = 16 * kMiB;
// The smallest part worth a request of its own.
inline constexpr uint64_t kMinRangePart = 64 * kKiB;
// The most connections one download may use.
inline constexpr int kMaxConnections = 64;

struct RangePlan {
  uint64_t first = 0;  // the first byte after what the first GET delivers
  uint64_t end = 0;    // the image's length
  uint64_t part = 0;   // bytes a part (the last one may be shorter)
  uint64_t ahead = 0;  // what the parts ahead of the one being read may hold together
  uint64_t lead = 0;   // what the part being read may hold beyond that
  int connections = 2;
};

// Whether the image the first response describes (`size`: its length when
// declared and not content-encoded) is fetched over several connections, and
// how. nullopt: one GET (one connection asked for, an unknown length, no
// ranges or no strong ETag or Last-Modified to ask for them with, or an
// image no larger than the connections' memory).
std::optional<RangePlan> PlanRanges(const NetworkSettings& network, std::optional<uint64_t> size,
                                    const ImageIdentity& identity);

// Where the parts of `plan` start, and the image's end after the last one:
// parts of plan.part bytes, except the first connections - 1 (2/n, 3/n, ...
// of a part, n the connections, so that the connections end their parts
// one after another and not all at once) and the last stretch of no more
// than n parts, which comes in 2n parts, so that the connections end close
// together instead of one of them fetching the last part alone.
std::vector<uint64_t> PartBounds(const RangePlan& plan);

class RangeFetch {
 public:
  // `url` is the URL as given (credentials go to its origin only), `from`
  // where the first GET's body came from (the parts are asked there).
  RangeFetch(const SourceSpec& spec, HttpUrl url, HttpUrl from, ImageIdentity identity,
             const CancelToken* cancel, HttpSourceOptions options, RangePlan plan);
  ~RangeFetch();
  RangeFetch(const RangeFetch&) = delete;
  RangeFetch& operator=(const RangeFetch&) = delete;

  // Sets up one transfer per connection and starts the workers. The errors
  // of OpenHttpSource's settings (proxies, TLS), or kInternal.
  Status Start();

  size_t parts() const { return parts_; }

  // Reader: the buffer of part `index` once its request started (its bytes
  // stream in, then its end or its error), after waiting at most `wait`;
  // nullptr when it has not started yet. Asking for part i tells that the
  // parts before it are read: their memory goes, and later parts may start.
  std::shared_ptr<TransferBuffer> Part(size_t index, std::chrono::milliseconds wait);

  // Stops every transfer and closes every part's buffer.
  void Stop();

 private:
  struct Worker;

  uint64_t PartStart(size_t index) const { return bounds_[index]; }
  uint64_t PartEnd(size_t index) const { return bounds_[index + 1]; }
  // A buffer for part `index`: a spare one no one holds any more, else a new
  // one. Under mutex_.
  std::shared_ptr<TransferBuffer> BufferFor(size_t index);
  // How many parts past the one being read may have started. Under mutex_.
  size_t Window() const;
  void Work(Worker& worker);

  const SourceSpec spec_;
  const HttpUrl url_;
  const HttpUrl from_;
  const ImageIdentity identity_;
  const CancelToken* const cancel_;
  const HttpSourceOptions options_;
  const RangePlan plan_;
  const std::vector<uint64_t> bounds_;  // PartBounds(plan_)
  const size_t parts_;                  // bounds_.size() - 1

  // Before the buffers: they return what they hold to it as they go.
  BufferBudget budget_;

  std::mutex mutex_;
  std::condition_variable window_cv_;  // the reader moved on, a part failed, or Stop()
  std::condition_variable part_cv_;    // a part started, or Stop()
  // Guarded by mutex_.
  size_t next_ = 0;     // the next part to start
  size_t reading_ = 0;  // the part being read + 1 (0: the first GET): the window counts from it
  bool failed_ = false;
  bool stopped_ = false;
  std::map<size_t, std::shared_ptr<TransferBuffer>> buffers_;
  // Buffers of parts read, reused for later parts (their pages are in).
  std::vector<std::shared_ptr<TransferBuffer>> spare_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_RANGE_FETCH_H_
