// Runs a plan: each download is one cdi::Import whose targets are all the
// DataVolumes that share the source, so the image is read once and written to
// every one of them as it streams. Downloads run on up to max_parallel
// threads (cdi::Import may run concurrently on different specs).
#ifndef CDI_MANIFESTS_RUNNER_H_
#define CDI_MANIFESTS_RUNNER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "manifests/plan.h"

namespace cdi::apply {

struct RunOptions {
  int max_parallel = 2;  // downloads streaming at once (at least 1)
  ExistingFile existing = ExistingFile::kRefuse;
  uint64_t memory_budget = 64 * kMiB;  // per download
  std::string scratch_dir;
  NetworkSettings network;  // for every source
  // Checkpoints for each download (cdi::ResumeSettings): on by default, so
  // that an interrupted run continues every image where it stopped; a
  // download into several targets is not continued (its log says so).
  ResumeSettings resume{.mode = ResumeMode::kCheckpoints};
};

// What became of one DataVolume.
struct Outcome {
  bool attempted = false;              // false: never started (cancelled before its turn)
  Status status;                       // ok when imported
  std::optional<ImportResult> result;  // set when imported
  uint64_t target_size = 0;            // final size of its file or device
  std::chrono::nanoseconds elapsed{0};
};

struct RunHooks {
  // Progress of download `download` (an index into Plan::downloads). Called
  // from the worker threads: must be thread-safe.
  std::function<void(size_t download, const Progress& progress)> on_progress;
  // Called from a worker thread once a download has ended, when the outcomes
  // of its DataVolumes are final. Must be thread-safe, and read only the
  // outcomes of this download's DataVolumes (others are still being written).
  std::function<void(size_t download, const std::vector<Outcome>& outcomes)> on_download_done;
  const CancelToken* cancel = nullptr;
};

// Runs every download of `plan` and returns one Outcome per DataVolume, in
// plan order. Never stops early on a failure: every DataVolume gets a result.
//
// When one shared download fails because the image does not fit some of its
// targets, the DataVolumes that are too small fail with CDI's message and the
// download is repeated for the others, which would otherwise fail for a
// neighbour's size.
std::vector<Outcome> RunPlan(const Plan& plan, const RunOptions& options, const RunHooks& hooks);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_RUNNER_H_
