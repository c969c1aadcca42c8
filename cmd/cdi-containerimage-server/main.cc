// cdi-containerimage-server: serves the disk file of a containerDisk image
// to the importer of a registry node-pull import (pod/containerimage_server.h).
#include <string>
#include <vector>

#include "pod/containerimage_server.h"

int main(int argc, char** argv) {
  return cdi::pod::RunContainerImageServer(argv[0],
                                           std::vector<std::string>(argv + 1, argv + argc));
}
