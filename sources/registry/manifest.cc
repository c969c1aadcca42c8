#include "sources/registry/manifest.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "sources/registry/digest.h"

namespace cdi::importer::registry {
namespace {

using Json = nlohmann::json;

Result<Json> ParseJson(std::span<const uint8_t> bytes, std::string_view what) {
  Json document = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) {
    return CorruptImageError("the " + std::string(what) + " is not a JSON object");
  }
  return document;
}

std::string StringField(const Json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<Descriptor> ReadDescriptor(const Json& value, std::string_view what) {
  if (!value.is_object()) return CorruptImageError("a " + std::string(what) + " is not an object");
  Descriptor descriptor;
  descriptor.media_type = StringField(value, "mediaType");
  descriptor.digest = StringField(value, "digest");
  Status digest = CheckDigest(descriptor.digest);
  if (!digest.ok()) {
    return CorruptImageError("a " + std::string(what) + " has a bad digest: " + digest.message());
  }
  auto size = value.find("size");
  if (size == value.end() || !size->is_number_unsigned()) {
    return CorruptImageError("the " + std::string(what) + " " + descriptor.digest +
                             " has no valid size");
  }
  descriptor.size = size->get<uint64_t>();
  if (auto platform = value.find("platform"); platform != value.end() && platform->is_object()) {
    descriptor.platform.architecture = StringField(*platform, "architecture");
    descriptor.platform.os = StringField(*platform, "os");
    descriptor.platform.variant = StringField(*platform, "variant");
  }
  return descriptor;
}

bool IsIndexType(std::string_view type) { return type == kOciIndex || type == kDockerList; }
bool IsManifestType(std::string_view type) {
  return type == kOciManifest || type == kDockerManifest;
}

}  // namespace

std::string Platform::Describe() const {
  std::string text = (os.empty() ? "?" : os) + "/" + (architecture.empty() ? "?" : architecture);
  if (!variant.empty()) text += "/" + variant;
  return text;
}

Result<Manifest> ParseManifest(std::span<const uint8_t> json, std::string_view content_type) {
  // Content-Type may carry parameters ("; charset=utf-8").
  std::string_view header_type = content_type.substr(0, content_type.find(';'));
  while (!header_type.empty() && header_type.back() == ' ') header_type.remove_suffix(1);
  if (header_type.starts_with("application/vnd.docker.distribution.manifest.v1")) {
    return UnsupportedError(
        "the image has a Docker schema 1 manifest (" + std::string(header_type) +
        "), a format deprecated since 2017 that this importer does not read; push the image "
        "again with a current tool (skopeo, podman, buildah, docker) to get a schema 2 or OCI "
        "manifest");
  }
  CDI_ASSIGN_OR_RETURN(Json document, ParseJson(json, "manifest"));
  Manifest manifest;
  manifest.media_type = StringField(document, "mediaType");
  if (manifest.media_type.empty()) manifest.media_type = std::string(header_type);
  if (auto version = document.find("schemaVersion");
      version != document.end() && version->is_number() && version->get<int>() == 1) {
    return UnsupportedError(
        "the image has a Docker schema 1 manifest, a format deprecated since 2017 that this "
        "importer does not read; push the image again with a current tool to get a schema 2 or "
        "OCI manifest");
  }
  bool index = IsIndexType(manifest.media_type);
  bool image = IsManifestType(manifest.media_type);
  if (!index && !image) {
    // An OCI document may leave mediaType out: its shape tells.
    if (document.contains("manifests")) {
      index = true;
    } else if (document.contains("layers")) {
      image = true;
    } else {
      return UnsupportedError("the manifest's media type '" + manifest.media_type +
                              "' is not an image manifest or index this importer reads (" +
                              std::string(kManifestAccept) + ")");
    }
  }
  if (index) {
    manifest.kind = Manifest::Kind::kIndex;
    auto entries = document.find("manifests");
    if (entries == document.end() || !entries->is_array()) {
      return CorruptImageError("the image index has no 'manifests' list");
    }
    for (const Json& entry : *entries) {
      CDI_ASSIGN_OR_RETURN(Descriptor descriptor, ReadDescriptor(entry, "manifest of the index"));
      manifest.entries.push_back(std::move(descriptor));
    }
    return manifest;
  }
  manifest.kind = Manifest::Kind::kImage;
  auto config = document.find("config");
  if (config == document.end()) return CorruptImageError("the image manifest has no config");
  CDI_ASSIGN_OR_RETURN(manifest.config, ReadDescriptor(*config, "config"));
  auto layers = document.find("layers");
  if (layers == document.end() || !layers->is_array()) {
    return CorruptImageError("the image manifest has no 'layers' list");
  }
  for (const Json& layer : *layers) {
    CDI_ASSIGN_OR_RETURN(Descriptor descriptor, ReadDescriptor(layer, "layer"));
    manifest.layers.push_back(std::move(descriptor));
  }
  return manifest;
}

Result<Descriptor> ChoosePlatform(const Manifest& index, std::string_view architecture) {
  std::string available;
  for (const Descriptor& entry : index.entries) {
    const Platform& platform = entry.platform;
    if ((platform.os == "linux" || platform.os.empty()) && platform.architecture == architecture &&
        (entry.media_type.empty() || IsManifestType(entry.media_type))) {
      return entry;
    }
    if (!available.empty()) available += ", ";
    available += platform.Describe();
  }
  return InvalidArgumentError("the image index has no image for linux/" +
                              std::string(architecture) +
                              " (it has: " + (available.empty() ? "nothing" : available) +
                              "); choose one of its architectures (IMPORTER_REGISTRY_IMAGE_"
                              "ARCHITECTURE, or --arch with cdi-image)");
}

Result<ImageConfig> ParseImageConfig(std::span<const uint8_t> json) {
  CDI_ASSIGN_OR_RETURN(Json document, ParseJson(json, "image configuration"));
  ImageConfig config;
  config.architecture = StringField(document, "architecture");
  config.os = StringField(document, "os");
  auto inner = document.find("config");
  if (inner != document.end() && inner->is_object()) {
    if (auto env = inner->find("Env"); env != inner->end() && env->is_array()) {
      for (const Json& entry : *env) {
        if (entry.is_string()) config.env.push_back(entry.get<std::string>());
      }
    }
    if (auto labels = inner->find("Labels"); labels != inner->end() && labels->is_object()) {
      for (auto it = labels->begin(); it != labels->end(); ++it) {
        if (it.value().is_string())
          config.labels.emplace_back(it.key(), it.value().get<std::string>());
      }
    }
  }
  return config;
}

std::string MachineArchitecture() {
  utsname name{};
  if (uname(&name) != 0) return "amd64";
  std::string_view machine = name.machine;
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64" || machine == "arm64") return "arm64";
  if (machine.starts_with("armv") || machine == "arm") return "arm";
  if (machine == "i386" || machine == "i686") return "386";
  return std::string(machine);  // ppc64le, s390x, riscv64, mips64le
}

}  // namespace cdi::importer::registry
