// `cdi-image apply`: imports every DataVolume that VirtualMachine,
// VirtualMachinePool and DataVolume manifests declare, into PVC directories or
// block devices, downloading each distinct image once.
//
//   cdi::apply::ApplyOptions options;
//   CLI::App* apply = cdi::apply::AddApplyCommand(&app, &options);
//   ...parse...
//   if (apply->parsed()) return cdi::apply::RunApply(options);
#ifndef CDI_CMD_CDI_IMAGE_APPLY_COMMAND_H_
#define CDI_CMD_CDI_IMAGE_APPLY_COMMAND_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace cdi::apply {

struct ApplyOptions {
  std::vector<std::string> files;  // -f: files, directories, or "-"
  std::string pvc_dir;
  std::vector<std::string> block;  // NAME=DEVICE
  std::vector<std::string> only;
  bool dry_run = false;
  std::string secrets_dir;
  std::string default_namespace = "default";
  std::string filesystem_overhead = "0.06";
  bool force = false;
  int max_parallel = 2;
  std::string output = "table";   // table | json
  std::string progress = "auto";  // auto | bar | plain | none
  std::string memory = "64Mi";
  std::string scratch_dir;
  int connect_timeout = 30;
  int stall_timeout = 60;
  // --no-resume: no checkpoints; a partial file an earlier run left is emptied.
  bool no_resume = false;
  std::string checkpoint_every = "32Mi";  // a checkpoint after this many bytes (or 10 s)
  // Set by the caller from the shared -q flag: no progress, no notes.
  bool quiet = false;
};

// Adds the `apply` subcommand and its flags to `parent`; parsed values land
// in *options, which must outlive parsing.
CLI::App* AddApplyCommand(CLI::App* parent, ApplyOptions* options);

// Runs apply; returns the process exit code (cmd/cli/exit_codes.h): 0 when
// every DataVolume was imported, 2 when the manifests or flags are wrong
// (nothing is imported then), otherwise the code of the first failed
// DataVolume. Installs SIGINT/SIGTERM handlers that cancel the imports.
int RunApply(const ApplyOptions& options);

}  // namespace cdi::apply

#endif  // CDI_CMD_CDI_IMAGE_APPLY_COMMAND_H_
