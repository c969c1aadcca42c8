// One DataVolume spec as written: a DataVolume document's spec, or a
// VirtualMachine's spec.dataVolumeTemplates[i].spec. Its volume (pvc or
// storage), its source (sourceRef or source.http), contentType and
// preallocation.
//
// Contract: ReadDataVolumeSpec reports every problem of the spec, and of the
// DataSource it uses, to *problems; it returns a plan only when there were
// none. The name, namespace and target of the plan are the caller's to fill.
#ifndef CDI_MANIFESTS_DATA_VOLUME_SPEC_H_
#define CDI_MANIFESTS_DATA_VOLUME_SPEC_H_

#include <optional>
#include <string>

#include "manifests/manifest.h"
#include "manifests/plan.h"
#include "manifests/problems.h"
#include "manifests/source_resolver.h"
#include "manifests/volume_request.h"

namespace cdi::apply {

// A DataVolume spec as read (once per template, before pool replicas).
struct DataVolumeSpec {
  std::optional<DataVolumePlan> plan;     // nullopt when it could not be read
  std::optional<std::string> source_key;  // SourceResolver::Keep's key, when it resolved
  VolumeModeChoice mode;
};

// Reads `spec` (at `path` in `object`) of a DataVolume in namespace `ns`;
// its source is resolved by, and kept in, *sources.
DataVolumeSpec ReadDataVolumeSpec(const ObjectRef& object, const Node& spec,
                                  const std::string& path, const std::string& ns,
                                  SourceResolver* sources, Problems* problems);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_DATA_VOLUME_SPEC_H_
