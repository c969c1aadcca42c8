#include "pod/registry_poller.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "sources/registry/registry_client.h"

namespace cdi::pod {

std::string EscapeJsonPointer(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::string> RegistryDigest(const RegistryPollSettings& settings) {
  SourceSpec spec;
  spec.url = settings.url;
  if (!settings.cert_dir.empty()) spec.tls.ca_dirs.push_back(settings.cert_dir);
  struct stat st {};
  if (stat(settings.proxy_cert_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    spec.tls.ca_dirs.push_back(settings.proxy_cert_dir);
  }
  // Credentials only with both halves, as CDI's poller uses them.
  if (!settings.user.empty() && !settings.password.empty()) {
    spec.auth.user = settings.user;
    spec.auth.password = settings.password;
  }
  spec.registry.insecure = settings.insecure;
  CDI_ASSIGN_OR_RETURN(auto client, importer::registry::RegistryClient::Connect(spec, nullptr));
  return client->TopManifestDigest();
}

Result<bool> RecordDigest(const KubeClient& kube, const std::string& ns, const std::string& name,
                          const std::string& digest, const std::string& now_rfc3339) {
  const std::string what = "DataImportCron " + ns + "/" + name;
  const std::string path =
      "/apis/cdi.kubevirt.io/v1beta1/namespaces/" + ns + "/dataimportcrons/" + name;
  Result<std::string> object = kube.Get(path);
  if (!object.ok()) return object.status().Annotate("Failed getting " + what);
  nlohmann::json cron = nlohmann::json::parse(*object, nullptr, /*allow_exceptions=*/false);
  std::string current;
  if (cron.is_object()) {
    const nlohmann::json annotations = cron.value("metadata", nlohmann::json::object())
                                           .value("annotations", nlohmann::json::object());
    if (annotations.is_object()) {
      auto it = annotations.find(kAnnSourceDesiredDigest);
      if (it != annotations.end() && it->is_string()) current = it->get<std::string>();
    }
  }
  auto add = [](const std::string& key, const std::string& value) {
    return nlohmann::json{{"op", "add"},
                          {"path", "/metadata/annotations/" + EscapeJsonPointer(key)},
                          {"value", value}};
  };
  nlohmann::json patch = nlohmann::json::array({add(kAnnLastCronTime, now_rfc3339)});
  const bool changed = !digest.empty() && digest != current;
  if (changed) patch.push_back(add(kAnnSourceDesiredDigest, digest));
  Status patched = kube.JsonPatch(path, patch.dump());
  if (!patched.ok()) return patched.Annotate("Failed patching " + what);
  return changed;
}

}  // namespace cdi::pod
