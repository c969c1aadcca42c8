// A real container registry on 127.0.0.1 for tests: Debian's docker-registry
// (the CNCF distribution registry) with a generated configuration, over
// plain HTTP or TLS, without authentication, with htpasswd Basic auth, or
// with Bearer tokens from the project's token server
// (test/server/token_server.py). Images are built as OCI layouts
// (OciLayout) and pushed with skopeo.
//
//   RegistryServer registry({.tls = certs.server, .basic_user = "u", .basic_password = "p"});
//   OciLayout layout(dir.File("layout"));
//   layout.Tag(layout.AddImage({layout.AddLayer(tar, Compression::kGzip)}), "v1");
//   registry.Push(layout, "v1", "disks/fedora:v1");
//   spec.url = registry.Reference("disks/fedora:v1");  // docker://127.0.0.1:PORT/...
//
// Constructors throw std::runtime_error when a server cannot start; the
// destructor stops what was started.
#ifndef CDI_TEST_SUPPORT_REGISTRY_SERVER_H_
#define CDI_TEST_SUPPORT_REGISTRY_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test/support/certs.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {

// An OCI image layout (image-layout spec) written into a directory.
class OciLayout {
 public:
  enum class Compression { kNone, kGzip, kZstd };
  struct Descriptor {
    std::string media_type;
    std::string digest;
    uint64_t size = 0;
    std::string platform_json;  // for index entries: {"architecture": ..., "os": ...}
  };

  explicit OciLayout(std::string dir);

  // Writes `bytes` as a blob; returns its "sha256:<hex>".
  std::string AddBlob(const std::string& bytes);
  // A layer: the tar `bytes`, compressed as asked (gzip -n, zstd), with the
  // OCI media type that says so.
  Descriptor AddLayer(const std::string& tar, Compression compression);
  // An image: a configuration for `architecture` with `env`, and its manifest.
  Descriptor AddImage(const std::vector<Descriptor>& layers,
                      const std::string& architecture = "amd64",
                      const std::vector<std::string>& env = {},
                      const std::string& labels_json = "{}");
  // An index of images, each with the platform linux/<architecture>.
  Descriptor AddIndex(const std::vector<std::pair<Descriptor, std::string>>& images);
  // Names `descriptor` `tag` in index.json (rewritten each time).
  void Tag(const Descriptor& descriptor, const std::string& tag);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::pair<Descriptor, std::string>> tagged_;
};

struct RegistryOptions {
  CertKey tls;             // HTTPS when set
  std::string basic_user;  // htpasswd Basic auth when set
  std::string basic_password;
  bool token_auth = false;  // Bearer tokens from a token server (HTTPS when tls is set)
  std::string token_user;   // the token server's credentials; none: anonymous tokens
  std::string token_password;
  // A registry's storage to start from (RegistryServer::storage_dir() of
  // another, kept in a fixture cache): copied, so that pushes and damage stay
  // with this registry.
  std::string storage_from;
};

class RegistryServer {
 public:
  explicit RegistryServer(RegistryOptions options);
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  // "127.0.0.1:PORT"
  std::string host() const;
  // "docker://127.0.0.1:PORT/" + name ("repo:tag" or "repo@sha256:...").
  std::string Reference(const std::string& name) const;
  // Pushes layout's `tag` to `name` ("repo:tag") with skopeo (every image of
  // an index); `format` "v2s2" converts to Docker's schema 2.
  void Push(const OciLayout& layout, const std::string& tag, const std::string& name,
            const std::string& format = "");
  // Where the registry keeps what was pushed.
  std::string storage_dir() const { return dir_.path() + "/storage"; }
  // The registry's storage file of a blob (to damage it).
  std::string BlobDataPath(const std::string& digest) const;
  // Token requests the token server received ("" without token auth): its JSON lines.
  std::string TokenLog() const;

 private:
  RegistryOptions options_;
  TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<BackgroundProcess> token_server_;
  std::unique_ptr<BackgroundProcess> process_;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_REGISTRY_SERVER_H_
