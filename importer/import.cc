// Import(): source -> taps (count, checksum) -> format pipeline -> targets.
// The whole copy loop is here; everything it calls is a module of its own.
#include "cdi/import.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/resources.h"
#include "formats/pipeline.h"
#include "formats/tar/tar_reader.h"
#include "importer/checksum.h"
#include "importer/image_input.h"
#include "importer/import_from.h"
#include "importer/memory_plan.h"
#include "importer/progress.h"
#include "importer/qcow2_resume.h"
#include "importer/resume.h"
#include "importer/target_sink.h"
#include "pvc/directory_target.h"
#include "pvc/target.h"
#include "sources/http/http_source.h"
#include "sources/registry/reference.h"

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

  // Leaves every target for a later import to resume (pvc::Target::Keep).
  void KeepAll() {
    for (auto& t : targets_) t->Keep();
    committed_ = true;
  }

  Status CommitAll() {
    for (auto& t : targets_) CDI_RETURN_IF_ERROR(t->Commit());
    committed_ = true;
    return Status::Ok();
  }

  // Commits the targets whose failure is ok and aborts the others.
  // `failures` is indexed like the targets.
  Status CommitLive(const std::function<const Status&(size_t)>& failure) {
    for (size_t i = 0; i < targets_.size(); ++i) {
      if (!failure(i).ok()) targets_[i]->Abort();
    }
    for (size_t i = 0; i < targets_.size(); ++i) {
      if (failure(i).ok()) CDI_RETURN_IF_ERROR(targets_[i]->Commit());
    }
    committed_ = true;
    return Status::Ok();
  }

 private:
  std::vector<std::unique_ptr<pvc::Target>> targets_;
  bool committed_ = false;
};

// What one target may hold in memory. An import onto many targets (a pool's
// replicas) divides its budget among them, so that it holds what an import
// onto one does: a quarter of the budget for the targets' direct I/O buffers
// (a single target keeps its full buffers under the default budget; many
// small shares fall back to the page cache), and page cache windows that
// shrink with the number of targets.
struct TargetMemory {
  uint64_t staging = pvc::kDefaultStagingMemory;
  uint64_t writeback_window = pvc::kDefaultWritebackWindow;
};

constexpr uint64_t kMinWritebackWindow = 256 * kKiB;

TargetMemory TargetMemoryFor(const ImportSpec& spec, const importer::MemoryPlan& plan) {
  const uint64_t count = std::max<uint64_t>(1, spec.targets.size());
  TargetMemory memory;
  memory.staging = std::min(pvc::kDefaultStagingMemory, plan.budget / 4 / count);
  memory.writeback_window =
      std::max(kMinWritebackWindow, pvc::kDefaultWritebackWindow / count);
  return memory;
}

Result<std::unique_ptr<pvc::Target>> OpenTarget(
    const TargetSpec& spec, const TargetMemory& memory = {},
    pvc::StalePartial stale_partial = pvc::StalePartial::kEmpty) {
  if (spec.path.empty()) return InvalidArgumentError("no target path given");
  TargetKind kind = spec.kind;
  if (kind == TargetKind::kAuto) {
    kind = pvc::IsBlockDevice(spec.path) ? TargetKind::kBlockDevice : TargetKind::kFile;
  }
  if (kind == TargetKind::kBlockDevice) {
    if (!pvc::IsBlockDevice(spec.path)) {
      return InvalidArgumentError(spec.path + " is not a block device");
    }
    // Preallocation on a device: zero ranges are written, not unmapped, so
    // that thin storage allocates them.
    pvc::BlockTargetOptions options;
    options.writeback_window = memory.writeback_window;
    options.staging_memory = memory.staging;
    if (spec.preallocation == Preallocation::kOn) {
      options.first_zero_method = pvc::ZeroMethod::kWriteZeros;
    }
    return pvc::OpenBlockTarget(spec.path, options);
  }
  CDI_RETURN_IF_ERROR(CheckOverhead(spec.filesystem_overhead));
  return pvc::OpenFileTarget(spec.path, {.requested_size = spec.requested_size,
                                         .filesystem_overhead = spec.filesystem_overhead,
                                         .existing = spec.existing,
                                         .preallocation = spec.preallocation,
                                         .writeback_window = memory.writeback_window,
                                         .staging_memory = memory.staging,
                                         .stale_partial = stale_partial});
}

