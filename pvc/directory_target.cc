// The directory target: archive content extracted beneath /data.
#include "pvc/directory_target.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "common/zero.h"
#include "pvc/capacity.h"
#include "pvc/io.h"
#include "pvc/writeback.h"

namespace cdi::pvc {
namespace {

enum class State { kOpen, kCommitted, kAborted };
enum class Create { kMissing, kNever };

// Deeper trees are refused: Abort removes what was created recursively,
// holding one descriptor per level.
constexpr size_t kMaxDepth = 256;

// Directories are owner-only until Commit gives them their final mode, so
// that entries can be added to one whatever mode the archive gives it.
constexpr mode_t kWorkingDirectoryMode = 0700;
constexpr uint32_t kImplicitDirectoryMode = 0755;

// The journal: the entries an extraction created at the top of what it
// created (cleanup_ below), each followed by a NUL, in the root. It exists
// from open to Commit or Abort, so one found at open was left by an
// extraction that was killed: what it lists is removed before anything is
// written, and a rerun makes the same tree as a first run (a directory left
// at its working mode, 0700, would otherwise be "used as it is"). Written
// without fsync: it guards against a killed process, whose writes the page
// cache keeps.
constexpr char kJournalName[] = ".cdi-extract-in-progress";

// Splits a normalised relative path into components, refusing anything else.
// With Reserved::kRefuse, the journal's name at the top is refused too.
enum class Reserved { kRefuse, kAllow };
Result<std::vector<std::string>> Components(std::string_view path,
                                            Reserved reserved = Reserved::kRefuse) {
  auto refuse = [&](std::string_view why) {
    return InvalidArgumentError("the path '" + std::string(path) + "' " + std::string(why) +
                                "; only normalised relative paths are created beneath the volume");
  };
  if (path.empty()) return refuse("is empty");
  if (path.front() == '/') return refuse("is absolute");
  if (path.find('\0') != std::string_view::npos) return refuse("holds a NUL byte");
  std::vector<std::string> components;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = std::min(path.find('/', pos), path.size());
    std::string_view component = path.substr(pos, slash - pos);
    if (component.empty() || component == "." || component == "..") {
      return refuse("has an empty, '.' or '..' component");
    }
    components.emplace_back(component);
    pos = slash + 1;
  }
  if (components.size() > kMaxDepth) {
    return refuse("is more than " + std::to_string(kMaxDepth) + " directories deep");
  }
  if (reserved == Reserved::kRefuse && components.front() == kJournalName) {
    return InvalidArgumentError("the path '" + std::string(path) +
                                "' is where the importer lists what an unfinished extraction "
                                "created; rename it in the archive");
  }
  return components;
}

std::string Join(const std::vector<std::string>& components, size_t count) {
  std::string path;
  for (size_t i = 0; i < count; ++i) path += (i ? "/" : "") + components[i];
  return path;
}

timespec ToTimespec(int64_t seconds) {
  timespec time{};
  time.tv_sec = static_cast<time_t>(seconds);
  return time;
}

// Removes the entry `name` of the directory `parent_fd`, recursively for a
// directory, never following a symbolic link.
void RemoveTreeAt(int parent_fd, const std::string& name, const std::string& shown, size_t depth) {
  struct stat st {};
  if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (S_ISDIR(st.st_mode) && depth <= kMaxDepth + 1) {
    int fd = openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      DIR* stream = fdopendir(fd);
      if (stream == nullptr) {
        close(fd);
      } else {
        // Names first, removal after: removing while reading a directory
        // stream may skip entries.
        std::vector<std::string> children;
        while (dirent* entry = readdir(stream)) {
          std::string child = entry->d_name;
          if (child != "." && child != "..") children.push_back(std::move(child));
        }
        for (const std::string& child : children) {
          RemoveTreeAt(dirfd(stream), child, shown + "/" + child, depth + 1);
        }
        closedir(stream);
      }
    }
  }
  if (unlinkat(parent_fd, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 &&
      errno != ENOENT) {
    Logger()->error("{}; remove it by hand: it is incomplete",
                  PosixError(errno, "removing " + shown + " after the import failed").message());
  }
}

class DirectoryTargetImpl final : public DirectoryTarget {
 public:
  DirectoryTargetImpl(std::string root, UniqueFd root_fd, UniqueFd journal_fd, uint64_t capacity,
                      const DirectoryTargetOptions& options)
      : root_(std::move(root)),
        root_fd_(std::move(root_fd)),
        journal_fd_(std::move(journal_fd)),
        capacity_(capacity),
        options_(options) {}

