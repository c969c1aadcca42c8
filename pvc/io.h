// Small I/O helpers shared by the file and block targets.
#ifndef CDI_PVC_IO_H_
#define CDI_PVC_IO_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cdi/status.h"
#include "common/unique_fd.h"

namespace cdi::pvc {

// Writes all of `data` at `offset` with pwrite, retrying EINTR and continuing
// after short writes. Errors name `path` and the offset at which the failing
// write began (ENOSPC and EDQUOT come back as kTooSmall; see PosixError).
Status WriteFully(int fd, uint64_t offset, std::span<const uint8_t> data, const std::string& path);

// Ok when [offset, offset + length) lies inside [0, capacity); otherwise
// kTooSmall naming `operation` ("writing", "zeroing"), the range and `path`.
// An empty range is in bounds when offset <= capacity.
Status CheckInBounds(std::string_view operation, uint64_t offset, uint64_t length,
                     uint64_t capacity, const std::string& path);

// A new descriptor of the file or device `fd` refers to, for a sync that
// runs on another thread (Target::StartSync); errors name `path`.
Result<UniqueFd> DuplicateForSync(int fd, const std::string& path);

// 1 MiB of zeros, for writing zeros where nothing better works.
std::span<const uint8_t> ZeroBuffer();

// The message CDI's controller recognises as "DataVolume too small to contain
// image" ("... is larger than the reported available storage ..."), as kTooSmall.
Status LargerThanAvailable(uint64_t size, uint64_t capacity, const std::string& path);

}  // namespace cdi::pvc

#endif  // CDI_PVC_IO_H_
