#include "formats/vmdk/vmdk_sparse_decoder.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "formats/vmdk/vmdk_format.h"

namespace cdi::formats::vmdk {
namespace {

constexpr uint64_t kTableBytes = kGtesPerGt * 4;

// A table or a grain: where it lies in the file and which part of the guest it maps.
struct Placement {
  uint64_t host_sector;
  uint64_t index;  // grain directory index (tables) or guest grain (grains)
  bool operator<(const Placement& other) const { return host_sector < other.host_sector; }
};

class SparseBody final : public ExtentBody {
 public:
  SparseBody(GuestWriter* writer, const Header& header, const DecoderOptions& options,
             uint64_t position)
      : writer_(writer),
        header_(header),
        container_size_(options.container_size),
        budget_(options.memory_budget),
        position_(position) {}

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      if (phase_ == Phase::kDone) {
        position_ += bytes.size();  // after the last grain: ignored
        return Status::Ok();
      }
      uint64_t start = NextStart();
      if (position_ < start) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(start - position_, bytes.size()));
        position_ += n;
        bytes = bytes.subspan(n);
        continue;
      }
      if (phase_ == Phase::kGrains) {
        CDI_ASSIGN_OR_RETURN(size_t used, PassGrain(bytes));
        bytes = bytes.subspan(used);
        continue;
      }
      size_t want = phase_ == Phase::kDirectory ? header_.gd_entries() * 4 : kTableBytes;
      size_t n = std::min(want - buffer_.size(), bytes.size());
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
      position_ += n;
      bytes = bytes.subspan(n);
      if (buffer_.size() == want) {
        CDI_RETURN_IF_ERROR(phase_ == Phase::kDirectory ? OnDirectory() : OnTable());
        buffer_.clear();
      }
    }
    return Status::Ok();
  }

  Status Finish() override {
    switch (phase_) {
      case Phase::kDirectory:
        return TruncatedError(position_, "the end of its grain directory");
      case Phase::kTables:
        return TruncatedError(position_, "the end of the grain table at sector " +
                                             std::to_string(tables_[next_].host_sector));
      case Phase::kGrains:
        return TruncatedError(position_, "the end of the grain at sector " +
                                             std::to_string(grains_[next_].host_sector));
      case Phase::kDone:
        break;
    }
    return Status::Ok();
  }

 private:
  enum class Phase { kDirectory, kTables, kGrains, kDone };

  uint64_t NextStart() const {
    switch (phase_) {
      case Phase::kDirectory:
        return header_.gd_offset * kSectorSize;
      case Phase::kTables:
        return tables_[next_].host_sector * kSectorSize;
      case Phase::kGrains:
        return grains_[next_].host_sector * kSectorSize + in_grain_;
      case Phase::kDone:
        break;
    }
    return position_;
  }

  Status Corrupt(const std::string& what) const {
    return CorruptImageError("vmdk sparse extent: " + what + "; the image is corrupt");
  }
  Status NeedsOutOfOrder(const std::string& what) const {
    return UnsupportedError("vmdk sparse extent: " + what +
                            ", so the file would have to be read out of order, which this "
                            "importer does not do for VMDK; convert it with 'qemu-img convert "
                            "-O qcow2' (or -O raw) and import that");
  }

  Status Reserve(uint64_t entries, const std::string& what) {
    uint64_t bytes = header_.gd_entries() * 4 + entries * sizeof(Placement);
    if (bytes > budget_) return MemoryBudgetError(what, bytes, budget_);
    return Status::Ok();
  }

  // Zeroes guest grains [first, end), clipped to the capacity.
  Status ZeroGrains(uint64_t first, uint64_t end) {
    uint64_t offset = first * header_.grain_bytes();
    uint64_t stop = std::min(end * header_.grain_bytes(), header_.capacity_bytes());
    if (offset >= stop) return Status::Ok();
    return writer_->Zero(offset, stop - offset);
  }

  Status OnDirectory() {
    uint64_t entries = header_.gd_entries();
    CDI_RETURN_IF_ERROR(Reserve(entries, "the grain directory"));
    uint64_t gd_end_sector = (position_ + kSectorSize - 1) / kSectorSize;
    for (uint64_t i = 0; i < entries; ++i) {
      uint32_t sector = LoadLe32(buffer_, i * 4);
      if (sector == 0) {
        CDI_RETURN_IF_ERROR(ZeroGrains(i * kGtesPerGt, (i + 1) * kGtesPerGt));
        continue;
      }
      if (sector < gd_end_sector) {
        if (sector < header_.overhead && sector >= header_.descriptor_offset &&
            sector < header_.descriptor_offset + header_.descriptor_size) {
          return Corrupt("grain directory entry " + std::to_string(i) + " points to sector " +
                         std::to_string(sector) + ", inside the descriptor");
        }
        return NeedsOutOfOrder("grain directory entry " + std::to_string(i) +
                               " names a grain table at sector " + std::to_string(sector) +
                               ", before the grain directory at sector " +
                               std::to_string(header_.gd_offset));
      }
      if (container_size_ && sector * kSectorSize + kTableBytes > *container_size_) {
        return Corrupt("the grain table at sector " + std::to_string(sector) +
                       " (grain directory entry " + std::to_string(i) + ") is past the end of the " +
                       std::to_string(*container_size_) + "-byte image");
      }
      tables_.push_back({sector, i});
    }
    std::sort(tables_.begin(), tables_.end());
    for (size_t i = 1; i < tables_.size(); ++i) {
      if (tables_[i].host_sector * kSectorSize < tables_[i - 1].host_sector * kSectorSize + kTableBytes) {
        return Corrupt("the grain tables of directory entries " +
                       std::to_string(tables_[i - 1].index) + " and " +
                       std::to_string(tables_[i].index) + " overlap at sector " +
                       std::to_string(tables_[i].host_sector));
      }
    }
    next_ = 0;
    phase_ = Phase::kTables;
    if (tables_.empty()) return StartGrains();
    return Status::Ok();
  }

  Status OnTable() {
    const Placement& table = tables_[next_];
    uint64_t first_grain = table.index * kGtesPerGt;
    bool zeroed_grain_gte = (header_.flags & kFlagZeroedGrainGte) != 0;
    // The first grain of the run of unallocated grains being gathered, or
    // kNoRun (a plain sentinel: GCC's -O1 flow analysis misreads an optional here).
    constexpr uint64_t kNoRun = UINT64_MAX;
    uint64_t zero_start = kNoRun;
    uint64_t grain = first_grain;
    for (uint32_t i = 0; i < kGtesPerGt && grain < header_.grain_count(); ++i, ++grain) {
      uint32_t sector = LoadLe32(buffer_, i * 4);
      if (sector == 0 || (sector == kZeroedGrainGte && zeroed_grain_gte)) {
        if (zero_start == kNoRun) zero_start = grain;
        continue;
      }
      if (zero_start != kNoRun) {
        CDI_RETURN_IF_ERROR(ZeroGrains(zero_start, grain));
        zero_start = kNoRun;
      }
      if (sector < header_.overhead) {
        return Corrupt("grain table entry for guest grain " + std::to_string(grain) +
                       " points to sector " + std::to_string(sector) +
                       ", inside the metadata (overHead is " + std::to_string(header_.overhead) +
                       " sectors)");
      }
      if (container_size_ && sector * kSectorSize + header_.grain_bytes() > *container_size_) {
        return Corrupt("the grain of guest grain " + std::to_string(grain) + " at sector " +
                       std::to_string(sector) + " is past the end of the " +
                       std::to_string(*container_size_) + "-byte image");
      }
      CDI_RETURN_IF_ERROR(Reserve(grains_.size() + 1, "the map of allocated grains"));
      grains_.push_back({sector, grain});
    }
    if (zero_start != kNoRun) CDI_RETURN_IF_ERROR(ZeroGrains(zero_start, grain));
    if (++next_ == tables_.size()) return StartGrains();
    return Status::Ok();
  }

  Status StartGrains() {
    std::sort(grains_.begin(), grains_.end());
    uint64_t tables_end = position_;
    for (size_t i = 0; i < grains_.size(); ++i) {
      const Placement& g = grains_[i];
      if (g.host_sector * kSectorSize < tables_end) {
        return NeedsOutOfOrder("the grain of guest grain " + std::to_string(g.index) +
                               " at sector " + std::to_string(g.host_sector) +
                               " lies before the end of the grain tables (offset " +
                               std::to_string(tables_end) + ")");
      }
      if (i > 0 && g.host_sector < grains_[i - 1].host_sector + header_.grain_size) {
        return Corrupt("the grains of guest grains " + std::to_string(grains_[i - 1].index) +
                       " and " + std::to_string(g.index) + " overlap at sector " +
                       std::to_string(g.host_sector));
      }
    }
    next_ = 0;
    in_grain_ = 0;
    phase_ = grains_.empty() ? Phase::kDone : Phase::kGrains;
    return Status::Ok();
  }

  // Writes what of the current grain `bytes` (starting at its position)
  // holds; returns the bytes used.
  Result<size_t> PassGrain(std::span<const uint8_t> bytes) {
    const Placement& g = grains_[next_];
    uint64_t grain_bytes = header_.grain_bytes();
    size_t n = static_cast<size_t>(std::min<uint64_t>(grain_bytes - in_grain_, bytes.size()));
    uint64_t guest = g.index * grain_bytes + in_grain_;
    if (guest < header_.capacity_bytes()) {
      uint64_t length = std::min<uint64_t>(n, header_.capacity_bytes() - guest);
      CDI_RETURN_IF_ERROR(writer_->Write(guest, bytes.first(static_cast<size_t>(length))));
    }
    in_grain_ += n;
    position_ += n;
    if (in_grain_ == grain_bytes) {
      in_grain_ = 0;
      if (++next_ == grains_.size()) phase_ = Phase::kDone;
    }
    return n;
  }

  GuestWriter* writer_;
  Header header_;
  std::optional<uint64_t> container_size_;
  uint64_t budget_;
  uint64_t position_;  // offset of the next byte fed
  Phase phase_ = Phase::kDirectory;
  std::vector<uint8_t> buffer_;     // the directory, then one table
  std::vector<Placement> tables_;   // by host sector
  std::vector<Placement> grains_;   // by host sector, once every table is read
  size_t next_ = 0;                 // the table or grain being read
  uint64_t in_grain_ = 0;           // bytes of the current grain passed
};

}  // namespace

Result<std::unique_ptr<ExtentBody>> MakeSparseBody(GuestWriter* writer, const Header& header,
                                                    const DecoderOptions& options,
                                                    uint64_t position) {
  if (header.gd_offset * kSectorSize < position) {
    return UnsupportedError("vmdk sparse extent: the grain directory at sector " +
                            std::to_string(header.gd_offset) +
                            " lies before the end of the descriptor, so the file would have to "
                            "be read out of order; convert it with 'qemu-img convert -O qcow2' "
                            "(or -O raw) and import that");
  }
  uint64_t gd_bytes = header.gd_entries() * 4;
  if (gd_bytes > options.memory_budget) {
    return MemoryBudgetError("the grain directory of " + std::to_string(header.gd_entries()) +
                                 " entries",
                             gd_bytes, options.memory_budget);
  }
  return std::unique_ptr<ExtentBody>(new SparseBody(writer, header, options, position));
}

}  // namespace cdi::formats::vmdk
