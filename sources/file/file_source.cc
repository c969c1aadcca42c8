#include "sources/file/file_source.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/posix_error.h"

namespace cdi::importer {
namespace {

// How long a Read() on a pipe waits before looking at the cancel token again.
constexpr int kPollMilliseconds = 200;

// Local sources read their paths: errno says what is wrong with an input.
Status ErrnoStatus(int error, const std::string& what) {
  return PosixError(error, what, PathUse::kRead);
}

enum class FdOwnership { kOwned, kBorrowed };
enum class FdKind { kSeekable, kStream };

class FdSource final : public ByteSource {
 public:
  FdSource(int fd, FdOwnership ownership, FdKind kind, std::optional<uint64_t> size,
           std::string description, const CancelToken* cancel)
      : fd_(fd),
        ownership_(ownership),
        kind_(kind),
        size_(size),
        description_(std::move(description)),
        cancel_(cancel) {}

  ~FdSource() override {
    if (ownership_ == FdOwnership::kOwned) close(fd_);
  }

  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;

  Result<size_t> Read(std::span<uint8_t> buffer) override {
    if (buffer.empty()) return size_t{0};
    while (true) {
      if (cancel_ != nullptr && cancel_->cancelled()) {
        return CancelledError("cancelled while reading " + description_);
      }
      if (kind_ == FdKind::kStream) {
        // A pipe may stay silent for ever: wait in slices to notice a cancel.
        pollfd entry{fd_, POLLIN, 0};
        int ready = poll(&entry, 1, kPollMilliseconds);
        if (ready < 0 && errno != EINTR) return ErrnoStatus(errno, "reading " + description_);
        if (ready <= 0) continue;
      }
      ssize_t n = read(fd_, buffer.data(), buffer.size());
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return ErrnoStatus(errno, "reading " + description_);
      }
      if (n == 0 && size_.has_value() && offset_ < *size_) {
        return IoError(description_ + " ended after " + std::to_string(offset_) + " of " +
                       std::to_string(*size_) + " bytes (was it truncated while being read?)");
      }
      offset_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }

  std::optional<uint64_t> size() const override { return size_; }
  std::string Describe() const override { return description_; }

 private:
  const int fd_;
  const FdOwnership ownership_;
  const FdKind kind_;
  const std::optional<uint64_t> size_;
  const std::string description_;
  const CancelToken* const cancel_;
  uint64_t offset_ = 0;
};

}  // namespace

Result<std::unique_ptr<ByteSource>> OpenFileSource(const std::string& path,
                                                   const CancelToken* cancel) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path);
  struct stat info {};
  if (fstat(fd, &info) != 0) {
    Status status = ErrnoStatus(errno, path);
    close(fd);
    return status;
  }
  std::optional<uint64_t> size;
  if (S_ISREG(info.st_mode)) {
    size = static_cast<uint64_t>(info.st_size);
  } else if (S_ISBLK(info.st_mode)) {
    uint64_t device_size = 0;
    if (ioctl(fd, BLKGETSIZE64, &device_size) != 0) {
      Status status = ErrnoStatus(errno, "reading the size of block device " + path);
      close(fd);
      return status;
    }
    size = device_size;
  } else {
    close(fd);
    if (S_ISDIR(info.st_mode)) return ErrnoStatus(EISDIR, path);
    return InvalidArgumentError(path + ": not a regular file or a block device");
  }
  return std::unique_ptr<ByteSource>(
      std::make_unique<FdSource>(fd, FdOwnership::kOwned, FdKind::kSeekable, size, path, cancel));
}

Result<std::unique_ptr<ByteSource>> OpenStdinSource(const CancelToken* cancel) {
  constexpr int kStdin = 0;
  struct stat info {};
  if (fstat(kStdin, &info) != 0) return ErrnoStatus(errno, "standard input");
  std::optional<uint64_t> size;
  FdKind kind = FdKind::kStream;
  if (S_ISREG(info.st_mode)) {
    // Redirected from a file: the bytes left from the current position.
    off_t position = lseek(kStdin, 0, SEEK_CUR);
    if (position >= 0 && position <= info.st_size) {
      size = static_cast<uint64_t>(info.st_size - position);
    }
    kind = FdKind::kSeekable;
  } else if (S_ISDIR(info.st_mode)) {
    return InvalidArgumentError("standard input is a directory");
  }
  return std::unique_ptr<ByteSource>(std::make_unique<FdSource>(
      kStdin, FdOwnership::kBorrowed, kind, size, "standard input", cancel));
}

}  // namespace cdi::importer
