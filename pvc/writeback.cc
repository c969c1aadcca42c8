#include "pvc/writeback.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "common/posix_error.h"

namespace cdi::pvc {

WritebackLimiter::WritebackLimiter(int fd, std::string path, uint64_t window)
    : fd_(fd), path_(std::move(path)), window_(window) {}

Status WritebackLimiter::Wrote(uint64_t offset, uint64_t length) {
  if (window_ == 0 || length == 0) return Status::Ok();
  current_.begin = std::min(current_.begin, offset);
  current_.end = std::max(current_.end, offset + length);
  pending_ += length;
  if (pending_ < window_) return Status::Ok();

  if (!previous_.empty()) {
    // Started one window ago, so usually already on disk: the wait is short
    // and the disk never idles while the caller fills the next window.
    uint64_t length_before = previous_.end - previous_.begin;
    while (sync_file_range(
               fd_, static_cast<off_t>(previous_.begin), static_cast<off_t>(length_before),
               SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) !=
           0) {
      if (errno == EINTR) continue;
      return PosixError(errno, "writing back bytes " + std::to_string(previous_.begin) + " to " +
                                   std::to_string(previous_.end) + " of " + path_);
    }
    // Clean now, so the kernel can drop them; advisory, errors are harmless.
    posix_fadvise(fd_, static_cast<off_t>(previous_.begin), static_cast<off_t>(length_before),
                  POSIX_FADV_DONTNEED);
  }
  uint64_t length_now = current_.end - current_.begin;
  while (sync_file_range(fd_, static_cast<off_t>(current_.begin), static_cast<off_t>(length_now),
                         SYNC_FILE_RANGE_WRITE) != 0) {
    if (errno == EINTR) continue;
    return PosixError(errno, "writing back bytes " + std::to_string(current_.begin) + " to " +
                                 std::to_string(current_.end) + " of " + path_);
  }
  previous_ = current_;
  current_ = Span{};
  pending_ = 0;
  return Status::Ok();
}

void WritebackLimiter::DropCache() {
  if (window_ != 0) posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  previous_ = Span{};
  current_ = Span{};
  pending_ = 0;
}

}  // namespace cdi::pvc
