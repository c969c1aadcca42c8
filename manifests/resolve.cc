#include "manifests/resolve.h"

#include <utility>

#include "manifests/declared_volumes.h"
#include "manifests/objects.h"
#include "manifests/plan_builder.h"
#include "manifests/secret_store.h"
#include "manifests/source_resolver.h"

namespace cdi::apply {

Resolution Resolve(const std::vector<Document>& documents, const ResolveOptions& options) {
  Resolution resolution;
  SecretStore store(options.secrets_dir);
  // The objects, then the DataVolumes they declare with their sources, then
  // the plan of those selected: problems are reported in that order.
  const std::vector<ManifestObject> objects = IndexObjects(
      documents, options.default_namespace, &store, &resolution.problems, &resolution.plan.notes);
  SourceResolver sources(objects, &store);
  std::vector<DeclaredDataVolume> data_volumes =
      FindDataVolumes(objects, &sources, &resolution.problems, &resolution.plan.notes);
  BuildPlan(std::move(data_volumes), options, sources, &resolution);
  return resolution;
}

}  // namespace cdi::apply
