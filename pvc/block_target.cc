// The block device target: a raw volume (/dev/cdi-block-volume).
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <string>
#include <utility>

#include "common/log.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "pvc/direct_writer.h"
#include "pvc/io.h"
#include "pvc/target.h"
#include "pvc/writeback.h"

namespace cdi::pvc {
namespace {

enum class State { kOpen, kCommitted, kAborted };

// What Abort() zeroes at each end: partition tables, filesystem superblocks
// and image headers live there, so a wiped device is not mistaken for a disk.
constexpr uint64_t kWipeLength = 1ull << 20;

constexpr const char* ZeroMethodName(ZeroMethod method) {
  switch (method) {
    case ZeroMethod::kBlkZeroOut:
      return "BLKZEROOUT";
    case ZeroMethod::kZeroRange:
      return "fallocate(FALLOC_FL_ZERO_RANGE)";
    case ZeroMethod::kPunchHole:
      return "fallocate(FALLOC_FL_PUNCH_HOLE)";
    case ZeroMethod::kWriteZeros:
      return "writing zeros";
  }
  return "?";
}

// Errors that mean "this device or kernel cannot do that", not "it failed".
// EINVAL counts: ranges are aligned and bounds-checked before the call.
bool IsUnsupported(int error_number) {
  return error_number == EOPNOTSUPP || error_number == ENOTTY || error_number == EINVAL ||
         error_number == ENOSYS || error_number == ENODEV;
}

// Issues one offloaded zeroing call; returns 0 or an errno value.
int IssueZero(int fd, ZeroMethod method, uint64_t offset, uint64_t length) {
  int result = 0;
  do {
    switch (method) {
      case ZeroMethod::kBlkZeroOut: {
        uint64_t range[2] = {offset, length};
        result = ioctl(fd, BLKZEROOUT, range);
        break;
      }
      case ZeroMethod::kZeroRange:
        result = fallocate(fd, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(offset),
                           static_cast<off_t>(length));
        break;
      case ZeroMethod::kPunchHole:
        result = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           static_cast<off_t>(offset), static_cast<off_t>(length));
        break;
      case ZeroMethod::kWriteZeros:
        return EOPNOTSUPP;
    }
  } while (result != 0 && errno == EINTR);
  return result == 0 ? 0 : errno;
}

class BlockTarget final : public Target {
 public:
  BlockTarget(std::string path, UniqueFd fd, UniqueFd direct_fd, uint64_t size,
              uint64_t logical_block_size, const BlockTargetOptions& options)
      : path_(std::move(path)),
        fd_(std::move(fd)),
        size_(size),
        logical_block_size_(logical_block_size),
        writeback_(fd_.get(), path_, options.writeback_window),
        writer_(fd_.get(), std::move(direct_fd), &writeback_, &path_,
                DirectWriter::StageSizeFor(options.staging_memory)) {
    for (size_t i = 0; i < kOffloads.size(); ++i) {
      offload_usable_[i] =
          static_cast<int>(kOffloads[i]) >= static_cast<int>(options.first_zero_method);
    }
  }

  ~BlockTarget() override {
    if (state_ == State::kOpen) Abort();
  }

  TargetKind kind() const override { return TargetKind::kBlockDevice; }
  const std::string& path() const override { return path_; }
  uint64_t capacity() const override { return size_; }
  uint64_t size() const override { return size_; }
  TargetStats stats() const override {
    TargetStats stats = stats_;
    stats.bytes_direct = writer_.direct_bytes();
    return stats;
  }

  Status SetSize(uint64_t size) override {
    CDI_RETURN_IF_ERROR(CheckOpen("resizing"));
    if (size == size_) return Status::Ok();
    if (size > size_) return LargerThanAvailable(size, size_, path_);
    return InvalidArgumentError("cannot set the size of " + path_ + " to " + std::to_string(size) +
                                " bytes: a block device's size is fixed (" + std::to_string(size_) +
                                " bytes); write the image into it without resizing");
  }

  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    CDI_RETURN_IF_ERROR(CheckOpen("writing"));
    CDI_RETURN_IF_ERROR(CheckInBounds("writing", offset, data.size(), size_, path_));
    if (data.empty()) return Status::Ok();
    touched_ = true;
    CDI_RETURN_IF_ERROR(writer_.Write(offset, data));
    stats_.bytes_written += data.size();
    return Status::Ok();
  }