  ~DirectoryTargetImpl() override {
    if (state_ == State::kOpen) Abort();
  }

  const std::string& root() const override { return root_; }
  uint64_t capacity() const override { return capacity_; }
  DirectoryStats stats() const override { return stats_; }

  Status MakeDirectory(std::string_view path, uint32_t mode,
                       std::optional<int64_t> mtime) override {
    CDI_RETURN_IF_ERROR(CheckOpen("creating a directory in"));
    CDI_RETURN_IF_ERROR(CheckNoFile(path));
    CDI_ASSIGN_OR_RETURN(std::vector<std::string> components, Components(path));
    CDI_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(components, Create::kMissing));
    CDI_RETURN_IF_ERROR(MakeDirectoryAt(parent.get(), components, components.size()));
    auto created = created_dirs_.find(std::string(path));
    if (created != created_dirs_.end()) {
      // Created here (now or as a parent of an earlier entry): the archive's
      // mode and time apply at Commit. A pre-existing directory is left alone.
      created->second.mode = mode & 0777;
      created->second.mtime = mtime;
    }
    return Status::Ok();
  }

  Status BeginFile(std::string_view path, uint64_t size, uint32_t mode,
                   std::optional<int64_t> mtime) override {
    CDI_RETURN_IF_ERROR(CheckOpen("creating a file in"));
    CDI_RETURN_IF_ERROR(CheckNoFile(path));
    CDI_ASSIGN_OR_RETURN(std::vector<std::string> components, Components(path));
    const std::string shown = Shown(path);
    CDI_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(components, Create::kMissing));
    const std::string& leaf = components.back();

