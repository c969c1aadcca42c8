// cdi-importer: the importer pod's entrypoint for KubeVirt CDI.
#include "cmd/pod/pod.h"

int main(int argc, char** argv) { return cdi::pod::RunImporterPod(argc, argv); }
