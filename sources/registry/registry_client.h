// A client of the OCI distribution API (the registry protocol) for one image
// reference: it finds the registry's scheme, authenticates, reads manifests
// and the image configuration, and opens layer blobs as ByteSources.
//
//   CDI_ASSIGN_OR_RETURN(auto client, RegistryClient::Connect(spec, cancel));
//   CDI_ASSIGN_OR_RETURN(RegistryImage image, client->ResolveImage());
//   for (const Descriptor& layer : image.layers) {
//     CDI_ASSIGN_OR_RETURN(auto blob, client->OpenBlob(layer));  // verified at its end
//     ...
//   }
//
// The registry:
//  - is reached over HTTPS with the trust of spec.tls (CA files, directories,
//    IMPORTER_CERT_DIR). With spec.registry.insecure it is reached as
//    containers/image reaches an insecure registry (CDI's insecureRegistries):
//    HTTPS without certificate verification, and plain HTTP when HTTPS
//    cannot be spoken at all.
//  - authenticates as its 401 answer asks (WWW-Authenticate): Basic with
//    spec.auth.user/password, or Bearer with a token from the challenge's
//    realm (service and scope as given, "repository:<repo>:pull" by
//    default), asked for with those credentials when there are any, or
//    anonymously.
//  - credentials (Basic, or the Bearer token) go to the registry's origin
//    only, and to the token realm for the token; a blob redirected to
//    storage elsewhere (S3, a CDN) is fetched without them.
// Every manifest is checked against its digest (the reference's, an index
// entry's, or the Docker-Content-Digest the registry announces for a tag);
// the configuration as well; a blob when its last byte has arrived (see
// OpenBlob). Requests are retried as the HTTP source retries them
// (NetworkSettings); blobs resume with Range after a dropped connection.
//
// Thread-safety: one thread uses a client.
#ifndef CDI_SOURCES_REGISTRY_REGISTRY_CLIENT_H_
#define CDI_SOURCES_REGISTRY_REGISTRY_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/registry/manifest.h"
#include "sources/registry/reference.h"
#include "sources/source.h"

namespace cdi::importer::registry {

// Largest manifest or configuration read (the distribution spec lets
// registries refuse manifests past 4 MiB).
inline constexpr size_t kMaxManifestBytes = 4 << 20;

struct RegistryImage {
  ImageReference reference;
  std::string top_digest;       // of the manifest the reference names (an index's, for one)
  std::string manifest_digest;  // of the image manifest used
  Platform platform;            // of the index entry chosen; empty without an index
  std::vector<Descriptor> layers;
  ImageConfig config;
  uint64_t layer_bytes = 0;  // the layers' sizes, added up
};

class RegistryClient {
 public:
  // Parses spec.url (docker://...), sets up TLS and proxies, and asks the
  // registry's /v2/ endpoint which scheme and authentication it speaks.
  // Errors: those of ParseImageReference; kTls and kNetwork as the HTTP
  // source's, naming the registry; kUnsupported for an authentication scheme
  // other than Basic and Bearer.
  static Result<std::unique_ptr<RegistryClient>> Connect(const SourceSpec& spec,
                                                         const CancelToken* cancel);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // The digest of the manifest the reference names, as the registry serves
  // it (for a multi-architecture image, the index's): what CDI's poller
  // reports. kNetwork "manifest unknown" for a tag the repository lacks.
  Result<std::string> TopManifestDigest();

  // The image for spec.registry.architecture (default: this machine's): the
  // manifest, the index entry for the platform when the reference names an
  // index, and the configuration. Refused as CDI refuses them: an image whose
  // configuration is for another architecture when one was asked for, a
  // bootc (ostree-bootable) image.
  Result<RegistryImage> ResolveImage();

  // A layer or other blob, streamed. Its bytes are counted and hashed as they
  // pass; the Read that would end the stream returns kCorruptImage instead
  // when the size or digest differ from `blob`'s (and an error as soon as it
  // grows past its size): a consumer that reads to the end never takes a
  // blob that is not what the manifest names.
  Result<std::unique_ptr<ByteSource>> OpenBlob(const Descriptor& blob);

  // "docker://registry/repository:tag", for messages.
  std::string Describe() const;
  const ImageReference& reference() const;

 private:
  class Impl;
  explicit RegistryClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cdi::importer::registry

#endif  // CDI_SOURCES_REGISTRY_REGISTRY_CLIENT_H_
