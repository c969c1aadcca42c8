// The directory target: files and directories created beneath a root
// directory (a filesystem volume's /data), for archive content. pvc/ knows
// nothing of archive formats: the importer turns archive entries into these
// calls.
//
//   CDI_ASSIGN_OR_RETURN(auto dir, OpenDirectoryTarget("/data", {.filesystem_overhead = 0.06}));
//   CDI_RETURN_IF_ERROR(dir->MakeDirectory("etc", 0755, std::nullopt));
//   CDI_RETURN_IF_ERROR(dir->BeginFile("etc/motd", 5, 0644, std::nullopt));
//   CDI_RETURN_IF_ERROR(dir->WriteFile(bytes));
//   CDI_RETURN_IF_ERROR(dir->EndFile());
//   CDI_RETURN_IF_ERROR(dir->Commit());
//
// Never escaping the root: paths are relative, and every component is opened
// with openat(O_NOFOLLOW) from the root's descriptor, so a symbolic link
// already on the volume is never followed (it is an error to meet one), and
// nothing is created outside the root whatever the path says. Paths must be
// normalised: no empty, "." or ".." components, no leading '/', no NUL;
// others are refused with kInvalidArgument.
//
// Bounded: the logical sizes of the files written add up to at most
// capacity() = UsableSpace(filesystem_overhead, min(free space, requested_size))
// (pvc/capacity.h), checked when a file is begun, before anything of it is
// written (kTooSmall with "... is larger than the reported available storage
// ...", the phrase CDI's controller maps to "DataVolume too small"). ENOSPC
// and EDQUOT while writing are kTooSmall too.
//
// Sparse: blocks of kSparseBlockSize zero bytes (aligned in the file) are not
// written; the file's length is set when it ends.
//
// Existing entries: missing parent directories are created (mode 0755); an
// existing directory is used as it is (its mode is left alone); an existing
// regular file is replaced (a file written twice counts once toward the
// bound); anything else in the way (a symbolic link, a device, a directory
// where a file goes) is an error naming the path.
//
// Modes: files get `mode & 0777` at once (set-id and sticky bits are
// dropped), whatever the umask; directories created here are kept
// owner-writable while entries are added and get their final mode and mtime
// at Commit.
//
// One extraction per root: the target holds an exclusive lock (flock) on the
// root from open to Commit or Abort; while another target (in any process, or
// in this one) holds it, opening fails at once with kInvalidArgument
// ("... is being extracted into by another import ...").
//
// Reruns make the same tree: the root holds a journal,
// ".cdi-extract-in-progress", listing what this target created, from open to
// Commit or Abort. A journal found at open was left by an extraction that was
// killed: everything it lists is removed first, so that nothing of the killed
// attempt (a directory still at its working mode, a file cut short) survives
// into the new one. An archive path at that name is refused.
//
// Commit makes everything durable (syncfs of the volume, then fsync of the
// root) and logs at info "Successfully completed fsync(<root>) syscall,
// committed to disk" (CDI's line). Abort removes every file and directory this
// target created (pre-existing ones stay); destroying an uncommitted target
// aborts it.
//
// Not thread-safe: one thread drives a target.
#ifndef CDI_PVC_DIRECTORY_TARGET_H_
#define CDI_PVC_DIRECTORY_TARGET_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cdi/status.h"
#include "pvc/target.h"

namespace cdi::pvc {

inline constexpr uint64_t kSparseBlockSize = 4096;

struct DirectoryTargetOptions {
  // Requested storage in bytes (a PVC's size); nullopt: as much as the
  // filesystem holds.
  std::optional<uint64_t> requested_size;
  double filesystem_overhead = 0.0;
  uint64_t writeback_window = kDefaultWritebackWindow;
};

struct DirectoryStats {
  uint64_t files = 0;          // files completed
  uint64_t directories = 0;    // directories created (pre-existing ones not counted)
  uint64_t bytes_total = 0;    // logical size of the files written, counted toward capacity()
  uint64_t bytes_written = 0;  // data passed to pwrite
  uint64_t bytes_skipped = 0;  // zero blocks left as holes
};

class DirectoryTarget {
 public:
  virtual ~DirectoryTarget() = default;

  virtual const std::string& root() const = 0;
  virtual uint64_t capacity() const = 0;

  // Creates the directory `path` (and missing parents). `mtime` is seconds
  // since the epoch; nullopt leaves the time of creation.
  virtual Status MakeDirectory(std::string_view path, uint32_t mode,
                               std::optional<int64_t> mtime) = 0;

  // Starts the file `path` of `size` bytes (missing parents are created).
  // Exactly `size` bytes must then be passed to WriteFile before EndFile.
  // Only one file is open at a time.
  virtual Status BeginFile(std::string_view path, uint64_t size, uint32_t mode,
                           std::optional<int64_t> mtime) = 0;
  // Appends `data` to the open file.
  virtual Status WriteFile(std::span<const uint8_t> data) = 0;
  // Completes the open file: its length, its mtime; closes it.
  virtual Status EndFile() = 0;

  // See above. After Commit, further calls fail; Commit again is a no-op.
  virtual Status Commit() = 0;
  // See above. Safe to call more than once and after a failed Commit.
  virtual void Abort() = 0;

  virtual DirectoryStats stats() const = 0;
};

// Opens `root`, an existing directory (following symbolic links to reach it).
// Errors: kInvalidArgument when it is missing or not a directory; kIo when
// its free space cannot be measured.
Result<std::unique_ptr<DirectoryTarget>> OpenDirectoryTarget(const std::string& root,
                                                             const DirectoryTargetOptions& options);

}  // namespace cdi::pvc

#endif  // CDI_PVC_DIRECTORY_TARGET_H_