    // A regular file already there is replaced (a later archive member of the
    // same name, or a file left by an earlier attempt); it stops counting.
    uint64_t replaced = 0;
    bool exists = false;
    struct stat st {};
    if (fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      exists = true;
      if (!S_ISREG(st.st_mode)) {
        return InvalidArgumentError(shown + " already exists and is not a regular file (" +
                                    FileTypeName(st.st_mode) + "); it is left alone");
      }
      replaced = std::min(static_cast<uint64_t>(st.st_size), stats_.bytes_total);
    } else if (errno != ENOENT) {
      return PosixError(errno, "checking " + shown);
    }
    const uint64_t total = stats_.bytes_total - replaced;
    if (size > capacity_ || total > capacity_ - size) {
      return TooSmallError("writing " + shown + " (" + std::to_string(size) +
                           " bytes) would bring the files written to " +
                           std::to_string(total + size) +
                           " bytes, which is larger than the reported available storage " +
                           std::to_string(capacity_) + ". A larger PVC is required");
    }
    if (exists && unlinkat(parent.get(), leaf.c_str(), 0) != 0 && errno != ENOENT) {
      return PosixError(errno, "replacing " + shown);
    }
    UniqueFd fd(openat(parent.get(), leaf.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return PosixError(errno, "creating " + shown);
    CDI_RETURN_IF_ERROR(NoteCreated(components, components.size()));
    if (fchmod(fd.get(), mode & 0777) != 0)
      return PosixError(errno, "setting the mode of " + shown);

    stats_.bytes_total = total + size;
    file_fd_ = std::move(fd);
    file_path_ = shown;
    file_size_ = size;
    file_offset_ = 0;
    file_mtime_ = mtime;
    writeback_.emplace(file_fd_.get(), shown, options_.writeback_window);
    Logger()->debug("Writing {} ({} bytes)", shown, size);
    return Status::Ok();
  }

  Status WriteFile(std::span<const uint8_t> data) override {
    CDI_RETURN_IF_ERROR(CheckOpen("writing a file in"));
    if (!file_fd_.valid()) return InternalError("data written to " + root_ + " with no file open");
    if (data.size() > file_size_ - file_offset_) {
      return InternalError("more data than the " + std::to_string(file_size_) +
                           " bytes announced was written to " + file_path_);
    }
    // Runs of non-zero blocks become one write each; zero blocks stay holes.
    size_t pos = 0;
    while (pos < data.size()) {
      size_t run_start = pos;
      bool run_zero = false;
      for (bool first = true; pos < data.size(); first = false) {
        uint64_t offset = file_offset_ + pos;
        size_t block = static_cast<size_t>(
            std::min<uint64_t>(kSparseBlockSize - offset % kSparseBlockSize, data.size() - pos));
        bool zero = IsAllZero(std::span<const uint8_t>(data.data() + pos, block));
        if (!first && zero != run_zero) break;
        run_zero = zero;
        pos += block;
      }
      const uint64_t offset = file_offset_ + run_start;
      const size_t length = pos - run_start;
      if (run_zero) {
        stats_.bytes_skipped += length;
        continue;
      }
      CDI_RETURN_IF_ERROR(
          WriteFully(file_fd_.get(), offset, data.subspan(run_start, length), file_path_));
      CDI_RETURN_IF_ERROR(writeback_->Wrote(offset, length));
      stats_.bytes_written += length;
    }
    file_offset_ += data.size();
    return Status::Ok();
  }

  Status EndFile() override {
    CDI_RETURN_IF_ERROR(CheckOpen("completing a file in"));
    if (!file_fd_.valid()) return InternalError("a file of " + root_ + " ended with none open");
    if (file_offset_ != file_size_) {
      return InternalError(file_path_ + " ended after " + std::to_string(file_offset_) + " of " +
                           std::to_string(file_size_) + " bytes");
    }
    // Trailing zero blocks were not written: the length makes them holes.
    if (ftruncate(file_fd_.get(), static_cast<off_t>(file_size_)) != 0) {
      return PosixError(errno, "setting the size of " + file_path_);
    }
    if (file_mtime_) {
      timespec times[2] = {ToTimespec(*file_mtime_), ToTimespec(*file_mtime_)};
      if (futimens(file_fd_.get(), times) != 0) {
        return PosixError(errno, "setting the time of " + file_path_);
      }
    }
    writeback_.reset();
    file_fd_.reset();
    ++stats_.files;
    return Status::Ok();
  }

  Status Commit() override {
    if (state_ == State::kCommitted) return Status::Ok();
    CDI_RETURN_IF_ERROR(CheckOpen("committing"));
    if (file_fd_.valid()) return InternalError(file_path_ + " was not completed before commit");
    // Children were created after their parents: in reverse, a directory's
    // time is set after everything inside it changed.
    for (auto it = finish_order_.rbegin(); it != finish_order_.rend(); ++it) {
      const CreatedDirectory& dir = created_dirs_.at(*it);
      CDI_ASSIGN_OR_RETURN(std::vector<std::string> components, Components(*it));
      CDI_ASSIGN_OR_RETURN(UniqueFd parent, OpenParent(components, Create::kNever));
      UniqueFd fd(openat(parent.get(), components.back().c_str(),
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid()) return PosixError(errno, "opening " + Shown(*it));
      if (fchmod(fd.get(), dir.mode) != 0)
        return PosixError(errno, "setting the mode of " + Shown(*it));
      if (dir.mtime) {
        timespec times[2] = {ToTimespec(*dir.mtime), ToTimespec(*dir.mtime)};
        if (futimens(fd.get(), times) != 0)
          return PosixError(errno, "setting the time of " + Shown(*it));
      }
    }
    // One syncfs flushes every file written, instead of one fsync per file.
    if (syncfs(root_fd_.get()) != 0) return PosixError(errno, "flushing " + root_ + " to disk");
    // Only once everything is on disk: a journal left by a crash here makes
    // the next run extract again, the same tree.
    if (unlinkat(root_fd_.get(), kJournalName, 0) != 0) {
      return PosixError(errno, "removing " + Shown(kJournalName));
    }
    if (fsync(root_fd_.get()) != 0) return PosixError(errno, "flushing " + root_ + " to disk");
    state_ = State::kCommitted;
    Logger()->info("Successfully completed fsync({}) syscall, committed to disk", root_);
    return Status::Ok();
  }

  void Abort() override {
    if (state_ != State::kOpen) return;
    state_ = State::kAborted;
    writeback_.reset();
    file_fd_.reset();
    for (auto it = cleanup_.rbegin(); it != cleanup_.rend(); ++it) {
      auto components = Components(*it);
      if (!components.ok()) continue;
      auto parent = OpenParent(*components, Create::kNever);
      if (!parent.ok()) continue;
      RemoveTreeAt(parent->get(), components->back(), Shown(*it), components->size());
    }
    RemoveJournal();
  }

 private:
  struct CreatedDirectory {
    uint32_t mode = kImplicitDirectoryMode;
    std::optional<int64_t> mtime;
  };

  Status CheckOpen(std::string_view operation) const {
    if (state_ == State::kOpen) return Status::Ok();
    return InternalError(std::string(operation) + " " + root_ + " after it was " +
                         (state_ == State::kCommitted ? "committed" : "aborted") +
                         "; this is a bug in the importer, please report it");
  }

  Status CheckNoFile(std::string_view path) const {
    if (!file_fd_.valid()) return Status::Ok();
    return InternalError(Shown(path) + " was begun while " + file_path_ + " is still open");
  }

  std::string Shown(std::string_view path) const {
    return (root_ == "/" ? "" : root_) + "/" + std::string(path);
  }

  static std::string FileTypeName(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISBLK(mode) || S_ISCHR(mode)) return "a device";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
  }

  // Records that the first `count` components name something created here.
  // Cleanup removes it unless its parent was created here too (removing the
  // parent removes it).
  Status NoteCreated(const std::vector<std::string>& components, size_t count) {
    std::string parent = Join(components, count - 1);
    if (count > 1 && created_dirs_.contains(parent)) return Status::Ok();
    std::string path = Join(components, count);
    cleanup_.push_back(path);
    path.push_back('\0');
    CDI_RETURN_IF_ERROR(
        WriteFully(journal_fd_.get(), journal_size_, AsBytes(path), Shown(kJournalName))
            .Annotate("recording what the extraction created"));
    journal_size_ += path.size();
    return Status::Ok();
  }

  // Creates the directory named by the first `count` components inside
  // `parent_fd`, which holds it; an existing directory is fine.
  Status MakeDirectoryAt(int parent_fd, const std::vector<std::string>& components, size_t count) {
    const std::string& name = components[count - 1];
    if (mkdirat(parent_fd, name.c_str(), kWorkingDirectoryMode) == 0) {
      std::string path = Join(components, count);
      CDI_RETURN_IF_ERROR(NoteCreated(components, count));
      created_dirs_.emplace(path, CreatedDirectory{});
      finish_order_.push_back(path);
      ++stats_.directories;
      return Status::Ok();
    }
    if (errno != EEXIST)
      return PosixError(errno, "creating the directory " + Shown(Join(components, count)));
    struct stat st {};
    if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return PosixError(errno, "checking " + Shown(Join(components, count)));
    }
    if (!S_ISDIR(st.st_mode)) {
      return InvalidArgumentError(Shown(Join(components, count)) +
                                  " already exists and is not a directory (" +
                                  FileTypeName(st.st_mode) + "); it is left alone");
    }
    return Status::Ok();
  }

