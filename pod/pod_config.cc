#include "pod/pod_config.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cdi/checksum.h"
#include "cdi/headers.h"
#include "cdi/quantity.h"
#include "common/log.h"
#include "common/text.h"
#include "sources/s3/s3_location.h"

extern char** environ;

namespace cdi::pod {
namespace {

constexpr std::string_view kExtraHeaderPrefix = "IMPORTER_EXTRA_HEADER_";

// Sources CDI's importer knows that this one does not implement.
constexpr std::string_view kOtherSources[] = {"gcs", "imageio", "vddk"};

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A header line as the request will carry it, or nullopt when it is not of
// the form "Name: value" (CDI drops such lines; so do we, saying where it
// came from but never what it holds: it may be a secret).
std::optional<std::string> HeaderLine(std::string_view raw, std::string_view origin) {
  std::string line(TrimSpace(raw));
  // Go's net/http writes line breaks inside a value as spaces.
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
  Status valid = ValidateHeaderLine(line, "the extra header from " + std::string(origin));
  if (!valid.ok()) {
    Logger()->warn("ignoring {}", valid.message());
    return std::nullopt;
  }
  return line;
}

// Every file under `dir`, recursively and in name order, skipping names that
// start with '.' (Kubernetes' "..data" links and timestamped directories), as
// CDI walks /extraheaders. Links to files are read; directories are entered
// only when they are real directories.
Status CollectHeaderFiles(const std::string& dir, std::vector<std::string>& headers) {
  DIR* stream = opendir(dir.c_str());
  if (stream == nullptr) {
    if (errno == ENOENT) return Status::Ok();
    return InvalidArgumentError("Error getting extra headers for HTTP client: cannot list " + dir +
                                ": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* entry = readdir(stream)) {
    if (entry->d_name[0] != '.') names.emplace_back(entry->d_name);
  }
  closedir(stream);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      CDI_RETURN_IF_ERROR(CollectHeaderFiles(path, headers));
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return InvalidArgumentError("Error getting extra headers for HTTP client: cannot read " +
                                  path);
    }
    std::ostringstream content;
    content << in.rdbuf();
    if (auto line = HeaderLine(content.str(), path)) headers.push_back(*line);
  }
  return Status::Ok();
}

Status Refusal(std::string message) { return InvalidArgumentError(std::move(message)); }

// "http:" of "HTTP://host/x": the scheme and its colon, lower case ("" without "://").
std::string LowerScheme(const std::string& endpoint) {
  std::string scheme = endpoint.substr(0, endpoint.find("://") + 1);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return scheme;
}

// IMPORTER_ENDPOINT of an s3 source, read as CDI's importer reads it (Go's
// url.Parse, then its host, scheme and path): http(s)://HOST[:PORT]/BUCKET/KEY,
// the bucket in the path, plain http only for http:// (any other scheme is
// https), the signing region from HOST. Credentials: the Secret's pair, else
// the pod's AWS_* variables (as the AWS SDK's default chain reads them
// first), else none.
Status ReadS3Source(const Environment& env, PodConfig& config) {
  const std::string prefix = "Unable to connect to s3 data source: ";
  std::string_view endpoint = config.endpoint;
  endpoint = endpoint.substr(0, endpoint.find_first_of("?#"));
  const size_t separator = endpoint.find("://");
  if (separator == std::string_view::npos) {
    return Refusal(prefix + "endpoint \"" + RedactUrl(config.endpoint) +
                   "\" is not a URL: expected http(s)://HOST[:PORT]/BUCKET/KEY");
  }
  const std::string scheme = AsciiLower(endpoint.substr(0, separator));
  std::string_view rest = endpoint.substr(separator + 3);
  const size_t slash = rest.find('/');
  std::string_view host = rest.substr(0, slash);
  if (const size_t at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  std::string path;
  if (slash == std::string_view::npos ||
      !importer::PercentDecode(rest.substr(slash), &path)) {
    path.clear();
  }
  while (path.starts_with('/')) path.erase(0, 1);
  while (path.ends_with('/')) path.pop_back();
  const size_t key_start = path.find('/');
  if (host.empty() || key_start == std::string::npos || key_start == 0 ||
      key_start + 1 == path.size()) {
    return Refusal(prefix + "endpoint \"" + RedactUrl(config.endpoint) +
                   "\" does not name an object: expected http(s)://HOST[:PORT]/BUCKET/KEY");
  }
  config.s3_url = "s3://" + path;
  config.s3.endpoint = (scheme == "http" ? "http://" : "https://") + std::string(host);
  config.s3.region = importer::RegionFromHost(host);
  config.s3.addressing = S3Addressing::kPath;

  std::string key = env.GetOr("IMPORTER_ACCESS_KEY_ID");
  std::string secret = env.GetOr("IMPORTER_SECRET_KEY");
  if (key.empty() != secret.empty()) {
    return Refusal(prefix + "could not build s3 client: s3 access key and secret key must be set "
                   "together or not at all (IMPORTER_ACCESS_KEY_ID, IMPORTER_SECRET_KEY)");
  }
  if (key.empty()) {
    key = env.GetOr("AWS_ACCESS_KEY_ID");
    secret = env.GetOr("AWS_SECRET_ACCESS_KEY");
    if (!key.empty() && !secret.empty()) {
      config.s3.session_token = env.GetOr("AWS_SESSION_TOKEN");
      Logger()->info("S3 credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    } else {
      key.clear();
      secret.clear();
      Logger()->info("No S3 credentials (IMPORTER_ACCESS_KEY_ID, IMPORTER_SECRET_KEY): the "
                     "requests go unsigned, as for a public object");
    }
  }
  config.s3.access_key_id = std::move(key);
  config.s3.secret_access_key = std::move(secret);
  config.cert_dir = env.GetOr("IMPORTER_CERT_DIR");
  if (!env.GetOr("INSECURE_TLS").empty()) {
    // CDI's s3 client verifies certificates whatever INSECURE_TLS says.
    Logger()->warn("INSECURE_TLS does not apply to s3 sources: the certificate is verified");
  }
  return Status::Ok();
}

}  // namespace

std::string_view SourceName(SourceKind kind) {
  switch (kind) {
    case SourceKind::kHttp:
      return "http";
    case SourceKind::kBlank:
      return "none";
    case SourceKind::kRegistry:
      return "registry";
    case SourceKind::kS3:
      return "s3";
  }
  return "http";
}

Environment Environment::FromProcess() {
  std::vector<std::string> entries;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    entries.emplace_back(*entry);
  }
  return Environment(std::move(entries));
}

std::optional<std::string> Environment::Get(std::string_view name) const {
  // The last definition wins, as getenv's does for duplicates set later.
  std::optional<std::string> value;
  for (const std::string& entry : entries_) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=') {
      value = entry.substr(name.size() + 1);
    }
  }
  return value;
}

