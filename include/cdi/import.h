// The importer's public API: bring a disk image from a URL, a local file or
// standard input onto a file or a block device, converted to raw while it
// streams, in one pass.
//
//   cdi::ImportSpec spec;
//   spec.source.url = "https://images.example.com/fedora.qcow2";
//   spec.source.tls.ca_files = {"/certs/ca.pem"};
//   spec.targets.push_back({.path = "/data/disk.img", .requested_size = 10ull << 30});
//   cdi::Result<cdi::ImportResult> result = cdi::Import(spec);
//   if (!result.ok()) { ... result.status().message() ... }
//
// Thread-safety: Import() may run concurrently on different specs. Hooks are
// called from the thread that called Import(), except CancelToken::Cancel(),
// which any thread (or a signal handler) may call.
#ifndef CDI_IMPORT_H_
#define CDI_IMPORT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/quantity.h"
#include "cdi/status.h"

namespace cdi {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// ---------------------------------------------------------------------------
// Source

enum class TlsVerify { kOn, kOff };

// How the server's certificate is trusted and how we prove who we are.
struct TlsSettings {
  // Verification is on unless kOff (then a warning is logged).
  TlsVerify verify = TlsVerify::kOn;
  // Extra CA certificates, added to the system store: PEM files (several
  // certificates per file allowed), PEM text, and directories in which every
  // regular file whose name does not start with '.' is PEM.
  std::vector<std::string> ca_files;
  std::vector<std::string> ca_pem;
  std::vector<std::string> ca_dirs;
  // Client certificate for mutual TLS: a file path or PEM text for each of the
  // certificate and the key. Empty: no client certificate.
  std::string client_cert_file;
  std::string client_key_file;
  std::string client_cert_pem;
  std::string client_key_pem;
  // CA certificates of an HTTPS proxy (the importer pod's /proxycerts/): PEM
  // files and directories read as ca_files and ca_dirs are. All extra CAs form
  // one pool, trusted for the server and for an https:// proxy alike, as CDI
  // trusts them: a proxy that inspects TLS re-signs servers' certificates.
  // A proxy's certificate is always verified, whatever `verify` says.
  std::vector<std::string> proxy_ca_files;
  std::vector<std::string> proxy_ca_dirs;
};

// Credentials. Never sent to another origin on redirect, never logged.
struct HttpAuth {
  std::string user;      // basic auth; user info in the URL is used when empty
  std::string password;
  std::vector<std::string> headers;  // "Name: value" each
};

// Which HTTP proxy a request goes through. A field left unset is read from
// the environment when the source opens: http_proxy, else HTTP_PROXY (which
// is ignored when REQUEST_METHOD is set: in a CGI program it comes from a
// request header); https_proxy, else HTTPS_PROXY; no_proxy, else NO_PROXY.
// An empty value means no proxy (or, for no_proxy, no exception).
//  - A proxy is "http://[user:password@]host[:port]" or "https://..." (TLS
//    to the proxy); the port defaults to the scheme's, and "host:port" alone
//    means http://. Other schemes (socks5://) are refused.
//    Its credentials go to the proxy only, never into a message or log line.
//  - https:// URLs go through the proxy in a CONNECT tunnel: the server's
//    credentials and headers travel inside TLS, never in clear to the proxy.
//  - no_proxy: names, IP addresses and CIDR ranges separated by commas; a
//    name matches itself and its subdomains (".example.com" as well as
//    "example.com"), "host:port" matches one port only, "*" matches all.
struct ProxySettings {
  std::optional<std::string> http_proxy;   // for http:// URLs
  std::optional<std::string> https_proxy;  // for https:// URLs
  std::optional<std::string> no_proxy;
};

struct NetworkSettings {
  std::chrono::seconds connect_timeout{30};
  // A transfer slower than stall_bytes_per_second for stall_window is a stall.
  // Time spent waiting for the reader (a slow target) does not count.
  uint64_t stall_bytes_per_second = 1024;
  std::chrono::seconds stall_window{60};
  int max_redirects = 10;

