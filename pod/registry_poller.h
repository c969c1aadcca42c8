// What CDI's DataImportCron poller (cdi-source-update-poller) does for a
// registry source: read the digest of the URL's manifest from the registry,
// then record it on the DataImportCron through the Kubernetes API, as
// annotations the controller acts on:
//   cdi.kubevirt.io/storage.import.lastCronTime        now (RFC 3339), always
//   cdi.kubevirt.io/storage.import.sourceDesiredDigest  the digest, when it changed
// with one JSON patch ("add" operations), as CDI's poller writes it.
//
// Thread-safety: none needed; one call at a time.
#ifndef CDI_POD_REGISTRY_POLLER_H_
#define CDI_POD_REGISTRY_POLLER_H_

#include <string>

#include "cdi/status.h"
#include "pod/kube_client.h"

namespace cdi::pod {

inline constexpr const char* kAnnLastCronTime = "cdi.kubevirt.io/storage.import.lastCronTime";
inline constexpr const char* kAnnSourceDesiredDigest =
    "cdi.kubevirt.io/storage.import.sourceDesiredDigest";

struct RegistryPollSettings {
  std::string url;                             // docker://...
  std::string cert_dir;                        // -certdir: the registry's CAs; "" for none
  std::string proxy_cert_dir = "/proxycerts";  // used when it exists
  std::string user;                            // IMPORTER_ACCESS_KEY_ID
  std::string password;                        // IMPORTER_SECRET_KEY
  bool insecure = false;                       // INSECURE_TLS
};

// The digest of the manifest `settings.url` names ("sha256:..."): an index's
// for a multi-architecture tag, as CDI's poller reports it.
Result<std::string> RegistryDigest(const RegistryPollSettings& settings);

// Records `digest` on DataImportCron `ns`/`name` (see above). Returns whether
// the desired digest changed. Errors: "Failed getting DataImportCron ns/name:
// ..." and "Failed patching DataImportCron ns/name: ..." (kNetwork).
Result<bool> RecordDigest(const KubeClient& kube, const std::string& ns, const std::string& name,
                          const std::string& digest, const std::string& now_rfc3339);

// "~" as "~0" and "/" as "~1" (RFC 6901).
std::string EscapeJsonPointer(const std::string& key);

}  // namespace cdi::pod

#endif  // CDI_POD_REGISTRY_POLLER_H_
