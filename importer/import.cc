// Import(): source -> taps (count, checksum) -> format pipeline -> targets.
// The whole copy loop is here; everything it calls is a module of its own.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "formats/pipeline.h"
#include "importer/checksum.h"
#include "importer/progress.h"
#include "importer/sources/source.h"
#include "importer/target_sink.h"
#include "pvc/target.h"

namespace cdi {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadBufferSize = 1 << 20;
// Bytes the format pipeline may unwrap beyond twice the smallest target: room
// for a qcow2 container's metadata and snapshot clusters, which are dropped.
constexpr uint64_t kUnwrapSlack = 64 * kMiB;

// Owns the opened targets; aborts every one of them unless committed.
class TargetSet {
 public:
  TargetSet() = default;
  TargetSet(const TargetSet&) = delete;
  TargetSet& operator=(const TargetSet&) = delete;
  ~TargetSet() {
    if (!committed_) {
      for (auto& t : targets_) t->Abort();
    }
  }

  void Add(std::unique_ptr<pvc::Target> target) { targets_.push_back(std::move(target)); }
  std::vector<std::unique_ptr<pvc::Target>>& targets() { return targets_; }

  Status CommitAll() {
    for (auto& t : targets_) CDI_RETURN_IF_ERROR(t->Commit());
    committed_ = true;
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<pvc::Target>> targets_;
  bool committed_ = false;
};

pvc::ExistingFile ToPvc(ExistingFile existing) {
  return existing == ExistingFile::kReplace ? pvc::ExistingFile::kReplace
                                            : pvc::ExistingFile::kRefuse;
}

pvc::Preallocation ToPvc(Preallocation preallocation) {
  return preallocation == Preallocation::kOn ? pvc::Preallocation::kOn : pvc::Preallocation::kOff;
}

Result<std::unique_ptr<pvc::Target>> OpenTarget(const TargetSpec& spec) {
  if (spec.path.empty()) return InvalidArgumentError("no target path given");
  TargetKind kind = spec.kind;
  if (kind == TargetKind::kAuto) {
    kind = pvc::IsBlockDevice(spec.path) ? TargetKind::kBlockDevice : TargetKind::kFile;
  }
  if (kind == TargetKind::kBlockDevice) {
    if (!pvc::IsBlockDevice(spec.path)) {
      return InvalidArgumentError(spec.path + " is not a block device");
    }
    return pvc::OpenBlockTarget(spec.path);
  }
  if (spec.filesystem_overhead < 0 || spec.filesystem_overhead >= 1) {
    return InvalidArgumentError("filesystem overhead must be at least 0 and below 1, got " +
                                std::to_string(spec.filesystem_overhead));
  }
  return pvc::OpenFileTarget(spec.path, {.requested_size = spec.requested_size,
                                         .filesystem_overhead = spec.filesystem_overhead,
                                         .existing = ToPvc(spec.existing),
                                         .preallocation = ToPvc(spec.preallocation)});
}

Status ValidateSpec(const ImportSpec& spec) {
  if (spec.source.url.empty()) return InvalidArgumentError("no source given");
  if (spec.targets.empty()) return InvalidArgumentError("no target given");
  for (size_t i = 0; i < spec.targets.size(); ++i) {
    for (size_t j = i + 1; j < spec.targets.size(); ++j) {
      if (spec.targets[i].path == spec.targets[j].path) {
        return InvalidArgumentError("target " + spec.targets[i].path + " is given twice");
      }
    }
  }
  if (spec.memory_budget < 16 * kMiB) {
    return InvalidArgumentError("the memory budget must be at least 16 MiB, got " +
                                std::to_string(spec.memory_budget) + " bytes");
  }
  return Status::Ok();
}

std::string JoinChain(const std::vector<std::string>& chain) {
  std::string text;
  for (const auto& layer : chain) text += (text.empty() ? "" : "+") + layer;
  return text.empty() ? "unknown" : text;
}

}  // namespace

Result<ImportResult> Import(const ImportSpec& spec, const ImportHooks& hooks) {
  const Clock::time_point start = Clock::now();
  CDI_RETURN_IF_ERROR(ValidateSpec(spec));
  std::optional<importer::ExpectedChecksum> expected;
  std::optional<importer::Checksum> checksum;
  if (!spec.checksum.empty()) {
    CDI_ASSIGN_OR_RETURN(expected, importer::ParseChecksum(spec.checksum));
    checksum.emplace(expected->algorithm);
  }

  // Local problems (a file in the way, a busy device) fail before any download.
  TargetSet targets;
  std::vector<importer::SinkTarget> sink_targets;
  for (const TargetSpec& target_spec : spec.targets) {
    auto opened = OpenTarget(target_spec);
    if (!opened.ok()) return opened.status();
    const bool fill = (*opened)->kind() == pvc::TargetKind::kBlockDevice ||
                      target_spec.requested_size.has_value();
    sink_targets.push_back({opened->get(), fill ? importer::Sizing::kToCapacity
                                                : importer::Sizing::kToVirtualSize});
    targets.Add(std::move(opened).value());
  }

  importer::ProgressReporter progress(hooks.on_progress, start);
  progress.Report(Phase::kConnecting);
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<importer::ByteSource> source,
                       importer::OpenSource(spec.source, hooks.cancel));
  const std::optional<uint64_t> source_size = source->size();
  spdlog::info("Importing {}{} into {}", source->Describe(),
               source_size ? " (" + std::to_string(*source_size) + " bytes)" : std::string(),
               spec.targets.size() == 1 ? spec.targets[0].path
                                        : std::to_string(spec.targets.size()) + " targets");

