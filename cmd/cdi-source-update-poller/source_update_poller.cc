#include "cmd/cdi-source-update-poller/source_update_poller.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "pod/go_flags.h"
#include "pod/handover.h"
#include "pod/kube_client.h"
#include "pod/pod_config.h"
#include "pod/registry_poller.h"

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
    if (name == "handover-program" || name == "service-account-dir") {
      if (!has_value) ++i;
      continue;
    }
    if (name == "version") continue;
    out.push_back(argument);
  }
  return out;
}

// Go's time.Now().Format(time.RFC3339): local time, "Z" or "+hh:mm".
std::string NowRfc3339() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  std::string out = text;
  const long offset = local.tm_gmtoff;  // NOLINT(google-runtime-int): tm's type
  if (offset == 0) return out + "Z";
  const long minutes = (offset < 0 ? -offset : offset) / 60;  // NOLINT(google-runtime-int)
  std::snprintf(text, sizeof text, "%c%02ld:%02ld", offset < 0 ? '-' : '+', minutes / 60,
                minutes % 60);
  return out + text;
}

// The poller itself, in the CronJob's pod: the digest from the registry, then
// the DataImportCron's annotations through the API server.
int PollNatively(const pod::Environment& env, const pod::KubeConfig& kube,
                 const std::string& cron_namespace, const std::string& cron_name,
                 const std::string& url, const std::string& cert_dir) {
  pod::RegistryPollSettings settings;
  settings.url = url;
  settings.cert_dir = cert_dir;
  settings.user = env.GetOr("IMPORTER_ACCESS_KEY_ID");
  settings.password = env.GetOr("IMPORTER_SECRET_KEY");
  settings.insecure = pod::ParseGoBool(env.GetOr("INSECURE_TLS")).value_or(false);
  Result<std::string> digest = pod::RegistryDigest(settings);
  if (!digest.ok()) {
    pod::GoLog("Failed to get image digest: " + digest.status().message());
    return 1;
  }
  pod::GoLog("Digest is " + *digest);
  Result<bool> updated =
      pod::RecordDigest(pod::KubeClient(kube), cron_namespace, cron_name, *digest, NowRfc3339());
  if (!updated.ok()) {
    pod::GoLog(updated.status().message());
    return 1;
  }
  pod::GoLog(*updated ? "Digest updated" : "No digest update");
  return 0;
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
  std::string service_account_dir = pod::kServiceAccountDir;
  flags.String("service-account-dir", &service_account_dir,
               "where the pod's service account (token, ca.crt) is mounted");
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

  // In the CronJob's pod (the API server from the service account, no
  // -kubeconfig or -server): the poller runs here. Elsewhere CDI's poller,
  // which reads kubeconfig files, takes over when the image has it.
  const pod::Environment env = pod::Environment::FromProcess();
  Result<pod::KubeConfig> kube =
      config_path.empty() && kube_url.empty()
          ? pod::InClusterConfig(env, service_account_dir)
          : Result<pod::KubeConfig>(InvalidArgumentError(
                "-kubeconfig and -server (and KUBECONFIG) are read by CDI's poller only"));
  if (kube.ok()) return PollNatively(env, *kube, cron_namespace, cron_name, url, cert_dir);
  if (!pod::IsExecutableFile(handover_program)) {
    pod::GoLog("Failed to get image digest: this poller runs in the CronJob's pod only (" +
               kube.status().message() + "), and CDI's poller, which runs anywhere, is not in " +
               "this image (" + handover_program +
               "); run it in its pod, or with the overlay image (Containerfile.cdi-overlay)");
    return 1;
  }
  pod::GoLog(kube.status().message() + ": handing DataImportCron " +
             cron_namespace + "/" + cron_name + " over to " + handover_program);
  Status failed = pod::ExecProgram(handover_program, CdiArguments(arguments));
  pod::GoLog("Failed to get image digest: " + failed.message());
  return 1;
}

}  // namespace cdi::poller
