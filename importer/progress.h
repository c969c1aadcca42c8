// Throttled, monotonic progress reports for ImportHooks::on_progress.
#ifndef CDI_IMPORTER_PROGRESS_H_
#define CDI_IMPORTER_PROGRESS_H_

#include <chrono>
#include <functional>

#include "cdi/import.h"

namespace cdi::importer {

class ProgressReporter {
 public:
  using Callback = std::function<void(const Progress&)>;
  ProgressReporter(Callback callback, std::chrono::steady_clock::time_point start);

  // Reports `progress` if 100 ms passed since the last report, if the phase
  // changed, or if `force`. Fills in elapsed time.
  void Report(Progress progress, bool force = false);
  void Report(Phase phase) { Report(Progress{.phase = phase}, true); }

 private:
  Callback callback_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
  Phase last_phase_ = Phase::kConnecting;
  bool reported_ = false;
};

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_PROGRESS_H_
