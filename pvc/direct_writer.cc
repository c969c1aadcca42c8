#include "pvc/direct_writer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "common/log.h"
#include "common/posix_error.h"
#include "pvc/io.h"

namespace cdi::pvc {
namespace {

constexpr uint64_t AlignDown(uint64_t value) {
  return value / DirectWriter::kAlignment * DirectWriter::kAlignment;
}
constexpr uint64_t AlignUp(uint64_t value) {
  return AlignDown(value + DirectWriter::kAlignment - 1);
}

static_assert(DirectWriter::kStageSize % DirectWriter::kAlignment == 0);
static_assert(DirectWriter::kMinDirectRun >= 2 * DirectWriter::kAlignment);

}  // namespace

size_t DirectWriter::StageSizeFor(uint64_t memory) {
  const uint64_t stage = std::min<uint64_t>(kStageSize, AlignDown(memory / kStageCount));
  return stage < kMinDirectRun ? 0 : static_cast<size_t>(stage);
}

DirectWriter::DirectWriter(int fd, UniqueFd direct_fd, WritebackLimiter* writeback,
                           const std::string* path, size_t stage_size)
    : fd_(fd),
      direct_fd_(std::move(direct_fd)),
      writeback_(writeback),
      path_(path),
      stage_size_(std::max<size_t>(kMinDirectRun, AlignDown(stage_size))),
      staged_(direct_fd_.valid()) {
  if (!staged_) return;
  for (size_t i = 0; i < kStageCount; ++i) {
    Stage stage;
    stage.buffer.reset(static_cast<uint8_t*>(std::aligned_alloc(kAlignment, stage_size_)));
    if (!stage.buffer) throw std::bad_alloc();
    (i == 0 ? current_ : free_.emplace_back()) = std::move(stage);
  }
  for (size_t i = 0; i < kWriters; ++i) threads_.emplace_back([this] { Run(); });
}

DirectWriter::~DirectWriter() {
  if (!staged_) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

Status DirectWriter::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (!staged_) return WriteBuffered(offset, data);
  if (current_.fill > 0 && offset != current_.base + current_.fill) CDI_RETURN_IF_ERROR(Submit());
  if (!current_.buffer && !data.empty()) {
    std::unique_lock lock(mutex_);
    CDI_RETURN_IF_ERROR(TakeFree(lock));
  }
  while (!data.empty()) {
    if (current_.fill == 0) {
      current_.base = AlignDown(offset);
      current_.lead = current_.fill = static_cast<size_t>(offset - current_.base);
    }
    size_t n = std::min(stage_size_ - current_.fill, data.size());
    std::memcpy(current_.buffer.get() + current_.fill, data.data(), n);
    current_.fill += n;
    offset += n;
    data = data.subspan(n);
    if (current_.fill == stage_size_) CDI_RETURN_IF_ERROR(Submit());
  }
  return Status::Ok();
}

Status DirectWriter::Submit(bool take_next) {
  std::unique_lock lock(mutex_);
  if (!error_.ok()) return error_;
  current_.seq = ++submitted_;
  unfinished_.insert(current_.seq);
  queue_.push_back(std::move(current_));
  current_ = Stage{};
  work_.notify_one();
  return take_next ? TakeFree(lock) : Status::Ok();
}

Status DirectWriter::TakeFree(std::unique_lock<std::mutex>& lock) {
  done_.wait(lock, [&] { return !free_.empty() || !error_.ok(); });
  if (!error_.ok()) return error_;
  current_ = std::move(free_.back());
  free_.pop_back();
  current_.fill = 0;
  return Status::Ok();
}

Status DirectWriter::Flush() {
  if (!staged_) return Status::Ok();
  if (current_.fill > 0) CDI_RETURN_IF_ERROR(Submit());
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return (queue_.empty() && busy_ == 0) || !error_.ok(); });
  return error_;
}

Result<uint64_t> DirectWriter::Mark() {
  if (!staged_) return uint64_t{0};
  // No wait for a free stage here: the next Write waits if it must.
  if (current_.fill > 0) CDI_RETURN_IF_ERROR(Submit(/*take_next=*/false));
  std::lock_guard lock(mutex_);
  return submitted_;
}

Status DirectWriter::WaitWritten(uint64_t mark) const {
  if (!staged_) return Status::Ok();
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] {
    return !error_.ok() || unfinished_.empty() || *unfinished_.begin() > mark;
  });
  return error_;
}

