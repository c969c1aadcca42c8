#include "formats/vhd/vhd_decoder.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cdi/quantity.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/spool.h"
#include "formats/qcow2/spool_replay.h"
#include "formats/vhd/vhd_format.h"

namespace cdi::formats {
namespace {

using qcow2::MemoryBudget;
using qcow2::Reservation;
using qcow2::Spool;
using qcow2::SpoolReplay;
using vhd::kFooterSize;
using vhd::kSectorSize;

constexpr char kRetryAdvice[] =
    "; the download was cut short or the source changed: retry the import";

// An allocated block: where it is in the file and which guest block it holds.
struct Block {
  uint32_t sector;       // host offset / 512 of its bitmap
  uint32_t guest_index;  // its BAT index
};

class VhdDecoder final : public Decoder {
 public:
  VhdDecoder(GuestWriter* writer, const DecoderOptions& options)
      : writer_(writer), options_(options), budget_(options.memory_budget, "VHD") {
    description_.format = "vhd";
    budget_.set_reclaimer(
        [this](uint64_t wanted) { return spool_ ? spool_->SpillMemory(wanted) : 0; });
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!status_.ok()) return status_;
    if (finished_) return InternalError("the VHD decoder was fed after Finish()");
    status_ = Consume(bytes);
    return status_;
  }

  Status Finish() override {
    if (!status_.ok()) return status_;
    if (finished_) return InternalError("the VHD decoder was finished twice");
    finished_ = true;
    status_ = CheckEnd();
    return status_;
  }

  ImageDescription Describe() const override {
    ImageDescription description = description_;
    if (mapped_) {
      description.details.emplace_back("spooling", replayed_bytes_ > 0 ? "needed" : "not needed");
      description.details.emplace_back("spooled bytes", std::to_string(spooled_bytes_));
      description.details.emplace_back("spooled bytes on disk", std::to_string(spooled_on_disk_));
    }
    return description;
  }

 private:
  enum class Stage { kFooterCopy, kHeader, kBat, kBitmap, kData, kTrailer };

  Status CheckEnd() {
    if (stage_ != Stage::kTrailer) {
      return CorruptImageError("the VHD image ends early, after " + std::to_string(pos_) +
                               " bytes, inside " + StageName() + kRetryAdvice);
    }
    if (options_.container_size && pos_ != *options_.container_size) {
      return CorruptImageError("the VHD image ends after " + std::to_string(pos_) + " of the " +
                               std::to_string(*options_.container_size) +
                               " bytes its source announced" + kRetryAdvice);
    }
    if (tail_size_ < kFooterSize) {
      return CorruptImageError("the VHD image ends without its footer (" +
                               std::to_string(tail_size_) + " bytes after the last block)" +
                               kRetryAdvice);
    }
    CDI_ASSIGN_OR_RETURN(vhd::Footer end,
                         vhd::ParseFooter(tail_, "footer at the end of the image"));
    if (end.disk_type != footer_.disk_type || end.current_size != footer_.current_size ||
        end.data_offset != footer_.data_offset) {
      return CorruptImageError(
          "the VHD footer at the end of the image does not match its copy at offset 0 "
          "(disk type, current size or data offset differ); the image is corrupt: export it again "
          "from its source");
    }
    return Status::Ok();
  }

  std::string StageName() const {
    switch (stage_) {
      case Stage::kFooterCopy:
        return "the footer copy at offset 0";
      case Stage::kHeader:
        return "the dynamic disk header";
      case Stage::kBat:
        return "the block allocation table";
      case Stage::kBitmap:
      case Stage::kData:
        return "the block of BAT entry " + std::to_string(blocks_[next_].guest_index);
      case Stage::kTrailer:
        break;
    }
    return "the footer at the end";
  }

  // Drops input up to `offset`; true once the stream is there.
  bool SkipTo(std::span<const uint8_t>& bytes, uint64_t offset) {
    if (pos_ >= offset) return true;
    uint64_t skip = std::min<uint64_t>(offset - pos_, bytes.size());
    bytes = bytes.subspan(static_cast<size_t>(skip));
    pos_ += skip;
    return pos_ == offset;
  }

