#include "manifests/runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string_view>
#include <thread>

#include "manifests/targets.h"

namespace cdi::apply {
namespace {

using Clock = std::chrono::steady_clock;

// The final size of a target after a successful import.
uint64_t FinalSize(const DataVolumePlan& dv, const ImportResult& result) {
  if (dv.volume_mode == VolumeMode::kBlock) {
    Result<uint64_t> size = CurrentCapacity(dv);
    return size.ok() ? *size : result.target_size;
  }
  std::error_code error;
  const uint64_t size = std::filesystem::file_size(dv.target, error);
  return error ? result.target_size : size;
}

void RunDownload(const Plan& plan, size_t d, const RunOptions& options, const RunHooks& hooks,
                 std::vector<Outcome>* outcomes) {
  const DownloadPlan& download = plan.downloads[d];
  if (hooks.cancel != nullptr && hooks.cancel->cancelled()) {
    for (size_t i : download.data_volumes) (*outcomes)[i].status = CancelledError("import cancelled");
    if (hooks.on_download_done) hooks.on_download_done(d, *outcomes);
    return;
  }
  ImportSpec spec;
  spec.source = download.source;
  spec.source.network = options.network;
  spec.checksum = download.checksum;
  spec.memory_budget = options.memory_budget;
  spec.scratch_dir = options.scratch_dir;
  spec.resume = options.resume;
  // A device's checkpoints go to its DataVolume's own directory; several
  // targets of one download get none (the library continues one target).
  if (download.data_volumes.size() == 1)
    spec.resume.checkpoint_dir = plan.data_volumes[download.data_volumes[0]].checkpoint_dir;
  for (size_t i : download.data_volumes) {
    spec.targets.push_back(ToTargetSpec(plan.data_volumes[i], options.existing));
    (*outcomes)[i].attempted = true;
  }
  ImportHooks import_hooks;
  import_hooks.cancel = hooks.cancel;
  if (hooks.on_progress) {
    import_hooks.on_progress = [&](const Progress& progress) { hooks.on_progress(d, progress); };
  }
  // One download for every DataVolume that shares the source: a disk too small
  // for the image drops out alone and the others are still written.
  const Clock::time_point start = Clock::now();
  Result<ImportResult> result = Import(spec, import_hooks);
  const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
  for (size_t k = 0; k < download.data_volumes.size(); ++k) {
    Outcome& outcome = (*outcomes)[download.data_volumes[k]];
    outcome.elapsed = elapsed;
    if (!result.ok()) {
      outcome.status = result.status();
      continue;
    }
    outcome.status = result->targets[k].status;
    if (outcome.status.ok()) {
      outcome.result = *result;
      outcome.target_size = FinalSize(plan.data_volumes[download.data_volumes[k]], *result);
    }
  }
  if (hooks.on_download_done) hooks.on_download_done(d, *outcomes);
}

}  // namespace

std::vector<Outcome> RunPlan(const Plan& plan, const RunOptions& options, const RunHooks& hooks) {
  std::vector<Outcome> outcomes(plan.data_volumes.size());
  // Each download writes only the outcomes of its own DataVolumes, so the
  // workers share the vector without a lock.
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t d = next++; d < plan.downloads.size(); d = next++) {
      RunDownload(plan, d, options, hooks, &outcomes);
    }
  };
  const size_t threads = std::min<size_t>(plan.downloads.size(),
                                          static_cast<size_t>(std::max(1, options.max_parallel)));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (std::thread& thread : pool) thread.join();
  }
  for (Outcome& outcome : outcomes) {
    if (!outcome.attempted && outcome.status.ok()) {
      outcome.status = CancelledError("import cancelled before it started");
    }
  }
  return outcomes;
}

}  // namespace cdi::apply
