#include "cmd/cdi-source-update-poller/source_update_poller.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "pod/go_flags.h"
#include "pod/handover.h"

namespace cdi::poller {
namespace {

// `arguments` without this program's own flags: what CDI's poller takes.
std::vector<std::string> CdiArguments(const std::vector<std::string>& arguments) {
  std::vector<std::string> out;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") {
      out.insert(out.end(), arguments.begin() + static_cast<std::ptrdiff_t>(i), arguments.end());
      break;
    }
    std::string name = argument;
    name.erase(0, name.find_first_not_of('-'));
    const bool has_value = name.find('=') != std::string::npos;
    name = name.substr(0, name.find('='));
    if (name == "handover-program") {
      if (!has_value) ++i;
      continue;
    }
    if (name == "version") continue;
    out.push_back(argument);
  }
  return out;
}

}  // namespace

int RunSourceUpdatePoller(const std::string& program, const std::vector<std::string>& arguments) {
  const char* kubeconfig = std::getenv("KUBECONFIG");
  std::string config_path = kubeconfig != nullptr ? kubeconfig : "";
  std::string kube_url, cron_namespace, cron_name, url, cert_dir;
  std::string handover_program = pod::HandoverProgram("cdi-source-update-poller");
  bool version = false;
  pod::GoFlagSet flags(program);
  flags.String("kubeconfig", &config_path, "(Optional) Overrides $KUBECONFIG.");
  flags.String("server", &kube_url,
               "(Optional) URL address of a remote api server.  Do not set for local clusters.");
  flags.String("ns", &cron_namespace, "DataImportCron namespace.");
  flags.String("cron", &cron_name, "DataImportCron name.");
  flags.String("url", &url, "registry source url.");
  flags.String("certdir", &cert_dir, "registry certificates path.");
  flags.String("handover-program", &handover_program,
               "CDI's poller, which reads the registry until this one can");
  flags.Bool("version", &version, "print the version and exit");
  switch (flags.Parse(arguments)) {
    case pod::GoFlagSet::Outcome::kParsed:
      break;
    case pod::GoFlagSet::Outcome::kHelp:
      std::fputs(flags.Usage().c_str(), stderr);
      return 0;
    case pod::GoFlagSet::Outcome::kError:
      std::fprintf(stderr, "%s\n%s", flags.error().c_str(), flags.Usage().c_str());
      return 2;
  }
  if (version) {
    std::printf("cdi-source-update-poller %s\n", std::string(Version()).c_str());
    return 0;
  }
  if (url.empty() || cron_namespace.empty() || cron_name.empty()) {
    pod::GoLog("One or more mandatory parameters are missing");
    return 1;
  }

  // The digest of the tag comes from the registry: CDI's poller reads it
  // until a native registry client exists.
  if (!pod::IsExecutableFile(handover_program)) {
    pod::GoLog("Failed to get image digest: this image reads no registry itself, and CDI's "
               "poller is not in it (" + handover_program +
               "); run DataImportCrons of registry sources with the overlay image "
               "(Containerfile.cdi-overlay)");
    return 1;
  }
  pod::GoLog("Registry digests are read by CDI's poller: handing DataImportCron " +
             cron_namespace + "/" + cron_name + " over to " + handover_program);
  Status failed = pod::ExecProgram(handover_program, CdiArguments(arguments));
  pod::GoLog("Failed to get image digest: " + failed.message());
  return 1;
}

}  // namespace cdi::poller
