#include "importer/progress.h"

#include <algorithm>

namespace cdi {

std::optional<double> Progress::Fraction() const {
  if (phase == Phase::kDone) return 1.0;
  std::optional<double> fraction;
  if (source_size && *source_size > 0) {
    fraction = static_cast<double>(source_bytes) / static_cast<double>(*source_size);
  } else if (virtual_size && *virtual_size > 0) {
    fraction = static_cast<double>(guest_bytes) / static_cast<double>(*virtual_size);
  }
  // Flushing is the last step: never claim completion before it ends.
  if (fraction) fraction = std::clamp(*fraction, 0.0, phase == Phase::kFlushing ? 0.999 : 0.99);
  return fraction;
}

namespace importer {

ProgressReporter::ProgressReporter(Callback callback, std::chrono::steady_clock::time_point start)
    : callback_(std::move(callback)), start_(start) {}

void ProgressReporter::Report(Progress progress, bool force) {
  if (!callback_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool phase_changed = !reported_ || progress.phase != last_phase_;
  if (!force && !phase_changed && now - last_ < std::chrono::milliseconds(100)) return;
  progress.elapsed = now - start_;
  last_ = now;
  last_phase_ = progress.phase;
  reported_ = true;
  callback_(progress);
}

}  // namespace importer
}  // namespace cdi
