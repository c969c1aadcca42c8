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
#include "cdi/source.h"
#include "cdi/status.h"
#include "cdi/target.h"

namespace cdi {

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

// Whether an import that dies (killed, out of memory, a node drained) can be
// continued by the next import of the same image into the same target.
enum class ResumeMode {
  kOff,  // no checkpoint is written or read; a partial file left behind is emptied
  // Checkpoints are written beside the target's partial file (for a block
  // device, in ResumeSettings::checkpoint_dir), and a matching one is
  // continued from. Applies to a raw image, bare or compressed with zstd
  // (continued between two zstd frames) or xz (continued between two xz
  // blocks), and to a qcow2 image, from an http(s) URL whose server names it
  // by an ETag or Last-Modified, imported into one target (a file, or a
  // block device with a checkpoint_dir); other imports run as with kOff (a
  // log line says why). See README, "Resilience".
  kCheckpoints,
};

struct ResumeSettings {
  ResumeMode mode = ResumeMode::kOff;
  // A checkpoint is written when this many more bytes of the image are on the
  // target since the last one, or this long after it (whichever comes first;
  // 0 turns that trigger off). Each one waits for the target's writes to be
  // durable (fdatasync), on a thread of its own while the import goes on.
  // 32 MiB: a kill loses 16 MiB on average (and what arrived while the
  // last sync ran). Checkpoints never stall the import: one that comes due
  // while two are on their way waits for a later chunk (README, Resilience).
  uint64_t checkpoint_bytes = 32 * kMiB;
  std::chrono::milliseconds checkpoint_interval{10'000};
  // Where the checkpoint of a block device target lives (a device has no
  // directory to keep it beside): "<checkpoint_dir>/.<device name>.checkpoint".
  // It must be a directory that belongs to this device's imports alone, such
  // as the scratch volume CDI gives an importer pod for one PVC. Empty: a
  // block device target gets no checkpoints. File targets ignore it.
  std::string checkpoint_dir;
};

struct ImportSpec {
  SourceSpec source;
  // One or more targets: each receives the same image, downloaded once.
  std::vector<TargetSpec> targets;
  // "alg:hex" with alg one of md5, sha1, sha256, sha512, over the bytes as
  // served (before any decompression). Empty: no check.
  std::string checksum;
  // Upper bound on the memory the import holds for buffers, decompression
  // windows and out-of-order data, whatever the image's size (at least
  // 16 MiB). 0: sized from what the process may use (its cgroup's memory
  // limit, else the machine's memory): a quarter of it, from 16 to 64 MiB,
  // and up to half of it for the threads of the threaded xz decoder, which
  // a set budget holds too.
  uint64_t memory_budget = 0;
  // Where data that arrives before its mapping may spill when memory_budget
  // is exceeded. Empty: $TMPDIR, else /tmp.
  std::string scratch_dir;
  ContentType content_type = ContentType::kDiskImage;
  ResumeSettings resume;
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
  // A registry image's configuration Env ("NAME=value"; CDI turns the
  // KUBEVIRT_IO_ ones into labels); empty for other sources.
  std::vector<std::string> image_env;
  // Bytes of the source that a checkpoint of an earlier, interrupted import
  // let this one skip (ResumeMode::kCheckpoints); 0 when it started at byte 0.
  uint64_t resumed_from = 0;
};

// Runs one import. On failure no target is left looking complete: a file
// target is removed, a block device's first and last MiB are zeroed if
// anything was written. For ContentType::kArchive, format_chain ends in
// "tar", virtual_size and target_size are the total size of the files
// extracted, bytes_zero counts zero blocks left as holes.
Result<ImportResult> Import(const ImportSpec& spec, const ImportHooks& hooks = {});

// After an Import with ResumeMode::kCheckpoints failed: true when it kept the
// partial image of the target `target_path` and its checkpoint (beside a
// file; in `checkpoint_dir` for a block device, ResumeSettings) for the next
// import of the same image to continue from (it was cancelled, or lost its
// network, after a checkpoint was written); false when what it had written
// was removed (a file) or is not claimed by a checkpoint (a block device).
bool KeptForResume(const std::string& target_path, const std::string& checkpoint_dir = "");

// What a source holds, read only as far as needed to say it.
struct ImageInfo {
  std::vector<std::string> format_chain;
  // Unknown for raw inside a compressed wrapper, unless a zstd frame header
  // declares it (then details hold {"size declared by", "the zstd frame header"}).
  std::optional<uint64_t> virtual_size;
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
