#include "formats/qcow2/spool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/posix_error.h"
#include "common/zero.h"

namespace cdi::formats::qcow2 {
namespace {

// Bytes of bookkeeping per fragment (map node, fragment, allocator slack).
constexpr uint64_t kFragmentOverhead = 192;
// All-zero stretches are recognised per aligned block of this size.
constexpr uint64_t kZeroProbe = 4096;
// Holes are punched in the scratch file at this alignment.
constexpr uint64_t kPage = 4096;

// The project's errno mapping (no space is "too small", a missing directory a
// wrong path), with what a user of the scratch directory can also do.
Status ScratchError(int error_number, const std::string& what) {
  Status status = PosixError(error_number, what);
  return Status(status.code(),
                status.message() + "; or raise the memory budget, so that less is spooled to disk",
                status.retryable() ? Retryable::kYes : Retryable::kNo);
}

}  // namespace

// Memory for spooled bytes; fragments point into it.
struct Spool::Block {
  std::unique_ptr<uint8_t[]> data;
  uint64_t size = 0;
  uint64_t used = 0;
  Reservation reservation;
};

// An unlinked file for bytes beyond the memory budget. Closing it frees its space.
class Spool::ScratchFile {
 public:
  static Result<std::unique_ptr<ScratchFile>> Create(const std::string& dir,
                                                     const std::string& format) {
    int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
      // File systems without O_TMPFILE: create, then unlink at once.
      std::string path = dir + "/.cdi-" + format + "-spool-XXXXXX";
      fd = mkostemp(path.data(), O_CLOEXEC);
      if (fd >= 0) unlink(path.c_str());
    }
    if (fd < 0) {
      int error_number = errno;
      return ScratchError(error_number, "creating a scratch file in " + dir +
                                            " to spool out-of-order " + format + " data");
    }
    return std::unique_ptr<ScratchFile>(new ScratchFile(fd, dir, format));
  }
  ~ScratchFile() { close(fd_); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  Status Write(uint64_t offset, std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      ssize_t n = pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int error_number = n < 0 ? errno : ENOSPC;
        return ScratchError(error_number, "writing the " + format_ + " spool file in " + dir_);
      }
      bytes = bytes.subspan(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) const {
    while (!out.empty()) {
      ssize_t n = pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int error_number = errno;
        return ScratchError(error_number, "reading the " + format_ + " spool file in " + dir_);
      }
      if (n == 0) {
        return IoError("reading the " + format_ + " spool file in " + dir_ +
                       " failed: unexpected end of file");
      }
      out = out.subspan(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }

  // Best effort: space comes back when the file is closed anyway.
  void PunchHole(uint64_t offset, uint64_t length) {
    uint64_t start = (offset + kPage - 1) / kPage * kPage;
    uint64_t end = (offset + length) / kPage * kPage;
    if (end > start) {
      (void)fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                      static_cast<off_t>(end - start));
    }
  }

  void Truncate() { (void)ftruncate(fd_, 0); }

 private:
  ScratchFile(int fd, std::string dir, std::string format)
      : fd_(fd), dir_(std::move(dir)), format_(std::move(format)) {}
  int fd_;
  std::string dir_;
  std::string format_;
};

Spool::Spool(Options options) : options_(std::move(options)) {
  if (options_.scratch_dir.empty()) {
    const char* tmpdir = getenv("TMPDIR");
    options_.scratch_dir = (tmpdir != nullptr && *tmpdir != '\0') ? tmpdir : "/tmp";
  }
}

Spool::~Spool() = default;

Status Spool::Append(uint64_t host_offset, std::span<const uint8_t> bytes) {
  if (host_offset < last_end_) {
    return InternalError(options_.format + " spool: bytes at " + std::to_string(host_offset) +
                         " arrived after bytes up to " + std::to_string(last_end_));
  }
  if (bytes.empty()) return Status::Ok();
  // Keep room for the tables: move bytes to disk before memory runs short.
  if (options_.budget->available() < options_.keep_free / 2) {
    SpillMemory(options_.keep_free - options_.budget->available());
    CDI_RETURN_IF_ERROR(deferred_error_);
  }
  size_t i = 0;
  while (i < bytes.size()) {
    // Split into runs of all-zero and other probe blocks, aligned by host offset.
    uint64_t here = host_offset + i;
    size_t j = i + std::min<uint64_t>(bytes.size() - i, kZeroProbe - here % kZeroProbe);
    bool zero = IsAllZero(bytes.subspan(i, j - i));
    while (j < bytes.size()) {
      size_t next = j + std::min<size_t>(bytes.size() - j, kZeroProbe);
      if (IsAllZero(bytes.subspan(j, next - j)) != zero) break;
      j = next;
    }
    CDI_RETURN_IF_ERROR(AppendRun(here, bytes.subspan(i, j - i), zero));
    i = j;
  }
  last_end_ = host_offset + bytes.size();
  return Status::Ok();
}

Status Spool::Insert(uint64_t host_offset, std::span<const uint8_t> bytes) {
  if (bytes.empty()) return Status::Ok();
  if (host_offset >= last_end_) return Append(host_offset, bytes);
  const uint64_t end = host_offset + bytes.size();
  auto next = fragments_.lower_bound(host_offset);
  if (end > last_end_ || Find(host_offset) != fragments_.end() ||
      (next != fragments_.end() && next->first < end)) {
    return CorruptImageError("qcow2: compressed data at host offset " +
                             std::to_string(host_offset) +
                             " overlaps other stored data; the image is corrupt: check it with "
                             "'qemu-img check'");
  }
  stored_bytes_ += bytes.size();
  // Stored on its own, in a block of its size or in the file.
  if (options_.budget->TryReserveNoReclaim(bytes.size(), options_.keep_free)) {
    auto block = std::make_shared<Block>();
    block->size = bytes.size();
    block->used = bytes.size();
    block->reservation = Reservation(options_.budget, bytes.size());
    block->data.reset(new uint8_t[bytes.size()]);
    std::memcpy(block->data.get(), bytes.data(), bytes.size());
    CDI_ASSIGN_OR_RETURN(Fragment * fragment, NewFragment(host_offset, Storage::kMemory));
    fragment->block = std::move(block);
    fragment->storage_offset = 0;
    return Extend(*fragment, host_offset, end);
  }
  CDI_RETURN_IF_ERROR(EnsureScratchFile());
  CDI_ASSIGN_OR_RETURN(Fragment * fragment, NewFragment(host_offset, Storage::kFile));
  fragment->storage_offset = scratch_end_;
  CDI_RETURN_IF_ERROR(scratch_->Write(scratch_end_, bytes));
  scratch_end_ += bytes.size();
  scratch_bytes_ += bytes.size();
  return Extend(*fragment, host_offset, end);
}

Status Spool::AppendRun(uint64_t host_offset, std::span<const uint8_t> bytes, bool zero) {
  if (zero) {
    Fragment* fragment = nullptr;
    uint64_t start = host_offset;
    if (!fragments_.empty()) {
      auto& [last_start, last] = *fragments_.rbegin();
      if (last.storage == Storage::kZero && last.end == host_offset) {
        fragment = &last;
        start = last_start;
      }
    }
    if (fragment == nullptr) {
      CDI_ASSIGN_OR_RETURN(fragment, NewFragment(host_offset, Storage::kZero));
    }
    return Extend(*fragment, start, host_offset + bytes.size());
  }
  stored_bytes_ += bytes.size();
  size_t stored = 0;
  CDI_RETURN_IF_ERROR(AppendToMemory(host_offset, bytes, &stored));
  if (stored < bytes.size()) {
    CDI_RETURN_IF_ERROR(AppendToFile(host_offset + stored, bytes.subspan(stored)));
  }
  return Status::Ok();
}

Status Spool::AppendToMemory(uint64_t host_offset, std::span<const uint8_t> bytes, size_t* stored) {
  *stored = 0;
  while (*stored < bytes.size()) {
    uint64_t here = host_offset + *stored;
    if (!current_block_ || current_block_->used == current_block_->size) {
      auto block = std::make_shared<Block>();
      block->size = options_.block_size;
      if (!options_.budget->TryReserveNoReclaim(block->size, options_.keep_free)) {
        return Status::Ok();  // the rest goes to the scratch file
      }
      block->reservation = Reservation(options_.budget, block->size);
      block->data.reset(new uint8_t[block->size]);
      current_block_ = std::move(block);
    }
    // Continue the last fragment when it ends where these bytes start, both in
    // the image and in the current block.
    Fragment* fragment = nullptr;
    uint64_t start = here;
    if (!fragments_.empty()) {
      auto& [last_start, last] = *fragments_.rbegin();
      if (last.storage == Storage::kMemory && last.end == here && last.block == current_block_ &&
          last.storage_offset + (last.end - last_start) == current_block_->used) {
        fragment = &last;
        start = last_start;
      }
    }
    if (fragment == nullptr) {
      CDI_ASSIGN_OR_RETURN(fragment, NewFragment(here, Storage::kMemory));
      fragment->block = current_block_;
      fragment->storage_offset = current_block_->used;
    }
    size_t count = static_cast<size_t>(
        std::min<uint64_t>(bytes.size() - *stored, current_block_->size - current_block_->used));
    std::memcpy(current_block_->data.get() + current_block_->used, bytes.data() + *stored, count);
    current_block_->used += count;
    *stored += count;
    CDI_RETURN_IF_ERROR(Extend(*fragment, start, here + count));
  }
  return Status::Ok();
}

Status Spool::AppendToFile(uint64_t host_offset, std::span<const uint8_t> bytes) {
  CDI_RETURN_IF_ERROR(EnsureScratchFile());
  Fragment* fragment = nullptr;
  uint64_t start = host_offset;
  if (!fragments_.empty()) {
    auto& [last_start, last] = *fragments_.rbegin();
    if (last.storage == Storage::kFile && last.end == host_offset &&
        last.storage_offset + (last.end - last_start) == scratch_end_) {
      fragment = &last;
      start = last_start;
    }
  }
  if (fragment == nullptr) {
    CDI_ASSIGN_OR_RETURN(fragment, NewFragment(host_offset, Storage::kFile));
    fragment->storage_offset = scratch_end_;
  }
  CDI_RETURN_IF_ERROR(scratch_->Write(scratch_end_, bytes));
  scratch_end_ += bytes.size();
  scratch_bytes_ += bytes.size();
  return Extend(*fragment, start, host_offset + bytes.size());
}

Result<Spool::Fragment*> Spool::NewFragment(uint64_t host_offset, Storage storage) {
  Reservation reservation;
  CDI_RETURN_IF_ERROR(ReserveIndex(reservation, kFragmentOverhead));
  auto [it, inserted] = fragments_.try_emplace(host_offset);
  if (!inserted) {
    return InternalError(options_.format + " spool: two fragments at host offset " +
                         std::to_string(host_offset));
  }
  Fragment& fragment = it->second;
  fragment.end = host_offset;
  fragment.storage = storage;
  fragment.first_unit = host_offset / options_.unit_size;
  fragment.reservation = std::move(reservation);
  return &fragment;
}

Status Spool::Extend(Fragment& fragment, uint64_t start, uint64_t end) {
  (void)start;
  fragment.end = end;
  uint64_t units = (end - 1) / options_.unit_size - fragment.first_unit + 1;
  if (units > fragment.taken.size()) {
    uint64_t bitmap_bytes = (units + 63) / 64 * 8;
    if (kFragmentOverhead + bitmap_bytes > fragment.reservation.bytes()) {
      // Grow in steps so that byte-by-byte appends do not reserve each time.
      uint64_t want = kFragmentOverhead + std::max(bitmap_bytes, fragment.reservation.bytes());
      if (!fragment.reservation.Resize(options_.budget, want, Reservation::Reclaim::kNo)) {
        return options_.budget->Exhausted("the index of spooled out-of-order data",
                                          want - fragment.reservation.bytes());
      }
    }
    fragment.live_units += units - fragment.taken.size();
    fragment.taken.resize(units, false);
  }
  return Status::Ok();
}

Status Spool::ReserveIndex(Reservation& reservation, uint64_t bytes) {
  if (!options_.budget->TryReserveNoReclaim(bytes)) {
    return options_.budget->Exhausted("the index of spooled out-of-order data", bytes);
  }
  reservation = Reservation(options_.budget, bytes);
  return Status::Ok();
}

Status Spool::EnsureScratchFile() {
  if (scratch_) return Status::Ok();
  CDI_ASSIGN_OR_RETURN(scratch_, ScratchFile::Create(options_.scratch_dir, options_.format));
  return Status::Ok();
}

Spool::FragmentMap::const_iterator Spool::Find(uint64_t host_offset) const {
  auto it = fragments_.upper_bound(host_offset);
  if (it == fragments_.begin()) return fragments_.end();
  --it;
  return it->second.end > host_offset ? it : fragments_.end();
}

uint64_t Spool::AvailableLength(uint64_t host_offset, uint64_t max) const {
  uint64_t position = host_offset;
  const uint64_t end = host_offset + max;
  for (auto it = Find(host_offset); it != fragments_.end() && position < end; ++it) {
    const auto& [start, fragment] = *it;
    if (start > position) break;
    uint64_t stop = std::min(end, fragment.end);
    for (uint64_t unit = position / options_.unit_size; unit * options_.unit_size < stop; ++unit) {
      if (fragment.taken[unit - fragment.first_unit]) {
        return std::max(position, unit * options_.unit_size) - host_offset;
      }
    }
    position = stop;
  }
  return position - host_offset;
}

Status Spool::Read(uint64_t host_offset, std::span<uint8_t> out) const {
  uint64_t position = host_offset;
  for (auto it = Find(host_offset); it != fragments_.end() && !out.empty(); ++it) {
    const auto& [start, fragment] = *it;
    if (start > position) break;
    size_t count = static_cast<size_t>(std::min<uint64_t>(out.size(), fragment.end - position));
    uint64_t offset = fragment.storage_offset + (position - start);
    switch (fragment.storage) {
      case Storage::kZero:
        std::memset(out.data(), 0, count);
        break;
      case Storage::kMemory:
        std::memcpy(out.data(), fragment.block->data.get() + offset, count);
        break;
      case Storage::kFile:
        CDI_RETURN_IF_ERROR(scratch_->ReadAt(offset, out.first(count)));
        break;
    }
    out = out.subspan(count);
    position += count;
  }
  if (!out.empty()) {
    return InternalError(options_.format + " spool: host bytes at " + std::to_string(position) +
                         " are not stored");
  }
  return Status::Ok();
}

std::optional<Spool::MemoryView> Spool::View(uint64_t host_offset, uint64_t length) const {
  auto it = Find(host_offset);
  if (it == fragments_.end()) return std::nullopt;
  const auto& [start, fragment] = *it;
  if (fragment.storage != Storage::kMemory || fragment.end - host_offset < length) {
    return std::nullopt;
  }
  MemoryView view;
  view.keepalive = fragment.block;
  view.bytes = std::span<const uint8_t>(
      fragment.block->data.get() + fragment.storage_offset + (host_offset - start),
      static_cast<size_t>(length));
  return view;
}

bool Spool::IsZero(uint64_t host_offset, uint64_t length) const {
  auto it = Find(host_offset);
  return it != fragments_.end() && it->second.storage == Storage::kZero &&
         it->second.end - host_offset >= length;
}

void Spool::Take(uint64_t host_offset, uint64_t length) {
  used_bytes_ += length;
  const uint64_t end = host_offset + length;
  auto it = fragments_.upper_bound(host_offset);
  if (it != fragments_.begin()) --it;
  while (it != fragments_.end() && it->first < end) {
    auto& [start, fragment] = *it;
    uint64_t from = std::max(start, host_offset);
    uint64_t to = std::min(fragment.end, end);
    if (from >= to) {
      ++it;
      continue;
    }
    for (uint64_t unit = from / options_.unit_size; unit * options_.unit_size < to; ++unit) {
      auto bit = fragment.taken[unit - fragment.first_unit];
      if (!bit) {
        bit = true;
        --fragment.live_units;
      }
    }
    ReleaseStorage(start, fragment, from, to);
    if (fragment.live_units == 0) {
      if (fragment.block == current_block_ && fragment.block) current_block_.reset();
      it = fragments_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<std::vector<std::pair<uint64_t, uint64_t>>> Spool::HeldBefore(
    uint64_t before, size_t max_ranges, uint64_t max_bytes) const {
  std::vector<std::pair<uint64_t, uint64_t>> held;
  uint64_t bytes = 0;
  for (const auto& [start, fragment] : fragments_) {
    if (start >= before) break;
    const uint64_t stop = std::min(fragment.end, before);
    for (uint64_t unit = start / options_.unit_size; unit * options_.unit_size < stop; ++unit) {
      if (fragment.taken[unit - fragment.first_unit]) continue;
      const uint64_t from = std::max(start, unit * options_.unit_size);
      const uint64_t to = std::min(stop, (unit + 1) * options_.unit_size);
      bytes += to - from;
      if (!held.empty() && held.back().second == from) {
        held.back().second = to;
      } else {
        if (held.size() == max_ranges) return std::nullopt;
        held.emplace_back(from, to);
      }
      if (bytes > max_bytes) return std::nullopt;
    }
  }
  return held;
}

void Spool::ReleaseStorage(uint64_t start, Fragment& fragment, uint64_t from, uint64_t to) {
  if (fragment.storage == Storage::kFile && scratch_) {
    scratch_->PunchHole(fragment.storage_offset + (from - start), to - from);
  }
}

void Spool::Clear() {
  fragments_.clear();
  current_block_.reset();
  if (scratch_) scratch_->Truncate();
  scratch_end_ = 0;
}

uint64_t Spool::SpillMemory(uint64_t wanted) {
  const uint64_t before = options_.budget->used();
  current_block_.reset();  // new bytes start a fresh block (or go to the file)
  for (auto& [start, fragment] : fragments_) {
    if (before - options_.budget->used() >= wanted) break;
    if (fragment.storage != Storage::kMemory) continue;
    Status status = EnsureScratchFile();
    if (status.ok()) {
      status = scratch_->Write(
          scratch_end_,
          std::span<const uint8_t>(fragment.block->data.get() + fragment.storage_offset,
                                   static_cast<size_t>(fragment.end - start)));
    }
    if (!status.ok()) {
      deferred_error_ = status;
      break;
    }
    fragment.storage = Storage::kFile;
    fragment.storage_offset = scratch_end_;
    fragment.block.reset();  // the block's memory goes when its last fragment lets go
    scratch_end_ += fragment.end - start;
    scratch_bytes_ += fragment.end - start;
  }
  return before - options_.budget->used();
}

}  // namespace cdi::formats::qcow2