  // Retries. A transient failure (connection refused or reset, a timeout, a
  // stall, a body cut short, a DNS server that does not answer, HTTP 408,
  // 429, 500, 502, 503, 504) is retried after an exponential back-off with
  // jitter: a random wait between half and all of retry_initial_delay * 2^k
  // (k = retries so far), at most retry_max_delay, or what a Retry-After
  // header asks. Once bytes have arrived, a retry resumes from the last byte
  // received ("Range: bytes=N-" with If-Range), so the stream continues
  // unbroken. Permanent failures (other 4xx, TLS verification, a host name
  // that does not exist, a changed image) fail at once.
  // The budget is per outage: at most max_retries retries and retry_budget of
  // time from its first failure; an attempt that delivers bytes ends the
  // outage, so a long import over a flaky link is not abandoned while it
  // makes progress. max_retries = 0 turns retries off.
  int max_retries = 5;
  std::chrono::milliseconds retry_budget{300'000};
  std::chrono::milliseconds retry_initial_delay{1'000};
  std::chrono::milliseconds retry_max_delay{30'000};

  ProxySettings proxy;
};

struct SourceSpec {
  // An http:// or https:// URL, a local path, or "-" for standard input.
  std::string url;
  TlsSettings tls;
  HttpAuth auth;
  NetworkSettings network;
};

// ---------------------------------------------------------------------------
// Target

enum class TargetKind {
  kAuto,         // a block device if the path is one, otherwise a file
  kFile,
  kBlockDevice,
};
enum class ExistingFile { kRefuse, kReplace };
enum class Preallocation { kOff, kOn };

struct TargetSpec {
  std::string path;
  TargetKind kind = TargetKind::kAuto;
  // Requested storage in bytes (a PVC's size). Unset: the image's virtual size
  // for a file, the device size for a block device.
  std::optional<uint64_t> requested_size;
  // Fraction of a filesystem kept for its own metadata (CDI's default is 0.06;
  // 0 for block devices). Usable size of a file target:
  //   RoundDown(ceil(min(free space, requested) / (1 + overhead)), 1 MiB).
  double filesystem_overhead = 0.0;
  ExistingFile existing = ExistingFile::kRefuse;
  Preallocation preallocation = Preallocation::kOff;
};

// ---------------------------------------------------------------------------
// Spec, hooks, result

// What the source holds (CDI's IMPORTER_CONTENTTYPE).
enum class ContentType {
  // A disk image ("kubevirt"): raw, qcow2, ..., optionally gzip, xz or zstd
  // compressed; each target receives it converted to raw.
  kDiskImage,
  // A tar archive ("archive"), optionally gzip, xz or zstd compressed,
  // extracted into a directory: the spec has exactly one target, whose path
  // is an existing directory on a filesystem volume (kind kAuto or kFile; a
  // block device is refused). Only regular files and directories are
  // extracted; absolute paths, '..', links, devices and FIFOs are refused by
  // name, and the files' total size is bounded by the target's usable size
  // (computed as for a file). preallocation does not apply. On failure every
  // file and directory the import created is removed.
  kArchive,
};

struct ImportSpec {
  SourceSpec source;
  // One or more targets: each receives the same image, downloaded once.
  std::vector<TargetSpec> targets;
  // "alg:hex" with alg one of md5, sha1, sha256, sha512, over the bytes as
  // served (before any decompression). Empty: no check.
  std::string checksum;
  // Upper bound on the memory the import holds for buffers, decompression
  // windows and out-of-order data, whatever the image's size.
  uint64_t memory_budget = 64 * kMiB;
  // Where data that arrives before its mapping may spill when memory_budget
  // is exceeded. Empty: $TMPDIR, else /tmp.
  std::string scratch_dir;
  ContentType content_type = ContentType::kDiskImage;
};

// Cancels a running Import from any thread or from a signal handler.
class CancelToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

enum class Phase { kConnecting, kTransferring, kFlushing, kDone };

struct Progress {
  Phase phase = Phase::kConnecting;
  uint64_t source_bytes = 0;                // read from the source, as served
  std::optional<uint64_t> source_size;      // when the source declares it
  uint64_t guest_bytes = 0;                 // image bytes decoded (written or zero)
  std::optional<uint64_t> virtual_size;     // once the image header says it
  std::chrono::nanoseconds elapsed{0};

  // Best honest estimate of completion in [0, 1]: bytes read against the
  // source size when known, else decoded bytes against the virtual size, else
  // nullopt. Monotonic within one import.
  std::optional<double> Fraction() const;
};

enum class LogLevel { kDebug, kInfo, kWarning, kError };

struct ImportHooks {
  // Called at most every 100 ms and once at each phase change.
  std::function<void(const Progress&)> on_progress;
  // Checked between chunks; a cancelled import stops within a second and
  // cleans up its targets.
  const CancelToken* cancel = nullptr;
};

// What became of one target of an import.
struct TargetResult {
  std::string path;
  // Ok: the target holds the image. Otherwise why it does not (e.g. kTooSmall
  // with CDI's "A larger PVC is required" message); it was cleaned up.
  Status status;
  uint64_t size = 0;  // final size (file size or device size) when ok
};

struct ImportResult {
  // Detected layers, outermost first: {"xz", "qcow2"}, {"raw"}.
  std::vector<std::string> format_chain;
  uint64_t virtual_size = 0;   // size of the decoded image
  uint64_t target_size = 0;    // final size of the first target that holds the image
  // One per ImportSpec::targets entry, in order. With several targets, one
  // that cannot take the image (too small, failing storage) drops out alone:
  // Import succeeds while at least one target holds the image.
  std::vector<TargetResult> targets;
  uint64_t bytes_read = 0;     // from the source, as served
  uint64_t bytes_written = 0;  // data written to each target
  uint64_t bytes_zero = 0;     // image bytes left as holes or zeroed, not written
  bool preallocated = false;
  std::string checksum;        // "alg:hex" as computed, when a checksum was requested
  std::chrono::nanoseconds elapsed{0};
};

// Runs one import. On failure no target is left looking complete: a file
// target is removed, a block device's first and last MiB are zeroed if
// anything was written. For ContentType::kArchive, format_chain ends in
// "tar", virtual_size and target_size are the total size of the files
// extracted, bytes_zero counts zero blocks left as holes.
Result<ImportResult> Import(const ImportSpec& spec, const ImportHooks& hooks = {});

// What a source holds, read only as far as needed to say it.
struct ImageInfo {
  std::vector<std::string> format_chain;
  std::optional<uint64_t> virtual_size;    // unknown for raw inside a compressed wrapper
  std::optional<uint64_t> container_size;  // bytes as served, when declared
  // Format-specific facts, in display order: {"version", "3"}, {"cluster size", "65536"}.
  std::vector<std::pair<std::string, std::string>> details;
};
// How far Inspect reads: the header only (fast: a few KiB of most images), or
// the whole stream, decoded and discarded (also gives the virtual size of a
// compressed raw image and whether a qcow2 layout needs spooling).
enum class InspectDepth { kHeader, kFull };
Result<ImageInfo> Inspect(const SourceSpec& source, const ImportHooks& hooks = {},
                          InspectDepth depth = InspectDepth::kHeader);

// Removes userinfo and the query string from a URL, for messages and logs.
std::string RedactUrl(std::string_view url);

// Routes the library's log lines to `sink` at `level` and above. Without a
// handler (or with an empty one) they go to standard error. The library logs
// through a logger of its own: spdlog's default logger and registry are never
// touched. Secrets never appear in log lines.
void SetLogHandler(std::function<void(LogLevel, std::string_view)> sink,
                   LogLevel level = LogLevel::kInfo);

// The library's version, "MAJOR.MINOR.PATCH".
std::string_view Version();

// Creates a blank disk (CDI's IMPORTER_SOURCE=none) at `target`:
//  - a file: a sparse raw file of the usable size, RoundDown(ceil(min(free
//    space, requested_size) / (1 + filesystem_overhead)), 1 MiB) (all the
//    free space when requested_size is unset), every byte allocated with
//    Preallocation::kOn; an existing file is refused unless
//    ExistingFile::kReplace;
//  - a block device: every byte zeroed (offloaded where the device can; with
//    Preallocation::kOn written as zeros, so that thin storage allocates it).
// Durable (fsync) before it returns. The result's virtual_size and
// target_size are the disk's size, format_chain is {"raw"}, bytes_zero the
// whole disk. Errors: kTooSmall when the usable size is 0; otherwise as Import's
// targets.
Result<ImportResult> CreateBlankImage(const TargetSpec& target);

}  // namespace cdi

#endif  // CDI_IMPORT_H_
