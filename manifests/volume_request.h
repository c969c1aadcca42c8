// The volume a DataVolume asks for, spec.pvc or spec.storage: its volume mode
// and storage request as written, and the PVC that CDI makes of them
// (README, "Sizes").
//
// Contract: ReadVolumeRequest checks the fields and reports every problem to
// the reader, naming the field; SizeAsCdi is arithmetic on a plan whose
// volume mode is final. Neither touches anything on disk.
#ifndef CDI_MANIFESTS_VOLUME_REQUEST_H_
#define CDI_MANIFESTS_VOLUME_REQUEST_H_

#include <string>

#include "manifests/field_reader.h"
#include "manifests/manifest.h"
#include "manifests/plan.h"

namespace cdi::apply {

// Which of a DataVolume's two volume sections is used, and where its image
// comes from: together they decide the sizing rules.
enum class VolumeSection { kPvc, kStorage };
enum class SourceKind { kSourceRef, kSource };

// What the manifest says of the volume mode, for --block's checks.
struct VolumeModeChoice {
  bool block_explicit = false;       // volumeMode: Block written
  bool filesystem_explicit = false;  // volumeMode: Filesystem written, or pvc without one
  std::string field;                 // the path of volumeMode, for messages
};

// Reads volumeMode and resources.requests.storage of `volume` (spec.pvc or
// spec.storage, at `path`) into plan->volume_mode, size_rule, size_field and
// requested, and what volumeMode says into *mode. A request must be a
// quantity of at least 1Mi; spec.storage with a sourceRef may leave it out
// (the disk is then the image's size).
void ReadVolumeRequest(const FieldReader& reader, const Node& volume, const std::string& path,
                       VolumeSection section, SourceKind source_kind, DataVolumePlan* plan,
                       VolumeModeChoice* mode);

// Sets plan->filesystem_overhead, pvc_size and usable_size as CDI sizes the
// volume: `filesystem_overhead` applies to Filesystem volumes only; spec.pvc
// is a PVC of exactly the request, spec.storage a PVC inflated so that the
// request stays usable after the overhead.
void SizeAsCdi(double filesystem_overhead, DataVolumePlan* plan);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_VOLUME_REQUEST_H_
