#include "importer/sources/transfer_buffer.h"

#include <algorithm>
#include <cstring>

namespace cdi::importer {

TransferBuffer::TransferBuffer(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)), ring_(new uint8_t[capacity_]) {}

bool TransferBuffer::Put(std::span<const uint8_t> data) {
  while (!data.empty()) {
    size_t tail = 0;
    size_t room = 0;
    {
      std::unique_lock lock(mutex_);
      writable_.wait(lock, [&] { return closed_ || filled_ < capacity_; });
      if (closed_) return false;
      tail = (head_ + filled_) % capacity_;
      // Contiguous free space from the tail, up to the wrap or the head.
      room = std::min(capacity_ - filled_, capacity_ - tail);
    }
    size_t n = std::min(room, data.size());
    std::memcpy(ring_.get() + tail, data.data(), n);
    data = data.subspan(n);
    {
      std::lock_guard lock(mutex_);
      filled_ += n;
    }
    readable_.notify_one();
  }
  return true;
}

void TransferBuffer::Finish(Status status) {
  {
    std::lock_guard lock(mutex_);
    if (finished_) return;
    finished_ = true;
    end_status_ = std::move(status);
  }
  readable_.notify_one();
}

std::optional<Result<size_t>> TransferBuffer::Take(std::span<uint8_t> out,
                                                   std::chrono::milliseconds wait) {
  size_t head = 0;
  size_t available = 0;
  {
    std::unique_lock lock(mutex_);
    if (!readable_.wait_for(lock, wait, [&] { return filled_ > 0 || finished_; })) {
      return std::nullopt;
    }
    if (filled_ == 0) {
      // Built in place: moving a Result through std::optional trips a false
      // -Wmaybe-uninitialized in GCC 12 under the sanitizers.
      if (end_status_.ok()) return std::optional<Result<size_t>>(std::in_place, size_t{0});
      return std::optional<Result<size_t>>(std::in_place, end_status_);
    }
    head = head_;
    available = std::min(filled_, capacity_ - head_);
  }
  size_t n = std::min(available, out.size());
  std::memcpy(out.data(), ring_.get() + head, n);
  {
    std::lock_guard lock(mutex_);
    head_ = (head_ + n) % capacity_;
    filled_ -= n;
  }
  writable_.notify_one();
  return std::optional<Result<size_t>>(std::in_place, n);
}

void TransferBuffer::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  writable_.notify_all();
}

}  // namespace cdi::importer