std::vector<std::pair<std::string, std::string>> Environment::WithPrefix(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> found;
  for (const std::string& entry : entries_) {
    size_t equals = entry.find('=');
    if (equals == std::string::npos || !entry.starts_with(prefix)) continue;
    found.emplace_back(entry.substr(0, equals), entry.substr(equals + 1));
  }
  return found;
}

std::optional<bool> ParseGoBool(std::string_view text) {
  for (std::string_view yes : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (text == yes) return true;
  }
  for (std::string_view no : {"0", "f", "F", "FALSE", "false", "False"}) {
    if (text == no) return false;
  }
  return std::nullopt;
}

VolumeMode DetectVolumeMode(const PodPaths& paths) {
  struct stat st {};
  return stat(paths.block_device.c_str(), &st) == 0 ? VolumeMode::kBlock : VolumeMode::kFilesystem;
}

std::string DiskImagePath(const PodPaths& paths) {
  return (paths.data_dir == "/" ? "" : paths.data_dir) + "/disk.img";
}

Result<PodConfig> ParsePodEnvironment(const Environment& env, const PodPaths& paths) {
  PodConfig config;

  // CDI parses PREALLOCATION first and exits on a bad value. Unset is false
  // here (CDI's controller always sets it).
  const std::string preallocation = env.GetOr("PREALLOCATION");
  if (!preallocation.empty()) {
    std::optional<bool> on = ParseGoBool(preallocation);
    if (!on) {
      return Refusal("the PREALLOCATION environment variable is with a wrong value \"" +
                     preallocation + "\"; should be \"true\" or \"false\"");
    }
    config.preallocation = *on ? Preallocation::kOn : Preallocation::kOff;
  }

  const std::string source = env.GetOr("IMPORTER_SOURCE");
  if (source.empty() || source == "http") {
    config.source = SourceKind::kHttp;
  } else if (source == "none") {
    config.source = SourceKind::kBlank;
  } else if (source == "registry") {
    config.source = SourceKind::kRegistry;
  } else if (source == "s3") {
    config.source = SourceKind::kS3;
  } else if (std::find(std::begin(kOtherSources), std::end(kOtherSources), source) !=
             std::end(kOtherSources)) {
    return UnsupportedError("Unable to connect to " + source +
                            " data source: IMPORTER_SOURCE=" + source +
                            " is not supported by this importer, which imports from http, "
                            "https, registries and s3 and creates blank disks (none); the overlay image "
                            "(Containerfile.cdi-overlay) hands " +
                            source + " sources over to CDI's importer");
  } else {
    return Refusal("Unknown data source: " + source);
  }

  const std::string content_type = env.GetOr("IMPORTER_CONTENTTYPE");
  if (content_type.empty() || content_type == "kubevirt") {
    config.content_type = ContentType::kDiskImage;
  } else if (content_type == "archive") {
    config.content_type = ContentType::kArchive;
  } else {
    return Refusal("Unable to process data: Unknown content type: " + content_type);
  }

  if (std::string size = env.GetOr("IMPORTER_IMAGE_SIZE"); !size.empty()) {
    Result<uint64_t> bytes = ParseQuantity(size);
    if (!bytes.ok())
      return Refusal("Unable to process data: IMPORTER_IMAGE_SIZE: " + bytes.status().message());
    config.image_size = *bytes;
  }
  // Unset is 0, as in CDI's importer (the controller passes its configured
  // overhead, 0.06 by default, for filesystem volumes).
  if (std::string overhead = env.GetOr("FILESYSTEM_OVERHEAD"); !overhead.empty()) {
    Result<double> fraction = ParseOverhead(overhead);
    if (!fraction.ok()) {
      return Refusal("Unable to process data: FILESYSTEM_OVERHEAD: " + fraction.status().message());
    }
    config.filesystem_overhead = *fraction;
  }

  config.owner_uid = env.GetOr("OWNER_UID");
  config.cache_mode = env.GetOr("CACHE_MODE");
  if (config.source == SourceKind::kBlank) return config;

  if (config.source == SourceKind::kRegistry) {
    // CDI's importer reads registries for disk images only.
    if (config.content_type != ContentType::kDiskImage) {
      return Refusal("Unsupported content type archive when importing from registry");
    }
    config.endpoint = env.GetOr("IMPORTER_ENDPOINT");
    if (LowerScheme(config.endpoint) != "docker:") {
      return Refusal("Unable to connect to registry data source: endpoint \"" +
                     RedactUrl(config.endpoint) +
                     "\" is not a docker:// image reference (docker://HOST[:PORT]/REPO[:TAG]); "
                     "the overlay image (Containerfile.cdi-overlay) hands other transports "
                     "(oci-archive:) over to CDI's importer");
    }
    config.registry_architecture = env.GetOr("IMPORTER_REGISTRY_IMAGE_ARCHITECTURE");
  } else {
    // The registry's node-pull method runs a server sidecar from CDI's importer
    // image and points an http source at it.
    if (env.GetOr("IMPORTER_PULL_METHOD") == "node") {
      return UnsupportedError(
          "Unable to connect to http data source: registry imports with the node pull method "
          "(IMPORTER_PULL_METHOD=node) are not supported by this importer; the overlay image "
          "(Containerfile.cdi-overlay) hands them over to CDI's importer");
    }
    config.endpoint = env.GetOr("IMPORTER_ENDPOINT");
    if (config.endpoint.empty()) {
      return Refusal("Unable to connect to " + std::string(SourceName(config.source)) +
                     " data source: endpoint \"IMPORTER_ENDPOINT\" is missing or blank");
    }
    if (config.source == SourceKind::kS3) CDI_RETURN_IF_ERROR(ReadS3Source(env, config));
    // Only URLs: the library would also read a local path or standard input.
    const std::string scheme = LowerScheme(config.endpoint);
    if (config.source == SourceKind::kHttp && scheme != "http:" && scheme != "https:") {
      return Refusal("Unable to connect to http data source: endpoint \"" +
                     RedactUrl(config.endpoint) + "\" is not an http:// or https:// URL");
    }
    config.checksum = env.GetOr("IMPORTER_CHECKSUM");
    if (!config.checksum.empty()) {
      Result<ExpectedChecksum> parsed = ParseChecksum(config.checksum);
      if (!parsed.ok()) {
        return Refusal("Unable to connect to " + std::string(SourceName(config.source)) +
                       " data source: invalid checksum: " + parsed.status().message());
      }
    }
  }
  // What follows is http's and the registry's (s3 read its own above).
  if (config.source == SourceKind::kS3) return config;

  const std::string insecure = env.GetOr("INSECURE_TLS");
  std::optional<bool> skip_verify = ParseGoBool(insecure);
  if (!insecure.empty() && !skip_verify) {
    Logger()->warn("INSECURE_TLS=\"{}\" is not a boolean; the server's certificate is verified",
                 insecure);
  }
  config.tls_verify = skip_verify.value_or(false) ? TlsVerify::kOff : TlsVerify::kOn;
  config.cert_dir = env.GetOr("IMPORTER_CERT_DIR");

  // Basic auth is used only with both halves, as in CDI.
  std::string user = env.GetOr("IMPORTER_ACCESS_KEY_ID");
  std::string password = env.GetOr("IMPORTER_SECRET_KEY");
  if (!user.empty() && !password.empty()) {
    config.user = std::move(user);
    config.password = std::move(password);
  } else if (!user.empty() || !password.empty()) {
    Logger()->warn(
        "only one of IMPORTER_ACCESS_KEY_ID and IMPORTER_SECRET_KEY is set; no basic "
        "authentication is sent");
  }

  // Extra headers are HTTP's (CDI's registry source sends none).
  if (config.source == SourceKind::kRegistry) return config;
  for (const auto& [name, value] : env.WithPrefix(kExtraHeaderPrefix)) {
    if (auto line = HeaderLine(value, name)) config.extra_headers.push_back(*line);
  }
  CDI_RETURN_IF_ERROR(CollectHeaderFiles(paths.extra_headers_dir, config.extra_headers)
                          .Annotate("Unable to connect to http data source"));
  return config;
}

