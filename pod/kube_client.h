// The few Kubernetes API calls CDI's helper programs make, from inside a pod:
// the in-cluster configuration (the API server's Service address from
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, the service account's
// token and CA), a GET of an object and a JSON patch of it. Requests go
// straight to the API server, never through a proxy (as CDI's programs make
// them), with the token as Bearer authorization and the CA as the only trust.
//
// Thread-safety: one thread uses a client.
#ifndef CDI_POD_KUBE_CLIENT_H_
#define CDI_POD_KUBE_CLIENT_H_

#include <string>

#include "cdi/status.h"
#include "pod/pod_config.h"

namespace cdi::pod {

// Where a pod's service account is mounted.
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string api_url;  // "https://10.96.0.1:443"
  std::string token;
  std::string ca_file;
};

// The in-cluster configuration. kInvalidArgument when KUBERNETES_SERVICE_HOST
// or _PORT is unset ("not running in a pod"), or the token cannot be read.
Result<KubeConfig> InClusterConfig(const Environment& env,
                                   const std::string& service_account_dir = kServiceAccountDir);

class KubeClient {
 public:
  explicit KubeClient(KubeConfig config) : config_(std::move(config)) {}

  // GET api_url + path: the body of a 200 answer; kNetwork naming the status
  // and the API server's message otherwise.
  Result<std::string> Get(const std::string& path) const;
  // PATCH api_url + path with a JSON patch (application/json-patch+json).
  Status JsonPatch(const std::string& path, const std::string& patch) const;

 private:
  Result<std::string> Request(const std::string& method, const std::string& path,
                              const std::string& body) const;
  KubeConfig config_;
};

}  // namespace cdi::pod

#endif  // CDI_POD_KUBE_CLIENT_H_
