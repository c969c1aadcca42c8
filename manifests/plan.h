// What `cdi-image apply` will do: the DataVolumes the manifests declare, each
// with its target and size, grouped into downloads (one per distinct source).
#ifndef CDI_MANIFESTS_PLAN_H_
#define CDI_MANIFESTS_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "manifests/problems.h"

namespace cdi::apply {

enum class VolumeMode { kFilesystem, kBlock };

// How a DataVolume asks for its size, which decides the PVC CDI creates and
// what CDI's importer may use of it (see README, "Sizes").
enum class SizeRule {
  kPvc,           // spec.pvc: the PVC is exactly the request; the importer
                  // uses UsableSpace(overhead, request) of it
  kStorage,       // spec.storage: CDI asks for RequiredSpace(overhead, request)
                  // so that the request itself is usable
  kStorageImage,  // spec.storage without a size (allowed with sourceRef):
                  // the disk is the image's virtual size
};

struct DataVolumePlan {
  std::string ns;
  std::string name;       // the DataVolume's name, which is also its PVC's name
  ObjectRef declared_in;  // the VirtualMachine, VirtualMachinePool or DataVolume document
  std::string field;      // its path there ("spec.dataVolumeTemplates[0]"; "" for a DataVolume)
  int line = 0;
  int replica = -1;  // index within a VirtualMachinePool, -1 otherwise

  VolumeMode volume_mode = VolumeMode::kFilesystem;
  SizeRule size_rule = SizeRule::kPvc;
  std::string size_field;             // path of the storage request, for messages
  std::optional<uint64_t> requested;  // bytes, as written
  std::optional<uint64_t> pvc_size;   // the PVC CDI would create for it
  double filesystem_overhead = 0;     // what CDI gives the importer (0 for Block)
  // What the importer may use of the volume, when known before the import:
  // from the sizes above for a file (if the filesystem has room), the device's
  // size for Block.
  std::optional<uint64_t> usable_size;

  std::string target;  // PVC_DIR/<ns>/<name>/disk.img, or the device
  // A Block volume's checkpoints (a device has no room beside it):
  // PVC_DIR/<ns>/<name>, a directory of this DataVolume's alone; empty
  // without --pvc-dir, and for Filesystem volumes (theirs lie beside disk.img).
  std::string checkpoint_dir;
  Preallocation preallocation = Preallocation::kOff;
  size_t download = 0;  // index into Plan::downloads

  // "namespace/name"
  std::string QualifiedName() const { return ns + "/" + name; }
};

struct DownloadPlan {
  // The source with its TLS material and credentials (never printed).
  SourceSpec source;
  std::string checksum;  // "alg:hex" or ""
  // For people: the URL without secrets, and where it was declared
  // ("DataSource default/my-http-datasource").
  std::string display_url;
  std::string origin;
  // How the connection is secured, for the plan: "CA from Secret default/ca (ca.crt)".
  std::vector<std::string> security;
  std::vector<size_t> data_volumes;  // indices into Plan::data_volumes, in plan order
};

struct Plan {
  std::vector<DataVolumePlan> data_volumes;
  std::vector<DownloadPlan> downloads;
  // Things the user may want to know that are not errors: skipped documents,
  // pools with no replicas.
  std::vector<std::string> notes;
};

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_PLAN_H_
