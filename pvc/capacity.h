// The free space of a volume. The size rules (quantities, overhead, usable
// size) are the public ones of cdi/quantity.h.
#ifndef CDI_PVC_CAPACITY_H_
#define CDI_PVC_CAPACITY_H_

#include <cstdint>
#include <string>

#include "cdi/quantity.h"
#include "cdi/status.h"

namespace cdi::pvc {

// Free bytes of the filesystem holding `path` for an unprivileged writer
// (statvfs: f_bavail * f_frsize). `path` may be any file or directory on it.
Result<uint64_t> AvailableSpace(const std::string& path);

}  // namespace cdi::pvc

#endif  // CDI_PVC_CAPACITY_H_
