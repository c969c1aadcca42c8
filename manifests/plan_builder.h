// From the DataVolumes declared to the plan: names declared twice refused,
// the DataVolumes --only selects, the devices --block assigns, each selected
// DataVolume sized and given its target, and equal sources grouped into one
// download.
//
// Contract: BuildPlan adds to resolution->plan and resolution->problems; the
// problems of DataVolumes not selected are left out. It touches nothing on
// disk.
#ifndef CDI_MANIFESTS_PLAN_BUILDER_H_
#define CDI_MANIFESTS_PLAN_BUILDER_H_

#include <vector>

#include "manifests/declared_volumes.h"
#include "manifests/resolve.h"
#include "manifests/source_resolver.h"

namespace cdi::apply {

// `sources` holds the sources that the DataVolumes' source keys name.
void BuildPlan(std::vector<DeclaredDataVolume> data_volumes, const ResolveOptions& options,
               const SourceResolver& sources, Resolution* resolution);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_PLAN_BUILDER_H_
