#include "cmd/cdi-image/image_cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cdi/headers.h"
#include "cdi/import.h"
#include "cdi/spdlog.h"
#include "cmd/cdi-image/apply_command.h"
#include "cmd/cdi-image/upload_command.h"
#include "cmd/cli/exit_codes.h"
#include "cmd/cli/progress_view.h"
#include "cmd/cli/signals.h"
#include "cdi/text.h"

namespace cdi::cli {
namespace {

// Flags shared by every subcommand that reads a source.
struct SourceFlags {
  std::vector<std::string> ca_bundles;
  std::vector<std::string> ca_bundle_data;
  std::vector<std::string> ca_dirs;
  std::string client_cert;
  std::string client_key;
  bool insecure = false;
  std::string arch;
  std::string user;
  std::string password_file;
  std::vector<std::string> headers;
  std::vector<std::string> header_files;
  int connect_timeout = 30;
  int stall_timeout = 60;
  std::string stall_speed = "1Ki";
  int retries = 5;
  double retry_budget = 300;
  double retry_delay = 1;
  int connections = 4;
  std::optional<std::string> proxy;
  std::optional<std::string> no_proxy;
  std::vector<std::string> proxy_ca_bundles;
  std::vector<std::string> proxy_ca_dirs;
  std::string s3_endpoint;
  std::string s3_region;
  std::string s3_addressing = "auto";
};

struct CommonFlags {
  int verbose = 0;
  bool quiet = false;
};

void AddSourceFlags(CLI::App* app, SourceFlags* f) {
  app->add_option("--ca-bundle", f->ca_bundles,
                  "PEM file of CA certificates to trust besides the system store (repeatable)")
      ->check(CLI::ExistingFile)->group("TLS and credentials");
  app->add_option("--ca-bundle-data", f->ca_bundle_data,
                  "base64 of a PEM CA bundle, as in a DataSource's certConfig.caBundle")
      ->group("TLS and credentials");
  app->add_option("--ca-dir", f->ca_dirs,
                  "directory whose every non-dot file is a PEM CA bundle (repeatable)")
      ->check(CLI::ExistingDirectory)->group("TLS and credentials");
  app->add_option("--client-cert", f->client_cert, "PEM client certificate for mutual TLS")
      ->check(CLI::ExistingFile)->group("TLS and credentials");
  app->add_option("--client-key", f->client_key, "PEM private key of --client-cert")
      ->check(CLI::ExistingFile)->group("TLS and credentials");
  app->add_flag("--insecure", f->insecure,
                "do not verify the server's certificate; a docker:// registry is also reached "
                "over plain HTTP when it does not speak HTTPS (an insecure registry)")
      ->group("TLS and credentials");
  app->add_option("--arch", f->arch,
                  "docker:// sources: the image of a multi-architecture index to import "
                  "(amd64, arm64, s390x, ...; default: this machine's)")
      ->group("Registry");
  app->add_option("--user", f->user,
                  "user name for HTTP basic authentication (docker://: the registry's user, for "
                  "Basic auth or its token server)")
      ->group("TLS and credentials");
  app->add_option("--password-file", f->password_file,
                  "file holding the basic-auth password (first line)")
      ->check(CLI::ExistingFile)->group("TLS and credentials");
  app->add_option("--header", f->headers, "extra request header \"Name: value\" (repeatable)")
      ->group("TLS and credentials");
  app->add_option("--header-file", f->header_files,
                  "file holding one extra header line \"Name: value\" (repeatable; for secrets)")
      ->check(CLI::ExistingFile)->group("TLS and credentials");
  app->add_option("--connect-timeout", f->connect_timeout, "seconds to wait for a connection")
      ->check(CLI::PositiveNumber)->capture_default_str()->group("Network");
  app->add_option("--stall-timeout", f->stall_timeout,
                  "seconds below --stall-speed after which a transfer counts as stalled")
      ->check(CLI::PositiveNumber)->capture_default_str()->group("Network");
  app->add_option("--stall-speed", f->stall_speed, "minimum transfer rate, a quantity of bytes/s")
      ->capture_default_str()->group("Network");
  app->add_option("--retries", f->retries,
                  "retries of a transient failure (reset, stall, 5xx...) in a row; a retry that "
                  "gets data resets the count; 0: none")
      ->check(CLI::NonNegativeNumber)->capture_default_str()->group("Network");
  app->add_option("--retry-budget", f->retry_budget,
                  "seconds an outage may last, from its first failure, before giving up")
      ->check(CLI::PositiveNumber)->capture_default_str()->group("Network");
  app->add_option("--retry-delay", f->retry_delay,
                  "seconds before the first retry, doubled for each next one (with jitter, at "
                  "most 30 s)")
      ->check(CLI::NonNegativeNumber)->capture_default_str()->group("Network");
  app->add_option("--connections", f->connections,
                  "ranged GETs in flight at once when the server serves ranges and names the "
                  "image with an ETag or Last-Modified, within a quarter of --memory, once one "
                  "connection is seen to be the bound (not for a near, fast server); "
                  "1: one GET")
      ->check(CLI::Range(1, 64))->capture_default_str()->group("Network");
  app->add_option("--proxy", f->proxy,
                  "proxy for http and https URLs, http://[user:password@]host:port or https://...; "
                  "\"\" for none (default: http_proxy, https_proxy and their upper-case forms)")
      ->group("Network");
  app->add_option("--no-proxy", f->no_proxy,
                  "hosts, domains, IP addresses and CIDR ranges reached without the proxy, "
                  "comma-separated (default: no_proxy, NO_PROXY)")
      ->group("Network");
  app->add_option("--proxy-ca-bundle", f->proxy_ca_bundles,
                  "PEM file of CA certificates of an https:// proxy (repeatable)")
      ->check(CLI::ExistingFile)->group("Network");
  app->add_option("--proxy-ca-dir", f->proxy_ca_dirs,
                  "directory whose every non-dot file is a PEM CA bundle of the proxy (repeatable)")
      ->check(CLI::ExistingDirectory)->group("Network");
  app->add_option("--s3-endpoint", f->s3_endpoint,
                  "for s3://BUCKET/KEY: the service's base URL, http(s)://host[:port] (default: "
                  "AWS, https://s3.REGION.amazonaws.com); credentials from AWS_ACCESS_KEY_ID, "
                  "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, unsigned without them")
      ->group("S3");
  app->add_option("--s3-region", f->s3_region,
                  "for s3://: the region requests are signed for (default: AWS_REGION, "
                  "AWS_DEFAULT_REGION, the region of an AWS endpoint, else us-east-1)")
      ->group("S3");
  app->add_option("--s3-addressing", f->s3_addressing,
                  "for s3://: path (ENDPOINT/BUCKET/KEY), virtual (BUCKET.ENDPOINT-HOST/KEY), or "
                  "auto (virtual on AWS where the bucket name allows it, else path)")
      ->check(CLI::IsMember({"auto", "path", "virtual"}))->capture_default_str()->group("S3");
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// The S3 settings of an s3:// source: the flags, and the AWS command line's
// variables for what they leave out.
Status BuildS3Settings(const SourceFlags& f, S3Settings* s3) {
  s3->endpoint = f.s3_endpoint;
  s3->region = f.s3_region;
  if (s3->region.empty()) s3->region = GetEnv("AWS_REGION");
  if (s3->region.empty()) s3->region = GetEnv("AWS_DEFAULT_REGION");
  s3->addressing = f.s3_addressing == "path"      ? S3Addressing::kPath
                   : f.s3_addressing == "virtual" ? S3Addressing::kVirtualHost
                                                  : S3Addressing::kAuto;
  s3->access_key_id = GetEnv("AWS_ACCESS_KEY_ID");
  s3->secret_access_key = GetEnv("AWS_SECRET_ACCESS_KEY");
  s3->session_token = GetEnv("AWS_SESSION_TOKEN");
  if (s3->access_key_id.empty() != s3->secret_access_key.empty()) {
    return InvalidArgumentError(
        std::string(s3->access_key_id.empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
        " is set without " +
        (s3->access_key_id.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
        ": set both for signed requests, or neither for anonymous ones");
  }
  if (s3->access_key_id.empty()) {
    // A session token alone is no credential.
    s3->session_token.clear();
    spdlog::info("No AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: S3 requests go unsigned");
  }
  return Status::Ok();
}

void AddCommonFlags(CLI::App* app, CommonFlags* f) {
  app->add_flag("-v,--verbose", f->verbose, "log more (repeat for debug output)");
  app->add_flag("-q,--quiet", f->quiet, "log errors only, no progress");
}

Status ReadFirstLine(const std::string& path, std::string* line) {
  std::ifstream in(path);
  if (!in) return InvalidArgumentError("cannot read " + path);
  std::getline(in, *line);
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return Status::Ok();
}

Result<SourceSpec> BuildSource(const std::string& url, const SourceFlags& f) {
  SourceSpec spec;
  spec.url = url;
  spec.tls.verify = f.insecure ? TlsVerify::kOff : TlsVerify::kOn;
  spec.registry.insecure = f.insecure;
  spec.registry.architecture = f.arch;
  spec.tls.ca_files = f.ca_bundles;
  spec.tls.ca_dirs = f.ca_dirs;
  for (const std::string& data : f.ca_bundle_data) {
    std::string pem;
    if (!DecodeBase64(data, &pem)) {
      return InvalidArgumentError("--ca-bundle-data is not valid base64; pass the base64 of a PEM "
                                  "bundle, e.g. the output of 'base64 -w0 ca.pem'");
    }
    spec.tls.ca_pem.push_back(std::move(pem));
  }
  if (f.client_cert.empty() != f.client_key.empty()) {
    return InvalidArgumentError("--client-cert and --client-key go together; give both");
  }
  spec.tls.client_cert_file = f.client_cert;
  spec.tls.client_key_file = f.client_key;
  spec.auth.user = f.user;
  if (!f.password_file.empty()) {
    if (f.user.empty()) return InvalidArgumentError("--password-file needs --user");
    CDI_RETURN_IF_ERROR(ReadFirstLine(f.password_file, &spec.auth.password));
  }
  spec.auth.headers = f.headers;
  for (const std::string& file : f.header_files) {
    std::string line;
    CDI_RETURN_IF_ERROR(ReadFirstLine(file, &line));
    spec.auth.headers.push_back(line);
  }
  for (size_t i = 0; i < spec.auth.headers.size(); ++i) {
    // Named by flag and position: the header may be a secret, never echoed.
    std::string what = i < f.headers.size()
                           ? "--header #" + std::to_string(i + 1)
                           : "--header-file " + f.header_files[i - f.headers.size()];
    CDI_RETURN_IF_ERROR(ValidateHeaderLine(spec.auth.headers[i], what));
  }
  spec.network.connect_timeout = std::chrono::seconds(f.connect_timeout);
  spec.network.stall_window = std::chrono::seconds(f.stall_timeout);
  CDI_ASSIGN_OR_RETURN(spec.network.stall_bytes_per_second, ParseQuantity(f.stall_speed));
  spec.network.max_retries = f.retries;
  auto milliseconds = [](double seconds) {
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000 + 0.5));
  };
  spec.network.retry_budget = milliseconds(f.retry_budget);
  spec.network.retry_initial_delay = milliseconds(f.retry_delay);
  spec.network.connections = f.connections;
  if (f.proxy) {
    spec.network.proxy.http_proxy = f.proxy;
    spec.network.proxy.https_proxy = f.proxy;
  }
  spec.network.proxy.no_proxy = f.no_proxy;
  spec.tls.proxy_ca_files = f.proxy_ca_bundles;
  spec.tls.proxy_ca_dirs = f.proxy_ca_dirs;
  const bool s3 =
      url.size() > 5 && (url[0] == 's' || url[0] == 'S') && url.compare(1, 4, "3://") == 0;
  if (s3) {
    CDI_RETURN_IF_ERROR(BuildS3Settings(f, &spec.s3));
  } else if (!f.s3_endpoint.empty() || !f.s3_region.empty() || f.s3_addressing != "auto") {
    return InvalidArgumentError("--s3-endpoint, --s3-region and --s3-addressing apply to "
                                "s3://BUCKET/KEY sources only");
  }
  return spec;
}

void ConfigureLogging(const CommonFlags& f) {
  auto logger = spdlog::stderr_color_mt("cdi-image");
  logger->set_pattern("%^%l%$: %v");
  spdlog::level::level_enum level = spdlog::level::warn;
  if (f.quiet) level = spdlog::level::err;
  if (f.verbose == 1) level = spdlog::level::info;
  if (f.verbose >= 2) level = spdlog::level::debug;
  logger->set_level(level);
  spdlog::set_default_logger(logger);
  ForwardLogsToSpdlog(level);
}

std::string Chain(const std::vector<std::string>& chain) {
  std::string text;
  for (const auto& layer : chain) text += (text.empty() ? "" : " > ") + layer;
  return text;
}

std::string JsonChain(const std::vector<std::string>& chain) {
  std::string text = "[";
  for (size_t i = 0; i < chain.size(); ++i) text += (i ? "," : "") + JsonString(chain[i]);
  return text + "]";
}

struct ImportFlags {
  std::string source;
  std::string target;
  std::string size;
  bool force = false;
  std::string progress = "auto";
  std::string target_type = "auto";
  std::string overhead = "0";
  bool preallocate = false;
  std::string checksum;
  std::string memory = "auto";
  std::string scratch_dir;
  bool resume = false;
  std::string checkpoint_every = "32Mi";
  std::string checkpoint_dir;
};

Result<ImportSpec> BuildImportSpec(const ImportFlags& f, const SourceFlags& sf) {
  ImportSpec spec;
  CDI_ASSIGN_OR_RETURN(spec.source, BuildSource(f.source, sf));
  TargetSpec target;
  target.path = f.target;
  if (!f.size.empty()) {
    auto size = ParseQuantity(f.size);
    if (!size.ok()) return size.status().Annotate("--size");
    target.requested_size = *size;
  }
  target.kind = f.target_type == "file"    ? TargetKind::kFile
                : f.target_type == "block" ? TargetKind::kBlockDevice
                                           : TargetKind::kAuto;
  auto overhead = ParseOverhead(f.overhead);
  if (!overhead.ok()) return overhead.status().Annotate("--overhead");
  target.filesystem_overhead = *overhead;
  target.existing = f.force ? ExistingFile::kReplace : ExistingFile::kRefuse;
  target.preallocation = f.preallocate ? Preallocation::kOn : Preallocation::kOff;
  spec.targets.push_back(target);
  spec.checksum = f.checksum;
  if (f.memory != "auto") {
    auto memory = ParseQuantity(f.memory);
    if (!memory.ok()) return memory.status().Annotate("--memory");
    if (*memory == 0) {
      return InvalidArgumentError("--memory: the memory budget must be at least 16 MiB, or auto");
    }
    spec.memory_budget = *memory;
  }
  spec.scratch_dir = f.scratch_dir;
  if (f.resume) {
    spec.resume.mode = ResumeMode::kCheckpoints;
    auto every = ParseQuantity(f.checkpoint_every);
    if (!every.ok()) return every.status().Annotate("--checkpoint-every");
    if (*every < kMiB) {
      return InvalidArgumentError("--checkpoint-every: at least 1Mi, got " + f.checkpoint_every);
    }
    spec.resume.checkpoint_bytes = *every;
    spec.resume.checkpoint_dir = f.checkpoint_dir;
  } else if (!f.checkpoint_dir.empty()) {
    return InvalidArgumentError("--checkpoint-dir is used with --resume; add --resume");
  }
  return spec;
}

int RunImport(const ImportFlags& f, const SourceFlags& sf, const CommonFlags& cf) {
  const ProgressStyle style = cf.quiet ? ProgressStyle::kNone : ParseProgressStyle(f.progress);
  const bool json = style == ProgressStyle::kJson;
  auto spec = BuildImportSpec(f, sf);
  if (!spec.ok()) return ReportError(spec.status(), json);

  static CancelToken cancel;
  CancelOnSignals(&cancel);
  ProgressView view(style, stderr, stdout);
  ImportHooks hooks;
  hooks.cancel = &cancel;
  hooks.on_progress = [&view](const Progress& p) { view.Update(p); };
  Result<ImportResult> result = Import(*spec, hooks);
  view.Finish();
  if (!result.ok()) return ReportError(result.status(), json);

  const ImportResult& r = *result;
  const double seconds = std::chrono::duration<double>(r.elapsed).count();
  if (json) {
    std::printf(
        "{\"event\":\"result\",\"target\":%s,\"format_chain\":%s,\"virtual_size\":%llu,"
        "\"target_size\":%llu,\"bytes_read\":%llu,\"bytes_written\":%llu,\"bytes_zero\":%llu,"
        "\"preallocated\":%s,\"checksum\":%s,\"elapsed_seconds\":%.3f}\n",
        JsonString(f.target).c_str(), JsonChain(r.format_chain).c_str(),
        static_cast<unsigned long long>(r.virtual_size),
        static_cast<unsigned long long>(r.target_size),
        static_cast<unsigned long long>(r.bytes_read),
        static_cast<unsigned long long>(r.bytes_written),
        static_cast<unsigned long long>(r.bytes_zero), r.preallocated ? "true" : "false",
        JsonString(r.checksum).c_str(), seconds);
  } else if (!cf.quiet) {
    std::printf("Imported %s into %s in %s\n", Chain(r.format_chain).c_str(), f.target.c_str(),
                HumanDuration(seconds).c_str());
    std::printf("  virtual size  %s (%llu bytes); target size %s\n",
                HumanBytes(r.virtual_size).c_str(),
                static_cast<unsigned long long>(r.virtual_size), HumanBytes(r.target_size).c_str());
    std::printf("  read %s, wrote %s, left %s unwritten (zero)\n", HumanBytes(r.bytes_read).c_str(),
                HumanBytes(r.bytes_written).c_str(), HumanBytes(r.bytes_zero).c_str());
    if (!r.checksum.empty()) std::printf("  checksum %s verified\n", r.checksum.c_str());
    if (r.resumed_from > 0) {
      std::printf("  continued from byte %llu, where an interrupted import stopped\n",
                  static_cast<unsigned long long>(r.resumed_from));
    }
  }
  std::fflush(stdout);
  return kExitOk;
}

int RunInfo(const std::string& source, bool json, InspectDepth depth, const SourceFlags& sf) {
  auto spec = BuildSource(source, sf);
  if (!spec.ok()) return ReportError(spec.status(), json);
  static CancelToken cancel;
  CancelOnSignals(&cancel);
  ImportHooks hooks;
  hooks.cancel = &cancel;
  Result<ImageInfo> info = Inspect(*spec, hooks, depth);
  if (!info.ok()) return ReportError(info.status(), json);
  if (json) {
    std::string line = "{\"source\":" + JsonString(RedactUrl(source)) +
                       ",\"format_chain\":" + JsonChain(info->format_chain);
    line += ",\"virtual_size\":" +
            (info->virtual_size ? std::to_string(*info->virtual_size) : std::string("null"));
    line += ",\"container_size\":" +
            (info->container_size ? std::to_string(*info->container_size) : std::string("null"));
    line += ",\"details\":{";
    for (size_t i = 0; i < info->details.size(); ++i) {
      line += (i ? "," : "") + JsonString(info->details[i].first) + ":" +
              JsonString(info->details[i].second);
    }
    std::printf("%s}}\n", line.c_str());
  } else {
    std::vector<std::pair<std::string, std::string>> rows;
    rows.emplace_back("source", RedactUrl(source));
    rows.emplace_back("format", Chain(info->format_chain));
    rows.emplace_back("virtual size", info->virtual_size
                                          ? HumanBytes(*info->virtual_size) + " (" +
                                                std::to_string(*info->virtual_size) + " bytes)"
                                          : std::string("unknown until decompressed"));
    if (info->container_size) {
      rows.emplace_back("container size", HumanBytes(*info->container_size) + " (" +
                                              std::to_string(*info->container_size) + " bytes)");
    }
    for (const auto& [name, value] : info->details) {
      if (name != "virtual size") rows.emplace_back(name, value);
    }
    size_t width = 0;
    for (const auto& row : rows) width = std::max(width, row.first.size() + 1);
    for (const auto& [name, value] : rows) {
      std::printf("%-*s %s\n", static_cast<int>(width), (name + ":").c_str(), value.c_str());
    }
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

// What --help says of formats; README's "Formats" table says it in full.
constexpr std::string_view kFormatsHelp =
    "Image formats, detected from the bytes:\n"
    "  decoded     raw (and ISO), qcow2 v2/v3, vmdk (streamOptimized, monolithicSparse),\n"
    "              vhd (dynamic, fixed), vhdx (dynamic, fixed), vdi (dynamic, static),\n"
    "              the disk of an OVA; inside gzip, xz or zstd\n"
    "  refused     differencing vhd, vhdx and vdi, qcow v1, QED, Parallels, Bochs, cloop,\n"
    "              LUKS, DMG, other VMDK kinds, extents and descriptors (exit 3, with the\n"
    "              qemu-img command that converts them)\n\n";

int RunImageCli(int argc, char** argv) {
  CLI::App app{"cdi-image " + std::string(Version()) +
               ": bring VM disk images (raw, qcow2, vmdk, vhd, vhdx, vdi; gzip, xz or zstd compressed) from HTTP(S), a "
               "file or standard input onto a file or a block device, converted to raw while they "
               "stream."};
  app.require_subcommand(1);
  app.footer(std::string(kFormatsHelp) + std::string(ExitCodeTable()));
  CommonFlags common;
  SourceFlags source_flags;

  ImportFlags import_flags;
  CLI::App* import = app.add_subcommand("import", "import an image onto a file or block device");
  import->add_option("SOURCE", import_flags.source,
                     "http(s) URL, s3://BUCKET/KEY, docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] "
                     "(the disk image in a containerDisk's /disk), local file, or - for standard "
                     "input")
      ->required();
  import->add_option("TARGET", import_flags.target, "file to create, or block device to overwrite")
      ->required();
  import->add_option("--size", import_flags.size,
                     "requested storage, a Kubernetes quantity (10Gi, 1.5Gi, 500M, 1073741824); "
                     "default: the image's virtual size (a device's own size)");
  import->add_flag("-f,--force", import_flags.force, "replace TARGET if it is an existing file");
  import->add_option("--progress", import_flags.progress, "progress display")
      ->check(CLI::IsMember({"auto", "bar", "plain", "json", "none"}))->capture_default_str();
  import->add_option("--target-type", import_flags.target_type,
                     "what TARGET must be (auto: a block device if it is one)")
      ->check(CLI::IsMember({"auto", "file", "block"}))->capture_default_str();
  import->add_option("--overhead", import_flags.overhead,
                     "filesystem overhead fraction kept free on a file target (CDI uses 0.06)")
      ->capture_default_str();
  import->add_flag("--preallocate", import_flags.preallocate,
                   "allocate the whole target instead of leaving zero ranges sparse");
  import->add_option("--checksum", import_flags.checksum,
                     "expected digest of the bytes as served: md5|sha1|sha256|sha512:HEX");
  import->add_option("--memory", import_flags.memory,
                     "memory budget for buffers and out-of-order data (a quantity), or auto: "
                     "sized from the cgroup's memory limit or the machine's memory")
      ->capture_default_str();
  import->add_option("--scratch-dir", import_flags.scratch_dir,
                     "where out-of-order data may spill beyond the memory budget (default $TMPDIR)");
  import->add_flag("--resume", import_flags.resume,
                   "write checkpoints while importing, and continue from the checkpoint an "
                   "interrupted import of the same image into TARGET left (raw images, bare, "
                   "in zstd frames or in xz blocks, and qcow2 images, from http(s) into a file, "
                   "or into a block device with --checkpoint-dir; see README, Resilience)");
  import
      ->add_option("--checkpoint-every", import_flags.checkpoint_every,
                   "with --resume: a checkpoint after this many bytes of the image (a "
                   "quantity, at least 1Mi), or every 10 s")
      ->capture_default_str();
  import->add_option("--checkpoint-dir", import_flags.checkpoint_dir,
                     "with --resume into a block device: the directory for its checkpoint "
                     "(one that belongs to this device's imports alone; a file target keeps "
                     "its checkpoint beside it)");
  AddSourceFlags(import, &source_flags);
  AddCommonFlags(import, &common);

  std::string info_source;
  bool info_json = false;
  CLI::App* info = app.add_subcommand("info", "show an image's format chain and sizes");
  info->add_option("SOURCE", info_source,
                     "http(s) URL, s3://BUCKET/KEY, docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] "
                     "(the disk image in a containerDisk's /disk), local file, or - for standard "
                     "input")
      ->required();
  info->add_flag("--json", info_json, "print one JSON object");
  bool info_full = false;
  info->add_flag("--full", info_full,
                 "read the whole image (gives a compressed raw image's size, and whether a qcow2 "
                 "layout needs spooling)");
  AddSourceFlags(info, &source_flags);
  AddCommonFlags(info, &common);

  apply::ApplyOptions apply_options;
  CLI::App* apply = apply::AddApplyCommand(&app, &apply_options);
  AddCommonFlags(apply, &common);

  upload::UploadOptions upload_options;
  CLI::App* upload = upload::AddUploadCommand(&app, &upload_options);
  AddCommonFlags(upload, &common);

  CLI::App* version = app.add_subcommand("version", "print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  ConfigureLogging(common);
  if (version->parsed()) {
    std::printf("cdi-image %s\n", std::string(Version()).c_str());
    return kExitOk;
  }
  if (info->parsed()) {
    return RunInfo(info_source, info_json, info_full ? InspectDepth::kFull : InspectDepth::kHeader,
                   source_flags);
  }
  if (upload->parsed()) {
    upload_options.quiet = common.quiet;
    return upload::RunUpload(upload_options);
  }
  if (apply->parsed()) {
    apply_options.quiet = common.quiet;
    return apply::RunApply(apply_options);
  }
  return RunImport(import_flags, source_flags, common);
}

}  // namespace cdi::cli
