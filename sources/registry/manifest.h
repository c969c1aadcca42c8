// Manifests and image configurations of the OCI image spec and Docker's
// image manifest v2 schema 2, parsed from their JSON:
//  - an image manifest (application/vnd.oci.image.manifest.v1+json,
//    application/vnd.docker.distribution.manifest.v2+json): a config and
//    layers, each a descriptor;
//  - an index (application/vnd.oci.image.index.v1+json,
//    application/vnd.docker.distribution.manifest.list.v2+json): manifests,
//    each with the platform it is for.
// Docker's schema 1 manifests (deprecated since 2017) are refused by name.
//
// Thread-safety: pure functions.
#ifndef CDI_SOURCES_REGISTRY_MANIFEST_H_
#define CDI_SOURCES_REGISTRY_MANIFEST_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdi/status.h"

namespace cdi::importer::registry {

inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
// What a manifest request accepts, in the Accept header.
inline constexpr std::string_view kManifestAccept =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

struct Platform {
  std::string architecture;
  std::string os;
  std::string variant;
  std::string Describe() const;  // "linux/arm64/v8"
};

struct Descriptor {
  std::string media_type;
  std::string digest;  // checked: CheckDigest
  uint64_t size = 0;
  Platform platform;  // entries of an index only
};

struct Manifest {
  enum class Kind { kImage, kIndex };
  Kind kind = Kind::kImage;
  std::string media_type;
  Descriptor config;                // kImage
  std::vector<Descriptor> layers;   // kImage, in order, base first
  std::vector<Descriptor> entries;  // kIndex
};

// Parses a manifest. `content_type` is the response's Content-Type (may be
// empty or generic: the document's mediaType, then its shape, decide).
// kUnsupported for schema 1 and other media types; kCorruptImage for JSON
// that does not parse or lacks what its kind needs (each digest is checked).
Result<Manifest> ParseManifest(std::span<const uint8_t> json, std::string_view content_type);

// The index entry for `architecture` on linux ("amd64", "arm64", ...; a
// variant is accepted whatever it is); the first one when several match.
// kNotFound-like kInvalidArgument naming the platforms the index has.
Result<Descriptor> ChoosePlatform(const Manifest& index, std::string_view architecture);

struct ImageConfig {
  std::string architecture;
  std::string os;
  std::vector<std::string> env;                             // "NAME=value"
  std::vector<std::pair<std::string, std::string>> labels;  // in the document's order
};

// Parses an image configuration (application/vnd.oci.image.config.v1+json,
// application/vnd.docker.container.image.v1+json). kCorruptImage when it is
// not a JSON object.
Result<ImageConfig> ParseImageConfig(std::span<const uint8_t> json);

// The architecture name of this machine as image platforms spell it
// (GOARCH): amd64, arm64, arm, ppc64le, s390x, riscv64, 386, ...
std::string MachineArchitecture();

}  // namespace cdi::importer::registry

#endif  // CDI_SOURCES_REGISTRY_MANIFEST_H_
