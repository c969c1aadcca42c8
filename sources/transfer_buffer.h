// A bounded byte pipe between one producer thread (a transfer) and one
// consumer thread (ByteSource::Read). Its memory is fixed at construction,
// whatever the length of the stream, so a fast server cannot make the
// importer hold more than `capacity` bytes. Several buffers may also share
// a BufferBudget: what they hold together stays within it.
#ifndef CDI_SOURCES_TRANSFER_BUFFER_H_
#define CDI_SOURCES_TRANSFER_BUFFER_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "cdi/status.h"

namespace cdi::importer {

class TransferBuffer;

// Bytes that several TransferBuffers hold together (the parts of a ranged
// download, which arrive ahead of the reader): a buffer that shares it
// waits, before it holds more, until all of them together hold less than
// `limit`. The one the consumer reads (the lead, TransferBuffer::SetLead)
// may hold up to `lead_allowance` bytes of its own whatever the others hold,
// so the reader never waits for bytes behind the ones it needs.
//
// Thread-safety: all of it, from any thread.
class BufferBudget {
 public:
  BufferBudget(size_t limit, size_t lead_allowance)
      : limit_(std::max<size_t>(limit, 1)), lead_allowance_(std::max<size_t>(lead_allowance, 1)) {}
  BufferBudget(const BufferBudget&) = delete;
  BufferBudget& operator=(const BufferBudget&) = delete;

  size_t held() {
    std::lock_guard lock(mutex_);
    return held_;
  }
  // The most the buffers together held at any time.
  size_t peak() {
    std::lock_guard lock(mutex_);
    return peak_;
  }

 private:
  friend class TransferBuffer;
  // Up to `want` (> 0) more bytes for `buffer`, after waiting until some
  // fit; 0 once `buffer` is closed.
  size_t Acquire(TransferBuffer& buffer, size_t want);
  // `buffer` no longer holds `n` bytes.
  void Return(TransferBuffer& buffer, size_t n);
  // Something a waiting buffer waits for changed (it was closed, or made lead).
  void Wake();

  const size_t limit_;
  const size_t lead_allowance_;
  std::mutex mutex_;
  std::condition_variable room_;
  size_t held_ = 0;  // guarded by mutex_
  size_t peak_ = 0;  // guarded by mutex_
};

// Thread-safety: Put and Finish are called by one producer thread, Take and
// Close by one consumer thread; the two sides may run concurrently. Bytes come
// out in the order they went in, as soon as they are in (a partly filled
// buffer is readable).
class TransferBuffer {
 public:
  // With a `budget`, the buffer carries streams no longer than `capacity`
  // (one at a time, Reset() in between), shares the budget's limit with
  // the other buffers on it, and gives the pages of bytes taken back to the
  // system as the consumer moves on.
  explicit TransferBuffer(size_t capacity, BufferBudget* budget = nullptr);
  ~TransferBuffer();
  TransferBuffer(const TransferBuffer&) = delete;
  TransferBuffer& operator=(const TransferBuffer&) = delete;

  // Producer: copies all of `data` in, waiting for room as the consumer takes
  // bytes out. Returns false, without waiting further, once Close() was
  // called: the consumer wants no more.
  bool Put(std::span<const uint8_t> data);

  // Producer: the stream is over. With an ok `status` Take() reports the end
  // after the last byte; otherwise it reports `status` after the last byte.
  // Only the first call counts.
  void Finish(Status status);

  // Consumer: copies up to out.size() bytes. Waits at most `wait` for a
  // quarter of the capacity (or out.size() bytes, if fewer) or the end, then
  // takes what is there. Returns nullopt when nothing arrived; otherwise the
  // number of bytes copied (> 0 unless `out` is empty), 0 at the end of a
  // complete stream, or the producer's error once all bytes before it were
  // taken.
  std::optional<Result<size_t>> Take(std::span<uint8_t> out, std::chrono::milliseconds wait);

  // Consumer: as Take, but lends the bytes instead of copying them: returns a
  // view of up to `max` bytes inside the buffer (contiguous, so possibly
  // fewer than are there). The view stays valid, and its bytes taken, until
  // Release(view.size()); call Release before the next Peek or Take. An
  // empty view means the end of a complete stream.
  std::optional<Result<std::span<const uint8_t>>> Peek(size_t max, std::chrono::milliseconds wait);
  // Consumer: gives back the first `n` bytes of the last Peek's view.
  void Release(size_t n);

  // Consumer: stops the producer; Put() returns false from now on.
  void Close();

  // Consumer: this buffer is the one being read: with a budget, what it may
  // hold no longer waits on what the others hold (up to the lead allowance).
  void SetLead();

  // With neither side using it: empties it for another stream, keeping its
  // memory (already paged in).
  void Reset();

  size_t capacity() const { return capacity_; }
  // Bytes put and not yet taken: how far the consumer is behind.
  size_t filled() {
    std::lock_guard lock(mutex_);
    return filled_;
  }

 private:
  friend class BufferBudget;
  // Gives the whole pages of ring bytes [from, to) back to the system (a
  // budget's buffers: their bytes are written once); `from` is a page
  // boundary. Returns the page boundary up to which they went.
  size_t DropPages(size_t from, size_t to);

  const size_t capacity_;
  BufferBudget* const budget_;
  const size_t batch_;  // how much one side makes available before waking the other
  // The ring's pages come from mmap and go back to the system with the
  // buffer: parts of a ranged download come and go, and the C library would
  // keep freed ones in its arenas.
  struct Unmap {
    size_t size = 0;
    void operator()(uint8_t* ring) const;
  };
  const std::unique_ptr<uint8_t, Unmap> ring_;

  std::mutex mutex_;
  std::condition_variable readable_;  // bytes or the end arrived
  std::condition_variable writable_;  // room appeared, or Close()
  // Guarded by mutex_. The producer writes only the free region and the
  // consumer reads only the filled one, so copies run outside the lock.
  size_t head_ = 0;  // next byte to take
  size_t filled_ = 0;
  size_t written_ = 0;  // bytes put since the last Reset (a budget's buffers)
  bool finished_ = false;
  std::atomic<bool> closed_ = false;  // also read by the budget
  std::atomic<bool> lead_ = false;    // read by the budget
  size_t budget_held_ = 0;            // guarded by the budget's mutex
  size_t pages_dropped_to_ = 0;       // consumer: ring bytes before it were given back
  Status end_status_;
  bool consumer_waiting_ = false;
  size_t bytes_wanted_ = 1;  // what wakes the waiting consumer
  bool producer_waiting_ = false;
  size_t room_wanted_ = 1;  // what wakes the waiting producer
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_TRANSFER_BUFFER_H_
