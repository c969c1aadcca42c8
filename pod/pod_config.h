// What CDI's controller tells an importer pod, read from its environment and
// mounted files, and turned into an import spec.
//
// The variables and their treatment follow CDI's importer
// (cmd/cdi-importer/importer.go, pkg/importer/http-datasource.go); README.md
// ("Running as CDI's importer") has the table. Refusals carry the
// termination message CDI's importer writes for them, so that the controller
// and the admin see the same text:
//   Unknown data source: <src>                                  (unknown IMPORTER_SOURCE)
//   Unable to connect to <src> data source: ... not supported   (gcs, imageio, vddk)
//   the PREALLOCATION environment variable is with a wrong value "<v>"; should be "true" or "false"
//   Unable to connect to http data source: invalid checksum: ...
//   Unable to process data: IMPORTER_IMAGE_SIZE ... / FILESYSTEM_OVERHEAD ... / Unknown content
//   type: <t>
#ifndef CDI_POD_POD_CONFIG_H_
#define CDI_POD_POD_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"

namespace cdi::pod {

// Paths of the pod's contract: CDI's defaults, overridable by flags for runs
// outside a pod (tests, debugging).
struct PodPaths {
  std::string data_dir = "/data";                      // filesystem volume mount
  std::string block_device = "/dev/cdi-block-volume";  // block volume device
  std::string scratch_dir = "/scratch";                // scratch volume, when mounted
  std::string termination_log = "/dev/termination-log";
  std::string proxy_cert_dir = "/proxycerts";       // cluster-wide proxy CA bundle
  std::string extra_headers_dir = "/extraheaders";  // secret extra headers, <i>/<key>
  std::string metrics_address = ":8443";
};

// The process environment: "NAME=value" entries, in their order.
class Environment {
 public:
  explicit Environment(std::vector<std::string> entries) : entries_(std::move(entries)) {}
  static Environment FromProcess();

  // The value of `name`; nullopt when unset (an empty value is set).
  std::optional<std::string> Get(std::string_view name) const;
  // Unset reads as "".
  std::string GetOr(std::string_view name) const { return Get(name).value_or(""); }
  // (name, value) of every variable whose name starts with `prefix`, in order.
  std::vector<std::pair<std::string, std::string>> WithPrefix(std::string_view prefix) const;

 private:
  std::vector<std::string> entries_;
};

enum class SourceKind {
  kHttp,      // IMPORTER_SOURCE=http (or empty)
  kBlank,     // IMPORTER_SOURCE=none
  kRegistry,  // IMPORTER_SOURCE=registry, a docker:// endpoint
  kS3,        // IMPORTER_SOURCE=s3
};

// The name CDI's messages give the source ("http", "none", "registry", "s3").
std::string_view SourceName(SourceKind kind);

// Where the pod writes: a block device when the block device path exists (as
// CDI decides), otherwise the filesystem volume.
enum class VolumeMode { kFilesystem, kBlock };
VolumeMode DetectVolumeMode(const PodPaths& paths);

struct PodConfig {
  SourceKind source = SourceKind::kHttp;
  ContentType content_type = ContentType::kDiskImage;
  std::string endpoint;                // IMPORTER_ENDPOINT
  std::optional<uint64_t> image_size;  // IMPORTER_IMAGE_SIZE, bytes
  double filesystem_overhead = 0.0;    // FILESYSTEM_OVERHEAD
  Preallocation preallocation = Preallocation::kOff;
  TlsVerify tls_verify = TlsVerify::kOn;  // INSECURE_TLS
  std::string cert_dir;                   // IMPORTER_CERT_DIR
  std::string user;                       // IMPORTER_ACCESS_KEY_ID
  std::string password;                   // IMPORTER_SECRET_KEY
  // "Name: value" lines: IMPORTER_EXTRA_HEADER_<n>, then the secret files.
  std::vector<std::string> extra_headers;
  std::string checksum;    // IMPORTER_CHECKSUM, validated
  std::string owner_uid;   // OWNER_UID
  std::string cache_mode;  // CACHE_MODE
  std::string registry_architecture;  // IMPORTER_REGISTRY_IMAGE_ARCHITECTURE
  // IMPORTER_SOURCE=s3: the object, s3://BUCKET/KEY, and how it is reached,
  // from IMPORTER_ENDPOINT as CDI's importer reads it
  // (http(s)://HOST[:PORT]/BUCKET/KEY: path-style, plain http for http://
  // only, the region from HOST) with IMPORTER_ACCESS_KEY_ID and
  // IMPORTER_SECRET_KEY, or else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
  // and AWS_SESSION_TOKEN from the pod's environment, or else none
  // (anonymous requests).
  std::string s3_url;
  S3Settings s3;
};

// Reads the environment (and the secret header files under
// paths.extra_headers_dir). A refusal is kInvalidArgument or kUnsupported
// whose message is the whole termination message to write (exit code 1).
// Problems CDI ignores silently are logged as warnings instead: an
// INSECURE_TLS that is not a boolean (verification stays on), only one of
// the basic-auth pair, a header line without "Name:".
Result<PodConfig> ParsePodEnvironment(const Environment& env, const PodPaths& paths);

// Go's strconv.ParseBool, which CDI uses for PREALLOCATION and INSECURE_TLS:
// 1 t T TRUE true True / 0 f F FALSE false False.
std::optional<bool> ParseGoBool(std::string_view text);

// The path written for a disk image on a filesystem volume: <data dir>/disk.img.
std::string DiskImagePath(const PodPaths& paths);

// The import an http, registry or s3 source asks for, into the volume `mode` names: a disk
// image into the block device or <data dir>/disk.img (replacing a file left
// there), an archive into the data dir (whatever `mode`: archives on block
// volumes are the caller's to refuse).
ImportSpec MakeImportSpec(const PodConfig& config, const PodPaths& paths, VolumeMode mode);
// The blank disk IMPORTER_SOURCE=none asks for.
TargetSpec MakeBlankTarget(const PodConfig& config, const PodPaths& paths, VolumeMode mode);

// Rewrites klog-style arguments, as CDI's controller and CDI's image
// entrypoint pass them, into a form the flag parser takes: "-v=3" is
// "--v=3", a bare "-v" is "--v=1" and "-vv" "--v=2"; klog's booleans
// "-alsologtostderr" and "-logtostderr" (also "=true"/"=false") get two
// dashes. Other arguments are unchanged.
std::vector<std::string> NormalizeVerbosityArguments(const std::vector<std::string>& arguments);

// klog's arguments among `arguments` (-v=N, -v N, -alsologtostderr,
// -logtostderr, with one or two dashes, as they came; "-vv" becomes "-v=2"),
// in their order: what CDI's importer takes, when a pod is handed over to it.
std::vector<std::string> KlogArguments(const std::vector<std::string>& arguments);

}  // namespace cdi::pod

#endif  // CDI_POD_POD_CONFIG_H_