  // Opens the directory that holds the last component, walking from the root
  // one component at a time without following symbolic links; with
  // Create::kMissing, missing directories on the way are created.
  Result<UniqueFd> OpenParent(const std::vector<std::string>& components, Create create) {
    UniqueFd dir(openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) return PosixError(errno, "opening " + root_);
    for (size_t i = 0; i + 1 < components.size(); ++i) {
      const char* name = components[i].c_str();
      UniqueFd next(openat(dir.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!next.valid() && errno == ENOENT && create == Create::kMissing) {
        CDI_RETURN_IF_ERROR(MakeDirectoryAt(dir.get(), components, i + 1));
        next.reset(openat(dir.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      }
      if (!next.valid()) {
        const std::string shown = Shown(Join(components, i + 1));
        if (errno == ENOTDIR || errno == ELOOP) {
          return InvalidArgumentError(shown +
                                      " is not a directory (a file or a symbolic link is in the "
                                      "way); nothing is written through it");
        }
        return PosixError(errno, "opening the directory " + shown);
      }
      dir = std::move(next);
    }
    return dir;
  }

  void RemoveJournal() {
    if (unlinkat(root_fd_.get(), kJournalName, 0) != 0 && errno != ENOENT) {
      Logger()->error("{}; remove it by hand",
                      PosixError(errno, "removing " + Shown(kJournalName)).message());
    }
  }

  static std::span<const uint8_t> AsBytes(const std::string& text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
  }

  const std::string root_;
  UniqueFd root_fd_;  // holds the lock (flock) that makes this the root's one extraction
  UniqueFd journal_fd_;
  uint64_t journal_size_ = 0;
  const uint64_t capacity_;
  const DirectoryTargetOptions options_;
  State state_ = State::kOpen;
  DirectoryStats stats_;

  // Directories created here, by path, with the mode and time they get at
  // Commit; and their paths in creation order.
  std::unordered_map<std::string, CreatedDirectory> created_dirs_;
  std::vector<std::string> finish_order_;
  // What Abort removes: everything created here whose parent was not.
  std::vector<std::string> cleanup_;

  // The open file.
  UniqueFd file_fd_;
  std::string file_path_;
  uint64_t file_size_ = 0;
  uint64_t file_offset_ = 0;
  std::optional<int64_t> file_mtime_;
  std::optional<WritebackLimiter> writeback_;
};

}  // namespace

namespace {

std::string ShownIn(const std::string& root, std::string_view path) {
  return (root == "/" ? "" : root) + "/" + std::string(path);
}

// Removes what an extraction that was killed created, as its journal lists
// it, and the journal. Entries that are not normalised relative paths are
// skipped: nothing outside the root is ever touched.
Status RemoveUnfinishedExtraction(int root_fd, const std::string& root) {
  const std::string journal_path = ShownIn(root, kJournalName);
  UniqueFd journal(openat(root_fd, kJournalName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!journal.valid()) {
    if (errno == ENOENT) return Status::Ok();
    return PosixError(errno, "opening " + journal_path);
  }
  std::string listed;
  char buffer[65536];
  while (true) {
    ssize_t n = read(journal.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, "reading " + journal_path);
    if (n == 0) break;
    listed.append(buffer, static_cast<size_t>(n));
  }
  size_t removed = 0;
  for (size_t pos = 0; pos < listed.size();) {
    size_t end = listed.find('\0', pos);
    if (end == std::string::npos) break;  // a last entry cut short was never created
    std::string_view path(listed.data() + pos, end - pos);
    pos = end + 1;
    auto components = Components(path, Reserved::kAllow);
    if (!components.ok()) continue;
    UniqueFd parent(openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (size_t i = 0; parent.valid() && i + 1 < components->size(); ++i) {
      parent.reset(openat(parent.get(), (*components)[i].c_str(),
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if (!parent.valid()) continue;
    RemoveTreeAt(parent.get(), components->back(), ShownIn(root, path), components->size());
    ++removed;
  }
  Logger()->info("Removed {} entries of {} that an earlier extraction, which did not finish, "
                 "created",
                 removed, root);
  if (unlinkat(root_fd, kJournalName, 0) != 0 && errno != ENOENT) {
    return PosixError(errno, "removing " + journal_path);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<DirectoryTarget>> OpenDirectoryTarget(
    const std::string& root, const DirectoryTargetOptions& options) {
  if (root.empty()) return InvalidArgumentError("no directory was given to extract into");
  UniqueFd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return PosixError(errno, "opening the directory " + root + " to extract into");
  // One extraction at a time: two would remove each other's entries, and one
  // would commit what the other had not finished.
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return InvalidArgumentError(root +
                                  " is being extracted into by another import; only one import "
                                  "may write a volume at a time: wait for that import to end, "
                                  "or stop it, then try again");
    }
    if (errno != ENOLCK && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
      return PosixError(errno, "locking " + root + " to extract into it");
    }
    Logger()->warn("{}: the filesystem does not support locks; a second import into it at the "
                   "same time would not be noticed",
                   root);
  }
  CDI_RETURN_IF_ERROR(RemoveUnfinishedExtraction(fd.get(), root));
  CDI_ASSIGN_OR_RETURN(uint64_t available, AvailableSpace(root));
  uint64_t bound =
      options.requested_size ? std::min(available, *options.requested_size) : available;
  uint64_t capacity = UsableSpace(options.filesystem_overhead, bound);
  Logger()->debug("{}: {} bytes free, {} requested, overhead {}: usable size {} bytes", root,
                available,
                options.requested_size ? std::to_string(*options.requested_size) : "nothing",
                options.filesystem_overhead, capacity);
  UniqueFd journal(openat(fd.get(), kJournalName,
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!journal.valid()) {
    return PosixError(errno, "creating " + ShownIn(root, kJournalName) +
                                 " (the list of what the extraction creates, removed when it "
                                 "ends)");
  }
  return std::unique_ptr<DirectoryTarget>(
      std::make_unique<DirectoryTargetImpl>(root, std::move(fd), std::move(journal), capacity,
                                            options));
}

}  // namespace cdi::pvc
