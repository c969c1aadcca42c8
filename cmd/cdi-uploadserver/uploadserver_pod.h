// cdi-uploadserver: CDI's upload server pod, speaking CDI's contract.
//
// Reads what CDI's controller passes (environment: upload_config.h), serves
// the upload endpoints over HTTPS (upload_server.h) until one upload
// completed or the deadline passed, writes the termination message and
// exits:
//   0   an upload completed: {"preallocationApplied":<bool>,"message":"Upload Complete"}
//       ("Clone Complete" for a clone stream)
//   0   DEADLINE passed with no upload done: {"deadlinePassed":true,"message":"Deadline Passed"}
//   1   the environment is refused, the TLS files or the address cannot be
//       used, or an asynchronous upload failed after its answer (plain text)
//   130 stopped by SIGTERM or SIGINT (an upload in flight is removed)
#ifndef CDI_CMD_CDI_UPLOADSERVER_UPLOADSERVER_POD_H_
#define CDI_CMD_CDI_UPLOADSERVER_UPLOADSERVER_POD_H_

namespace cdi::uploadserver {

// Flags, for runs outside a pod (CDI's paths are the defaults):
//   --data-dir DIR --scratch-dir DIR --termination-log FILE -v=N
// Returns the process exit code.
int RunUploadServerPod(int argc, char** argv);

}  // namespace cdi::uploadserver

#endif  // CDI_CMD_CDI_UPLOADSERVER_UPLOADSERVER_POD_H_