ImportSpec MakeImportSpec(const PodConfig& config, const PodPaths& paths, VolumeMode mode) {
  ImportSpec spec;
  spec.source.url = config.source == SourceKind::kS3 ? config.s3_url : config.endpoint;
  spec.source.s3 = config.s3;
  spec.source.tls.verify = config.tls_verify;
  if (!config.cert_dir.empty()) spec.source.tls.ca_dirs.push_back(config.cert_dir);
  if (IsDirectory(paths.proxy_cert_dir)) spec.source.tls.ca_dirs.push_back(paths.proxy_cert_dir);
  spec.source.auth.user = config.user;
  spec.source.auth.password = config.password;
  spec.source.auth.headers = config.extra_headers;
  // An insecure registry (CDI passes insecureRegistries as INSECURE_TLS):
  // HTTPS unverified, or plain HTTP.
  spec.source.registry.insecure = config.tls_verify == TlsVerify::kOff;
  spec.source.registry.architecture = config.registry_architecture;
  spec.checksum = config.checksum;
  spec.content_type = config.content_type;
  if (IsDirectory(paths.scratch_dir)) spec.scratch_dir = paths.scratch_dir;

  if (config.content_type == ContentType::kArchive) {
    TargetSpec target;
    target.preallocation = config.preallocation;
    target.path = paths.data_dir;
    target.requested_size = config.image_size;
    target.filesystem_overhead = config.filesystem_overhead;
    spec.targets.push_back(std::move(target));
  } else {
    // A disk image lands where a blank disk would: the same target.
    spec.targets.push_back(MakeBlankTarget(config, paths, mode));
  }
  return spec;
}

