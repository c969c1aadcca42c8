// The file target: a disk image file on a filesystem volume (/data/disk.img).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "common/log.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "pvc/capacity.h"
#include "pvc/direct_writer.h"
#include "pvc/io.h"
#include "pvc/target.h"
#include "pvc/writeback.h"

namespace cdi::pvc {
namespace {

enum class State { kOpen, kCommitted, kAborted };

struct PathParts {
  std::string dir;
  std::string name;
};

Result<PathParts> SplitPath(const std::string& path) {
  if (path.empty()) {
    return InvalidArgumentError(
        "the target path is empty; give the disk image file to write, such as /data/disk.img");
  }
  size_t slash = path.rfind('/');
  PathParts parts;
  if (slash == std::string::npos) {
    parts = {".", path};
  } else {
    parts = {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
  }
  if (parts.name.empty() || parts.name == "." || parts.name == "..") {
    return InvalidArgumentError(path +
                                " names a directory; give the disk image file to write inside "
                                "it, such as /data/disk.img");
  }
  return parts;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

// flock errors that mean "this filesystem has no locks", not "it is held".
bool LockUnsupported(int error_number) {
  return error_number == ENOLCK || error_number == EOPNOTSUPP || error_number == ENOSYS ||
         error_number == EINVAL;
}

// The error for a target another import is writing.
Status BusyError(const std::string& path, const std::string& partial_path) {
  return InvalidArgumentError(path + " is being written by another import (it holds " +
                              partial_path +
                              "); only one import may write a target at a time: wait for that "
                              "import to end, or stop it, then try again");
}

// Opens the partial file "<dir>/.<name>.partial", creating it, and takes an
// exclusive lock on it (flock) that lasts as long as the descriptor: the lock
// is what makes an import the owner of its target. An import that finds the
// lock held by another, in this process or another, refuses at once: two
// imports writing one partial file would rename each other's unfinished bytes
// into place. A partial file whose lock is free was left by an import that
// ended without cleaning up (killed): it holds nothing worth keeping, and is
// emptied, which also returns its space before the free space is measured;
// with StalePartial::kKeep it stays as it is, for a checkpoint to vouch for.
Result<UniqueFd> TakePartialFile(int dir_fd, const std::string& dir, const std::string& name,
                                 const std::string& path, unsigned mode, StalePartial stale) {
  const std::string partial_path = JoinPath(dir, name);
  // The owner removes or renames the name when it ends: a lock taken on a
  // file that no longer has the name guards nothing, so take it again.
  for (int attempt = 0; attempt < 16; ++attempt) {
    UniqueFd fd(openat(dir_fd, name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd.valid()) {
      if (errno == ELOOP) {
        return InvalidArgumentError(partial_path + " is a symbolic link, where " + path +
                                    " is written until it is complete; remove it and try again");
      }
      return PosixError(errno, "creating " + partial_path + " (where " + path +
                                   " is written until it is complete)");
    }
    if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return BusyError(path, partial_path);
      if (!LockUnsupported(errno)) {
        return PosixError(errno, "locking " + partial_path + " (where " + path +
                                     " is written until it is complete)");
      }
      // Some network and FUSE filesystems have no locks: importing there
      // still works, as it did before locks were taken.
      Logger()->warn("{}: the filesystem does not support locks; a second import into it "
                     "at the same time would not be noticed",
                     partial_path);
    }
    struct stat held {};
    struct stat named {};
    if (fstat(fd.get(), &held) != 0) return PosixError(errno, "checking " + partial_path);
    if (fstatat(dir_fd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return PosixError(errno, "checking " + partial_path);
    }
    if (held.st_dev != named.st_dev || held.st_ino != named.st_ino) continue;
    if (!S_ISREG(held.st_mode)) {
      return InvalidArgumentError(partial_path + " is not a regular file, where " + path +
                                  " is written until it is complete; remove it and try again");
    }
    if (held.st_size != 0 && stale == StalePartial::kKeep) {
      Logger()->debug("{}: {} bytes left by an earlier import that did not finish", partial_path,
                      held.st_size);
    } else if (held.st_size != 0) {
      Logger()->info("Replacing {}, left by an earlier import that did not finish",
                     partial_path);
      if (ftruncate(fd.get(), 0) != 0) {
        return PosixError(errno, "emptying " + partial_path + ", left by an earlier import");
      }
    }
    return fd;
  }
  return BusyError(path, partial_path);
}

class FileTarget final : public Target {
 public:
  FileTarget(std::string path, PathParts parts, UniqueFd dir_fd, std::string partial_name,
             UniqueFd fd, UniqueFd direct_fd, const FileTargetOptions& options)
      : path_(std::move(path)),
        parts_(std::move(parts)),
        dir_fd_(std::move(dir_fd)),
        partial_name_(std::move(partial_name)),
        partial_path_(JoinPath(parts_.dir, partial_name_)),
        fd_(std::move(fd)),
        options_(options),
        writeback_(fd_.get(), path_, options.writeback_window),
        writer_(fd_.get(), std::move(direct_fd), &writeback_, &path_,
                DirectWriter::StageSizeFor(options.staging_memory)) {}

  ~FileTarget() override {
    if (state_ == State::kOpen) Abort();
  }

  // Finishes opening: permissions and capacity. On failure the caller drops
  // the target, whose destructor removes the partial file.
  Status Init() {
    // The umask must not narrow the mode: the volume is shared with the VM's
    // launcher pod, which reads the image as the group.
    if (fchmod(fd_.get(), options_.mode & 07777) != 0) {
      return PosixError(errno, "setting the mode of " + partial_path_);
    }
    CDI_ASSIGN_OR_RETURN(uint64_t available, AvailableSpace(partial_path_));
    // A kept partial file's blocks are this import's own.
    struct stat kept {};
    if (fstat(fd_.get(), &kept) != 0) return PosixError(errno, "checking " + partial_path_);
    size_ = static_cast<uint64_t>(kept.st_size);
    available += static_cast<uint64_t>(kept.st_blocks) * 512;
    uint64_t bound =
        options_.requested_size ? std::min(available, *options_.requested_size) : available;
    capacity_ = UsableSpace(options_.filesystem_overhead, bound);
    Logger()->debug("{}: {} bytes free, {} requested, overhead {}: usable size {} bytes", path_,
                  available,
                  options_.requested_size ? std::to_string(*options_.requested_size) : "nothing",
                  options_.filesystem_overhead, capacity_);
    return Status::Ok();
  }

  TargetKind kind() const override { return TargetKind::kFile; }
  const std::string& path() const override { return path_; }
  uint64_t capacity() const override { return capacity_; }
  uint64_t size() const override { return size_; }
  TargetStats stats() const override {
    TargetStats stats = stats_;
    stats.bytes_direct = writer_.direct_bytes();
    return stats;
  }

  Status SetSize(uint64_t size) override {
    CDI_RETURN_IF_ERROR(CheckOpen("resizing"));
    if (size > capacity_) return LargerThanAvailable(size, capacity_, path_);
    CDI_RETURN_IF_ERROR(writer_.Flush());
    if (ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
      return PosixError(errno,
                        "setting the size of " + path_ + " to " + std::to_string(size) + " bytes");
    }
    size_ = size;
    if (options_.preallocation == Preallocation::kOn && size > 0) {
      CDI_RETURN_IF_ERROR(Preallocate(size));
    }
    return Status::Ok();
  }

  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    CDI_RETURN_IF_ERROR(CheckOpen("writing"));
    CDI_RETURN_IF_ERROR(CheckInBounds("writing", offset, data.size(), capacity_, path_));
    if (data.empty()) return Status::Ok();
    CDI_RETURN_IF_ERROR(writer_.Write(offset, data));
    size_ = std::max(size_, offset + data.size());
    stats_.bytes_written += data.size();
    return Status::Ok();
  }

  Status Zero(uint64_t offset, uint64_t length) override {
    CDI_RETURN_IF_ERROR(CheckOpen("zeroing"));
    CDI_RETURN_IF_ERROR(CheckInBounds("zeroing", offset, length, capacity_, path_));
    // The partial file was created empty and nothing is written twice, so the
    // range already reads zero (a hole, or fallocated unwritten extents). Past
    // the end it must still exist: a raw stream of unknown size may end in zeros.
    uint64_t end = offset + length;
    if (end > size_) {
      if (ftruncate(fd_.get(), static_cast<off_t>(end)) != 0) {
        return PosixError(errno, "extending " + path_ + " to " + std::to_string(end) + " bytes");
      }
      size_ = end;
    }
    stats_.bytes_skipped += length;
    return Status::Ok();
  }

  Status Commit() override {
    if (state_ == State::kCommitted) return Status::Ok();
    CDI_RETURN_IF_ERROR(CheckOpen("committing"));
    CDI_RETURN_IF_ERROR(writer_.Flush());
    if (fsync(fd_.get()) != 0) return PosixError(errno, "flushing " + path_ + " to disk");
    writeback_.DropCache();
    Logger()->debug("{}: wrote {} bytes, {} of them with direct I/O", path_, stats_.bytes_written,
                  writer_.direct_bytes());
    CDI_RETURN_IF_ERROR(MoveIntoPlace());
    renamed_ = true;
    // The rename is durable only once the directory is.
    if (fsync(dir_fd_.get()) != 0) {
      return PosixError(errno, "flushing the directory " + parts_.dir + " after moving " +
                                   partial_path_ + " to " + path_);
    }
    fd_.reset();
    state_ = State::kCommitted;
    Logger()->info("Successfully completed fsync({}) syscall, committed to disk", path_);
    return Status::Ok();
  }

  Result<PendingSync> StartSync() override {
    CDI_RETURN_IF_ERROR(CheckOpen("syncing"));
    CDI_ASSIGN_OR_RETURN(uint64_t mark, writer_.Mark());
    CDI_ASSIGN_OR_RETURN(UniqueFd fd, DuplicateForSync(fd_.get(), partial_path_));
    return PendingSync{std::move(fd), [this, mark] { return writer_.WaitWritten(mark); }};
  }

  void Keep() override {
    if (state_ != State::kOpen) return;
    if (renamed_) return Abort();
    state_ = State::kAborted;
    writer_.Discard();
    fd_.reset();
    Logger()->info("Kept {} for a later import to resume", partial_path_);
  }

  void Abort() override {
    if (state_ != State::kOpen) return;
    state_ = State::kAborted;
    writer_.Discard();
    // After a Commit that failed past the rename, the file at the final path
    // is the incomplete one. Removed before the descriptor closes: closing
    // releases the lock, and another import may then take the partial name.
    const std::string& name = renamed_ ? parts_.name : partial_name_;
    if (unlinkat(dir_fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      Status status =
          PosixError(errno, "removing " + JoinPath(parts_.dir, name) + " after the import failed");
      Logger()->error("{}; remove it by hand: it is incomplete", status.message());
    }
    fd_.reset();
  }

 private:
  Status CheckOpen(std::string_view operation) const {
    if (state_ == State::kOpen) return Status::Ok();
    return InternalError(std::string(operation) + " " + path_ + " after it was " +
                         (state_ == State::kCommitted ? "committed" : "aborted") +
                         "; this is a bug in the importer, please report it");
  }

  Status Preallocate(uint64_t size) {
    if (fallocate(fd_.get(), 0, 0, static_cast<off_t>(size)) == 0) return Status::Ok();
    int error_number = errno;
    if (error_number == EOPNOTSUPP || error_number == ENOSYS) {
      // Some filesystems (NFS before 4.2, many FUSE) cannot allocate without
      // writing: write zeros into the holes.
      return FillHoles(size);
    }
    return PosixError(error_number,
                      "preallocating " + std::to_string(size) + " bytes for " + path_);
  }

  // Writes zeros into every hole of [0, size), leaving data alone.
  Status FillHoles(uint64_t size) {
    uint64_t position = 0;
    while (position < size) {
      off_t hole = lseek(fd_.get(), static_cast<off_t>(position), SEEK_HOLE);
      if (hole < 0) return PosixError(errno, "looking for holes in " + path_);
      if (static_cast<uint64_t>(hole) >= size) break;
      off_t data = lseek(fd_.get(), hole, SEEK_DATA);
      uint64_t hole_end = size;
      if (data >= 0) {
        hole_end = std::min<uint64_t>(size, static_cast<uint64_t>(data));
      } else if (errno != ENXIO) {
        return PosixError(errno, "looking for data in " + path_);
      }
      for (uint64_t at = static_cast<uint64_t>(hole); at < hole_end;) {
        std::span<const uint8_t> zeros = ZeroBuffer();
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(zeros.size(), hole_end - at));
        CDI_RETURN_IF_ERROR(WriteFully(fd_.get(), at, zeros.first(chunk), path_));
        CDI_RETURN_IF_ERROR(writeback_.Wrote(at, chunk));
        at += chunk;
      }
      position = hole_end;
    }
    return Status::Ok();
  }

  // Moves the partial file to the final path. With ExistingFile::kRefuse a
  // file at the final path is never replaced, even one that appeared after
  // the target was opened.
  Status MoveIntoPlace() {
    const char* from = partial_name_.c_str();
    const char* to = parts_.name.c_str();
    unsigned flags = options_.existing == ExistingFile::kRefuse ? RENAME_NOREPLACE : 0;
    if (renameat2(dir_fd_.get(), from, dir_fd_.get(), to, flags) == 0) return Status::Ok();
    int error_number = errno;
    if (flags != 0 && (error_number == EINVAL || error_number == ENOSYS)) {
      // The filesystem cannot rename without replacing (NFS, CephFS, many
      // FUSE): a hard link is refused when the name exists, which gives the
      // same guarantee.
      if (linkat(dir_fd_.get(), from, dir_fd_.get(), to, 0) == 0) {
        if (unlinkat(dir_fd_.get(), from, 0) != 0) {
          Logger()->warn(
              "{}", PosixError(errno, "removing " + partial_path_ + " after linking it to " + path_)
                        .message());
        }
        return Status::Ok();
      }
      error_number = errno;
    }
    if (error_number == EEXIST) {
      return InvalidArgumentError(path_ +
                                  " appeared while the image was being written (another program "
                                  "created it) and was left alone; pass --force to replace it");
    }
    return PosixError(error_number, "moving " + partial_path_ + " to " + path_);
  }

  const std::string path_;
  const PathParts parts_;
  UniqueFd dir_fd_;
  const std::string partial_name_;
  const std::string partial_path_;
  UniqueFd fd_;
  const FileTargetOptions options_;
  WritebackLimiter writeback_;
  DirectWriter writer_;
  uint64_t capacity_ = 0;
  uint64_t size_ = 0;
  TargetStats stats_;
  State state_ = State::kOpen;
  bool renamed_ = false;
};

}  // namespace

Result<std::unique_ptr<Target>> OpenFileTarget(const std::string& path,
                                               const FileTargetOptions& options) {
  CDI_ASSIGN_OR_RETURN(PathParts parts, SplitPath(path));
  UniqueFd dir_fd(open(parts.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid()) {
    return PosixError(errno, "opening the directory " + parts.dir + " to create " + path);
  }

  struct stat st {};
  if (fstatat(dir_fd.get(), parts.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return InvalidArgumentError(path +
                                  " is a directory; give the disk image file to write, such as "
                                  "/data/disk.img");
    }
    if (S_ISBLK(st.st_mode)) {
      return InvalidArgumentError(path +
                                  " is a block device; import into it as a block device, not "
                                  "as a file");
    }
    if (options.existing == ExistingFile::kRefuse) {
      return InvalidArgumentError(path + " already exists; pass --force to replace it");
    }
  } else if (errno != ENOENT) {
    return PosixError(errno, "checking whether " + path + " exists");
  }

  // The partial file is the target's lock (see TakePartialFile).
  std::string partial_name = "." + parts.name + ".partial";
  CDI_ASSIGN_OR_RETURN(UniqueFd fd, TakePartialFile(dir_fd.get(), parts.dir, partial_name, path,
                                                    options.mode & 07777, options.stale_partial));
  UniqueFd direct_fd;
  if (options.direct_io && DirectWriter::StageSizeFor(options.staging_memory) > 0) {
    direct_fd = OpenDirect(dir_fd.get(), partial_name, fd.get(), path);
  }
  auto target = std::make_unique<FileTarget>(path, std::move(parts), std::move(dir_fd),
                                             std::move(partial_name), std::move(fd),
                                             std::move(direct_fd), options);
  CDI_RETURN_IF_ERROR(target->Init());
  return std::unique_ptr<Target>(std::move(target));
}

}  // namespace cdi::pvc