void DirectWriter::Discard() {
  if (!staged_) return;
  current_.fill = 0;
  std::unique_lock lock(mutex_);
  while (!queue_.empty()) {
    unfinished_.erase(queue_.front().seq);
    free_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  done_.wait(lock, [&] { return busy_ == 0; });
  done_.notify_all();  // a WaitWritten for the dropped stages returns
}

uint64_t DirectWriter::direct_bytes() const {
  std::lock_guard lock(mutex_);
  return direct_bytes_;
}

void DirectWriter::Run() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Stage stage = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    Status status = WriteOut(stage);
    lock.lock();
    --busy_;
    unfinished_.erase(stage.seq);
    free_.push_back(std::move(stage));
    if (!status.ok() && error_.ok()) {
      error_ = std::move(status);
      // Nothing after a failed write is written: the import is failing.
      while (!queue_.empty()) {
        unfinished_.erase(queue_.front().seq);
        free_.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    done_.notify_all();
  }
}

Status DirectWriter::WriteOut(const Stage& stage) {
  const uint64_t begin = stage.base + stage.lead;
  const uint64_t end = stage.base + stage.fill;
  auto staged = [&](uint64_t from, uint64_t to) {
    return std::span<const uint8_t>(stage.buffer.get() + (from - stage.base),
                                    static_cast<size_t>(to - from));
  };
  if (end - begin < kMinDirectRun) return WriteBuffered(begin, staged(begin, end));
  const uint64_t aligned_begin = AlignUp(begin);
  const uint64_t aligned_end = AlignDown(end);
  if (begin < aligned_begin)
    CDI_RETURN_IF_ERROR(WriteBuffered(begin, staged(begin, aligned_begin)));
  CDI_RETURN_IF_ERROR(WriteDirect(aligned_begin, staged(aligned_begin, aligned_end)));
  if (aligned_end < end) CDI_RETURN_IF_ERROR(WriteBuffered(aligned_end, staged(aligned_end, end)));
  return Status::Ok();
}

Status DirectWriter::WriteBuffered(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) return Status::Ok();
  std::lock_guard lock(buffered_mutex_);
  CDI_RETURN_IF_ERROR(WriteFully(fd_, offset, data, *path_));
  return writeback_->Wrote(offset, data.size());
}

Status DirectWriter::WriteDirect(uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size() && !direct_refused_.load(std::memory_order_relaxed)) {
    ssize_t n = pwrite(direct_fd_.get(), data.data() + done, data.size() - done,
                       static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) {
      // The filesystem opened the file for direct I/O but refuses this write
      // (an alignment it does not accept, or no direct I/O after all).
      Logger()->debug("{}: direct I/O refused at offset {}; writing through the page cache", *path_,
                    offset + done);
      direct_refused_.store(true, std::memory_order_relaxed);
      break;
    }
    if (n <= 0) {
      int error_number = n < 0 ? errno : EIO;
      return PosixError(error_number, "writing " + std::to_string(data.size() - done) +
                                          " bytes to " + *path_ + " at offset " +
                                          std::to_string(offset + done));
    }
    done += static_cast<size_t>(n);
    std::lock_guard lock(mutex_);
    direct_bytes_ += static_cast<uint64_t>(n);
  }
  return WriteBuffered(offset + done, data.subspan(done));
}

UniqueFd OpenDirect(int dir_fd, const std::string& name, int fd, const std::string& path) {
  // A file on tmpfs takes O_DIRECT (Linux 6.6 on) but its pages are the
  // storage: a direct write copies into them all the same, so staging would
  // only add a copy and a hand-off to the writer threads. (A device node's
  // filesystem, devtmpfs, says tmpfs too: devices are not files on it.)
  struct stat file {};
  struct statfs filesystem {};
  if (fstat(fd, &file) == 0 && S_ISREG(file.st_mode) && fstatfs(fd, &filesystem) == 0 &&
      filesystem.f_type == TMPFS_MAGIC) {
    Logger()->debug("{}: on tmpfs; writing through the page cache, which is its storage", path);
    return {};
  }
  UniqueFd direct(openat(dir_fd, name.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
  if (!direct.valid()) {
    Logger()->debug("{}: no direct I/O ({}); writing through the page cache", path,
                  std::strerror(errno));
    return {};
  }
  struct stat mine {};
  struct stat theirs {};
  if (fstat(fd, &mine) != 0 || fstat(direct.get(), &theirs) != 0 || mine.st_dev != theirs.st_dev ||
      mine.st_ino != theirs.st_ino || mine.st_rdev != theirs.st_rdev) {
    Logger()->debug("{}: reopening for direct I/O found another file; writing through the page cache",
                  path);
    return {};
  }
  return direct;
}

}  // namespace cdi::pvc
