// The DataVolumes that the manifests declare: each VirtualMachine's
// spec.dataVolumeTemplates, a VirtualMachinePool's templates once per replica
// (named "<template name>-<i>", as KubeVirt names them), and DataVolume
// documents.
//
// Contract: FindDataVolumes returns every DataVolume declared, in document
// order, each with the problems found in it (so that --only can leave out
// those of DataVolumes not selected). Problems of an owner that declare no
// DataVolume it could name (a pool's selector, a template without a name) go
// to *problems at once.
#ifndef CDI_MANIFESTS_DECLARED_VOLUMES_H_
#define CDI_MANIFESTS_DECLARED_VOLUMES_H_

#include <optional>
#include <string>
#include <vector>

#include "manifests/objects.h"
#include "manifests/plan.h"
#include "manifests/problems.h"
#include "manifests/source_resolver.h"
#include "manifests/volume_request.h"

namespace cdi::apply {

// A DataVolume found in the manifests, before selection.
struct DeclaredDataVolume {
  DataVolumePlan plan;
  std::optional<std::string> source_key;  // set when its source resolved
  VolumeModeChoice mode;
  Problems problems;
};

// The DataVolumes that `objects` declare; their sources are resolved by, and
// kept in, *sources. Notes (a pool with no replicas) go to *notes.
std::vector<DeclaredDataVolume> FindDataVolumes(const std::vector<ManifestObject>& objects,
                                                SourceResolver* sources, Problems* problems,
                                                std::vector<std::string>* notes);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_DECLARED_VOLUMES_H_
