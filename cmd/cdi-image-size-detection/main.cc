// cdi-image-size-detection: writes a disk image's virtual size as the
// termination message, for CDI's host-assisted clones.
#include <string>
#include <vector>

#include "cmd/cdi-image-size-detection/size_detection.h"

int main(int argc, char** argv) {
  return cdi::sizedetect::RunSizeDetection(argv[0], std::vector<std::string>(argv + 1, argv + argc));
}
