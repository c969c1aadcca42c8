#include "sources/http/stall_watch.h"

namespace cdi::importer {

void StallWatch::Restart(Clock::time_point now, uint64_t bytes) {
  samples_.clear();
  samples_.push_back({now, bytes});
}

bool StallWatch::Stalled(Clock::time_point now, uint64_t bytes) {
  if (min_rate_ == 0 || window_.count() <= 0) return false;
  if (samples_.empty() || now - samples_.back().time >= kStallSampleInterval) {
    samples_.push_back({now, bytes});
  }
  // Keep the newest sample at least a window old: where the window starts.
  while (samples_.size() >= 2 && now - samples_[1].time >= window_) samples_.pop_front();
  const Sample& start = samples_.front();
  if (now - start.time < window_) return false;
  return bytes - start.bytes < min_rate_ * static_cast<uint64_t>(window_.count());
}

}  // namespace cdi::importer
