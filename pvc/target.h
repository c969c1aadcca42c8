// Targets: where decoded guest bytes land. A file on a PVC's filesystem, or a
// block device. pvc/ knows nothing of image formats.
#ifndef CDI_PVC_TARGET_H_
#define CDI_PVC_TARGET_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"
#include "cdi/target.h"
#include "common/unique_fd.h"

namespace cdi::pvc {

// A target's kind once resolved (cdi::TargetKind also has kAuto). What to do
// with an existing file and preallocation are the public enums themselves.
enum class TargetKind { kFile, kBlockDevice };
using cdi::ExistingFile;
using cdi::Preallocation;

// Buffered writes are pushed to disk every this many bytes, and the cache of
// the window before is dropped, so that an import holds at most about two
// windows of page cache (dirty cache is charged to the pod's memory limit).
// 0 leaves writeback to the kernel.
inline constexpr uint64_t kDefaultWritebackWindow = 32ull << 20;

// Memory a target may hold in its buffers for direct I/O (pvc/direct_writer.h:
// three staging buffers of 4 MiB at most). Less gives smaller buffers; below
// three times 256 KiB the target writes everything through the page cache.
// An import that writes many targets divides its memory budget among them.
inline constexpr uint64_t kDefaultStagingMemory = 12ull << 20;

// What opening a file target does with a partial file an earlier import left
// (its lock free: that import was killed).
enum class StalePartial {
  kEmpty,  // emptied: it holds nothing worth keeping
  kKeep,   // kept as it is, size() its length, for the caller to cut to what a
           // checkpoint says it holds (SetSize), or to empty (SetSize(0))
};

struct FileTargetOptions {
  // Requested storage in bytes (a PVC's size); nullopt: as much as the
  // filesystem holds. capacity() is
  //   UsableSpace(filesystem_overhead, min(free space, requested_size)).
  std::optional<uint64_t> requested_size;
  double filesystem_overhead = 0.0;
  ExistingFile existing = ExistingFile::kRefuse;
  // kOn: SetSize allocates every byte of the file (fallocate), so that the
  // volume cannot run out of space later.
  Preallocation preallocation = Preallocation::kOff;
  // Permission bits of the file, applied whatever the umask.
  unsigned mode = 0660;
  uint64_t writeback_window = kDefaultWritebackWindow;
  // Long runs of data are written with direct I/O where the filesystem
  // supports it (see DirectWriter); false: everything through the page cache.
  bool direct_io = true;
  uint64_t staging_memory = kDefaultStagingMemory;
  StalePartial stale_partial = StalePartial::kEmpty;
};

// How a block device range is made to read zero. Zero() tries them in this
// order, starting at BlockTargetOptions::first_zero_method; a method the
// device refuses as unsupported is not tried again for that target.
enum class ZeroMethod {
  kBlkZeroOut,  // ioctl BLKZEROOUT (WRITE ZEROES offload, else the kernel writes zeros)
  kZeroRange,   // fallocate(FALLOC_FL_ZERO_RANGE)
  kPunchHole,   // fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), unmaps on thin devices
  kWriteZeros,  // pwrite from a buffer of zeros: always works, slowest
};

struct BlockTargetOptions {
  ZeroMethod first_zero_method = ZeroMethod::kBlkZeroOut;
  uint64_t writeback_window = kDefaultWritebackWindow;
  bool direct_io = true;  // as FileTargetOptions::direct_io
  uint64_t staging_memory = kDefaultStagingMemory;
};

// Counters, for results and tests.
struct TargetStats {
  uint64_t bytes_written = 0;  // data passed to pwrite
  uint64_t bytes_direct = 0;   // of bytes_written, how much went out with direct I/O
  uint64_t bytes_zeroed = 0;   // ranges made to read zero by an explicit operation
  uint64_t bytes_skipped = 0;  // ranges already reading zero, left alone (holes)
};

// What a checkpoint's sync needs (Target::StartSync).
struct PendingSync {
  // A new descriptor of the target's data, valid whatever becomes of the
  // target: its fdatasync makes durable what is on the file.
  UniqueFd fd;
  // Waits until every write issued before StartSync is on the file (not yet
  // durable); the first write error. Callable from any thread until the
  // target is committed, kept or aborted.
  std::function<Status()> written;
};

// Writes are bounds-checked: nothing is ever written at or past capacity().
// Not thread-safe: one thread drives a target (but PendingSync::written).
class Target {
 public:
  virtual ~Target() = default;