  Status Zero(uint64_t offset, uint64_t length) override {
    CDI_RETURN_IF_ERROR(CheckOpen("zeroing"));
    CDI_RETURN_IF_ERROR(CheckInBounds("zeroing", offset, length, size_, path_));
    if (length == 0) return Status::Ok();
    touched_ = true;
    // What is staged goes out first, so that the device sees one pass in order.
    CDI_RETURN_IF_ERROR(writer_.Flush());
    CDI_RETURN_IF_ERROR(ZeroRange(offset, length));
    stats_.bytes_zeroed += length;
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
    fd_.reset();
    state_ = State::kCommitted;
    Logger()->info("Successfully completed fsync({}) syscall, committed to disk", path_);
    return Status::Ok();
  }

  Result<PendingSync> StartSync() override {
    CDI_RETURN_IF_ERROR(CheckOpen("syncing"));
    CDI_ASSIGN_OR_RETURN(uint64_t mark, writer_.Mark());
    CDI_ASSIGN_OR_RETURN(UniqueFd fd, DuplicateForSync(fd_.get(), path_));
    return PendingSync{std::move(fd), [this, mark] { return writer_.WaitWritten(mark); }};
  }

  // What was written stays on the device for a later import to continue:
  // its checkpoint (kept elsewhere) claims only what a Sync made durable.
  // Nothing is wiped: the import that continues writes every byte past the
  // point it continues from, and one that starts over writes every byte.
  void Keep() override {
    if (state_ != State::kOpen) return;
    state_ = State::kAborted;
    writer_.Discard();
    fd_.reset();
    Logger()->info("Kept what was written to {} for a later import to continue", path_);
  }

  void Abort() override {
    if (state_ != State::kOpen) return;
    state_ = State::kAborted;
    writer_.Discard();
    if (touched_) {
      Status status = Wipe();
      if (!status.ok()) {
        Logger()->error(
            "{}; the device may still look like a complete disk: zero its first and last MiB "
            "(blkdiscard -z, or dd from /dev/zero) before using it",
            status.message());
      }
    }
    fd_.reset();
  }

 private:
  // The offloaded methods, in ladder order; writing zeros always comes last.
  static constexpr std::array<ZeroMethod, 3> kOffloads = {
      ZeroMethod::kBlkZeroOut, ZeroMethod::kZeroRange, ZeroMethod::kPunchHole};

  Status CheckOpen(std::string_view operation) const {
    if (state_ == State::kOpen) return Status::Ok();
    return InternalError(std::string(operation) + " " + path_ + " after it was " +
                         (state_ == State::kCommitted ? "committed" : "aborted") +
                         "; this is a bug in the importer, please report it");
  }

  // Zeroes any range: the part aligned to logical blocks is offloaded, the
  // unaligned edges (which offloads refuse) are written as zeros.
  Status ZeroRange(uint64_t offset, uint64_t length) {
    uint64_t end = offset + length;
    uint64_t aligned_begin =
        (offset + logical_block_size_ - 1) / logical_block_size_ * logical_block_size_;
    uint64_t aligned_end = end / logical_block_size_ * logical_block_size_;
    if (aligned_begin >= aligned_end) return WriteZeros(offset, length);
    if (offset < aligned_begin) CDI_RETURN_IF_ERROR(WriteZeros(offset, aligned_begin - offset));
    CDI_RETURN_IF_ERROR(ZeroAligned(aligned_begin, aligned_end - aligned_begin));
    if (aligned_end < end) CDI_RETURN_IF_ERROR(WriteZeros(aligned_end, end - aligned_end));
    return Status::Ok();
  }

  // The ladder. Offloads are much faster than writing zeros (thin devices
  // just unmap) and keep the page cache out of it; the kernel drops cached
  // pages of the range itself.
  Status ZeroAligned(uint64_t offset, uint64_t length) {
    for (size_t i = 0; i < kOffloads.size(); ++i) {
      if (!offload_usable_[i]) continue;
      int error_number = IssueZero(fd_.get(), kOffloads[i], offset, length);
      if (error_number == 0) return Status::Ok();
      if (!IsUnsupported(error_number)) {
        return PosixError(error_number, "zeroing " + std::to_string(length) + " bytes of " + path_ +
                                            " at offset " + std::to_string(offset) + " with " +
                                            ZeroMethodName(kOffloads[i]));
      }
      // Remembered, so that a device without the method does not pay a
      // failing syscall on every zero range (as nbdkit's file plugin does).
      offload_usable_[i] = false;
      Logger()->debug("{}: {} is not supported ({}); not trying it again", path_,
                    ZeroMethodName(kOffloads[i]), error_number);
    }
    return WriteZeros(offset, length);
  }

