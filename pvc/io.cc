#include "pvc/io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/posix_error.h"

namespace cdi::pvc {
namespace {

// Not const, so that it lives in .bss rather than taking 1 MiB of the binary;
// nothing ever writes to it.
alignas(4096) uint8_t zero_buffer[1 << 20];

}  // namespace

std::span<const uint8_t> ZeroBuffer() { return zero_buffer; }

Result<UniqueFd> DuplicateForSync(int fd, const std::string& path) {
  UniqueFd copy(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy.valid()) return PosixError(errno, "duplicating the descriptor of " + path);
  return copy;
}

Status WriteFully(int fd, uint64_t offset, std::span<const uint8_t> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // pwrite returning 0 for a non-empty buffer makes no progress: treat it as
      // the device refusing the write.
      int error_number = n < 0 ? errno : EIO;
      return PosixError(error_number, "writing " + std::to_string(data.size() - done) +
                                          " bytes to " + path + " at offset " +
                                          std::to_string(offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status CheckInBounds(std::string_view operation, uint64_t offset, uint64_t length,
                     uint64_t capacity, const std::string& path) {
  if (offset <= capacity && length <= capacity - offset) return Status::Ok();
  std::string message(operation);
  message += " " + std::to_string(length) + " bytes at offset " + std::to_string(offset) + " of " +
             path + " would pass its usable size of " + std::to_string(capacity) +
             " bytes; the image does not fit: a larger volume is required";
  return TooSmallError(std::move(message));
}

Status LargerThanAvailable(uint64_t size, uint64_t capacity, const std::string& path) {
  return TooSmallError("size " + std::to_string(size) + " of " + path +
                       " is larger than the reported available storage " +
                       std::to_string(capacity) + ". A larger PVC is required");
}

}  // namespace cdi::pvc
