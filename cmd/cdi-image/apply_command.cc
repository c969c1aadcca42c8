#include "cmd/cdi-image/apply_command.h"

#include <cstdio>

#include "cdi/import.h"
#include "cdi/quantity.h"
#include "cmd/cdi-image/multi_progress.h"
#include "cmd/cdi-image/report.h"
#include "cmd/cli/exit_codes.h"
#include "cmd/cli/progress_view.h"
#include "cmd/cli/signals.h"
#include "manifests/manifest.h"
#include "manifests/resolve.h"
#include "manifests/runner.h"
#include "manifests/targets.h"

namespace cdi::apply {
namespace {

// Options that do not come from manifests; a wrong one is a usage error.
Status BuildOptions(const ApplyOptions& flags, ResolveOptions* resolve, RunOptions* run) {
  resolve->pvc_dir = flags.pvc_dir;
  while (resolve->pvc_dir.size() > 1 && resolve->pvc_dir.back() == '/') resolve->pvc_dir.pop_back();
  resolve->default_namespace = flags.default_namespace;
  resolve->only = flags.only;
  resolve->secrets_dir = flags.secrets_dir;
  Result<double> overhead = ParseOverhead(flags.filesystem_overhead);
  if (!overhead.ok()) return overhead.status().Annotate("--filesystem-overhead");
  resolve->filesystem_overhead = *overhead;
  for (const std::string& mapping : flags.block) {
    const size_t equals = mapping.find('=');
    if (equals == std::string::npos || equals == 0 || equals + 1 == mapping.size()) {
      return InvalidArgumentError("--block " + mapping +
                                  ": expected NAME=DEVICE, e.g. --block my-disk=/dev/sdb");
    }
    resolve->block_devices.emplace_back(mapping.substr(0, equals), mapping.substr(equals + 1));
  }
  run->max_parallel = flags.max_parallel;
  run->existing = flags.force ? ExistingFile::kReplace : ExistingFile::kRefuse;
  Result<uint64_t> memory = ParseQuantity(flags.memory);
  if (!memory.ok()) return memory.status().Annotate("--memory");
  run->memory_budget = *memory;
  run->scratch_dir = flags.scratch_dir;
  run->network.connect_timeout = std::chrono::seconds(flags.connect_timeout);
  run->network.stall_window = std::chrono::seconds(flags.stall_timeout);
  run->resume.mode = flags.no_resume ? ResumeMode::kOff : ResumeMode::kCheckpoints;
  Result<uint64_t> every = ParseQuantity(flags.checkpoint_every);
  if (!every.ok()) return every.status().Annotate("--checkpoint-every");
  if (*every < kMiB) {
    return InvalidArgumentError("--checkpoint-every: at least 1Mi, got " + flags.checkpoint_every);
  }
  run->resume.checkpoint_bytes = *every;
  return Status::Ok();
}

// Reports problems that stop the run before anything is written.
int ReportProblems(const Problems& problems, const Plan& plan, bool json, RunMode mode) {
  for (const Problem& problem : problems.list()) {
    std::fprintf(stderr, "error: %s\n", problem.ToString().c_str());
  }
  std::fprintf(stderr, "error: %zu %s; nothing was imported\n", problems.size(),
               problems.size() == 1 ? "problem" : "problems");
  if (json) {
    std::printf("%s\n", ReportJson(plan, {}, problems, mode, cli::kExitUsage).c_str());
    std::fflush(stdout);
  }
  return cli::kExitUsage;
}

}  // namespace

CLI::App* AddApplyCommand(CLI::App* parent, ApplyOptions* o) {
  CLI::App* apply = parent->add_subcommand(
      "apply",
      "import the DataVolumes that VirtualMachine, VirtualMachinePool and DataVolume manifests "
      "declare (with their DataSources, Secrets and ConfigMaps), each distinct image downloaded "
      "once");
  apply
      ->add_option("-f,--filename", o->files,
                   "manifest file (multi-document YAML), directory of them, or - for standard "
                   "input (repeatable)")
      ->required();
  apply->add_option("--pvc-dir", o->pvc_dir,
                    "directory standing for the PVCs: a Filesystem DataVolume is imported into "
                    "DIR/<namespace>/<name>/disk.img; a Block DataVolume keeps its checkpoints "
                    "in DIR/<namespace>/<name>/");
  apply->add_option("--block", o->block,
                    "NAME=DEVICE: import DataVolume NAME (or namespace/NAME), a volumeMode: Block "
                    "volume, onto this block device (repeatable)");
  apply->add_option("--only", o->only,
                    "import only this DataVolume, NAME or namespace/NAME; pool replicas are "
                    "<template name>-<index> (repeatable)");
  apply->add_flag("--dry-run", o->dry_run, "check everything and print the plan; write nothing");
  apply
      ->add_option("--secrets-dir", o->secrets_dir,
                   "directory of mounted Secrets, DIR/<namespace>/<name>/<key>, for Secrets not "
                   "given with -f")
      ->check(CLI::ExistingDirectory);
  apply
      ->add_option("-n,--namespace", o->default_namespace,
                   "namespace of objects whose metadata has none")
      ->capture_default_str();
  apply
      ->add_option("--filesystem-overhead", o->filesystem_overhead,
                   "fraction of a Filesystem volume kept for the filesystem, as CDI applies it "
                   "(Block volumes: 0)")
      ->capture_default_str();
  apply->add_flag("--force", o->force, "replace disk.img files that already exist");
  apply->add_option("--max-parallel", o->max_parallel, "distinct images streaming at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  apply->add_option("--output", o->output, "the summary: a table, or one JSON object")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  apply
      ->add_option("--progress", o->progress,
                   "progress on standard error: bar (lines redrawn), plain lines, none; auto: bar "
                   "on a terminal")
      ->check(CLI::IsMember({"auto", "bar", "plain", "none"}))
      ->capture_default_str();
  apply->add_option("--memory", o->memory, "memory budget of each download (a quantity)")
      ->capture_default_str();
  apply->add_option("--scratch-dir", o->scratch_dir,
                    "where out-of-order qcow2 data may spill (default $TMPDIR)");
  apply->add_option("--connect-timeout", o->connect_timeout, "seconds to wait for a connection")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  apply
      ->add_option("--stall-timeout", o->stall_timeout,
                   "seconds of a stalled transfer before it fails")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  apply->add_flag("--no-resume", o->no_resume,
                  "write no checkpoints, and start every DataVolume from byte 0 (by default an "
                  "interrupted apply run again continues each image from its checkpoint; see "
                  "README, Resilience)");
  apply
      ->add_option("--checkpoint-every", o->checkpoint_every,
                   "a checkpoint after this many bytes of each image (a quantity, at least 1Mi), "
                   "or every 10 s")
      ->capture_default_str();
  return apply;
}

int RunApply(const ApplyOptions& flags) {
  const bool json = flags.output == "json";
  const RunMode mode = flags.dry_run ? RunMode::kDryRun : RunMode::kImport;
  ResolveOptions resolve_options;
  RunOptions run_options;
  if (Status status = BuildOptions(flags, &resolve_options, &run_options); !status.ok()) {
    Problems problems;
    problems.Add(Problem{.message = status.message()});
    return ReportProblems(problems, Plan{}, json, mode);
  }
  Result<std::vector<Document>> documents = LoadManifestFiles(flags.files);
  if (!documents.ok()) {
    Problems problems;
    problems.Add(Problem{.message = documents.status().message()});
    return ReportProblems(problems, Plan{}, json, mode);
  }

  Resolution resolution = Resolve(*documents, resolve_options);
  Plan& plan = resolution.plan;
  if (resolution.problems.empty()) CheckTargets(run_options.existing, &plan, &resolution.problems);
  if (!flags.quiet) {
    for (const std::string& note : plan.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  }
  if (!resolution.problems.empty()) return ReportProblems(resolution.problems, plan, json, mode);
  if (plan.data_volumes.empty()) {
    if (!flags.quiet)
      std::fprintf(stderr, "note: the manifests declare no DataVolumes to import\n");
    if (json) std::printf("%s\n", ReportJson(plan, {}, resolution.problems, mode, 0).c_str());
    return cli::kExitOk;
  }

  if (flags.dry_run) {
    if (json) {
      std::printf("%s\n", ReportJson(plan, {}, resolution.problems, mode, 0).c_str());
    } else {
      std::printf("%s", PlanText(plan).c_str());
      std::printf("\n--dry-run: nothing was written\n");
    }
    std::fflush(stdout);
    return cli::kExitOk;
  }

  const bool checkpoints = run_options.resume.mode == ResumeMode::kCheckpoints;
  if (Status status = PrepareTargets(plan, checkpoints); !status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.message().c_str());
    return cli::ExitCodeFor(status.code());
  }
  if (!flags.quiet) {
    std::fprintf(stderr, "Importing %zu DataVolume%s from %zu download%s\n",
                 plan.data_volumes.size(), plan.data_volumes.size() == 1 ? "" : "s",
                 plan.downloads.size(), plan.downloads.size() == 1 ? "" : "s");
  }

  static CancelToken cancel;
  cli::CancelOnSignals(&cancel);
  MultiProgressView view(flags.quiet ? cli::ProgressStyle::kNone : cli::ParseProgressStyle(flags.progress),
                         stderr, plan);
  RunHooks hooks;
  hooks.cancel = &cancel;
  hooks.on_progress = [&view](size_t download, const Progress& p) { view.Update(download, p); };
  hooks.on_download_done = [&view](size_t download, const std::vector<Outcome>& outcomes) {
    view.DownloadDone(download, outcomes);
  };
  std::vector<Outcome> outcomes = RunPlan(plan, run_options, hooks);
  view.Finish();
  RemoveEmptyCheckpointDirs(plan);

  const int exit_code = ExitCodeOf(outcomes);
  if (json) {
    std::printf("%s\n", ReportJson(plan, outcomes, resolution.problems, mode, exit_code).c_str());
  } else {
    std::printf("%s", SummaryTable(plan, outcomes).c_str());
  }
  std::fflush(stdout);
  return exit_code;
}

}  // namespace cdi::apply