TargetSpec MakeBlankTarget(const PodConfig& config, const PodPaths& paths, VolumeMode mode) {
  TargetSpec target;
  target.preallocation = config.preallocation;
  if (mode == VolumeMode::kBlock) {
    target.path = paths.block_device;
    target.kind = TargetKind::kBlockDevice;
  } else {
    target.path = DiskImagePath(paths);
    target.kind = TargetKind::kFile;
    target.requested_size = config.image_size;
    target.filesystem_overhead = config.filesystem_overhead;
    target.existing = ExistingFile::kReplace;
  }
  return target;
}

namespace {

bool IsNumber(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "-name=value" or "--name" -> "name"; "" when not a flag.
std::string_view FlagName(std::string_view argument) {
  if (!argument.starts_with('-')) return {};
  argument.remove_prefix(argument.starts_with("--") ? 2 : 1);
  return argument.substr(0, argument.find('='));
}

// klog's boolean flags about where logs go: this importer always logs to
// standard error, so they are accepted and change nothing.
bool IsKlogBoolean(std::string_view argument) {
  const std::string_view name = FlagName(argument);
  return name == "alsologtostderr" || name == "logtostderr";
}

}  // namespace

std::vector<std::string> NormalizeVerbosityArguments(const std::vector<std::string>& arguments) {
  auto is_number = IsNumber;
  std::vector<std::string> out;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument.starts_with("-v=")) {
      out.push_back("--v=" + argument.substr(3));
    } else if (argument == "-v") {
      if (i + 1 < arguments.size() && is_number(arguments[i + 1])) {
        out.push_back("--v=" + arguments[++i]);
      } else {
        out.push_back("--v=1");
      }
    } else if (argument.size() > 2 && argument.starts_with("-v") &&
               argument.find_first_not_of('v', 1) == std::string::npos) {
      out.push_back("--v=" + std::to_string(argument.size() - 1));
    } else if (IsKlogBoolean(argument)) {
      out.push_back(argument.starts_with("--") ? argument : "-" + argument);
    } else {
      out.push_back(argument);
    }
  }
  return out;
}

std::vector<std::string> KlogArguments(const std::vector<std::string>& arguments) {
  std::vector<std::string> out;
  for (size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    const std::string_view name = FlagName(argument);
    if (IsKlogBoolean(argument) || (name == "v" && argument.find('=') != std::string::npos)) {
      out.push_back(argument);
    } else if (name == "v") {
      out.push_back(argument);
      if (i + 1 < arguments.size() && IsNumber(arguments[i + 1])) out.push_back(arguments[++i]);
    } else if (argument.size() > 2 && argument.starts_with("-v") &&
               argument.find_first_not_of('v', 1) == std::string::npos) {
      out.push_back("-v=" + std::to_string(argument.size() - 1));
    }
  }
  return out;
}

}  // namespace cdi::pod