  virtual TargetKind kind() const = 0;
  // The path given by the user (for messages).
  virtual const std::string& path() const = 0;
  // The most bytes this target may hold: the usable size of a file target, the
  // size of a block device.
  virtual uint64_t capacity() const = 0;
  // Current logical size (a file's length, a device's size).
  virtual uint64_t size() const = 0;

  // Sets the final logical size of a file (grows it sparsely, or truncates
  // what this import wrote; with Preallocation::kOn allocates all of it).
  // Must be <= capacity(): a larger size fails with kTooSmall and CDI's
  // "... is larger than the reported available storage ..." message. A block
  // device's size is fixed: only its own size is accepted (a smaller one is
  // kInvalidArgument).
  virtual Status SetSize(uint64_t size) = 0;

  // Writes `data` at `offset`; the range must lie inside [0, capacity()).
  // A file grows to cover it. Data may be staged for direct I/O and reach
  // the file at a later call: errors writing it show there, or at Commit.
  virtual Status Write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes [offset, offset+length) read as zero. Each byte of a target is
  // written or zeroed at most once by an import; ranges never passed to Write
  // or Zero read zero at Commit on a file, and are zeroed at Commit on a block
  // device only if the caller zeroes them (the importer covers every byte).
  virtual Status Zero(uint64_t offset, uint64_t length) = 0;

  // Durably commits: fsync, then (file) moves the partial file into place and
  // syncs the directory; then logs at info
  //   "Successfully completed fsync(<path>) syscall, committed to disk"
  // (CDI's line). After Commit the target is complete; further Write, Zero or
  // SetSize calls fail, Commit again is a no-op, Abort does nothing.
  virtual Status Commit() = 0;
  // For a checkpoint that claims every byte written so far, made durable on
  // another thread while the import goes on: hands what is staged to the
  // writer threads (without waiting) and returns what that thread needs.
  // kUnsupported where a target cannot.
  virtual Result<PendingSync> StartSync() {
    return UnsupportedError("checkpoints are not written for " + path());
  }
  // Leaves what was written for a later import to resume (a file target's
  // partial file stays, unlocked; a block device keeps its bytes, not
  // wiped); a target that cannot be resumed aborts. Then as after Abort.
  virtual void Keep() { Abort(); }
  // Abandons the import: a file target's partial file is removed; a block
  // device that was written to has its first and last MiB zeroed, so that it
  // never looks like a good disk. Safe to call more than once, and after a
  // failed Commit. Destroying a target that was neither committed nor aborted
  // aborts it.
  virtual void Abort() = 0;

  virtual TargetStats stats() const = 0;
};

// Creates a file target at `path`. The data goes to a partial file beside it,
// "<dir>/.<name>.partial", until Commit renames it into place. The partial
// file is also the target's lock: the target holds an exclusive flock on it
// from open to Commit or Abort, so only one import (in any process, or in this
// one) writes a target at a time; while another holds it, opening fails at
// once with kInvalidArgument ("... is being written by another import ...").
// A stale partial file (its lock free: left by a killed import) is emptied
// and reused, or kept as it is with StalePartial::kKeep (its allocated space
// then counts as free for capacity()). Refuses an existing `path`
// (kInvalidArgument, "pass --force to replace it") unless options.existing is
// kReplace; with kRefuse, Commit also refuses a file that appeared meanwhile.
// With kReplace the old file keeps its space until Commit replaces it, so the
// free space that bounds capacity() does not include it.
// A fresh file reads zero, so Zero() on a file only checks bounds, extends the
// file to cover the range if needed, and counts the range as skipped: this
// relies on the contract that no byte is written and then zeroed.
// Write() or Zero() past capacity() fails with kTooSmall and writes nothing.
// Write errors: ENOSPC and EDQUOT give kTooSmall, naming the path and offset
// ("no space left on device", "disk quota exceeded"); others give kIo.
Result<std::unique_ptr<Target>> OpenFileTarget(const std::string& path,
                                               const FileTargetOptions& options);

// Opens an existing block device exclusively (O_EXCL: refused at once, with
// kInvalidArgument and a message saying so, while it is mounted or held by
// another exclusive user, such as another import, in any process). Its
// capacity and size are the device size (BLKGETSIZE64); it is never resized.
// Zero() really zeroes (see ZeroMethod): a device is never assumed to read zero.
Result<std::unique_ptr<Target>> OpenBlockTarget(const std::string& path,
                                                const BlockTargetOptions& options = {});

// True if `path` names a block device (following symlinks).
bool IsBlockDevice(const std::string& path);

}  // namespace cdi::pvc

#endif  // CDI_PVC_TARGET_H_
