#include "common/posix_error.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace cdi {

Status PosixError(int error_number, std::string_view what, PathUse use) {
  const bool read = use == PathUse::kRead;
  std::string message(what);
  message += ": ";
  // The cause is spelled out here rather than taken from strerror() because
  // CDI's controller matches lower-case phrases ("no space left on device",
  // "disk quota exceeded") to mark a DataVolume as too small.
  switch (error_number) {
    case ENOSPC:
      return TooSmallError(message +
                           "no space left on device; the image does not fit: a larger volume "
                           "is required");
    case EDQUOT:
      return TooSmallError(message +
                           "disk quota exceeded; the image does not fit: a larger volume (or "
                           "quota) is required");
    case EBUSY:
      return IoError(message +
                         "device or resource busy: it is in use (mounted, or opened exclusively by "
                         "another program); unmount it or stop the other program, then retry",
                     Retryable::kYes);
    case ENOENT:
      return InvalidArgumentError(message + (read ? "no such file or directory; check the path"
                                                  : "no such file or directory; check the path "
                                                    "and that the volume is mounted"));
    case EACCES:
    case EPERM:
      return InvalidArgumentError(
          message + (read ? "permission denied; check the file's owner and mode, or run as a "
                            "user allowed to read it"
                          : "permission denied; check the volume's owner and mode, or run as a "
                            "user allowed to write it"));
    case EROFS:
      return InvalidArgumentError(message +
                                  "read-only file system or device; attach the volume read-write");
    case EEXIST:
      return InvalidArgumentError(message + "it already exists; remove it or choose another path");
    case EISDIR:
      return InvalidArgumentError(message + "it is a directory; give the path of a file");
    case ENOTDIR:
      return InvalidArgumentError(message +
                                  "not a directory (the path or one of its parents); check the "
                                  "path");
    case ELOOP:
      return InvalidArgumentError(message + "too many levels of symbolic links; check the path");
    case ENAMETOOLONG:
      return InvalidArgumentError(message + "file name too long; choose a shorter name");
    case ENOTBLK:
      return InvalidArgumentError(message + "not a block device; give a block device's path");
    case EINTR:
    case EAGAIN:
    case ENOMEM:
      return IoError(message + std::strerror(error_number) + "; try again", Retryable::kYes);
    case EIO:
      return IoError(message +
                     "input/output error: the storage failed; check the volume and the node's "
                     "kernel log");
    default:
      return IoError(message + std::strerror(error_number) + " (errno " +
                     std::to_string(error_number) +
                     "); check the volume and the node's kernel log");
  }
}

}  // namespace cdi
