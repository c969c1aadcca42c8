#include "sources/transfer_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace cdi::importer {
namespace {

uint8_t* MapRing(size_t size) {
  void* ring = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring == MAP_FAILED) throw std::bad_alloc();
  return static_cast<uint8_t*>(ring);
}

}  // namespace

void TransferBuffer::Unmap::operator()(uint8_t* ring) const { munmap(ring, size); }

// Waking the other side for every piece costs a context switch per piece
// (tens of thousands per GiB on a fast link). Each side sleeps until the
// other has made a quarter of the ring available; a consumer whose wait times
// out takes whatever is there, so slow streams still flow.
TransferBuffer::TransferBuffer(size_t capacity)
    : capacity_(std::max<size_t>(capacity, 1)),
      batch_(std::max<size_t>(capacity_ / 4, 1)),
      ring_(MapRing(capacity_), Unmap{capacity_}) {}

bool TransferBuffer::Put(std::span<const uint8_t> data) {
  while (!data.empty()) {
    size_t tail = 0;
    size_t room = 0;
    {
      std::unique_lock lock(mutex_);
      if (!closed_ && filled_ == capacity_) {
        room_wanted_ = std::min(data.size(), batch_);
        producer_waiting_ = true;
        writable_.wait(lock, [&] { return closed_ || capacity_ - filled_ >= room_wanted_; });
        producer_waiting_ = false;
      }
      if (closed_) return false;
      tail = (head_ + filled_) % capacity_;
      // Contiguous free space from the tail, up to the wrap or the head.
      room = std::min(capacity_ - filled_, capacity_ - tail);
    }
    size_t n = std::min(room, data.size());
    std::memcpy(ring_.get() + tail, data.data(), n);
    data = data.subspan(n);
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      filled_ += n;
      wake = consumer_waiting_ && filled_ >= bytes_wanted_;
    }
    if (wake) readable_.notify_one();
  }
  return true;
}

void TransferBuffer::Reset() {
  std::lock_guard lock(mutex_);
  head_ = 0;
  filled_ = 0;
  finished_ = false;
  closed_ = false;
  end_status_ = Status::Ok();
  consumer_waiting_ = false;
  bytes_wanted_ = 1;
  producer_waiting_ = false;
  room_wanted_ = 1;
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

std::optional<Result<std::span<const uint8_t>>> TransferBuffer::Peek(
    size_t max, std::chrono::milliseconds wait) {
  using View = Result<std::span<const uint8_t>>;
  std::unique_lock lock(mutex_);
  bytes_wanted_ = std::clamp<size_t>(max, 1, batch_);
  if (filled_ < bytes_wanted_ && !finished_) {
    consumer_waiting_ = true;
    readable_.wait_for(lock, wait, [&] { return filled_ >= bytes_wanted_ || finished_; });
    consumer_waiting_ = false;
  }
  if (filled_ == 0) {
    if (!finished_) return std::nullopt;
    // Built in place: moving a Result through std::optional trips a false
    // -Wmaybe-uninitialized in GCC 12 under the sanitizers.
    if (end_status_.ok()) return std::optional<View>(std::in_place, std::span<const uint8_t>());
    return std::optional<View>(std::in_place, end_status_);
  }
  // The producer writes only past head_ + filled_, so the view stays intact
  // without the lock until it is released.
  size_t n = std::min({filled_, capacity_ - head_, max});
  return std::optional<View>(std::in_place, std::span<const uint8_t>(ring_.get() + head_, n));
}

void TransferBuffer::Release(size_t n) {
  if (n == 0) return;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    head_ = (head_ + n) % capacity_;
    filled_ -= n;
    wake = producer_waiting_ && capacity_ - filled_ >= room_wanted_;
  }
  if (wake) writable_.notify_one();
}

std::optional<Result<size_t>> TransferBuffer::Take(std::span<uint8_t> out,
                                                   std::chrono::milliseconds wait) {
  std::optional<Result<std::span<const uint8_t>>> view = Peek(out.size(), wait);
  if (!view.has_value()) return std::nullopt;
  if (!view->ok()) return std::optional<Result<size_t>>(std::in_place, view->status());
  const std::span<const uint8_t> bytes = **view;
  if (bytes.empty()) return std::optional<Result<size_t>>(std::in_place, size_t{0});
  std::memcpy(out.data(), bytes.data(), bytes.size());
  Release(bytes.size());
  return std::optional<Result<size_t>>(std::in_place, bytes.size());
}

void TransferBuffer::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  writable_.notify_all();
}

}  // namespace cdi::importer