  importer::TargetSink sink(sink_targets);
  uint64_t smallest_capacity = UINT64_MAX;
  for (auto& t : targets.targets()) smallest_capacity = std::min(smallest_capacity, t->capacity());
  formats::PipelineOptions options;
  options.decoder.container_size = source_size;
  options.decoder.memory_budget = spec.memory_budget / 2;
  options.decoder.scratch_dir = spec.scratch_dir;
  options.max_unwrapped_bytes =
      smallest_capacity > (UINT64_MAX - kUnwrapSlack) / 2 ? UINT64_MAX
                                                           : 2 * smallest_capacity + kUnwrapSlack;
  options.xz_memlimit = std::max<uint64_t>(spec.memory_budget, 128 * kMiB);
  formats::ImagePipeline pipeline(&sink, options);

  std::vector<uint8_t> buffer(kReadBufferSize);
  uint64_t bytes_read = 0;
  bool announced = false;
  auto update = [&](Phase phase, bool force) {
    if (!announced && sink.begun()) {
      announced = true;
      spdlog::info("Detected {}, virtual size {}", JoinChain(pipeline.format_chain()),
                   sink.virtual_size() ? std::to_string(*sink.virtual_size())
                                       : std::string("known at the end of the stream"));
    }
    Progress p;
    p.phase = phase;
    p.source_bytes = bytes_read;
    p.source_size = source_size;
    p.guest_bytes = sink.guest_bytes();
    p.virtual_size = sink.virtual_size();
    progress.Report(p, force);
  };
  update(Phase::kTransferring, true);
  while (true) {
    if (hooks.cancel != nullptr && hooks.cancel->cancelled()) return CancelledError("import cancelled");
    CDI_ASSIGN_OR_RETURN(size_t n, source->Read(buffer));
    if (n == 0) break;
    std::span<const uint8_t> chunk(buffer.data(), n);
    bytes_read += n;
    if (checksum) checksum->Update(chunk);
    CDI_RETURN_IF_ERROR(pipeline.Feed(chunk));
    update(Phase::kTransferring, false);
  }
  CDI_RETURN_IF_ERROR(pipeline.Finish());
  if (checksum) {
    std::string computed = checksum->Finish();
    CDI_RETURN_IF_ERROR(importer::VerifyChecksum(*expected, computed));
    spdlog::info("Checksum verification passed: {}", computed);
  }
  CDI_ASSIGN_OR_RETURN(uint64_t virtual_size, sink.Finalize());
  update(Phase::kFlushing, true);
  if (hooks.cancel != nullptr && hooks.cancel->cancelled()) return CancelledError("import cancelled");
  CDI_RETURN_IF_ERROR(targets.CommitAll());

  ImportResult result;
  result.format_chain = pipeline.format_chain();
  result.virtual_size = virtual_size;
  result.target_size = targets.targets().front()->size();
  result.bytes_read = bytes_read;
  result.bytes_written = sink.bytes_written();
  result.bytes_zero = sink.bytes_zero();
  result.preallocated = std::any_of(spec.targets.begin(), spec.targets.end(), [](const TargetSpec& t) {
    return t.preallocation == Preallocation::kOn;
  });
  if (checksum) result.checksum = expected->algorithm + ":" + expected->hex;
  result.elapsed = Clock::now() - start;
  update(Phase::kDone, true);
  spdlog::info("Imported {} ({} bytes virtual) in {:.2f} s: {} bytes written, {} bytes left zero",
               JoinChain(result.format_chain), virtual_size,
               std::chrono::duration<double>(result.elapsed).count(), result.bytes_written,
               result.bytes_zero);
  return result;
}

}  // namespace cdi
