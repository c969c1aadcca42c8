#include "cmd/cdi-importer/importer_pod.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cmd/cli/exit_codes.h"
#include "cmd/cli/klog_logging.h"
#include "cmd/cli/signals.h"
#include "pod/handover.h"
#include "pod/metrics_server.h"
#include "pod/pod_config.h"
#include "pod/progress_metric.h"
#include "pod/termination_message.h"

namespace cdi::pod {
namespace {

// What the process leaves behind: its exit code and its termination message.
struct Outcome {
  int exit_code = cli::kExitOk;
  std::string termination;
};

Outcome PlainFailure(const std::string& text, int exit_code = cli::kExitInternal) {
  spdlog::error("{}", text);
  return {exit_code, PlainTerminationText(text)};
}

std::string_view ContentTypeName(ContentType type) {
  return type == ContentType::kArchive ? "archive" : "kubevirt";
}

Outcome Complete(std::optional<bool> scratch_space_required, bool preallocation_applied,
                 std::map<std::string, std::string> labels = {}) {
  return {cli::kExitOk, ToJson({.scratch_space_required = scratch_space_required,
                                .preallocation_applied = preallocation_applied,
                                .labels = std::move(labels),
                                .message = std::string(kCompleteMessage)})};
}

// IMPORTER_SOURCE=none.
Outcome RunBlank(const PodConfig& config, const PodPaths& paths, VolumeMode mode,
                 ProgressMetric& metric) {
  if (config.content_type == ContentType::kArchive) {
    return PlainFailure("Cannot create empty disk with content type archive");
  }
  TargetSpec target = MakeBlankTarget(config, paths, mode);
  spdlog::info("Creating a blank disk image at {}", target.path);
  Result<ImportResult> result = CreateBlankImage(target);
  if (!result.ok()) {
    return PlainFailure("Unable to create blank image: " + result.status().message());
  }
  metric.Update(1.0);
  // CDI's blank disks report no scratch space field.
  return Complete(std::nullopt, result->preallocated);
}

// IMPORTER_SOURCE=http, registry and s3.
Outcome RunImport(const PodConfig& config, const PodPaths& paths, VolumeMode mode,
                  ProgressMetric& metric, const CancelToken& cancel, uint64_t checkpoint_every) {
  const bool archive = config.content_type == ContentType::kArchive;
  if (archive && mode == VolumeMode::kBlock) {
    return PlainFailure(
        "Unable to process data: archive content (IMPORTER_CONTENTTYPE=archive) is extracted "
        "into a filesystem volume, and this pod has a block volume (" +
        paths.block_device + ")");
  }
  ImportSpec spec = MakeImportSpec(config, paths, mode);
  // A block volume keeps its checkpoint on the scratch volume, which CDI
  // makes for this one PVC's import (and removes with it), when there is one.
  const bool block_checkpoints = mode == VolumeMode::kBlock && !spec.scratch_dir.empty();
  if (!archive && (mode == VolumeMode::kFilesystem || block_checkpoints) &&
      checkpoint_every > 0) {
    // A pod that dies (evicted, out of memory, its node drained) is started
    // again by CDI: the new one continues where the checkpoint says.
    spec.resume.mode = ResumeMode::kCheckpoints;
    spec.resume.checkpoint_bytes = checkpoint_every;
    if (block_checkpoints) spec.resume.checkpoint_dir = spec.scratch_dir;
  }
  const TargetSpec& target = spec.targets.front();
  if (!archive && mode == VolumeMode::kFilesystem) {
    // A disk image left by an earlier attempt must not hold space the new
    // one needs (CDI removes it too).
    if (unlink(target.path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("cannot remove {} left by an earlier attempt: {}", target.path,
                   std::strerror(errno));
    }
  }

  // Which step failed decides the message: the library reports connecting
  // before it opens the source and transferring once the source answered.
  std::optional<Phase> phase;
  ImportHooks hooks;
  hooks.cancel = &cancel;
  hooks.on_progress = [&](const Progress& progress) {
    phase = progress.phase;
    metric.Update(progress.Fraction());
  };
  Result<ImportResult> result = Import(spec, hooks);
  if (result.ok()) {
    // CDI reports preallocation only for disk images; archives never apply it.
    // A registry image's KUBEVIRT_IO_ variables become labels, as CDI's do.
    return Complete(false, !archive && result->preallocated, EnvToLabels(result->image_env));
  }

  const Status& status = result.status();
  if (status.code() == ErrorCode::kCancelled) {
    if (spec.resume.mode == ResumeMode::kCheckpoints && KeptForResume(target.path, spec.resume.checkpoint_dir)) {
      return PlainFailure(
          "Unable to process data: the import was cancelled by a signal; what it had written "
          "up to its last checkpoint was kept, and the next attempt continues from there",
          cli::kExitCancelled);
    }
    return PlainFailure(
        "Unable to process data: the import was cancelled by a signal; what it "
        "had written was removed",
        cli::kExitCancelled);
  }
  if (phase == Phase::kConnecting) {
    if (config.source == SourceKind::kRegistry) {
      // "failed to pull image" is what CDI's controller looks for (the
      // ImagePullFailed reason a DataImportCron acts on).
      return PlainFailure("Unable to process data: Failed to read registry image: failed to pull "
                          "image: " + status.message());
    }
    return PlainFailure("Unable to connect to " + std::string(SourceName(config.source)) +
                        " data source: " + status.message());
  }
  std::string text = "Unable to process data: ";
  if (phase) {
    text += archive ? "Unable to transfer source data to target directory: "
                    : "Unable to transfer source data to target file: ";
  }
  if (status.code() == ErrorCode::kChecksumMismatch) {
    // Exit 0 with a JSON message: the controller marks the import failed for
    // good instead of restarting the pod for the same bytes again.
    text += "checksum validation failed: " + status.message();
    spdlog::error("{}", text);
    return {cli::kExitOk, ToJson({.message = text})};
  }
  return PlainFailure(text + status.message());
}

void LogConfiguration(const PodConfig& config, const PodPaths& paths, VolumeMode mode) {
  spdlog::info(
      "Source {}, content {}, {} volume{}, requested size {}, filesystem overhead {}, "
      "preallocation {}",
      config.source == SourceKind::kBlank ? "none (blank disk)"
      : config.source == SourceKind::kS3
          ? RedactUrl(config.s3_url) + " at " + config.s3.endpoint + " (region " +
                config.s3.region + (config.s3.access_key_id.empty() ? ", unsigned)" : ")")
          : RedactUrl(config.endpoint),
      ContentTypeName(config.content_type), mode == VolumeMode::kBlock ? "block" : "filesystem",
      mode == VolumeMode::kBlock ? " " + paths.block_device : " " + paths.data_dir,
      config.image_size ? std::to_string(*config.image_size) : "unset", config.filesystem_overhead,
      config.preallocation == Preallocation::kOn ? "on" : "off");
  if (config.cache_mode == "TRYNONE") {
    // Long runs of data always go out with O_DIRECT where the volume allows
    // it (pvc/direct_writer.h); the rest is flushed and dropped from the
    // page cache every 32 MiB (pvc/writeback.h).
    spdlog::info(
        "CACHE_MODE=TRYNONE: data is written with O_DIRECT where the volume allows it, as "
        "always");
  }
  if (!config.extra_headers.empty()) {
    spdlog::info("Sending {} extra header(s)", config.extra_headers.size());
  }
}

// Hands the pod over to CDI's importer when its source is one this importer
// does not implement and the hand-over program exists (the overlay image).
// Returns only when the pod stays here: no hand-over is needed or possible
// (the caller's refusal follows), or exec failed (the outcome says why).
std::optional<Outcome> HandOverIfNeeded(const Environment& env, const std::string& program,
                                        const std::vector<std::string>& arguments,
                                        const PodPaths& paths) {
  const std::optional<std::string> reason = ImporterHandoverReason(env);
  if (!reason) return std::nullopt;
  if (!IsExecutableFile(program)) {
    spdlog::info("{}: no hand-over to CDI's importer, {} is not in this image", *reason, program);
    return std::nullopt;
  }
  const PodPaths defaults;
  if (paths.data_dir != defaults.data_dir || paths.block_device != defaults.block_device ||
      paths.termination_log != defaults.termination_log ||
      paths.metrics_address != defaults.metrics_address) {
    spdlog::warn("CDI's importer takes no path flags: it uses CDI's paths (/data, "
                 "/dev/cdi-block-volume, /dev/termination-log, :8443)");
  }
  const std::vector<std::string> klog = KlogArguments(arguments);
  std::string shown;
  for (const std::string& argument : klog) shown += (shown.empty() ? "" : " ") + argument;
  spdlog::info("{} is not implemented by this importer: handing the pod over to CDI's importer "
               "{} (arguments: {}; the environment as it is)",
               *reason, program, shown.empty() ? "none" : shown);
  spdlog::default_logger()->flush();
  Status failed = ExecProgram(program, klog);
  return PlainFailure("Unable to process data: handing " + *reason +
                      " over to CDI's importer failed: " + failed.message());
}

}  // namespace

int RunImporterPod(int argc, char** argv) {
  PodPaths paths;
  int verbosity = 1;
  CLI::App app{
      "cdi-importer " + std::string(Version()) +
      ": the importer pod's entrypoint for KubeVirt CDI. Reads CDI's importer environment "
      "(IMPORTER_SOURCE, IMPORTER_ENDPOINT, ...), imports into the PVC mounted at the data "
      "directory or the block device, serves the progress metric and writes the "
      "termination message."};
  app.add_option("--data-dir", paths.data_dir, "filesystem volume mount")->capture_default_str();
  app.add_option("--block-device", paths.block_device,
                 "block volume device; when it exists the volume is a block volume")
      ->capture_default_str();
  app.add_option("--scratch-dir", paths.scratch_dir,
                 "scratch volume, used for out-of-order qcow2 data when it exists")
      ->capture_default_str();
  app.add_option("--termination-log", paths.termination_log, "where the termination message goes")
      ->capture_default_str();
  app.add_option("--metrics-address", paths.metrics_address,
                 "HTTPS address of the progress metric (host:port, :port)")
      ->capture_default_str();
  app.add_option("--proxy-cert-dir", paths.proxy_cert_dir,
                 "directory of the cluster-wide proxy CA bundle")
      ->capture_default_str();
  app.add_option("--extra-headers-dir", paths.extra_headers_dir,
                 "directory of secret extra headers (<i>/<key> files)")
      ->capture_default_str();
  // Repeated klog flags: the last one counts, as in Go's flag package.
  app.add_option("--v", verbosity, "log verbosity, klog style (-v=3: debug)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bool log_to_stderr = true;
  app.add_flag("--alsologtostderr,--logtostderr", log_to_stderr,
               "klog's flags, as CDI passes them: accepted; logs always go to standard error")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string handover_program = HandoverProgram("cdi-importer");
  app.add_option("--handover-program", handover_program,
                 "CDI's importer, to hand the sources this importer does not implement (gcs, "
                 "imageio, vddk, registry node pull, oci-archive registry endpoints) over to; "
                 "used when it exists")
      ->capture_default_str();
  std::string checkpoint_every = "32Mi";
  app.add_option("--checkpoint-every", checkpoint_every,
                 "a checkpoint after this many bytes of the image (a quantity; 0: none), so "
                 "that a pod started again continues where this one stopped; beside the disk "
                 "image on a filesystem volume, on the scratch volume for a block volume (none "
                 "without one)")
      ->capture_default_str();
  app.set_version_flag("--version", "cdi-importer " + std::string(Version()));

  const std::vector<std::string> given(argv + 1, argv + argc);
  std::vector<std::string> arguments = NormalizeVerbosityArguments(given);
  if (std::optional<int> exit_code = cli::ParsePodArguments(app, arguments)) return *exit_code;
  cli::ConfigureKlogLogging("cdi-importer", verbosity);
  spdlog::info("Starting importer (cdi-importer {})", Version());

  const Environment env = Environment::FromProcess();
  if (std::optional<Outcome> failed = HandOverIfNeeded(env, handover_program, given, paths)) {
    Status written = WriteTerminationLog(paths.termination_log, failed->termination);
    if (!written.ok()) spdlog::error("{}", written.message());
    return failed->exit_code;
  }
  // The metric is served from the start, as CDI's importer does.
  ProgressMetric metric(env.GetOr("OWNER_UID"));
  std::unique_ptr<MetricsServer> metrics;
  if (auto server =
          MetricsServer::Start(paths.metrics_address, [&metric] { return metric.Exposition(); });
      server.ok()) {
    metrics = std::move(server).value();
    spdlog::info("Serving the progress metric on https://{}/metrics (port {})",
                 paths.metrics_address, metrics->port());
  } else {
    // Progress is a convenience: the import goes on without it.
    spdlog::warn("no progress metric: {}", server.status().message());
  }

  static CancelToken cancel;
  cli::CancelOnSignals(&cancel);

  Outcome outcome;
  Result<PodConfig> config = ParsePodEnvironment(env, paths);
  if (!config.ok()) {
    outcome = PlainFailure(config.status().message());
  } else {
    const VolumeMode mode = DetectVolumeMode(paths);
    LogConfiguration(*config, paths, mode);
    Result<uint64_t> every = ParseQuantity(checkpoint_every);
    if (!every.ok()) {
      outcome = PlainFailure("--checkpoint-every: " + every.status().message());
    } else {
      outcome = config->source == SourceKind::kBlank
                    ? RunBlank(*config, paths, mode, metric)
                    : RunImport(*config, paths, mode, metric, cancel, *every);
    }
  }

  Status written = WriteTerminationLog(paths.termination_log, outcome.termination);
  if (!written.ok()) {
    spdlog::error("{}", written.message());
    if (outcome.exit_code == cli::kExitOk) return cli::kExitInternal;
  }
  spdlog::info("Termination message: {}", outcome.termination);
  return outcome.exit_code;
}

}  // namespace cdi::pod
