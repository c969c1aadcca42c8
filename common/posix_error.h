// The one place where an errno value becomes a Status.
#ifndef CDI_COMMON_POSIX_ERROR_H_
#define CDI_COMMON_POSIX_ERROR_H_

#include <string_view>

#include "cdi/status.h"

namespace cdi {

// Returns "<what>: <cause>; <what to do>" with a code chosen by `error_number`:
//   ENOSPC, EDQUOT               -> kTooSmall ("no space left on device",
//                                   "disk quota exceeded": the phrases CDI's
//                                   controller matches), asking for a larger volume
//   EBUSY                        -> kIo, retryable: the device is in use (mounted)
//   ENOENT, EACCES, EPERM, EROFS, EEXIST, EISDIR, ENOTDIR, ENAMETOOLONG, ENOTBLK,
//   ELOOP                        -> kInvalidArgument: the path or volume is wrong
//   EINTR, EAGAIN, ENOMEM        -> kIo, retryable
//   EIO and everything else      -> kIo
// `what` says what was being done and to which path, e.g.
// "writing 4096 bytes to /data/disk.img at offset 1048576".
//
// `use` says whether the path was being written (a volume: the advice speaks of
// mounting it and of its owner) or read (an input: a source image, a CA file).
enum class PathUse { kWrite, kRead };
Status PosixError(int error_number, std::string_view what, PathUse use = PathUse::kWrite);

}  // namespace cdi

#endif  // CDI_COMMON_POSIX_ERROR_H_
