// Targets: where decoded guest bytes land. A file on a PVC's filesystem, or a
// block device. pvc/ knows nothing of image formats.
#ifndef CDI_PVC_TARGET_H_
#define CDI_PVC_TARGET_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"

namespace cdi::pvc {

enum class TargetKind { kFile, kBlockDevice };
enum class ExistingFile { kRefuse, kReplace };
enum class Preallocation { kOff, kOn };

struct FileTargetOptions {
  // Requested storage in bytes; nullopt: as much as the filesystem holds.
  std::optional<uint64_t> requested_size;
  double filesystem_overhead = 0.0;
  ExistingFile existing = ExistingFile::kRefuse;
  Preallocation preallocation = Preallocation::kOff;
  unsigned mode = 0660;
};

// Counters, for results and tests.
struct TargetStats {
  uint64_t bytes_written = 0;  // data passed to pwrite
  uint64_t bytes_zeroed = 0;   // ranges made to read zero by an explicit operation
  uint64_t bytes_skipped = 0;  // ranges already reading zero, left alone (holes)
};

// Writes are bounds-checked: nothing is ever written at or past capacity().
// Not thread-safe: one thread drives a target.
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
  // what this import wrote). Must be <= capacity(). A block device's size is
  // fixed: only its own size is accepted.
  virtual Status SetSize(uint64_t size) = 0;

  // Writes `data` at `offset`; the range must lie inside [0, capacity()).
  // A file grows to cover it.
  virtual Status Write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes [offset, offset+length) read as zero. Each byte of a target is
  // written or zeroed at most once by an import; ranges never passed to Write
  // or Zero read zero at Commit on a file, and are zeroed at Commit on a block
  // device only if the caller zeroes them (the importer covers every byte).
  virtual Status Zero(uint64_t offset, uint64_t length) = 0;

  // Durably commits: fsync, then (file) moves the partial file into place and
  // syncs the directory. After Commit the target is complete.
  virtual Status Commit() = 0;
  // Abandons the import: a file target's partial file is removed; a block
  // device that was written to has its first and last MiB zeroed, so that it
  // never looks like a good disk. Safe to call more than once, and after a
  // failed Commit.
  virtual void Abort() = 0;

  virtual TargetStats stats() const = 0;
};

// Creates a file target at `path`. The data goes to a partial file beside it
// until Commit. Refuses an existing `path` unless options.existing is kReplace.
Result<std::unique_ptr<Target>> OpenFileTarget(const std::string& path,
                                               const FileTargetOptions& options);

// Opens an existing block device exclusively (O_EXCL).
Result<std::unique_ptr<Target>> OpenBlockTarget(const std::string& path);

// True if `path` names a block device (following symlinks).
bool IsBlockDevice(const std::string& path);

}  // namespace cdi::pvc

#endif  // CDI_PVC_TARGET_H_
