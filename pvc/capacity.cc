#include "pvc/capacity.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <limits>

#include "common/posix_error.h"

namespace cdi::pvc {

using u128 = unsigned __int128;

Result<uint64_t> AvailableSpace(const std::string& path) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) {
    return PosixError(errno, "checking the free space of the filesystem holding " + path);
  }
  u128 bytes = u128{st.f_bavail} * st.f_frsize;
  return static_cast<uint64_t>(std::min<u128>(bytes, std::numeric_limits<uint64_t>::max()));
}

}  // namespace cdi::pvc
