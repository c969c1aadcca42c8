// Progress of every DataVolume of a plan at once. On a terminal: one line per
// DataVolume, redrawn in place. In a log: a plain line per download at each
// tenth and phase change, and a line per DataVolume when it ends.
#ifndef CDI_CMD_CDI_IMAGE_MULTI_PROGRESS_H_
#define CDI_CMD_CDI_IMAGE_MULTI_PROGRESS_H_

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cmd/cli/progress_view.h"
#include "manifests/plan.h"
#include "manifests/runner.h"

namespace cdi::apply {

// Thread-safe: Update and DownloadDone may be called from any thread.
class MultiProgressView {
 public:
  // `style` kBar redraws lines (use it on terminals only), kPlain writes
  // lines, kNone and kJson write nothing. kAuto picks kBar or kPlain for
  // `out`. `out` is not owned; `plan` must outlive the view.
  MultiProgressView(cli::ProgressStyle style, FILE* out, const Plan& plan);
  ~MultiProgressView();

  void Update(size_t download, const Progress& progress);
  void DownloadDone(size_t download, const std::vector<Outcome>& outcomes);
  // Draws the final state (kBar) and leaves the cursor below it.
  void Finish();

  // The lines of the kBar view as they are now, one per DataVolume, without
  // terminal control characters (for tests).
  std::vector<std::string> Lines() const;

 private:
  struct DownloadState {
    std::unique_ptr<cli::ProgressView> rate;  // keeps the rate estimate for BarLine
    std::optional<Progress> last;
    int last_decile = -1;
    Phase last_phase = Phase::kConnecting;
    double last_plain = -1;
  };

  std::string RowText(size_t data_volume) const;
  void Redraw(bool force);
  void PlainProgress(size_t download, const Progress& progress);

  mutable std::mutex mutex_;
  cli::ProgressStyle style_;
  FILE* out_;
  const Plan& plan_;
  size_t name_width_ = 0;
  std::vector<DownloadState> downloads_;
  std::vector<std::string> bar_text_;    // per download: the latest bar line
  std::vector<std::string> final_text_;  // per DataVolume: "done ..." or "failed ..."
  size_t lines_drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace cdi::apply

#endif  // CDI_CMD_CDI_IMAGE_MULTI_PROGRESS_H_
