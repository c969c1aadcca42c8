#include "pod/handover.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace cdi::pod {

std::string HandoverProgram(std::string_view name) {
  return std::string(kHandoverDir) + "/" + std::string(name);
}

std::optional<std::string> ImporterHandoverReason(const Environment& env) {
  // The sources CDI's importer knows and this one does not (pod_config.cc
  // refuses them by name when there is no hand-over).
  static constexpr std::array<std::string_view, 3> kCdiSources = {"gcs", "imageio",
                                                                  "vddk"};
  const std::string source = env.GetOr("IMPORTER_SOURCE");
  // Registries are read here through their docker:// references; CDI's
  // other transport (oci-archive:) goes to CDI's importer.
  if (source == "registry") {
    const std::string endpoint = AsciiLower(env.GetOr("IMPORTER_ENDPOINT"));
    if (!endpoint.empty() && !endpoint.starts_with("docker://")) {
      return "IMPORTER_SOURCE=registry (an " + endpoint.substr(0, endpoint.find(':')) +
             ": endpoint)";
    }
    return std::nullopt;
  }
  for (std::string_view known : kCdiSources) {
    if (source == known) return "IMPORTER_SOURCE=" + source;
  }
  // Registry node pull: an http source read from the containerimage server
  // beside the pod, after its ready file appears.
  if ((source.empty() || source == "http") && env.GetOr("IMPORTER_PULL_METHOD") == "node") {
    return std::string("IMPORTER_PULL_METHOD=node (registry node pull)");
  }
  return std::nullopt;
}

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

Status ExecProgram(const std::string& program, const std::vector<std::string>& arguments) {
  std::vector<char*> argv;
  argv.reserve(arguments.size() + 2);
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  execv(program.c_str(), argv.data());
  return Status(ErrorCode::kUnsupported,
                "cannot start " + program + ": " + std::string(std::strerror(errno)));
}

}  // namespace cdi::pod
