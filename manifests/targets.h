// The local side of a plan: checks made before any download (a file already
// in place, a device that is missing or too small), the directories the PVC
// files go into, and what each target will be able to hold.
#ifndef CDI_MANIFESTS_TARGETS_H_
#define CDI_MANIFESTS_TARGETS_H_

#include <cstdint>

#include "cdi/import.h"
#include "manifests/plan.h"
#include "manifests/problems.h"

namespace cdi::apply {

// Reports, per DataVolume: a file target that exists (unless `existing` is
// kReplace) or whose directory is a file; a device that is not a block
// device, cannot be opened, or holds less than the DataVolume requests (a
// PersistentVolume smaller than its claim is never bound). Sets usable_size
// of Block DataVolumes to their device's size.
void CheckTargets(ExistingFile existing, Plan* plan, Problems* problems);

// Creates PVC_DIR/<namespace>/<name>/ for every Filesystem DataVolume, and
// for every Block DataVolume's checkpoints when `checkpoints`.
Status PrepareTargets(const Plan& plan, bool checkpoints);

// After the imports: removes each Block DataVolume's checkpoint directory,
// and its namespace's, where they are empty (a checkpoint kept for a run
// that may continue keeps them).
void RemoveEmptyCheckpointDirs(const Plan& plan);

// The TargetSpec cdi::Import gets for a DataVolume: the PVC's size as the
// requested size (the library applies the overhead and the free space), or
// the device.
TargetSpec ToTargetSpec(const DataVolumePlan& data_volume, ExistingFile existing);

// What the library's target for `data_volume` will be able to hold right now:
// UsableSpace(overhead, min(free space, PVC size)) for a file, the size of a
// device.
Result<uint64_t> CurrentCapacity(const DataVolumePlan& data_volume);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_TARGETS_H_