  // Input up to `offset` before the BAT is read: it may hold blocks the BAT
  // maps, so it goes to the spool until then.
  Status KeepTo(std::span<const uint8_t>& bytes, uint64_t offset) {
    if (pos_ >= offset) return Status::Ok();
    const size_t take = static_cast<size_t>(std::min<uint64_t>(offset - pos_, bytes.size()));
    // Blocks start on a sector.
    if (!spool_) spool_ = qcow2::MakeTableSpool(&budget_, options_.scratch_dir, kSectorSize, "VHD");
    CDI_RETURN_IF_ERROR(spool_->Append(pos_, bytes.first(take)));
    bytes = bytes.subspan(take);
    pos_ += take;
    return Status::Ok();
  }

  // Appends input to `buffer` until it holds `size` bytes; true when it does.
  bool Collect(std::span<const uint8_t>& bytes, std::vector<uint8_t>& buffer, size_t size) {
    size_t take = std::min(size - buffer.size(), bytes.size());
    buffer.insert(buffer.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    pos_ += take;
    return buffer.size() == size;
  }

  Status Consume(std::span<const uint8_t> bytes) {
    if (options_.container_size &&
        bytes.size() > *options_.container_size - std::min(pos_, *options_.container_size)) {
      return CorruptImageError("the VHD image is longer than the " +
                               std::to_string(*options_.container_size) +
                               " bytes its source announced" + kRetryAdvice);
    }
    while (!bytes.empty()) {
      switch (stage_) {
        case Stage::kFooterCopy:
          if (!Collect(bytes, buffer_, kFooterSize)) return Status::Ok();
          CDI_RETURN_IF_ERROR(ReadFooterCopy());
          break;
        case Stage::kHeader:
          CDI_RETURN_IF_ERROR(KeepTo(bytes, footer_.data_offset));
          if (pos_ < footer_.data_offset) return Status::Ok();
          if (!Collect(bytes, buffer_, vhd::kDynamicHeaderSize)) return Status::Ok();
          CDI_RETURN_IF_ERROR(ReadHeader());
          break;
        case Stage::kBat:
          CDI_RETURN_IF_ERROR(KeepTo(bytes, header_.table_offset));
          if (pos_ < header_.table_offset) return Status::Ok();
          if (!Collect(bytes, buffer_, header_.max_table_entries * size_t{4})) return Status::Ok();
          CDI_RETURN_IF_ERROR(ReadBat());
          break;
        case Stage::kBitmap:
          if (!SkipTo(bytes, uint64_t{blocks_[next_].sector} * kSectorSize)) return Status::Ok();
          if (!Collect(bytes, buffer_, header_.bitmap_size)) return Status::Ok();
          CDI_RETURN_IF_ERROR(ZeroUnwrittenSectors());
          stage_ = Stage::kData;
          break;
        case Stage::kData:
          CDI_RETURN_IF_ERROR(ConsumeData(bytes));
          break;
        case Stage::kTrailer:
          KeepTail(bytes);
          return Status::Ok();
      }
    }
    return Status::Ok();
  }

  Status ReadFooterCopy() {
    CDI_ASSIGN_OR_RETURN(footer_, vhd::ParseFooter(buffer_, "footer copy at offset 0"));
    buffer_.clear();
    if (footer_.disk_type != vhd::kDiskTypeDynamic) {
      return UnsupportedError(
          "the VHD image starts with a footer copy of a fixed disk (disk type 2); fixed VHD "
          "images carry their footer only at the end: convert it with 'qemu-img convert -O "
          "qcow2' and import that");
    }
    const uint64_t end = footer_.data_offset + vhd::kDynamicHeaderSize;
    if (footer_.data_offset < kFooterSize || footer_.data_offset > (uint64_t{1} << 62) ||
        (options_.container_size && (*options_.container_size < kFooterSize ||
                                     end > *options_.container_size - kFooterSize))) {
      return CorruptImageError("VHD footer: the data offset " +
                               std::to_string(footer_.data_offset) +
                               " of the dynamic disk header lies " +
                               (footer_.data_offset < kFooterSize ? "inside the footer copy"
                                                                  : "past the end of the image") +
                               "; the image is corrupt: export it again from its source");
    }
    stage_ = Stage::kHeader;
    return Status::Ok();
  }

  Status ReadHeader() {
    CDI_ASSIGN_OR_RETURN(header_,
                         vhd::ParseDynamicHeader(buffer_, footer_.data_offset, footer_.current_size,
                                                 options_.container_size));
    buffer_.clear();
    const uint64_t needed = uint64_t{header_.max_table_entries} * 12 + header_.bitmap_size;
    if (needed > options_.memory_budget || !tables_reservation_.Resize(&budget_, needed)) {
      if (spool_ && !spool_->deferred_error().ok()) return spool_->deferred_error();
      return InvalidArgumentError(
          "VHD decoding needs " + std::to_string(needed) +
          " bytes of memory for the block allocation table of " +
          std::to_string(header_.max_table_entries) + " entries, beyond the memory budget of " +
          std::to_string(options_.memory_budget) + " bytes; raise the memory budget");
    }
    buffer_.reserve(header_.max_table_entries * size_t{4});
    description_.virtual_size = footer_.current_size;
    description_.details = {{"subformat", "dynamic"},
                            {"block size", std::to_string(header_.block_size)},
                            {"current size", std::to_string(footer_.current_size)},
                            {"creator", footer_.creator}};
    CDI_RETURN_IF_ERROR(writer_->Begin(description_));
    stage_ = Stage::kBat;
    return Status::Ok();
  }

  Status Corrupt(const std::string& what) {
    return CorruptImageError("VHD block allocation table: " + what +
                             "; the image is corrupt: export it again from its source");
  }

  // Checks every entry, sorts the allocated blocks into host order and zeroes
  // the guest blocks no entry stores.
  Status ReadBat() {
    const uint64_t span = uint64_t{header_.bitmap_size} + header_.block_size;
    const uint64_t bat_end = header_.table_offset + buffer_.size();
    const uint64_t header_end = footer_.data_offset + vhd::kDynamicHeaderSize;
    blocks_.reserve(header_.max_table_entries);
    for (uint32_t i = 0; i < header_.max_table_entries; ++i) {
      const uint32_t sector = vhd::LoadBe32(buffer_.data() + size_t{i} * 4);
      if (sector == vhd::kUnallocated) continue;
      const uint64_t start = uint64_t{sector} * kSectorSize;
      const uint64_t end = start + span;
      auto overlaps = [&](uint64_t from, uint64_t to) { return start < to && from < end; };
      const std::string entry =
          "entry " + std::to_string(i) + " (sector " + std::to_string(sector) + ")";
      if (overlaps(0, kFooterSize) || overlaps(footer_.data_offset, header_end) ||
          overlaps(header_.table_offset, bat_end)) {
        return Corrupt(entry + " points into the footer copy, the dynamic disk header or the BAT");
      }
      if (options_.container_size && end > *options_.container_size - kFooterSize) {
        return Corrupt(entry + ": its block ends at " + std::to_string(end) +
                       ", past the end of the image's data (" +
                       std::to_string(*options_.container_size - kFooterSize) + " bytes)");
      }
      blocks_.push_back(Block{sector, i});
    }
    std::sort(blocks_.begin(), blocks_.end(),
              [](const Block& a, const Block& b) { return a.sector < b.sector; });
    for (size_t k = 1; k < blocks_.size(); ++k) {
      const Block& a = blocks_[k - 1];
      const Block& b = blocks_[k];
      const std::string both =
          "entries " + std::to_string(a.guest_index) + " and " + std::to_string(b.guest_index);
      if (a.sector == b.sector) {
        return Corrupt(both + " both point at sector " + std::to_string(a.sector));
      }
      if (uint64_t{a.sector} * kSectorSize + span > uint64_t{b.sector} * kSectorSize) {
        return Corrupt(both + " have overlapping blocks (sectors " + std::to_string(a.sector) +
                       " and " + std::to_string(b.sector) + ")");
      }
    }
    buffer_.clear();
    buffer_.shrink_to_fit();
    CDI_RETURN_IF_ERROR(ZeroUnallocatedBlocks());
    // Blocks that passed before the BAT (they lie wholly before it: one that
    // overlaps it was refused above) come from the spool; the others are read
    // as they pass.
    next_ = 0;
    if (spool_) {
      SpoolReplay replay(spool_.get(), &budget_, "blocks");
      while (next_ < blocks_.size() && uint64_t{blocks_[next_].sector} * kSectorSize < bat_end) {
        CDI_RETURN_IF_ERROR(Replay(replay));
        ++next_;
      }
    }
    if (next_ < blocks_.size() && uint64_t{blocks_[next_].sector} * kSectorSize < bat_end) {
      return InternalError("VHD: the block of BAT entry " +
                           std::to_string(blocks_[next_].guest_index) +
                           " passed before the BAT but was not kept");
    }
    mapped_ = true;
    if (spool_) {
      spooled_bytes_ = spool_->stored_bytes();
      spooled_on_disk_ = spool_->scratch_bytes();
      spool_.reset();
    }
    buffer_.clear();
    stage_ = next_ == blocks_.size() ? Stage::kTrailer : Stage::kBitmap;
    return Status::Ok();
  }

  // Writes the block blocks_[next_], whose bytes passed before the BAT, from
  // the spool: its bitmap, then its data.
  Status Replay(SpoolReplay& replay) {
    const uint64_t start = uint64_t{blocks_[next_].sector} * kSectorSize;
    const uint64_t span = uint64_t{header_.bitmap_size} + header_.block_size;
    if (spool_->AvailableLength(start, span) != span) {
      return InternalError("VHD: the block of BAT entry " +
                           std::to_string(blocks_[next_].guest_index) + " at offset " +
                           std::to_string(start) + " passed before the BAT but was not kept");
    }
    buffer_.resize(header_.bitmap_size);
    CDI_RETURN_IF_ERROR(spool_->Read(start, buffer_));
    CDI_RETURN_IF_ERROR(ZeroUnwrittenSectors());
    CDI_RETURN_IF_ERROR(replay.Write(start + header_.bitmap_size, header_.block_size,
                                     [this](uint64_t, std::span<const uint8_t> piece) {
                                       return PlaceData(piece);
                                     }));
    replayed_bytes_ += span;
    return Status::Ok();
  }

  // Zero() over [offset, offset + length), clipped to the current size.
  Status ZeroClipped(uint64_t offset, uint64_t length) {
    if (offset >= footer_.current_size) return Status::Ok();
    length = std::min(length, footer_.current_size - offset);
    if (length == 0) return Status::Ok();
    return writer_->Zero(offset, length);
  }

  Status ZeroUnallocatedBlocks() {
    std::vector<bool> allocated(header_.max_table_entries, false);
    for (const Block& block : blocks_) allocated[block.guest_index] = true;
    uint32_t i = 0;
    while (i < header_.max_table_entries) {
      if (allocated[i]) {
        ++i;
        continue;
      }
      uint32_t run_end = i;
      while (run_end < header_.max_table_entries && !allocated[run_end]) ++run_end;
      CDI_RETURN_IF_ERROR(ZeroClipped(uint64_t{i} * header_.block_size,
                                      uint64_t{run_end - i} * header_.block_size));
      i = run_end;
    }
    return Status::Ok();
  }

  // Bitmap bit of `sector` within the current block: 1 = written. Sector 0 is
  // the most significant bit of the first byte.
  bool Written(uint64_t sector) const {
    return (buffer_[static_cast<size_t>(sector / 8)] >> (7 - sector % 8)) & 1;
  }

  uint64_t BlockGuestBase() const {
    return uint64_t{blocks_[next_].guest_index} * header_.block_size;
  }

  Status ZeroUnwrittenSectors() {
    const uint64_t sectors = header_.block_size / kSectorSize;
    uint64_t s = 0;
    while (s < sectors) {
      if (Written(s)) {
        ++s;
        continue;
      }
      uint64_t run_end = s;
      while (run_end < sectors && !Written(run_end)) ++run_end;
      CDI_RETURN_IF_ERROR(
          ZeroClipped(BlockGuestBase() + s * kSectorSize, (run_end - s) * kSectorSize));
      s = run_end;
    }
    block_pos_ = 0;
    return Status::Ok();
  }

  // Writes the written sectors of the data in `bytes` that belongs to the
  // current block, straight from the input.
  Status ConsumeData(std::span<const uint8_t>& bytes) {
    const size_t take =
        static_cast<size_t>(std::min<uint64_t>(header_.block_size - block_pos_, bytes.size()));
    CDI_RETURN_IF_ERROR(PlaceData(bytes.first(take)));
    bytes = bytes.subspan(take);
    pos_ += take;
    if (block_pos_ == header_.block_size) {
      buffer_.clear();
      ++next_;
      stage_ = next_ == blocks_.size() ? Stage::kTrailer : Stage::kBitmap;
    }
    return Status::Ok();
  }

  // Writes the written sectors of `data`, the current block's next bytes
  // (at block_pos_), at their guest offsets.
  Status PlaceData(std::span<const uint8_t> data) {
    const uint64_t base = BlockGuestBase();
    while (!data.empty()) {
      const bool written = Written(block_pos_ / kSectorSize);
      size_t run = static_cast<size_t>(
          std::min<uint64_t>(kSectorSize - block_pos_ % kSectorSize, data.size()));
      while (run < data.size() && Written((block_pos_ + run) / kSectorSize) == written) {
        run += std::min<size_t>(kSectorSize, data.size() - run);
      }
      const uint64_t guest = base + block_pos_;
      if (written && guest < footer_.current_size) {
        const size_t length =
            static_cast<size_t>(std::min<uint64_t>(run, footer_.current_size - guest));
        CDI_RETURN_IF_ERROR(writer_->Write(guest, data.first(length)));
      }
      block_pos_ += run;
      data = data.subspan(run);
    }
    return Status::Ok();
  }

  // Keeps the last 512 bytes after the last block: the footer, at Finish().
  void KeepTail(std::span<const uint8_t> bytes) {
    pos_ += bytes.size();
    if (bytes.size() >= kFooterSize) {
      std::copy(bytes.end() - kFooterSize, bytes.end(), tail_.begin());
      tail_size_ = kFooterSize;
      return;
    }
    const size_t keep = std::min(tail_size_, kFooterSize - bytes.size());
    std::copy(tail_.begin() + static_cast<ptrdiff_t>(tail_size_ - keep),
              tail_.begin() + static_cast<ptrdiff_t>(tail_size_), tail_.begin());
    std::copy(bytes.begin(), bytes.end(), tail_.begin() + static_cast<ptrdiff_t>(keep));
    tail_size_ = keep + bytes.size();
  }

  GuestWriter* writer_;
  DecoderOptions options_;
  MemoryBudget budget_;
  Reservation tables_reservation_;  // the BAT, the block list and one bitmap
  // Bytes before the BAT, until it is read (they may be blocks it maps).
  std::unique_ptr<Spool> spool_;
  bool mapped_ = false;  // the BAT was read
  uint64_t replayed_bytes_ = 0;
  uint64_t spooled_bytes_ = 0;
  uint64_t spooled_on_disk_ = 0;
  ImageDescription description_;
  Status status_;
  bool finished_ = false;
  Stage stage_ = Stage::kFooterCopy;
  uint64_t pos_ = 0;             // host offset of the next input byte
  std::vector<uint8_t> buffer_;  // the structure being collected, or the current bitmap
  vhd::Footer footer_;
  vhd::DynamicHeader header_;
  std::vector<Block> blocks_;  // allocated blocks in host order
  size_t next_ = 0;            // the block being read
  uint64_t block_pos_ = 0;     // data bytes of the current block read so far
  std::array<uint8_t, kFooterSize> tail_{};
  size_t tail_size_ = 0;
};

}  // namespace

std::unique_ptr<Decoder> MakeVhdDecoder(GuestWriter* writer, const DecoderOptions& options) {
  return std::make_unique<VhdDecoder>(writer, options);
}

}  // namespace cdi::formats
