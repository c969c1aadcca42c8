// cdi-importer: the importer pod's entrypoint, speaking CDI's contract.
//
// Reads what CDI's controller passes (environment, mounted certificates and
// secret headers; pod_config.h), serves the progress metric over HTTPS
// (metrics_server.h), runs the import or creates the blank disk, writes the
// termination message (termination_message.h) and exits:
//   0  success: {"scratchSpaceRequired":false,"preallocationApplied":<bool>,"message":"Import
//   Complete"} 0  checksum mismatch: {"message":"Unable to process data: ... checksum mismatch:
//   ..."},
//      what was written removed (so that the pod does not restart in a loop)
//   1  any other failure: "Unable to process data: ..." or
//      "Unable to connect to http data source: ..." as plain text
//   130 cancelled by SIGTERM or SIGINT (what was written removed)
#ifndef CDI_CMD_CDI_IMPORTER_IMPORTER_POD_H_
#define CDI_CMD_CDI_IMPORTER_IMPORTER_POD_H_

namespace cdi::pod {

// Flags, for runs outside a pod (CDI's paths are the defaults):
//   --data-dir DIR --block-device PATH --scratch-dir DIR --termination-log FILE
//   --metrics-address HOST:PORT --proxy-cert-dir DIR --extra-headers-dir DIR
//   -v=N (klog style, as CDI passes it; 3 and more: debug logging)
// Returns the process exit code.
int RunImporterPod(int argc, char** argv);

}  // namespace cdi::pod

#endif  // CDI_CMD_CDI_IMPORTER_IMPORTER_POD_H_
