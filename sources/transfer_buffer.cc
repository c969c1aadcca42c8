#include "sources/transfer_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>

namespace cdi::importer {
namespace {

uint8_t* MapRing(size_t size) {
  void* ring = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring == MAP_FAILED) throw std::bad_alloc();
  return static_cast<uint8_t*>(ring);
}

// A budget's buffer gives pages back in batches of this much, not a system
// call for every piece taken.
constexpr size_t kDropBatch = 1024 * 1024;

}  // namespace

size_t BufferBudget::Acquire(TransferBuffer& buffer, size_t want) {
  std::unique_lock lock(mutex_);
  size_t grant = 0;
  room_.wait(lock, [&] {
    if (buffer.closed_) return true;
    if (held_ < limit_) {
      grant = std::min(want, limit_ - held_);
      return true;
    }
    if (buffer.lead_ && buffer.budget_held_ < lead_allowance_) {
      grant = std::min(want, lead_allowance_ - buffer.budget_held_);
      return true;
    }
    return false;
  });
  if (buffer.closed_) return 0;
  held_ += grant;
  buffer.budget_held_ += grant;
  peak_ = std::max(peak_, held_);
  return grant;
}

void BufferBudget::Return(TransferBuffer& buffer, size_t n) {
  {
    std::lock_guard lock(mutex_);
    n = std::min(n, buffer.budget_held_);
    if (n == 0) return;
    buffer.budget_held_ -= n;
    held_ -= n;
  }
  room_.notify_all();
}

void BufferBudget::Wake() {
  { std::lock_guard lock(mutex_); }
  room_.notify_all();
}

void TransferBuffer::Unmap::operator()(uint8_t* ring) const { munmap(ring, size); }

// Waking the other side for every piece costs a context switch per piece
// (tens of thousands per GiB on a fast link). Each side sleeps until the
// other has made a quarter of the ring available; a consumer whose wait times
// out takes whatever is there, so slow streams still flow.
TransferBuffer::TransferBuffer(size_t capacity, BufferBudget* budget)
    : capacity_(std::max<size_t>(capacity, 1)),
      budget_(budget),
      batch_(std::max<size_t>(capacity_ / 4, 1)),
      ring_(MapRing(capacity_), Unmap{capacity_}) {}

TransferBuffer::~TransferBuffer() {
  if (budget_ != nullptr) budget_->Return(*this, std::numeric_limits<size_t>::max());
}

size_t TransferBuffer::DropPages(size_t from, size_t to) {
  static const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  to = to / page * page;
  if (to > from) madvise(ring_.get() + from, to - from, MADV_DONTNEED);
  return std::max(from, to);
}

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
      // A budget's buffer is written once: its consumer gives pages back.
      if (budget_ != nullptr && written_ + data.size() > capacity_) return false;
    }
    size_t n = std::min(room, data.size());
    if (budget_ != nullptr) {
      n = budget_->Acquire(*this, n);
      if (n == 0) return false;
    }
    std::memcpy(ring_.get() + tail, data.data(), n);
    data = data.subspan(n);
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      filled_ += n;
      written_ += n;
      wake = consumer_waiting_ && filled_ >= bytes_wanted_;
    }
    if (wake) readable_.notify_one();
  }
  return true;
}

void TransferBuffer::Reset() {
  if (budget_ != nullptr) budget_->Return(*this, std::numeric_limits<size_t>::max());
  std::lock_guard lock(mutex_);
  head_ = 0;
  filled_ = 0;
  written_ = 0;
  pages_dropped_to_ = 0;
  lead_ = false;
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
  if (budget_ != nullptr) {
    // Only this thread moves head_. The bytes up to head_ + n are still
    // this side's (the producer never writes a budget's buffer twice), so
    // their pages go before they are given back.
    const size_t to = head_ + n;
    if (to - pages_dropped_to_ >= kDropBatch || to == capacity_) {
      pages_dropped_to_ = DropPages(pages_dropped_to_, to);
    }
  }
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    head_ = (head_ + n) % capacity_;
    filled_ -= n;
    wake = producer_waiting_ && capacity_ - filled_ >= room_wanted_;
  }
  if (wake) writable_.notify_one();
  if (budget_ != nullptr) budget_->Return(*this, n);
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
  if (budget_ != nullptr) budget_->Wake();
}

void TransferBuffer::SetLead() {
  lead_ = true;
  if (budget_ != nullptr) budget_->Wake();
}

}  // namespace cdi::importer
