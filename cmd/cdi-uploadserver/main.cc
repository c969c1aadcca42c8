// cdi-uploadserver: the upload server pod's entrypoint for KubeVirt CDI.
#include "cmd/cdi-uploadserver/uploadserver_pod.h"

int main(int argc, char** argv) { return cdi::uploadserver::RunUploadServerPod(argc, argv); }
