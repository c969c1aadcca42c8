// Stall detection for one HTTP request: a stall is fewer than `min_rate`
// bytes/s over the last `window`, the window sliding in steps of
// kStallSampleInterval.
//
//   StallWatch watch(network.stall_bytes_per_second, network.stall_window);
//   watch.Restart(Clock::now(), bytes);          // the request starts
//   ... every 100 ms or so ...
//   if (watch.Stalled(Clock::now(), bytes)) give up on the request;
//
// Restart() again when the wait was not the network's fault (the reader set
// the pace). Thread-safety: used by one thread.
#ifndef CDI_SOURCES_HTTP_STALL_WATCH_H_
#define CDI_SOURCES_HTTP_STALL_WATCH_H_

#include <chrono>
#include <cstdint>
#include <deque>

namespace cdi::importer {

// How often a StallWatch keeps a sample of the byte count.
inline constexpr auto kStallSampleInterval = std::chrono::milliseconds(100);

class StallWatch {
 public:
  using Clock = std::chrono::steady_clock;

  // `min_rate` 0 or a `window` of 0 s: never stalled.
  StallWatch(uint64_t min_rate, std::chrono::seconds window)
      : min_rate_(min_rate), window_(window) {}

  // Forgets the samples: the window starts again at `now`, with `bytes` (a
  // count that only grows) arrived so far.
  void Restart(Clock::time_point now, uint64_t bytes);

  // True when fewer than min_rate * window bytes arrived over the last
  // window; false while less than a window has passed since Restart().
  bool Stalled(Clock::time_point now, uint64_t bytes);

 private:
  struct Sample {
    Clock::time_point time;
    uint64_t bytes;
  };
  const uint64_t min_rate_;
  const std::chrono::seconds window_;
  std::deque<Sample> samples_;
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_STALL_WATCH_H_
