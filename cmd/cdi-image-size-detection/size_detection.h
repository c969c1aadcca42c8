// cdi-image-size-detection: the virtual size of a disk image, for CDI's
// host-assisted clones from filesystem volumes.
//
// CDI's controller runs it from the importer image as
//   /usr/bin/cdi-image-size-detection -image-path /data/disk.img
// with the source volume mounted, and reads the termination message: the
// image's virtual size in bytes, in decimal, nothing else. Flags are Go's
// (pod/go_flags.h):
//   -image-path PATH   the image (mandatory)
//   -scheme S          prefix of -image-path: file:// (default), http://, https://
//   -termination-log F where the size goes (default /dev/termination-log)
//   -version           prints "cdi-image-size-detection <version>" and exits 0
// The size is the library's Inspect(): every format cdi-image decodes (raw,
// qcow2, vmdk, vdi, vhd, also inside gzip, xz or zstd). Exit codes are CDI's
// (pkg/controller/common: the size-detection pod's codes):
//   0 the size was written   1 bad arguments   2 the image cannot be read or
//   is not one we decode      3 the path or scheme is not one we read
//   4 the termination message cannot be written
#ifndef CDI_CMD_CDI_IMAGE_SIZE_DETECTION_SIZE_DETECTION_H_
#define CDI_CMD_CDI_IMAGE_SIZE_DETECTION_SIZE_DETECTION_H_

#include <string>
#include <vector>

namespace cdi::sizedetect {

enum SizeDetectionExit : int {
  kSizeOk = 0,
  kSizeBadArguments = 1,
  kSizeInvalidFile = 2,
  kSizeInvalidPath = 3,
  kSizeBadTermFile = 4,
};

// Runs the tool on `arguments` (without the program name); returns the exit code.
int RunSizeDetection(const std::string& program, const std::vector<std::string>& arguments);

}  // namespace cdi::sizedetect

#endif  // CDI_CMD_CDI_IMAGE_SIZE_DETECTION_SIZE_DETECTION_H_
