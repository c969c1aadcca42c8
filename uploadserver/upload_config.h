// What CDI's controller tells an upload server pod, read from its
// environment (CDI's cmd/cdi-uploadserver), and the paths the flags move for
// runs outside a pod. README.md ("Running as CDI's upload server") has the
// table.
#ifndef CDI_UPLOADSERVER_UPLOAD_CONFIG_H_
#define CDI_UPLOADSERVER_UPLOAD_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "pod/pod_config.h"

namespace cdi::uploadserver {

// The pod's fixed paths: CDI's defaults, overridable by flags.
struct UploadPaths {
  std::string data_dir = "/data";        // filesystem volume mount: archives, filesystem clones
  std::string scratch_dir = "/scratch";  // used for out-of-order qcow2 data when it exists
  std::string termination_log = "/dev/termination-log";
};

struct UploadConfig {
  std::string listen_host = "0.0.0.0";  // LISTEN_ADDRESS (set and empty: every address)
  uint16_t listen_port = 8443;          // LISTEN_PORT
  // DESTINATION: <data dir>/disk.img by default, /dev/cdi-block-volume for
  // block volumes.
  std::string destination;
  std::string data_dir;  // where archives and filesystem clones are extracted
  std::string scratch_dir;
  std::string key_file;        // TLS_KEY_FILE
  std::string cert_file;       // TLS_CERT_FILE
  std::string client_ca_file;  // CLIENT_CERT_FILE: the CA of client certificates
  std::string client_name;     // CLIENT_NAME: the CN a client certificate must carry
  std::optional<uint64_t> image_size;  // UPLOAD_IMAGE_SIZE, bytes
  double filesystem_overhead = 0.0;    // FILESYSTEM_OVERHEAD
  Preallocation preallocation = Preallocation::kOff;  // PREALLOCATION
  std::vector<std::string> cipher_suites;             // TLS_CIPHERS, IANA names
  int min_tls_version = 0;  // TLS_MIN_VERSION as OpenSSL's constant; 0: TLS 1.2
  std::optional<std::chrono::system_clock::time_point> deadline;  // DEADLINE
  // How long an upload whose connection dropped waits for a request that
  // continues it (--resume-wait).
  std::chrono::milliseconds resume_wait = std::chrono::minutes(10);
  // OWNER_UID: the label of the progress metric (GET /metrics), as the
  // importer pod's.
  std::string owner_uid;
};

// Reads the environment as CDI's upload server does: LISTEN_PORT,
// FILESYSTEM_OVERHEAD, PREALLOCATION, TLS_MIN_VERSION and TLS_CIPHERS that
// do not parse fall back to their defaults (with a warning here). Refused
// (kInvalidArgument, the message says which variable and what is expected):
// no TLS_KEY_FILE or TLS_CERT_FILE, a DEADLINE that is not RFC 3339, an
// UPLOAD_IMAGE_SIZE that is not a quantity.
Result<UploadConfig> ParseUploadEnvironment(const pod::Environment& env, const UploadPaths& paths);

// An RFC 3339 time ("2026-01-02T15:04:05Z", "...05.123+02:00"), as Go's
// time.RFC3339 layout parses it. kInvalidArgument otherwise.
Result<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_UPLOAD_CONFIG_H_