Status ValidateSpec(const ImportSpec& spec, bool source_given) {
  if (!source_given && spec.source.url.empty()) return InvalidArgumentError("no source given");
  if (spec.targets.empty()) return InvalidArgumentError("no target given");
  if (spec.content_type == ContentType::kArchive && spec.targets.size() != 1) {
    return InvalidArgumentError("an archive is extracted into exactly one directory; " +
                                std::to_string(spec.targets.size()) + " targets were given");
  }
  for (size_t i = 0; i < spec.targets.size(); ++i) {
    for (size_t j = i + 1; j < spec.targets.size(); ++j) {
      if (spec.targets[i].path == spec.targets[j].path) {
        return InvalidArgumentError("target " + spec.targets[i].path + " is given twice");
      }
    }
  }
  if (spec.memory_budget != 0 && spec.memory_budget < importer::kMinMemoryBudget) {
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

// The expected digest of the bytes as served and its running computation.
struct Digest {
  std::optional<ExpectedChecksum> expected;
  std::optional<importer::Checksum> checksum;

  Status Verify() {
    if (!checksum) return Status::Ok();
    std::string computed = checksum->Finish();
    CDI_RETURN_IF_ERROR(importer::VerifyChecksum(*expected, computed));
    Logger()->info("Checksum verification passed: {}", computed);
    return Status::Ok();
  }
  std::string Expected() const { return expected ? expected->algorithm + ":" + expected->hex : ""; }
};

// The memory plan of an import, logged once.
importer::MemoryPlan PlanImportMemory(const ImportSpec& spec) {
  const ProcessResources& resources = ThisProcessResources();
  importer::MemoryPlan plan = importer::PlanMemory(spec.memory_budget, resources);
  Logger()->debug("Resources: {}; memory {}", resources.Describe(), plan.Describe());
  return plan;
}

formats::PipelineOptions PipelineOptionsFor(const ImportSpec& spec,
                                            const importer::MemoryPlan& plan,
                                            uint64_t smallest_capacity,
                                            std::optional<uint64_t> source_size,
                                            bool raw_only = false) {
  formats::PipelineOptions options;
  options.raw_only = raw_only;
  options.decoder.container_size = source_size;
  options.decoder.memory_budget = plan.budget / 2;
  options.decoder.scratch_dir = spec.scratch_dir;
  options.max_unwrapped_bytes = smallest_capacity > (UINT64_MAX - kUnwrapSlack) / 2
                                    ? UINT64_MAX
                                    : 2 * smallest_capacity + kUnwrapSlack;
  options.xz_memlimit = plan.xz_memlimit;
  options.xz_memlimit_threading = plan.xz_threading;
  return options;
}

// Opens the spec's source, or takes the one given, and logs what it is.
// The parts an HTTP download fetches ahead over several connections hold a
// quarter of the budget (the decoder has half, the targets a quarter),
// unless the spec sets their memory.
SourceSpec WithConnectionMemory(SourceSpec source, const importer::MemoryPlan& plan) {
  if (source.network.connection_memory == 0) {
    source.network.connection_memory = plan.budget / 4;
  }
  return source;
}

Result<std::unique_ptr<importer::ImageInput>> OpenAndDescribe(
    const ImportSpec& spec, const ImportHooks& hooks, const importer::MemoryPlan& plan,
    const formats::PipelineOptions& options, std::unique_ptr<importer::ByteSource>& given) {
  std::unique_ptr<importer::ImageInput> input;
  if (given) {
    input = importer::InputFromSource(std::move(given));
  } else {
    CDI_ASSIGN_OR_RETURN(input, importer::OpenImageInput(WithConnectionMemory(spec.source, plan),
                                                         hooks.cancel, options));
  }
  const std::optional<uint64_t> source_size = input->size();
  Logger()->info("Importing {}{} into {}", input->Describe(),
               source_size ? " (" + std::to_string(*source_size) + " bytes)" : std::string(),
               spec.targets.size() == 1 ? spec.targets[0].path
                                        : std::to_string(spec.targets.size()) + " targets");
  return input;
}

// The checksum tap: digests the image's bytes as they pass to the pipeline.
class ChecksumTap final : public formats::ByteSink {
 public:
  ChecksumTap(Digest& digest, formats::ByteSink& next) : digest_(digest), next_(next) {}
  Status Feed(std::span<const uint8_t> bytes) override {
    if (digest_.checksum) digest_.checksum->Update(bytes);
    return next_.Feed(bytes);
  }
  Status Finish() override { return next_.Finish(); }

 private:
  Digest& digest_;
  formats::ByteSink& next_;
};

// The checkpoint tap: once a chunk went through the pipeline, the resumer
// writes a checkpoint when one is due.
class CheckpointTap final : public formats::ByteSink {
 public:
  CheckpointTap(formats::ImagePipeline& pipeline, const importer::TargetSink& sink,
                importer::Resumer& resumer, pvc::Target& target)
      : pipeline_(pipeline),
        sink_(sink),
        resumer_(resumer),
        target_(target),
        fed_(resumer.resumed_at()),
        qcow2_point_([this] { return pipeline_.Qcow2ResumePoint(); }) {}
  Status Feed(std::span<const uint8_t> bytes) override {
    CDI_RETURN_IF_ERROR(pipeline_.Feed(bytes));
    fed_ += bytes.size();
    importer::Reached reached;
    // The chain is known once the decoder began the image.
    if (sink_.begun()) reached.chain = pipeline_.format_chain();
    reached.source_offset = fed_;
    reached.covered = sink_.guest_bytes();
    reached.frame_boundary = pipeline_.TakeFrameBoundary(reached.covered);
    reached.qcow2_point = qcow2_point_;
    return resumer_.AfterFeed(reached, target_);
  }
  Status Finish() override { return pipeline_.Finish(); }

 private:
  formats::ImagePipeline& pipeline_;
  const importer::TargetSink& sink_;
  importer::Resumer& resumer_;
  pvc::Target& target_;
  uint64_t fed_;  // source bytes, the resumed part included
  const std::function<Result<std::optional<formats::ResumeAt>>()> qcow2_point_;
};

// The copy loop every content type shares: reads the input once, front to
// back, digests the image's bytes as served and feeds them to the format
// pipeline (through `feed` when given: a tap in front of the pipeline).
// Returns the bytes read from the source.
Result<uint64_t> Pump(importer::ImageInput& input, formats::ImagePipeline& pipeline, Digest& digest,
                      const CancelToken* cancel,
                      const std::function<void(uint64_t bytes_read)>& after_chunk,
                      formats::ByteSink* feed = nullptr) {
  ChecksumTap tap(digest, feed != nullptr ? *feed : pipeline);
  CDI_ASSIGN_OR_RETURN(uint64_t bytes_read, input.FeedTo(tap, cancel, after_chunk));
  if (cancel != nullptr && cancel->cancelled()) return CancelledError("import cancelled");
  CDI_RETURN_IF_ERROR(pipeline.Finish());
  CDI_RETURN_IF_ERROR(digest.Verify());
  return bytes_read;
}

// Turns archive entries into files and directories of the target.
class ArchiveSink : public formats::tar::EntryWriter {
 public:
  explicit ArchiveSink(pvc::DirectoryTarget* directory) : directory_(directory) {}

  Status Begin(const formats::tar::Entry& entry) override {
    entry_ = entry;
    Status status = entry.type == formats::tar::EntryType::kDirectory
                        ? directory_->MakeDirectory(entry.path, entry.mode, entry.mtime)
                        : directory_->BeginFile(entry.path, entry.size, entry.mode, entry.mtime);
    return status.Annotate("archive entry '" + entry.path + "'");
  }
  Status Data(std::span<const uint8_t> data) override {
    extracted_ += data.size();
    return directory_->WriteFile(data).Annotate("archive entry '" + entry_.path + "'");
  }
  Status End() override {
    if (entry_.type == formats::tar::EntryType::kDirectory) return Status::Ok();
    return directory_->EndFile().Annotate("archive entry '" + entry_.path + "'");
  }
  uint64_t extracted() const { return extracted_; }

 private:
  pvc::DirectoryTarget* directory_;
  formats::tar::Entry entry_;
  uint64_t extracted_ = 0;
};

Result<ImportResult> ImportArchive(const ImportSpec& spec, const importer::MemoryPlan& plan,
                                   const ImportHooks& hooks, Clock::time_point start,
                                   Digest& digest, std::unique_ptr<importer::ByteSource>& given) {
  const TargetSpec& target = spec.targets.front();
  if (target.kind == TargetKind::kBlockDevice || pvc::IsBlockDevice(target.path)) {
    return InvalidArgumentError(target.path +
                                " is a block device; archive content is extracted into a "
                                "directory of a filesystem volume");
  }
  CDI_RETURN_IF_ERROR(CheckOverhead(target.filesystem_overhead));
  if (importer::registry::IsDockerReference(spec.source.url)) {
    return InvalidArgumentError(
        "Unsupported content type archive when importing from registry: a registry image holds "
        "a disk image (content type kubevirt), which is what is imported from it");
  }
  // Local problems fail before any download; an uncommitted directory
  // target removes what it created when it goes.
  CDI_ASSIGN_OR_RETURN(
      std::unique_ptr<pvc::DirectoryTarget> directory,
      pvc::OpenDirectoryTarget(target.path, {.requested_size = target.requested_size,
                                             .filesystem_overhead = target.filesystem_overhead}));
  importer::ProgressReporter progress(hooks.on_progress, start);
  progress.Report(Phase::kConnecting);
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<importer::ImageInput> source,
                       OpenAndDescribe(spec, hooks, plan,
                                       PipelineOptionsFor(spec, plan, directory->capacity(),
                                                          std::nullopt),
                                       given));
  ArchiveSink sink(directory.get());
  formats::ImagePipeline pipeline(&sink,
                                  PipelineOptionsFor(spec, plan, directory->capacity(),
                                                     source->size()));
  auto update = [&](Phase phase, uint64_t bytes_read) {
    progress.Report({.phase = phase,
                     .source_bytes = bytes_read,
                     .source_size = source->size(),
                     .guest_bytes = sink.extracted()},
                    phase != Phase::kTransferring);
  };
  update(Phase::kTransferring, 0);
  CDI_ASSIGN_OR_RETURN(uint64_t bytes_read,
                       Pump(*source, pipeline, digest, hooks.cancel,
                            [&](uint64_t read) { update(Phase::kTransferring, read); }));
  update(Phase::kFlushing, bytes_read);
  if (hooks.cancel != nullptr && hooks.cancel->cancelled()) {
    return CancelledError("import cancelled");
  }
  CDI_RETURN_IF_ERROR(directory->Commit());

  const pvc::DirectoryStats stats = directory->stats();
  ImportResult result;
  result.format_chain = pipeline.format_chain();
  result.virtual_size = stats.bytes_total;
  result.target_size = stats.bytes_total;
  result.targets.push_back({target.path, Status::Ok(), stats.bytes_total});
  result.bytes_read = bytes_read;
  result.bytes_written = stats.bytes_written;
  result.bytes_zero = stats.bytes_skipped;
  result.checksum = digest.Expected();
  result.elapsed = Clock::now() - start;
  update(Phase::kDone, bytes_read);
  Logger()->info("Extracted {} ({} files, {} directories, {} bytes) into {} in {:.2f} s",
               JoinChain(result.format_chain), stats.files, stats.directories, stats.bytes_total,
               target.path, std::chrono::duration<double>(result.elapsed).count());
  return result;
}

// The disk image import once its targets are open (and, with checkpoints,
// the resume point found): the source, the pipeline, the commit.
Result<ImportResult> ImportDisk(const ImportSpec& spec, const ImportHooks& hooks,
                                std::unique_ptr<importer::ByteSource> given,
                                const importer::ImportFromOptions& from,
                                const importer::MemoryPlan& plan, Digest& digest,
                                Clock::time_point start, TargetSet& targets,
                                const std::vector<importer::SinkTarget>& sink_targets,
                                importer::Resumer* resumer,
                                const std::optional<importer::Checkpoint>& resume_from);

Result<ImportResult> ImportImpl(const ImportSpec& spec, const ImportHooks& hooks,
                                std::unique_ptr<importer::ByteSource> given,
                                const importer::ImportFromOptions& from = {}) {
  const Clock::time_point start = Clock::now();
  CDI_RETURN_IF_ERROR(ValidateSpec(spec, given != nullptr));
  Digest digest;
  if (!spec.checksum.empty()) {
    CDI_ASSIGN_OR_RETURN(digest.expected, ParseChecksum(spec.checksum));
    digest.checksum.emplace(digest.expected->algorithm);
  }
  const importer::MemoryPlan plan = PlanImportMemory(spec);
  if (spec.content_type == ContentType::kArchive) {
    return ImportArchive(spec, plan, hooks, start, digest, given);
  }

  // Declared before the resumer, which it outlives: a checkpoint on its way
  // uses the target.
  TargetSet targets;
  std::optional<importer::Resumer> resumer;
  if (spec.resume.mode == ResumeMode::kCheckpoints) {
    const std::string why = importer::WhyNoCheckpoints(spec, given != nullptr);
    if (why.empty()) {
      resumer.emplace(spec);
    } else {
      Logger()->info("No checkpoints: {}", why);
    }
  }

  // Local problems (a file in the way, a busy device) fail before any download.
  std::vector<importer::SinkTarget> sink_targets;
  const TargetMemory memory = TargetMemoryFor(spec, plan);
  if (spec.targets.size() > 1) {
    Logger()->debug("{} targets: up to {} bytes of direct I/O buffers and a {}-byte writeback "
                    "window each",
                    spec.targets.size(), memory.staging, memory.writeback_window);
  }
  for (const TargetSpec& target_spec : spec.targets) {
    auto opened = OpenTarget(target_spec, memory,
                             resumer ? pvc::StalePartial::kKeep : pvc::StalePartial::kEmpty);
    if (!opened.ok()) return opened.status();
    if (!resumer && (*opened)->kind() == pvc::TargetKind::kFile) {
      // Its partial file was emptied: a checkpoint beside it claims nothing.
      importer::RemoveCheckpoint(importer::CheckpointPath(target_spec.path));
    }
    const bool fill = (*opened)->kind() == pvc::TargetKind::kBlockDevice ||
                      target_spec.requested_size.has_value();
    sink_targets.push_back(
        {opened->get(), fill ? importer::Sizing::kToCapacity : importer::Sizing::kToVirtualSize});
    targets.Add(std::move(opened).value());
  }

  std::optional<importer::Checkpoint> resume_from;
  if (resumer) {
    Result<std::optional<importer::Checkpoint>> prepared =
        resumer->Prepare(*targets.targets().front());
    if (!prepared.ok()) {
      resumer->Failed(prepared.status());
      return prepared.status();
    }
    resume_from = *prepared;
  }
  Result<ImportResult> outcome =
      ImportDisk(spec, hooks, std::move(given), from, plan, digest, start, targets, sink_targets,
                 resumer ? &*resumer : nullptr, resume_from);
  if (resumer) {
    if (outcome.ok()) {
      resumer->Finished();
    } else if (resumer->Failed(outcome.status())) {
      targets.KeepAll();
    }
  }
  return outcome;
}

Result<ImportResult> ImportDisk(const ImportSpec& spec, const ImportHooks& hooks,
                                std::unique_ptr<importer::ByteSource> given,
                                const importer::ImportFromOptions& from,
                                const importer::MemoryPlan& plan, Digest& digest,
                                Clock::time_point start, TargetSet& targets,
                                const std::vector<importer::SinkTarget>& sink_targets,
                                importer::Resumer* resumer,
                                const std::optional<importer::Checkpoint>& resume_from) {
  importer::TargetSink sink(sink_targets);
  uint64_t smallest_capacity = UINT64_MAX;
  for (auto& t : targets.targets()) smallest_capacity = std::min(smallest_capacity, t->capacity());

  importer::ProgressReporter progress(hooks.on_progress, start);
  progress.Report(Phase::kConnecting);
  std::optional<importer::Checkpoint> from_checkpoint = resume_from;
  std::shared_ptr<formats::Qcow2Resume> qcow2_resume;
  if (resumer && from_checkpoint && from_checkpoint->format == importer::kQcow2Format) {
    // A qcow2 image continues with its tables before the checkpoint, fetched again.
    uint64_t metadata_bytes = 0;
    Result<formats::Qcow2Resume> fetched = importer::FetchQcow2Resume(
        WithConnectionMemory(spec.source, plan), *from_checkpoint, hooks.cancel, &metadata_bytes);
    if (fetched.ok()) {
      qcow2_resume = std::make_shared<formats::Qcow2Resume>(std::move(fetched).value());
    } else if (fetched.status().code() == ErrorCode::kCancelled ||
               (fetched.status().code() == ErrorCode::kNetwork && fetched.status().retryable())) {
      return fetched.status();  // the checkpoint stays for the next import
    } else {
      CDI_RETURN_IF_ERROR(resumer->StartOver(
          *targets.targets().front(),
          "the qcow2 image's header and tables cannot be fetched again for the checkpoint: " +
              fetched.status().message()));
      from_checkpoint.reset();
    }
  }
  auto served = std::make_shared<importer::HttpResumePoint>();
  if (resumer) {
    // The HTTP source itself: it continues an earlier download, and says
    // what it serves.
    importer::HttpSourceOptions http;
    http.served = served;
    if (from_checkpoint) {
      http.resume_from =
          importer::HttpResumePoint{from_checkpoint->source_offset, from_checkpoint->length,
                                    from_checkpoint->etag, from_checkpoint->last_modified};
    }
    CDI_ASSIGN_OR_RETURN(given, importer::OpenHttpSource(WithConnectionMemory(spec.source, plan),
                                                         hooks.cancel, http));
  }
  CDI_ASSIGN_OR_RETURN(
      std::unique_ptr<importer::ImageInput> source,
      OpenAndDescribe(spec, hooks, plan,
                      PipelineOptionsFor(spec, plan, smallest_capacity, std::nullopt), given));
  uint64_t resumed = 0;
  if (resumer) {
    CDI_RETURN_IF_ERROR(resumer->SourceOpened(*served, *targets.targets().front()));
    resumed = resumer->resumed_at();
    sink.ResumeAt(resumer->resumed_target());
    if (resumed > 0 && digest.checksum) CDI_RETURN_IF_ERROR(resumer->Rehash(*digest.checksum));
  }
  const std::optional<uint64_t> source_size = resumed > 0 ? resumer->length() : source->size();
  formats::PipelineOptions pipeline_options =
      PipelineOptionsFor(spec, plan, smallest_capacity, source->image_size(), from.raw_only);
  pipeline_options.frame_boundaries = resumer != nullptr;
  if (resumed > 0 && resumer->resumed_format() == importer::kZstdRawFormat) {
    pipeline_options.resume_zstd_at =
        formats::FrameBoundary{.compressed = resumed, .decompressed = resumer->resumed_target()};
  } else if (resumed > 0 && resumer->resumed_format() == importer::kXzRawFormat) {
    pipeline_options.resume_xz_at =
        formats::FrameBoundary{.compressed = resumed,
                               .decompressed = resumer->resumed_target(),
                               .xz_stream = resumer->resumed_xz_stream()};
  } else if (resumed > 0 && resumer->resumed_format() == importer::kQcow2Format) {
    pipeline_options.resume_qcow2 = qcow2_resume;
    pipeline_options.decoder.container_size = resumer->length();
  } else if (resumed > 0) {
    pipeline_options.resume_raw_at = resumed;
    pipeline_options.decoder.container_size = resumer->length();
  }
  formats::ImagePipeline pipeline(&sink, pipeline_options);
  std::optional<CheckpointTap> checkpoints;
  if (resumer) checkpoints.emplace(pipeline, sink, *resumer, *targets.targets().front());

  uint64_t bytes_read = resumed;
  bool announced = false;
  auto update = [&](Phase phase, bool force) {
    if (!announced && sink.begun()) {
      announced = true;
      Logger()->info("Detected {}, virtual size {}", JoinChain(pipeline.format_chain()),
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
  CDI_ASSIGN_OR_RETURN(const uint64_t fetched, Pump(
                                                   *source, pipeline, digest, hooks.cancel,
                                                   [&](uint64_t read) {
                                                     bytes_read = resumed + read;
                                                     update(Phase::kTransferring, false);
                                                   },
                                                   checkpoints ? &*checkpoints : nullptr));
  bytes_read = resumed + fetched;
  CDI_ASSIGN_OR_RETURN(uint64_t virtual_size, sink.Finalize());
  if (auto described = pipeline.Describe(); described && !described->details.empty()) {
    std::string facts;
    for (const auto& [name, value] : described->details) {
      facts += (facts.empty() ? "" : ", ") + name + " " + value;
    }
    Logger()->info("{} image: {}", described->format, facts);
  }
  update(Phase::kFlushing, true);
  if (hooks.cancel != nullptr && hooks.cancel->cancelled())
    return CancelledError("import cancelled");
  // No checkpoint may be written once the targets are complete.
  if (resumer) CDI_RETURN_IF_ERROR(resumer->Drain());
  CDI_RETURN_IF_ERROR(
      targets.CommitLive([&sink](size_t i) -> const Status& { return sink.failure(i); }));

  ImportResult result;
  result.format_chain = pipeline.format_chain();
  result.virtual_size = virtual_size;
  for (size_t i = 0; i < spec.targets.size(); ++i) {
    const Status& failure = sink.failure(i);
    const uint64_t size = failure.ok() ? targets.targets()[i]->size() : 0;
    result.targets.push_back({spec.targets[i].path, failure, size});
    if (failure.ok() && result.target_size == 0) result.target_size = size;
  }
  result.bytes_read = fetched;
  result.resumed_from = resumed;
  result.image_env = source->image_env();
  result.bytes_written = sink.bytes_written();
  result.bytes_zero = sink.bytes_zero();
  result.preallocated =
      std::any_of(spec.targets.begin(), spec.targets.end(),
                  [](const TargetSpec& t) { return t.preallocation == Preallocation::kOn; });
  result.checksum = digest.Expected();
  result.elapsed = Clock::now() - start;
  update(Phase::kDone, true);
  Logger()->info(
      "Imported {} ({} bytes virtual) in {:.2f} s: {} bytes written, {} bytes left zero{}",
      JoinChain(result.format_chain), virtual_size,
      std::chrono::duration<double>(result.elapsed).count(), result.bytes_written,
      result.bytes_zero,
      resumed > 0 ? ", continued from byte " + std::to_string(resumed) : std::string());
  return result;
}

}  // namespace

Result<ImportResult> Import(const ImportSpec& spec, const ImportHooks& hooks) {
  return ImportImpl(spec, hooks, nullptr);
}

namespace importer {
Result<ImportResult> ImportFrom(const ImportSpec& spec, std::unique_ptr<ByteSource> source,
                                const ImportHooks& hooks, const ImportFromOptions& options) {
  if (!source) return InvalidArgumentError("no source given");
  return ImportImpl(spec, hooks, std::move(source), options);
}
}  // namespace importer

Result<ImportResult> CreateBlankImage(const TargetSpec& target_spec) {
  const Clock::time_point start = Clock::now();
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<pvc::Target> target, OpenTarget(target_spec));
  TargetSet targets;  // aborts the target unless committed
  pvc::Target& t = *target;
  targets.Add(std::move(target));
  const uint64_t size = t.capacity();
  if (size == 0) {
    return TooSmallError("no room for a blank disk image at " + t.path() +
                         ": any size is larger than the reported available storage 0. A larger "
                         "PVC is required");
  }
  if (target_spec.requested_size && *target_spec.requested_size > size &&
      t.kind() == pvc::TargetKind::kFile) {
    Logger()->info("Space adjusted for filesystem overhead and free space: {} bytes", size);
  }
  if (t.kind() == pvc::TargetKind::kFile) {
    CDI_RETURN_IF_ERROR(t.SetSize(size));
  } else {
    CDI_RETURN_IF_ERROR(t.Zero(0, size));
  }
  CDI_RETURN_IF_ERROR(targets.CommitAll());
  ImportResult result;
  result.format_chain = {"raw"};
  result.virtual_size = size;
  result.target_size = size;
  result.targets.push_back({target_spec.path, Status::Ok(), size});
  result.bytes_zero = size;
  result.preallocated = target_spec.preallocation == Preallocation::kOn;
  result.elapsed = Clock::now() - start;
  Logger()->info("Created a blank disk image of {} bytes at {}", size, t.path());
  return result;
}

}  // namespace cdi
