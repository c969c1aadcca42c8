// spec.source.http of a DataSource or a DataVolume: the URL, TLS material
// (certConfig, certConfigMap, insecureSkipVerify), credentials (secretRef,
// extraHeaders, secretExtraHeaders) and checksum, with the Secrets and
// ConfigMaps they name resolved.
#ifndef CDI_MANIFESTS_HTTP_SOURCE_H_
#define CDI_MANIFESTS_HTTP_SOURCE_H_

#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "manifests/field_reader.h"
#include "manifests/manifest.h"
#include "manifests/secret_store.h"

namespace cdi::apply {

// A source ready to download, and how to describe it.
struct ResolvedSource {
  SourceSpec spec;       // with TLS material and credentials
  std::string checksum;  // "alg:hex" normalised to lower case, or ""
  std::string origin;    // the object that declares it: "DataSource default/ds"
  // How the connection is secured, for people: "CA from certConfig.caBundle".
  std::vector<std::string> security;

  // Sources with equal keys are the same download: URL, TLS material,
  // credentials, headers and checksum. Holds secrets: never print it.
  std::string Key() const;
};

// Reads `http` (at `path` in reader.object()), whose Secrets and ConfigMaps
// are looked up in namespace `ns`:
//   certConfig.caBundle            base64 of PEM CA certificates
//   certConfig.secretRef.name      Secret whose key ca.crt holds PEM CA certificates
//   certConfig.cert.secretRef.name Secret whose key tls.crt is the client certificate
//   certConfig.key.secretRef.name  Secret whose key tls.key is its private key
//   certConfigMap                  ConfigMap whose every key is PEM CA certificates (CDI)
//   secretRef                      Secret with accessKeyId and secretKey: basic auth (CDI)
//   extraHeaders                   "Name: value" lines (CDI)
//   secretExtraHeaders             Secrets whose every key is a header line (CDI)
//   checksum, insecureSkipVerify   as CDI reads them
// Returns nullopt when anything is wrong; every problem is reported to the
// reader (secret values are never quoted).
std::optional<ResolvedSource> ReadHttpSource(const FieldReader& reader, const Node& http,
                                             const std::string& path, const std::string& ns,
                                             SecretStore* store);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_HTTP_SOURCE_H_
