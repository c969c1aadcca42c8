// A bounded byte pipe between one producer thread (a transfer) and one
// consumer thread (ByteSource::Read). Its memory is fixed at construction,
// whatever the length of the stream, so a fast server cannot make the
// importer hold more than `capacity` bytes.
#ifndef CDI_SOURCES_TRANSFER_BUFFER_H_
#define CDI_SOURCES_TRANSFER_BUFFER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "cdi/status.h"

namespace cdi::importer {

// Thread-safety: Put and Finish are called by one producer thread, Take and
// Close by one consumer thread; the two sides may run concurrently. Bytes come
// out in the order they went in, as soon as they are in (a partly filled
// buffer is readable).
class TransferBuffer {
 public:
  explicit TransferBuffer(size_t capacity);
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
  const size_t capacity_;
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
  bool finished_ = false;
  bool closed_ = false;
  Status end_status_;
  bool consumer_waiting_ = false;
  size_t bytes_wanted_ = 1;  // what wakes the waiting consumer
  bool producer_waiting_ = false;
  size_t room_wanted_ = 1;  // what wakes the waiting producer
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_TRANSFER_BUFFER_H_