  Status WriteZeros(uint64_t offset, uint64_t length) {
    std::span<const uint8_t> zeros = ZeroBuffer();
    for (uint64_t at = offset, end = offset + length; at < end;) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(zeros.size(), end - at));
      CDI_RETURN_IF_ERROR(WriteFully(fd_.get(), at, zeros.first(chunk), path_));
      CDI_RETURN_IF_ERROR(writeback_.Wrote(at, chunk));
      at += chunk;
    }
    return Status::Ok();
  }

  // Zeroes the first and last MiB and flushes.
  Status Wipe() {
    uint64_t head = std::min(kWipeLength, size_);
    uint64_t tail_begin = std::max(head, size_ > kWipeLength ? size_ - kWipeLength : 0);
    CDI_RETURN_IF_ERROR(ZeroRange(0, head).Annotate("wiping the start of " + path_));
    if (tail_begin < size_) {
      CDI_RETURN_IF_ERROR(
          ZeroRange(tail_begin, size_ - tail_begin).Annotate("wiping the end of " + path_));
    }
    if (fsync(fd_.get()) != 0) {
      return PosixError(errno, "flushing " + path_ + " to disk after wiping its ends");
    }
    Logger()->info("{}: import abandoned; zeroed its first and last MiB", path_);
    return Status::Ok();
  }

  const std::string path_;
  UniqueFd fd_;
  const uint64_t size_;
  const uint64_t logical_block_size_;
  WritebackLimiter writeback_;
  DirectWriter writer_;
  std::array<bool, kOffloads.size()> offload_usable_{};
  TargetStats stats_;
  State state_ = State::kOpen;
  bool touched_ = false;  // anything written or zeroed: Abort must wipe
};

}  // namespace

Result<std::unique_ptr<Target>> OpenBlockTarget(const std::string& path,
                                                const BlockTargetOptions& options) {
  // Checked before opening for a clear message: opening a FIFO would block,
  // and a regular file opens fine but is not what the caller means.
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return PosixError(errno, "looking up block device " + path);
  if (!S_ISBLK(st.st_mode)) {
    return InvalidArgumentError(path +
                                " is not a block device; give the volume's device (such as "
                                "/dev/cdi-block-volume), or import into a file instead");
  }
  // O_EXCL on a block device fails with EBUSY while it is mounted or held by
  // another exclusive opener: writing under a live filesystem corrupts it.
  // The same claim makes an import the one owner of its device: a second
  // import, in this process or another, is refused here at once.
  UniqueFd fd(open(path.c_str(), O_RDWR | O_EXCL | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == EBUSY) {
      return InvalidArgumentError(
          "opening block device " + path +
          " for writing: it is in use (mounted, or opened exclusively by another program, such "
          "as another import writing it); only one import may write a device at a time: unmount "
          "it or wait for the other program to end, then try again");
    }
    return PosixError(errno, "opening block device " + path + " for writing");
  }
  if (fstat(fd.get(), &st) != 0) return PosixError(errno, "checking block device " + path);
  if (!S_ISBLK(st.st_mode)) {
    return InvalidArgumentError(path +
                                " stopped being a block device while it was opened; "
                                "check what is replacing it and retry");
  }
  // A read-only device opens for writing without complaint; its writes fail
  // later, one by one.
  int read_only = 0;
  if (ioctl(fd.get(), BLKROGET, &read_only) != 0) {
    return PosixError(errno, "checking whether " + path + " is read-only");
  }
  if (read_only != 0) {
    return InvalidArgumentError(path + " is read-only; attach the volume read-write");
  }
  uint64_t size = 0;
  if (ioctl(fd.get(), BLKGETSIZE64, &size) != 0) {
    return PosixError(errno, "reading the size of block device " + path);
  }
  int logical_block_size = 0;
  if (ioctl(fd.get(), BLKSSZGET, &logical_block_size) != 0) {
    return PosixError(errno, "reading the logical block size of " + path);
  }
  if (logical_block_size < 512 || (logical_block_size & (logical_block_size - 1)) != 0) {
    logical_block_size = 512;
  }
  Logger()->debug("{}: block device of {} bytes, logical block size {}", path, size,
                logical_block_size);
  UniqueFd direct_fd;
  if (options.direct_io && DirectWriter::StageSizeFor(options.staging_memory) > 0) {
    direct_fd = OpenDirect(AT_FDCWD, path, fd.get(), path);
  }
  return std::unique_ptr<Target>(
      std::make_unique<BlockTarget>(path, std::move(fd), std::move(direct_fd), size,
                                    static_cast<uint64_t>(logical_block_size), options));
}

bool IsBlockDevice(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

}  // namespace cdi::pvc
