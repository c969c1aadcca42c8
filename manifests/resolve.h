// Turns manifests into a plan: finds every DataVolume that VirtualMachines,
// VirtualMachinePools and DataVolume documents declare, resolves its source
// (a DataSource or spec.source.http) with the Secrets and ConfigMaps it names,
// sizes it as CDI would, and groups DataVolumes with the same source into one
// download.
//
// Rules (README, "Importing from manifests"):
//   - Objects are found by kind, namespace and name; a missing namespace is
//     ResolveOptions::default_namespace. Kinds other than VirtualMachine,
//     VirtualMachinePool, DataSource, DataVolume, Secret and ConfigMap are
//     skipped with a note.
//   - A VirtualMachine's spec.dataVolumeTemplates[i] is a DataVolume in the
//     VirtualMachine's namespace. A VirtualMachinePool with replicas N makes N
//     of each template, named "<template name>-<i>" for i in 0..N-1 (as
//     KubeVirt names them).
//   - Sizes: spec.pvc gives a PVC of exactly the request, of which the
//     importer uses UsableSpace(overhead, request); spec.storage makes CDI ask
//     for RequiredSpace(overhead, request) so that the request is usable.
//     The overhead applies to Filesystem volumes only.
//   - DataVolumes whose sources are equal (URL, TLS material, credentials,
//     headers, checksum) share one download.
#ifndef CDI_MANIFESTS_RESOLVE_H_
#define CDI_MANIFESTS_RESOLVE_H_

#include <string>
#include <utility>
#include <vector>

#include "manifests/manifest.h"
#include "manifests/plan.h"
#include "manifests/problems.h"

namespace cdi::apply {

struct ResolveOptions {
  // Filesystem volumes become PVC_DIR/<namespace>/<name>/disk.img. Needed
  // only when a selected DataVolume is a Filesystem volume.
  std::string pvc_dir;
  std::string default_namespace = "default";
  // CDI's filesystem overhead for Filesystem volumes (CDIConfig's global
  // default is 0.06). Block volumes always get 0.
  double filesystem_overhead = 0.06;
  // --block NAME=DEVICE in the order given; NAME is "name" or "namespace/name".
  std::vector<std::pair<std::string, std::string>> block_devices;
  // --only NAME (same forms). Empty: every DataVolume. Problems of DataVolumes
  // not selected are not reported (but every document must still be valid
  // YAML with a kind and a name).
  std::vector<std::string> only;
  // Directory of mounted Secrets, DIR/<namespace>/<name>/<key>; "" for none.
  std::string secrets_dir;
};

struct Resolution {
  Plan plan;
  // Everything wrong, in document order. When not empty, nothing may be
  // imported: the plan is incomplete.
  Problems problems;
};

// Reads `documents` (and, for Secrets not among them, options.secrets_dir).
// Touches nothing else on disk: target checks are CheckTargets' job.
Resolution Resolve(const std::vector<Document>& documents, const ResolveOptions& options);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_RESOLVE_H_
