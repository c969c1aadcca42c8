// Where an image goes: a file or a block device, its requested size and
// filesystem overhead, and what to do with what is already there. Part of the
// public API (cdi/import.h includes it); the pvc module builds on these
// enums and structs.
#ifndef CDI_TARGET_H_
#define CDI_TARGET_H_

#include <cstdint>
#include <optional>
#include <string>

namespace cdi {

enum class TargetKind {
  kAuto,         // a block device if the path is one, otherwise a file
  kFile,
  kBlockDevice,
};
enum class ExistingFile { kRefuse, kReplace };
enum class Preallocation { kOff, kOn };

struct TargetSpec {
  std::string path;
  TargetKind kind = TargetKind::kAuto;
  // Requested storage in bytes (a PVC's size). Unset: the image's virtual size
  // for a file, the device size for a block device.
  std::optional<uint64_t> requested_size;
  // Fraction of a filesystem kept for its own metadata (CDI's default is 0.06;
  // 0 for block devices). Usable size of a file target:
  //   RoundDown(ceil(min(free space, requested) / (1 + overhead)), 1 MiB).
  double filesystem_overhead = 0.0;
  ExistingFile existing = ExistingFile::kRefuse;
  Preallocation preallocation = Preallocation::kOff;
};

}  // namespace cdi

#endif  // CDI_TARGET_H_
