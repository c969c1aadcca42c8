#include "cmd/cdi-uploadserver/uploadserver_pod.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cmd/cli/exit_codes.h"
#include "cmd/cli/klog_logging.h"
#include "cmd/cli/signals.h"
#include "pod/pod_config.h"
#include "pod/termination_message.h"
#include "uploadserver/upload_config.h"
#include "uploadserver/upload_server.h"

namespace cdi::uploadserver {
namespace {

int Finish(const UploadPaths& paths, int exit_code, const std::string& termination) {
  Status written = pod::WriteTerminationLog(paths.termination_log, termination);
  if (!written.ok()) {
    spdlog::error("{}", written.message());
    if (exit_code == cli::kExitOk) return cli::kExitInternal;
  }
  spdlog::info("Termination message: {}", termination);
  return exit_code;
}

int Failure(const UploadPaths& paths, const std::string& text, int exit_code = cli::kExitInternal) {
  spdlog::error("{}", text);
  return Finish(paths, exit_code, pod::PlainTerminationText(text));
}

}  // namespace

int RunUploadServerPod(int argc, char** argv) {
  UploadPaths paths;
  int verbosity = 1;
  CLI::App app{"cdi-uploadserver " + std::string(Version()) +
               ": the upload server pod's entrypoint for KubeVirt CDI. Reads CDI's upload server "
               "environment (LISTEN_PORT, DESTINATION, TLS_CERT_FILE, ...), takes one upload "
               "over HTTPS, writes it onto the volume converted while it arrives, writes the "
               "termination message and exits."};
  app.add_option("--data-dir", paths.data_dir,
                 "filesystem volume mount: archives are extracted here, and DESTINATION "
                 "defaults to <data dir>/disk.img")
      ->capture_default_str();
  app.add_option("--scratch-dir", paths.scratch_dir,
                 "scratch volume, used for out-of-order qcow2 data when it exists")
      ->capture_default_str();
  app.add_option("--termination-log", paths.termination_log, "where the termination message goes")
      ->capture_default_str();
  double resume_wait_seconds = 600;
  app.add_option("--resume-wait", resume_wait_seconds,
                 "seconds an upload whose connection dropped waits for a PATCH that continues "
                 "it (HEAD answers the Upload-Offset to continue at)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--v", verbosity, "log verbosity, klog style (-v=3: debug)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bool log_to_stderr = true;
  app.add_flag("--alsologtostderr,--logtostderr", log_to_stderr,
               "klog's flags, as CDI passes them: accepted; logs always go to standard error")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "cdi-uploadserver " + std::string(Version()));

  const std::vector<std::string> given(argv + 1, argv + argc);
  std::vector<std::string> arguments = pod::NormalizeVerbosityArguments(given);
  if (std::optional<int> exit_code = cli::ParsePodArguments(app, arguments)) return *exit_code;
  cli::ConfigureKlogLogging("cdi-uploadserver", verbosity);
  spdlog::info("Starting upload server (cdi-uploadserver {})", Version());

  Result<UploadConfig> config = ParseUploadEnvironment(pod::Environment::FromProcess(), paths);
  if (!config.ok()) return Failure(paths, config.status().message());
  config->resume_wait =
      std::chrono::milliseconds(static_cast<int64_t>(resume_wait_seconds * 1000));
  spdlog::info("Destination {}, requested size {}, filesystem overhead {}, preallocation {}",
               config->destination,
               config->image_size ? std::to_string(*config->image_size) : "unset",
               config->filesystem_overhead,
               config->preallocation == Preallocation::kOn ? "on" : "off");

  static CancelToken stop;
  cli::CancelOnSignals(&stop);
  Result<std::unique_ptr<UploadServer>> server = UploadServer::Start(*config);
  if (!server.ok()) return Failure(paths, "UploadServer failed: " + server.status().message());
  spdlog::info("Running server on {}:{}", config->listen_host, (*server)->port());

  Result<RunOutcome> outcome = (*server)->Run(&stop);
  server->reset();
  if (!outcome.ok()) {
    if (outcome.status().code() == ErrorCode::kCancelled) {
      return Failure(paths, "UploadServer stopped: " + outcome.status().message(),
                     cli::kExitCancelled);
    }
    return Failure(paths, "UploadServer failed: Saving stream failed: " + outcome.status().message());
  }
  pod::TerminationMessage message;
  if (outcome->deadline_passed) {
    message.deadline_passed = true;
    message.message = "Deadline Passed";
  } else {
    message.preallocation_applied = outcome->preallocation_applied;
    message.message = outcome->clone_target ? "Clone Complete" : "Upload Complete";
  }
  const int code = Finish(paths, cli::kExitOk, pod::ToJson(message));
  if (code == cli::kExitOk) spdlog::info("UploadServer successfully exited");
  return code;
}

}  // namespace cdi::uploadserver
