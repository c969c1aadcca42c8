#include "cmd/apply/runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <string_view>
#include <thread>

#include "cmd/apply/targets.h"

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

// CDI's message for an image that does not fit, which its controller
// recognises ("is larger than the reported available").
std::string TooSmallMessage(uint64_t virtual_size, uint64_t capacity) {
  return "virtual image size " + std::to_string(virtual_size) +
         " is larger than the reported available storage " + std::to_string(capacity) +
         ". A larger PVC is required";
}

// The virtual size named in the library's too-small message, when it says it
// (an image whose header declares its size).
std::optional<uint64_t> VirtualSizeIn(const std::string& message) {
  static constexpr std::string_view kBefore = "virtual image size ";
  static constexpr std::string_view kAfter = " is larger than";
  const size_t start = message.find(kBefore);
  if (start == std::string::npos) return std::nullopt;
  const size_t digits = start + kBefore.size();
  const size_t end = message.find_first_not_of("0123456789", digits);
  if (end == digits || end == std::string::npos ||
      message.compare(end, kAfter.size(), kAfter) != 0) {
    return std::nullopt;
  }
  uint64_t value = 0;
  const auto [ptr, error] = std::from_chars(message.data() + digits, message.data() + end, value);
  if (error != std::errc() || ptr != message.data() + end) return std::nullopt;
  return value;
}

// After a shared import failed with kTooSmall: which of `remaining` are too
// small, each with its message. Empty when it cannot be told apart (then all
// fail with the library's message).
std::vector<std::pair<size_t, std::string>> TooSmallTargets(const Plan& plan,
                                                            const std::vector<size_t>& remaining,
                                                            const Status& failure) {
  std::vector<std::pair<size_t, uint64_t>> capacities;
  for (size_t i : remaining) {
    Result<uint64_t> capacity = CurrentCapacity(plan.data_volumes[i]);
    if (!capacity.ok()) return {};
    capacities.emplace_back(i, *capacity);
  }
  std::vector<std::pair<size_t, std::string>> too_small;
  if (std::optional<uint64_t> virtual_size = VirtualSizeIn(failure.message())) {
    for (const auto& [i, capacity] : capacities) {
      if (capacity < *virtual_size)
        too_small.emplace_back(i, TooSmallMessage(*virtual_size, capacity));
    }
  } else {
    // The image's size shows only at its end (raw inside gzip, xz, zstd): the
    // stream passed the smallest target, which is all that is known.
    uint64_t smallest = UINT64_MAX;
    for (const auto& entry : capacities) smallest = std::min(smallest, entry.second);
    for (const auto& [i, capacity] : capacities) {
      if (capacity == smallest) too_small.emplace_back(i, failure.message());
    }
  }
  if (too_small.size() == remaining.size()) return {};
  return too_small;
}

void RunDownload(const Plan& plan, size_t d, const RunOptions& options, const RunHooks& hooks,
                 std::vector<Outcome>* outcomes) {
  const DownloadPlan& download = plan.downloads[d];
  std::vector<size_t> remaining = download.data_volumes;
  bool again = false;
  while (!remaining.empty()) {
    if (hooks.cancel != nullptr && hooks.cancel->cancelled()) {
      for (size_t i : remaining) (*outcomes)[i].status = CancelledError("import cancelled");
      break;
    }
    ImportSpec spec;
    spec.source = download.source;
    spec.source.network = options.network;
    spec.checksum = download.checksum;
    spec.memory_budget = options.memory_budget;
    spec.scratch_dir = options.scratch_dir;
    for (size_t i : remaining) {
      spec.targets.push_back(ToTargetSpec(plan.data_volumes[i], options.existing));
      (*outcomes)[i].attempted = true;
      (*outcomes)[i].downloaded_again = again;
    }
    ImportHooks import_hooks;
    import_hooks.cancel = hooks.cancel;
    if (hooks.on_progress) {
      import_hooks.on_progress = [&](const Progress& progress) { hooks.on_progress(d, progress); };
    }
    const Clock::time_point start = Clock::now();
    Result<ImportResult> result = Import(spec, import_hooks);
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
    if (result.ok()) {
      for (size_t i : remaining) {
        Outcome& outcome = (*outcomes)[i];
        outcome.status = Status::Ok();
        outcome.result = *result;
        outcome.target_size = FinalSize(plan.data_volumes[i], *result);
        outcome.elapsed = elapsed;
      }
      break;
    }
    const Status failure = result.status();
    std::vector<std::pair<size_t, std::string>> too_small;
    if (failure.code() == ErrorCode::kTooSmall && remaining.size() > 1) {
      too_small = TooSmallTargets(plan, remaining, failure);
    }
    if (too_small.empty()) {
      for (size_t i : remaining) {
        (*outcomes)[i].status = failure;
        (*outcomes)[i].elapsed = elapsed;
      }
      break;
    }
    for (const auto& [i, message] : too_small) {
      (*outcomes)[i].status = TooSmallError(message);
      (*outcomes)[i].elapsed = elapsed;
      remaining.erase(std::find(remaining.begin(), remaining.end(), i));
    }
    spdlog::warn(
        "{}: the image does not fit {} of the DataVolumes sharing it; downloading it "
        "again for the other {}",
        download.display_url, too_small.size(), remaining.size());
    again = true;
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
