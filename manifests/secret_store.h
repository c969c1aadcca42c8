// The Secrets and ConfigMaps that manifests refer to (certConfig, secretRef,
// certConfigMap, secretExtraHeaders), from the documents given with -f and
// from a directory of mounted secrets laid out as DIR/<namespace>/<name>/<key>.
#ifndef CDI_MANIFESTS_SECRET_STORE_H_
#define CDI_MANIFESTS_SECRET_STORE_H_

#include <map>
#include <memory>
#include <string>

#include "manifests/manifest.h"
#include "manifests/problems.h"

namespace cdi::apply {

enum class StoreKind { kSecret, kConfigMap };

// The decoded data of one Secret or ConfigMap.
struct KeyValues {
  std::map<std::string, std::string> data;  // key -> bytes (base64 already decoded)
  // Where it came from, for messages: "Secret default/tls (certs.yaml)" or
  // "Secret default/tls (--secrets-dir /run/secrets/default/tls)".
  std::string origin;
};

// Not thread-safe: filled and read while resolving, on one thread.
class SecretStore {
 public:
  explicit SecretStore(std::string secrets_dir = "") : secrets_dir_(std::move(secrets_dir)) {}

  // Takes the data of a Secret (data: base64, stringData: text, which wins
  // over data as in Kubernetes) or a ConfigMap (data: text, binaryData:
  // base64). Values that are not text or not base64 are reported to
  // *problems, naming the key but never its value.
  void AddDocument(StoreKind kind, const Document& document, const ObjectRef& object,
                   Problems* problems);

  // The object, from the documents first, then (Secrets only) from the
  // secrets directory: every regular file in DIR/<ns>/<name>/ whose name does
  // not start with '.' is one key, as Kubernetes mounts a Secret. nullptr when
  // found in neither; *error is set when the directory exists but cannot be
  // read.
  const KeyValues* Find(StoreKind kind, const std::string& ns, const std::string& name,
                        std::string* error);

  const std::string& secrets_dir() const { return secrets_dir_; }

 private:
  std::string secrets_dir_;
  std::map<std::string, KeyValues> documents_;  // "Secret/ns/name" -> data
  std::map<std::string, KeyValues> mounted_;    // cache of what was read from secrets_dir_
};

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_SECRET_STORE_H_
