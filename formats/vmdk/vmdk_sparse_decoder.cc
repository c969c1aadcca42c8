#include "formats/vmdk/vmdk_sparse_decoder.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cdi/quantity.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/spool.h"
#include "formats/qcow2/spool_replay.h"
#include "formats/vmdk/vmdk_format.h"

namespace cdi::formats::vmdk {
namespace {

using qcow2::MemoryBudget;
using qcow2::Reservation;
using qcow2::Spool;
using qcow2::SpoolReplay;

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
        scratch_dir_(options.scratch_dir),
        budget_(options.memory_budget),
        memory_(options.memory_budget, "vmdk"),
        position_(position) {
    memory_.set_reclaimer(
        [this](uint64_t wanted) { return spool_ ? spool_->SpillMemory(wanted) : 0; });
    // qemu-img and VMware write the redundant directory and its tables
    // before the grain directory: they are passed over, not kept.
    if ((header_.flags & kFlagRedundantGd) != 0 && header_.rgd_offset != 0 &&
        header_.rgd_offset != header_.gd_offset && header_.rgd_offset * kSectorSize >= position) {
      rgd_begin_ = header_.rgd_offset * kSectorSize;
      rgd_end_ = rgd_begin_ + header_.gd_entries() * 4;
    }
  }

  // Describes the spool once the map is complete.
  void AddDetails(ImageDescription& description) const override {
    if (phase_ != Phase::kGrains && phase_ != Phase::kDone) return;
    description.details.emplace_back("spooling", replayed_bytes_ > 0 ? "needed" : "not needed");
    description.details.emplace_back("spooled bytes", std::to_string(spooled_bytes_));
    description.details.emplace_back("spooled bytes on disk", std::to_string(spooled_on_disk_));
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      if (phase_ == Phase::kDone) {
        position_ += bytes.size();  // after the last grain: ignored
        return Status::Ok();
      }
      uint64_t start = NextStart();
      if (position_ < start) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(start - position_, bytes.size()));
        CDI_RETURN_IF_ERROR(Pass(bytes.first(n)));
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
    if (bytes > budget_ || !map_reservation_.Resize(&memory_, bytes)) {
      if (spool_ && !spool_->deferred_error().ok()) return spool_->deferred_error();
      return MemoryBudgetError(what, bytes, budget_);
    }
    return Status::Ok();
  }

  // Bytes between the parts read. Until every table is read they may be
  // tables or grains the map does not know yet: they go to the spool, all
  // but the redundant directory and the tables it names.
  Status Pass(std::span<const uint8_t> bytes) {
    while (!bytes.empty() && !Mapped()) {
      size_t n = bytes.size();
      if (position_ >= rgd_begin_ && position_ < rgd_end_) {
        if (position_ != rgd_begin_ + rgd_bytes_.size()) {
          // A part read overlaps it: it is not one, and everything is kept.
          rgd_begin_ = rgd_end_ = 0;
          rgd_bytes_.clear();
          continue;
        }
        n = static_cast<size_t>(std::min<uint64_t>(n, rgd_end_ - position_));
        CDI_RETURN_IF_ERROR(CollectRedundant(bytes.first(n)));
        position_ += n;
        bytes = bytes.subspan(n);
        continue;
      }
      if (position_ < rgd_begin_) {
        n = static_cast<size_t>(std::min<uint64_t>(n, rgd_begin_ - position_));
      }
      // The redundant tables: the last that starts at or before the
      // position, and the next one.
      auto next = std::upper_bound(redundant_tables_.begin(), redundant_tables_.end(),
                                   position_ / kSectorSize);
      if (next != redundant_tables_.begin() &&
          uint64_t{*(next - 1)} * kSectorSize + kTableBytes > position_) {
        n = static_cast<size_t>(std::min<uint64_t>(
            n, uint64_t{*(next - 1)} * kSectorSize + kTableBytes - position_));
        position_ += n;
        bytes = bytes.subspan(n);
        continue;
      }
      if (next != redundant_tables_.end()) {
        n = static_cast<size_t>(
            std::min<uint64_t>(n, uint64_t{*next} * kSectorSize - position_));
      }
      // Tables and grains start on a sector.
      if (!spool_) spool_ = qcow2::MakeTableSpool(&memory_, scratch_dir_, kSectorSize, "vmdk");
      CDI_RETURN_IF_ERROR(spool_->Append(position_, bytes.first(n)));
      position_ += n;
      bytes = bytes.subspan(n);
    }
    position_ += bytes.size();
    return Status::Ok();
  }

  bool Mapped() const { return phase_ == Phase::kGrains || phase_ == Phase::kDone; }

  // Gathers the redundant grain directory as it passes; once whole, the
  // tables it names are passed over too.
  Status CollectRedundant(std::span<const uint8_t> bytes) {
    if (rgd_bytes_.empty()) {
      const uint64_t size = rgd_end_ - rgd_begin_;
      if (!rgd_reservation_.Resize(&memory_, 2 * size)) {
        if (spool_ && !spool_->deferred_error().ok()) return spool_->deferred_error();
        return MemoryBudgetError("the redundant grain directory", 2 * size, budget_);
      }
      rgd_bytes_.reserve(static_cast<size_t>(size));
    }
    rgd_bytes_.insert(rgd_bytes_.end(), bytes.begin(), bytes.end());
    if (rgd_bytes_.size() < rgd_end_ - rgd_begin_) return Status::Ok();
    for (uint64_t i = 0; i < header_.gd_entries(); ++i) {
      const uint32_t sector = LoadLe32(rgd_bytes_, i * 4);
      if (uint64_t{sector} * kSectorSize >= rgd_end_) redundant_tables_.push_back(sector);
    }
    std::sort(redundant_tables_.begin(), redundant_tables_.end());
    rgd_bytes_.clear();
    rgd_bytes_.shrink_to_fit();
    rgd_reservation_.Resize(&memory_, redundant_tables_.size() * 4);
    return Status::Ok();
  }

