#include "manifests/volume_request.h"

#include <cstdint>
#include <optional>
#include <string>

#include "cdi/quantity.h"

namespace cdi::apply {
namespace {

// KubeVirt refuses disks smaller than 1 MiB, and CDI's webhook refuses such
// DataVolumes for consistency.
constexpr uint64_t kMinimumRequest = kMiB;

}  // namespace

void ReadVolumeRequest(const FieldReader& reader, const Node& volume, const std::string& path,
                       VolumeSection section, SourceKind source_kind, DataVolumePlan* plan,
                       VolumeModeChoice* mode) {
  const bool is_pvc = section == VolumeSection::kPvc;
  mode->field = JoinPath(path, "volumeMode");
  if (std::optional<std::string> written = reader.String(volume, "volumeMode", path)) {
    if (*written == "Block") {
      mode->block_explicit = true;
    } else if (*written == "Filesystem") {
      mode->filesystem_explicit = true;
    } else if (*written == "FromStorageProfile" && !is_pvc) {
      // CDI picks the mode from the StorageProfile: here, --block decides.
    } else {
      reader.Error(volume.Find("volumeMode")->line, JoinPath(path, "volumeMode"),
                   "must be \"Filesystem\" or \"Block\", not " + Quoted(*written));
    }
  } else if (is_pvc && volume.Find("volumeMode") == nullptr) {
    // Kubernetes makes a claim without volumeMode a Filesystem claim; only
    // spec.storage leaves the choice to CDI's StorageProfile.
    mode->filesystem_explicit = true;
  }
  plan->volume_mode = mode->block_explicit ? VolumeMode::kBlock : VolumeMode::kFilesystem;
  plan->size_rule = is_pvc ? SizeRule::kPvc : SizeRule::kStorage;

  plan->size_field = JoinPath(path, "resources.requests.storage");
  const Node* resources = reader.Map(volume, "resources", path);
  const Node* requests =
      resources ? reader.Map(*resources, "requests", JoinPath(path, "resources")) : nullptr;
  const bool misshapen =
      (volume.Find("resources") != nullptr && resources == nullptr) ||
      (resources != nullptr && resources->Find("requests") != nullptr && requests == nullptr);
  if (misshapen) return;  // already reported: a field of the wrong kind
  const Node* storage = requests ? requests->Find("storage") : nullptr;
  if (storage == nullptr) {
    if (!is_pvc && source_kind == SourceKind::kSourceRef) {
      // CDI allows this with sourceRef: the size comes from the source.
      plan->size_rule = SizeRule::kStorageImage;
      return;
    }
    reader.Error(
        requests    ? requests->line
        : resources ? resources->line
                    : volume.line,
        plan->size_field,
        std::string("is required: the size of the ") + (is_pvc ? "PVC" : "volume") + ", e.g. 10Gi");
    return;
  }
  if (!storage->IsScalar()) {
    reader.Error(storage->line, plan->size_field,
                 "must be a quantity such as 10Gi, not " + std::string(storage->KindName()));
    return;
  }
  Result<uint64_t> bytes = ParseQuantity(storage->scalar);
  if (!bytes.ok()) {
    reader.Error(storage->line, plan->size_field, bytes.status().message());
    return;
  }
  if (*bytes == 0) {
    reader.Error(storage->line, plan->size_field, "must be more than zero");
    return;
  }
  if (*bytes < kMinimumRequest) {
    reader.Error(storage->line, plan->size_field,
                 Quoted(storage->scalar) + " is " + std::to_string(*bytes) +
                     " bytes: it must be at least 1Mi (KubeVirt refuses smaller disks)");
    return;
  }
  plan->requested = *bytes;
}

void SizeAsCdi(double filesystem_overhead, DataVolumePlan* plan) {
  DataVolumePlan& dv = *plan;
  const bool block = dv.volume_mode == VolumeMode::kBlock;
  dv.filesystem_overhead = block ? 0.0 : filesystem_overhead;
  switch (dv.size_rule) {
    case SizeRule::kPvc:
      dv.pvc_size = dv.requested;
      break;
    case SizeRule::kStorage:
      // CDI inflates a Filesystem request so that it stays usable after
      // the overhead; a Block request is taken as is.
      dv.pvc_size = block ? *dv.requested : RequiredSpace(dv.filesystem_overhead, *dv.requested);
      break;
    case SizeRule::kStorageImage:
      break;
  }
  if (!block && dv.pvc_size) dv.usable_size = UsableSpace(dv.filesystem_overhead, *dv.pvc_size);
}

}  // namespace cdi::apply
