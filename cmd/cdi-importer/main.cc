// cdi-importer: the importer pod's entrypoint for KubeVirt CDI.
#include "cmd/cdi-importer/importer_pod.h"

int main(int argc, char** argv) { return cdi::pod::RunImporterPod(argc, argv); }