  // Whether [offset, offset + length) passed and is in the spool.
  bool Kept(uint64_t offset, uint64_t length) const {
    return offset + length <= position_ && spool_ &&
           spool_->AvailableLength(offset, length) == length;
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
        const uint64_t start = uint64_t{sector} * kSectorSize;
        if (sector < header_.descriptor_offset + header_.descriptor_size) {
          return Corrupt("grain directory entry " + std::to_string(i) + " points to sector " +
                         std::to_string(sector) + ", inside the header or the descriptor");
        }
        if (start + kTableBytes > header_.gd_offset * kSectorSize) {
          return Corrupt("the grain table at sector " + std::to_string(sector) +
                         " (grain directory entry " + std::to_string(i) +
                         ") overlaps the grain directory");
        }
        if (!Kept(start, kTableBytes)) {
          return NeedsOutOfOrder("grain directory entry " + std::to_string(i) +
                                 " names a grain table at sector " + std::to_string(sector) +
                                 ", before the grain directory at sector " +
                                 std::to_string(header_.gd_offset) +
                                 ", where the redundant grain directory and its tables lie");
        }
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
    // Tables that passed before the directory come from the spool.
    while (phase_ == Phase::kTables && tables_[next_].host_sector * kSectorSize < position_) {
      const uint64_t start = tables_[next_].host_sector * kSectorSize;
      buffer_.resize(kTableBytes);
      CDI_RETURN_IF_ERROR(spool_->Read(start, buffer_));
      spool_->Take(start, kTableBytes);
      replayed_bytes_ += kTableBytes;
      CDI_RETURN_IF_ERROR(OnTable());
    }
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

  // The map is complete: grains that passed before it come from the spool,
  // the others are written as they pass.
  Status StartGrains() {
    std::sort(grains_.begin(), grains_.end());
    const uint64_t gd_start = header_.gd_offset * kSectorSize;
    const uint64_t gd_end = gd_start + header_.gd_entries() * 4;
    size_t table = 0;  // the first table that does not end before the grain
    for (size_t i = 0; i < grains_.size(); ++i) {
      const Placement& g = grains_[i];
      const uint64_t start = g.host_sector * kSectorSize;
      const uint64_t end = start + header_.grain_bytes();
      while (table < tables_.size() &&
             tables_[table].host_sector * kSectorSize + kTableBytes <= start) {
        ++table;
      }
      if ((table < tables_.size() && tables_[table].host_sector * kSectorSize < end) ||
          (start < gd_end && gd_start < end)) {
        return Corrupt("the grain of guest grain " + std::to_string(g.index) + " at sector " +
                       std::to_string(g.host_sector) +
                       " overlaps the grain directory or a grain table");
      }
      if (start < position_ && !Kept(start, header_.grain_bytes())) {
        return NeedsOutOfOrder("the grain of guest grain " + std::to_string(g.index) +
                               " at sector " + std::to_string(g.host_sector) +
                               " lies before its grain table, where the redundant grain "
                               "directory and its tables lie");
      }
      if (i > 0 && g.host_sector < grains_[i - 1].host_sector + header_.grain_size) {
        return Corrupt("the grains of guest grains " + std::to_string(grains_[i - 1].index) +
                       " and " + std::to_string(g.index) + " overlap at sector " +
                       std::to_string(g.host_sector));
      }
    }
    next_ = 0;
    in_grain_ = 0;
    if (spool_) {
      SpoolReplay replay(spool_.get(), &memory_, "grains");
      while (next_ < grains_.size() && grains_[next_].host_sector * kSectorSize < position_) {
        CDI_RETURN_IF_ERROR(Replay(grains_[next_], replay));
        ++next_;
      }
    }
    phase_ = next_ == grains_.size() ? Phase::kDone : Phase::kGrains;
    if (spool_) {
      spooled_bytes_ = spool_->stored_bytes();
      spooled_on_disk_ = spool_->scratch_bytes();
      spool_.reset();
    }
    return Status::Ok();
  }

  // Writes a grain that passed before the map was complete, from the spool
  // (what of it lies within the capacity).
  Status Replay(const Placement& g, SpoolReplay& replay) {
    const uint64_t grain_bytes = header_.grain_bytes();
    const uint64_t guest = g.index * grain_bytes;
    const uint64_t capacity = header_.capacity_bytes();
    const uint64_t length = std::min(grain_bytes, capacity - std::min(guest, capacity));
    CDI_RETURN_IF_ERROR(replay.Write(g.host_sector * kSectorSize, length,
                                     [&](uint64_t done, std::span<const uint8_t> piece) {
                                       return writer_->Write(guest + done, piece);
                                     }));
    replayed_bytes_ += grain_bytes;
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
  std::string scratch_dir_;
  uint64_t budget_;
  MemoryBudget memory_;
  Reservation map_reservation_;  // the directory and the placements
  // Bytes that passed before the map was complete, and what they cost.
  std::unique_ptr<Spool> spool_;
  // The redundant directory (none: both 0) and the tables it names: not kept.
  uint64_t rgd_begin_ = 0;
  uint64_t rgd_end_ = 0;
  std::vector<uint8_t> rgd_bytes_;
  std::vector<uint32_t> redundant_tables_;  // sectors, sorted
  Reservation rgd_reservation_;
  uint64_t replayed_bytes_ = 0;
  uint64_t spooled_bytes_ = 0;
  uint64_t spooled_on_disk_ = 0;
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
