// Writes a target's data with direct I/O where it pays, through the page
// cache where it must.
#ifndef CDI_PVC_DIRECT_WRITER_H_
#define CDI_PVC_DIRECT_WRITER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cdi/status.h"
#include "common/unique_fd.h"
#include "pvc/writeback.h"

namespace cdi::pvc {

// Direct I/O (O_DIRECT) moves data from the importer's memory to the device
// without copying it into the page cache and without the kernel's writeback
// work: for a stream of gigabytes that is most of the CPU time an import
// spends, and the page cache it would fill is charged to the pod's memory.
// But it needs buffers, offsets and lengths aligned to the device's blocks,
// and each write waits for the device, so small scattered writes are better
// left to the page cache.
//
// The writer stages contiguous writes in aligned buffers. A writer thread
// writes each full buffer directly while the caller fills the next one, so
// the device works while the importer decodes. When a run of writes ends (the
// next write is not contiguous, or Flush), the run's aligned middle goes out
// directly if it is long enough, and its unaligned edges and short runs
// through the page cache (with the writeback limiter). No block is ever
// written both ways, since every byte of a target is written at most once.
// A filesystem that refuses direct I/O on a write (EINVAL) gets that write,
// and every later one, through the page cache. Stages are written by two
// threads, in any order: their ranges never overlap.
//
// Errors from a staged write show at a later Write, or at Flush, naming the
// path and the offset; after one, nothing more is written. The limiter is
// used by the writer threads between a Write and the next Flush, and is the
// caller's again once Flush or Discard returns. One thread calls the methods.
class DirectWriter {
 public:
  // How much one direct write carries at most: the size of each staging
  // buffer, unless a target's memory share asks for smaller ones.
  static constexpr size_t kStageSize = 4 << 20;
  // Writer threads: two direct writes in flight keep a virtual disk busier
  // than one.
  static constexpr size_t kWriters = 2;
  // Buffers: one being filled while the others are written.
  static constexpr size_t kStageCount = kWriters + 1;
  // Runs shorter than this go through the page cache.
  static constexpr size_t kMinDirectRun = 256 << 10;
  // Alignment of direct writes: the largest logical block size in use.
  static constexpr size_t kAlignment = 4096;

  // The stage size that keeps a writer's buffers (kStageCount of them)
  // within `memory` bytes: at most kStageSize, aligned; 0 when even stages of
  // kMinDirectRun do not fit, and the target should write through the page
  // cache (pass no direct descriptor).
  static size_t StageSizeFor(uint64_t memory);

  // `fd` is the target's ordinary descriptor; `direct_fd` the same file opened
  // with O_DIRECT, or invalid to write everything at once through the page
  // cache. `stage_size` (a multiple of kAlignment, at least kMinDirectRun)
  // sizes the staging buffers, which then hold kStageCount * stage_size
  // bytes. `fd`, `writeback` and `path` are borrowed and must outlive the
  // writer.
  DirectWriter(int fd, UniqueFd direct_fd, WritebackLimiter* writeback, const std::string* path,
               size_t stage_size = kStageSize);
  ~DirectWriter();
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  // Writes `data` at `offset` (staged when direct I/O is on).
  Status Write(uint64_t offset, std::span<const uint8_t> data);
  // Writes out whatever is staged and waits until it is written.
  Status Flush();
  // Hands whatever is staged to the writer threads without waiting, and
  // returns a mark for WaitWritten.
  Result<uint64_t> Mark();
  // Waits until every write before `mark` is on the file (not necessarily
  // durable); the first write error, if any. Callable from any thread while
  // the writer lives.
  Status WaitWritten(uint64_t mark) const;
  // Forgets whatever is staged and not yet being written (the import is
  // abandoned), and waits for the write in progress.
  void Discard();

  // Bytes that went out with direct I/O, for tests and logs.
  uint64_t direct_bytes() const;

 private:
  struct FreeAligned {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  // A staged run: the buffer's byte i belongs at file offset base + i; the
  // run is [base + lead, base + fill), and base is aligned.
  struct Stage {
    std::unique_ptr<uint8_t, FreeAligned> buffer;
    uint64_t base = 0;
    size_t lead = 0;
    size_t fill = 0;
    uint64_t seq = 0;  // the order of submission, from 1
  };

  // Hands the current stage to the writer threads; with `take_next`, takes a
  // free one (waiting for it), else leaves that to the next Write.
  Status Submit(bool take_next = true);
  // Takes a free stage as the current one, waiting for a writer to free one.
  Status TakeFree(std::unique_lock<std::mutex>& lock);
  void Run();
  // On the writer thread: writes one staged run.
  Status WriteOut(const Stage& stage);
  Status WriteBuffered(uint64_t offset, std::span<const uint8_t> data);
  // Writes an aligned range directly, falling back to the page cache for good
  // if the filesystem refuses.
  Status WriteDirect(uint64_t offset, std::span<const uint8_t> data);

  const int fd_;
  const UniqueFd direct_fd_;
  std::atomic<bool> direct_refused_{false};  // the filesystem refused a direct write
  WritebackLimiter* const writeback_;
  const std::string* const path_;
  const size_t stage_size_;
  const bool staged_;  // direct I/O was available at the start
  Stage current_;      // the caller's; no buffer after a Mark until the next Write

  std::vector<std::thread> threads_;
  std::mutex buffered_mutex_;  // page-cache writes and the writeback limiter
  mutable std::mutex mutex_;
  std::condition_variable work_;  // a stage was queued, or stop
  mutable std::condition_variable done_;  // a stage was written (or dropped)
  // Guarded by mutex_.
  std::deque<Stage> queue_;
  std::vector<Stage> free_;
  size_t busy_ = 0;  // stages being written
  uint64_t submitted_ = 0;
  std::set<uint64_t> unfinished_;  // seq of the stages queued or being written
  bool stop_ = false;
  Status error_;
  uint64_t direct_bytes_ = 0;
};

// Opens `path` again with O_DIRECT for writing, and checks that it is the
// same file or device as `fd`. Returns an invalid descriptor when the
// filesystem does not support direct I/O or gains nothing from it (tmpfs),
// or anything else stops it: the writes then go through the page cache,
// which always works.
UniqueFd OpenDirect(int dir_fd, const std::string& name, int fd, const std::string& path);

}  // namespace cdi::pvc

#endif  // CDI_PVC_DIRECT_WRITER_H_
