// Keeps the page cache that a target's buffered writes fill bounded.
#ifndef CDI_PVC_WRITEBACK_H_
#define CDI_PVC_WRITEBACK_H_

#include <cstdint>
#include <string>

#include "cdi/status.h"

namespace cdi::pvc {

// Importer pods run under small memory limits (CDI's default is 600M), and
// dirty page cache is charged to the pod: left to the kernel's dirty ratios
// (a fraction of the node's memory) a large import gets the pod OOM-killed.
//
// After every `window` bytes written, the limiter starts writeback of that
// window (sync_file_range WRITE) and waits for the window before it to reach
// the disk, then drops its clean pages (POSIX_FADV_DONTNEED). So at most about
// two windows are dirty or cached at a time, and the disk works on one window
// while the caller fills the next. Writes may come in any order: a window is
// the span from the lowest to the highest byte written in it.
//
// Not thread-safe; the descriptor is borrowed and must outlive the limiter.
class WritebackLimiter {
 public:
  // `window` 0 leaves writeback to the kernel. `path` is for messages.
  WritebackLimiter(int fd, std::string path, uint64_t window);

  // Records that [offset, offset + length) was just written through the page
  // cache. Fails (naming the path and range) when writeback of an earlier
  // window reports an error, e.g. ENOSPC on a thin volume or EIO.
  Status Wrote(uint64_t offset, uint64_t length);

  // After an fsync: drops the whole clean cache of the descriptor and forgets
  // the windows. Advisory; never fails.
  void DropCache();

 private:
  struct Span {
    uint64_t begin = UINT64_MAX;
    uint64_t end = 0;
    bool empty() const { return begin >= end; }
  };

  int fd_;
  std::string path_;
  uint64_t window_;
  uint64_t pending_ = 0;  // bytes written since the current window began
  Span current_;          // being filled; writeback not yet started
  Span previous_;         // writeback started, not yet waited for
};

}  // namespace cdi::pvc

#endif  // CDI_PVC_WRITEBACK_H_
