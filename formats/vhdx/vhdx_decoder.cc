#include "formats/vhdx/vhdx_decoder.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/spool.h"
#include "formats/vhdx/vhdx_format.h"

namespace cdi::formats {
namespace {

using qcow2::MemoryBudget;
using qcow2::Reservation;
using qcow2::Spool;
using vhdx::kMiB;

// Spooled blocks are written out in pieces of this size.
constexpr uint64_t kReplayChunk = kMiB;
// Memory the spool leaves free for the block list and the replay buffer.
constexpr uint64_t kMinHeadroom = 2 * kMiB;

constexpr char kRetryAdvice[] =
    "; the download was cut short or the source changed: retry the import";
constexpr char kCorruptAdvice[] =
    "; the image is corrupt: check it with 'qemu-img check' or export it again from its source";

// A part of the file the decoder reads, in file order.
struct Item {
  enum class Kind { kLog, kMetadata, kBat, kBlock };
  uint64_t offset = 0;
  uint64_t length = 0;
  Kind kind = Kind::kBlock;
  uint32_t guest_block = 0;  // kBlock: which guest block it holds
  uint64_t end() const { return offset + length; }
};

class VhdxDecoder final : public Decoder {
 public:
  VhdxDecoder(GuestWriter* writer, const DecoderOptions& options)
      : writer_(writer), options_(options), budget_(options.memory_budget, "VHDX") {
    description_.format = "vhdx";
    budget_.set_reclaimer(
        [this](uint64_t wanted) { return spool_ ? spool_->SpillMemory(wanted) : 0; });
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!status_.ok()) return status_;
    if (finished_) return InternalError("the VHDX decoder was fed after Finish()");
    status_ = Consume(bytes);
    return status_;
  }

  Status Finish() override {
    if (!status_.ok()) return status_;
    if (finished_) return InternalError("the VHDX decoder was finished twice");
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
  Status Consume(std::span<const uint8_t> bytes) {
    if (options_.container_size &&
        bytes.size() > *options_.container_size - std::min(pos_, *options_.container_size)) {
      return CorruptImageError("the VHDX image is longer than the " +
                               std::to_string(*options_.container_size) +
                               " bytes its source announced" + kRetryAdvice);
    }
    while (!bytes.empty()) {
      size_t used = 0;
      if (pos_ < vhdx::kHeadBytes) {
        used = std::min<size_t>(bytes.size(), vhdx::kHeadBytes - pos_);
        head_.insert(head_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(used));
        if (head_.size() == vhdx::kHeadBytes) {
          pos_ += used;
          bytes = bytes.subspan(used);
          CDI_RETURN_IF_ERROR(ReadHeaderSection());
          continue;
        }
      } else if (next_ == items_.size()) {
        used = bytes.size();  // after the last part the image needs
      } else if (pos_ < items_[next_].offset) {
        used = static_cast<size_t>(std::min<uint64_t>(bytes.size(), items_[next_].offset - pos_));
        CDI_RETURN_IF_ERROR(KeepGap(bytes.first(used)));
      } else {
        const Item item = items_[next_];
        used = static_cast<size_t>(std::min<uint64_t>(bytes.size(), item.end() - pos_));
        CDI_RETURN_IF_ERROR(ConsumeItem(item, bytes.first(used)));
        if (pos_ + used == item.end()) {
          pos_ += used;
          bytes = bytes.subspan(used);
          ++next_;
          CDI_RETURN_IF_ERROR(ItemDone(item));
          continue;
        }
      }
      pos_ += used;
      bytes = bytes.subspan(used);
    }
    return Status::Ok();
  }

  Status ConsumeItem(const Item& item, std::span<const uint8_t> data) {
    switch (item.kind) {
      case Item::Kind::kMetadata:
        metadata_bytes_.insert(metadata_bytes_.end(), data.begin(), data.end());
        return Status::Ok();
      case Item::Kind::kBat:
        bat_bytes_.insert(bat_bytes_.end(), data.begin(), data.end());
        return Status::Ok();
      case Item::Kind::kLog:
        return ScanLog(item, data);
      case Item::Kind::kBlock: {
        const uint64_t guest = uint64_t{item.guest_block} * metadata_.block_size +
                               (pos_ - item.offset);
        return writer_->Write(guest, data);
      }
    }
    return Status::Ok();
  }

  // Bytes between the parts read, which may be payload blocks that a BAT not
  // read yet maps: kept in the spool until it is (the header section and the
  // log region, scanned or not, cannot hold blocks).
  Status KeepGap(std::span<const uint8_t> bytes) {
    if (mapped_) return Status::Ok();
    const uint64_t log_end = header_.log_offset + header_.log_length;
    uint64_t at = pos_;
    while (!bytes.empty()) {
      uint64_t skip = 0;
      if (at < vhdx::kHeaderSectionSize) {
        skip = vhdx::kHeaderSectionSize - at;
      } else if (at >= header_.log_offset && at < log_end) {
        skip = log_end - at;
      }
      if (skip > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(skip, bytes.size()));
        at += n;
        bytes = bytes.subspan(n);
        continue;
      }
      size_t n = bytes.size();
      if (at < header_.log_offset) {
        n = static_cast<size_t>(std::min<uint64_t>(n, header_.log_offset - at));
      }
      CDI_RETURN_IF_ERROR(Keep(at, bytes.first(n)));
      at += n;
      bytes = bytes.subspan(n);
    }
    return Status::Ok();
  }

  Status Keep(uint64_t offset, std::span<const uint8_t> bytes) {
    if (!spool_) {
      Spool::Options spool_options;
      spool_options.budget = &budget_;
      spool_options.scratch_dir = options_.scratch_dir;
      spool_options.unit_size = kMiB;  // blocks start on a MiB
      spool_options.block_size = kMiB;
      spool_options.keep_free = std::max(kMinHeadroom, budget_.budget() / 8);
      spool_options.format = "VHDX";
      spool_ = std::make_unique<Spool>(spool_options);
    }
    return spool_->Append(offset, bytes);
  }

  Status ItemDone(const Item& item) {
    switch (item.kind) {
      case Item::Kind::kMetadata:
        CDI_RETURN_IF_ERROR(ReadMetadata());
        break;
      case Item::Kind::kBat:
        bat_done_ = true;
        break;
      case Item::Kind::kLog:
      case Item::Kind::kBlock:
        return Status::Ok();
    }
    if (metadata_done_ && bat_done_) return ReadBat();
    return Status::Ok();
  }

  // The file identifier, both headers and region table 1.
  Status ReadHeaderSection() {
    const std::span<const uint8_t> head(head_);
    if (!std::equal(head.begin(), head.begin() + 8, "vhdxfile")) {
      return CorruptImageError("the VHDX image has no \"vhdxfile\" signature at offset 0" +
                               std::string(kCorruptAdvice));
    }
    CDI_ASSIGN_OR_RETURN(header_,
                         vhdx::ChooseHeader(head.subspan(vhdx::kHeader1Offset, vhdx::kHeaderSize),
                                            head.subspan(vhdx::kHeader2Offset, vhdx::kHeaderSize),
                                            options_.container_size));
    const vhdx::Region log{header_.log_offset, header_.log_length};
    CDI_ASSIGN_OR_RETURN(
        regions_, vhdx::ParseRegionTable(head.subspan(vhdx::kRegionTable1Offset), log,
                                         options_.container_size));
    creator_ = vhdx::Creator(head.first(vhdx::kHeader1Offset));
    head_.clear();
    head_.shrink_to_fit();
    const uint64_t needed = regions_.metadata.length + regions_.bat.length;
    if (!tables_reservation_.Resize(&budget_, needed)) {
      return InvalidArgumentError(
          "VHDX decoding needs " + std::to_string(needed) +
          " bytes of memory for the metadata region and the block allocation table, beyond the "
          "memory budget of " + std::to_string(options_.memory_budget) +
          " bytes; raise the memory budget");
    }
    metadata_bytes_.reserve(regions_.metadata.length);
    bat_bytes_.reserve(regions_.bat.length);
    items_.push_back({regions_.metadata.offset, regions_.metadata.length, Item::Kind::kMetadata});
    items_.push_back({regions_.bat.offset, regions_.bat.length, Item::Kind::kBat});
    if (header_.has_log() && log.length != 0) {
      items_.push_back({log.offset, log.length, Item::Kind::kLog});
    }
    std::sort(items_.begin(), items_.end(),
              [](const Item& a, const Item& b) { return a.offset < b.offset; });
    return Status::Ok();
  }

  Status ReadMetadata() {
    CDI_ASSIGN_OR_RETURN(metadata_, vhdx::ParseMetadata(metadata_bytes_));
    metadata_bytes_.clear();
    metadata_bytes_.shrink_to_fit();
    tables_reservation_.Resize(&budget_, regions_.bat.length);
    metadata_done_ = true;
    description_.virtual_size = metadata_.virtual_size;
    const bool fixed = (metadata_.flags & vhdx::kLeaveBlocksAllocated) != 0;
    description_.details = {{"subformat", fixed ? "fixed" : "dynamic"},
                            {"block size", std::to_string(metadata_.block_size)},
                            {"logical sector size", std::to_string(metadata_.logical_sector_size)},
                            {"physical sector size", std::to_string(metadata_.physical_sector_size)},
                            {"virtual size", std::to_string(metadata_.virtual_size)},
                            {"creator", creator_}};
    return writer_->Begin(description_);
  }

  Status Corrupt(const std::string& what) {
    return CorruptImageError("VHDX block allocation table: " + what + kCorruptAdvice);
  }

  // Zero() over [offset, offset + length), clipped to the virtual size.
  Status ZeroClipped(uint64_t offset, uint64_t length) {
    if (offset >= metadata_.virtual_size) return Status::Ok();
    length = std::min(length, metadata_.virtual_size - offset);
    if (length == 0) return Status::Ok();
    return writer_->Zero(offset, length);
  }

  // Reads every payload entry: blocks that read as zero are Zero()ed, fully
  // present ones join the items to read, in file order.
  Status ReadBat() {
    const uint64_t entries = metadata_.bat_entries();
    if (entries > regions_.bat.length / 8) {
      return Corrupt("the region of " + std::to_string(regions_.bat.length) + " bytes holds fewer than the " +
                     std::to_string(entries) + " entries a disk of " +
                     std::to_string(metadata_.virtual_size) + " bytes needs");
    }
    const uint64_t blocks = metadata_.payload_blocks();
    const uint64_t chunk_ratio = metadata_.chunk_ratio();
    std::vector<Item> present;
    uint64_t zero_start = 0;
    uint64_t zero_length = 0;
    for (uint64_t g = 0; g < blocks; ++g) {
      const uint64_t index = g + g / chunk_ratio;
      const uint64_t entry = vhdx::LoadLe64(bat_bytes_.data() + index * 8);
      const uint64_t state = entry & vhdx::kBatStateMask;
      const uint64_t guest = g * metadata_.block_size;
      const uint64_t length = std::min<uint64_t>(metadata_.block_size, metadata_.virtual_size - guest);
      switch (state) {
        case vhdx::kBlockNotPresent:
        case vhdx::kBlockUndefined:
        case vhdx::kBlockZero:
        case vhdx::kBlockUnmapped:
        case vhdx::kBlockUnmappedV095:
          if (zero_length == 0) zero_start = guest;
          zero_length += length;
          continue;
        case vhdx::kBlockFullyPresent:
          break;
        case vhdx::kBlockPartiallyPresent:
          return Corrupt("entry " + std::to_string(index) +
                         " marks a block partially present, which only a differencing disk may");
        default:
          return Corrupt("entry " + std::to_string(index) + " has the unknown state " +
                         std::to_string(state));
      }
      CDI_RETURN_IF_ERROR(ZeroClipped(zero_start, zero_length));
      zero_length = 0;
      if (!list_reservation_.Resize(&budget_, (present.size() + 1) * sizeof(Item))) {
        if (spool_ && !spool_->deferred_error().ok()) return spool_->deferred_error();
        return InvalidArgumentError(
            "VHDX decoding needs more than the memory budget of " +
            std::to_string(options_.memory_budget) + " bytes for the list of present blocks; "
            "raise the memory budget");
      }
      present.push_back({entry & vhdx::kBatOffsetMask, length, Item::Kind::kBlock,
                         static_cast<uint32_t>(g)});
    }
    CDI_RETURN_IF_ERROR(ZeroClipped(zero_start, zero_length));
    bat_bytes_.clear();
    bat_bytes_.shrink_to_fit();
    tables_reservation_.Reset();
    CDI_RETURN_IF_ERROR(CheckBlocks(present, chunk_ratio));
    // Blocks that passed before the BAT was read come from the spool; the
    // others are read as they pass.
    const auto ahead = std::partition_point(present.begin(), present.end(),
                                            [&](const Item& block) { return block.offset < pos_; });
    for (auto block = present.begin(); block != ahead; ++block) {
      CDI_RETURN_IF_ERROR(Replay(*block));
    }
    mapped_ = true;
    if (spool_) {
      spooled_bytes_ = spool_->stored_bytes();
      spooled_on_disk_ = spool_->scratch_bytes();
      spool_.reset();
    }
    replay_buffer_.clear();
    replay_buffer_.shrink_to_fit();
    replay_reservation_.Reset();
    items_.insert(items_.end(), ahead, present.end());
    std::sort(items_.begin() + static_cast<ptrdiff_t>(next_), items_.end(),
              [](const Item& a, const Item& b) { return a.offset < b.offset; });
    return Status::Ok();
  }

  // Writes a block whose bytes passed before the BAT, from the spool.
  Status Replay(const Item& block) {
    if (block.end() > pos_ || !spool_ ||
        spool_->AvailableLength(block.offset, block.length) != block.length) {
      return InternalError("VHDX: block " + std::to_string(block.guest_block) + " at offset " +
                           std::to_string(block.offset) +
                           " passed before the BAT was read but was not kept");
    }
    const uint64_t guest = uint64_t{block.guest_block} * metadata_.block_size;
    for (uint64_t done = 0; done < block.length;) {
      const uint64_t length = std::min(kReplayChunk, block.length - done);
      if (auto view = spool_->View(block.offset + done, length)) {
        CDI_RETURN_IF_ERROR(writer_->Write(guest + done, view->bytes));
      } else {
        if (replay_buffer_.empty()) {
          if (!replay_reservation_.Resize(&budget_, kReplayChunk)) {
            if (!spool_->deferred_error().ok()) return spool_->deferred_error();
            return budget_.Exhausted("the buffer that writes out spooled blocks", kReplayChunk);
          }
          replay_buffer_.resize(kReplayChunk);
        }
        const std::span<uint8_t> piece(replay_buffer_.data(), static_cast<size_t>(length));
        CDI_RETURN_IF_ERROR(spool_->Read(block.offset + done, piece));
        CDI_RETURN_IF_ERROR(writer_->Write(guest + done, piece));
      }
      done += length;
    }
    spool_->Take(block.offset, block.length);
    replayed_bytes_ += block.length;
    return Status::Ok();
  }

  // Every present block inside the file, clear of the header section, the
  // log, the regions and every other block (so that it lies wholly ahead in
  // the stream or wholly among the bytes kept before the BAT was read).
  Status CheckBlocks(std::vector<Item>& present, uint64_t chunk_ratio) {
    std::sort(present.begin(), present.end(),
              [](const Item& a, const Item& b) { return a.offset < b.offset; });
    const std::array<vhdx::Region, 4> metadata_parts = {
        vhdx::Region{0, vhdx::kHeaderSectionSize},
        vhdx::Region{header_.log_offset, header_.log_length}, regions_.metadata, regions_.bat};
    auto name = [&](const Item& block) {
      return "entry " + std::to_string(block.guest_block + block.guest_block / chunk_ratio) +
             " (block " + std::to_string(block.guest_block) + " at offset " +
             std::to_string(block.offset) + ")";
    };
    for (size_t k = 0; k < present.size(); ++k) {
      const Item& block = present[k];
      for (const vhdx::Region& part : metadata_parts) {
        if (block.offset < part.end() && part.offset < block.end()) {
          return Corrupt(name(block) +
                         " points into the header section, the log, the metadata or the BAT");
        }
      }
      if (block.offset > vhdx::kMaxVirtualSize * 2 ||
          (options_.container_size && block.end() > *options_.container_size)) {
        return Corrupt(name(block) + " ends at " + std::to_string(block.end()) +
                       ", past the end of the image");
      }
      if (k > 0 && present[k - 1].end() > block.offset) {
        return Corrupt(name(present[k - 1]) + " and " + name(block) + " overlap");
      }
    }
    return Status::Ok();
  }

  // Looks for a log entry of the current log GUID with a valid checksum: a
  // write the image's owner would replay before reading it.
  Status ScanLog(const Item& log, std::span<const uint8_t> data) {
    uint64_t at = pos_;
    while (!data.empty()) {
      size_t used = 0;
      const uint64_t in_sector = (at - log.offset) % vhdx::kLogSectorSize;
      if (log_entry_left_ > 0) {
        used = static_cast<size_t>(std::min<uint64_t>(data.size(), log_entry_left_));
        log_crc_ = vhdx::Crc32c(log_crc_, data.first(used));
        log_entry_left_ -= used;
        if (log_entry_left_ == 0 && log_crc_ == log_expected_crc_) return LogNeedsReplay();
      } else if (in_sector < log_head_.size()) {
        used = std::min<size_t>(data.size(), log_head_.size() - in_sector);
        std::copy(data.begin(), data.begin() + static_cast<ptrdiff_t>(used),
                  log_head_.begin() + static_cast<ptrdiff_t>(in_sector));
        if (in_sector + used == log_head_.size()) StartLogEntry(log, at + used - log_head_.size());
      } else {
        used = static_cast<size_t>(
            std::min<uint64_t>(data.size(), vhdx::kLogSectorSize - in_sector));
      }
      at += used;
      data = data.subspan(used);
    }
    return Status::Ok();
  }

  void StartLogEntry(const Item& log, uint64_t entry_offset) {
    const uint8_t* h = log_head_.data();
    const uint32_t length = vhdx::LoadLe32(h + vhdx::kLogEntryLengthOffset);
    if (!std::equal(h, h + 4, "loge") ||
        !std::equal(header_.log_guid.begin(), header_.log_guid.end(),
                    h + vhdx::kLogEntryGuidOffset) ||
        length == 0 || length % vhdx::kLogSectorSize != 0 || length > log.end() - entry_offset) {
      return;
    }
    log_expected_crc_ = vhdx::LoadLe32(h + 4);
    log_crc_ = vhdx::Crc32c(0, log_head_, 4);
    log_entry_left_ = length - log_head_.size();
  }

  Status LogNeedsReplay() {
    return UnsupportedError(
        "the VHDX image's log holds writes that were not applied to the disk yet (it was not "
        "closed cleanly); replay them by opening it once read-write: attach it in Hyper-V, or "
        "run 'qemu-img check -r all IMAGE' (qemu-img convert refuses such an image too), then "
        "import it again");
  }

  Status CheckEnd() {
    if (pos_ < vhdx::kHeadBytes) {
      return CorruptImageError("the VHDX image ends after " + std::to_string(pos_) +
                               " bytes, inside its header section" + kRetryAdvice);
    }
    if (next_ < items_.size()) {
      const Item& item = items_[next_];
      const std::string what = item.kind == Item::Kind::kMetadata ? "its metadata region"
                               : item.kind == Item::Kind::kBat    ? "its block allocation table"
                               : item.kind == Item::Kind::kLog    ? "its log"
                                                                  : "block " + std::to_string(item.guest_block);
      return CorruptImageError("the VHDX image ends after " + std::to_string(pos_) +
                               " bytes, before the end of " + what + " at byte " +
                               std::to_string(item.end()) + kRetryAdvice);
    }
    if (options_.container_size && pos_ != *options_.container_size) {
      return CorruptImageError("the VHDX image ends after " + std::to_string(pos_) + " of the " +
                               std::to_string(*options_.container_size) +
                               " bytes its source announced" + kRetryAdvice);
    }
    return Status::Ok();
  }

  GuestWriter* writer_;
  DecoderOptions options_;
  MemoryBudget budget_;  // before every reservation and the spool, which go back to it
  Reservation tables_reservation_;  // the metadata and BAT regions being collected
  Reservation list_reservation_;    // the list of present blocks
  // Gap bytes kept until the BAT maps them (created on the first one), and
  // the buffer that writes out blocks stored in its scratch file.
  std::unique_ptr<Spool> spool_;
  std::vector<uint8_t> replay_buffer_;
  Reservation replay_reservation_;
  bool mapped_ = false;  // the BAT was read: nothing more is kept
  uint64_t replayed_bytes_ = 0;
  uint64_t spooled_bytes_ = 0;
  uint64_t spooled_on_disk_ = 0;
  ImageDescription description_;
  Status status_;
  bool finished_ = false;
  uint64_t pos_ = 0;           // file offset of the next input byte
  std::vector<uint8_t> head_;  // the header section up to the end of region table 1
  vhdx::Header header_;
  vhdx::RegionTable regions_;
  std::string creator_;
  std::vector<uint8_t> metadata_bytes_;
  std::vector<uint8_t> bat_bytes_;
  vhdx::Metadata metadata_;
  bool metadata_done_ = false;
  bool bat_done_ = false;
  std::vector<Item> items_;  // what is read, in file order from next_ on
  size_t next_ = 0;
  // The log scan: the head of the log sector being looked at, and the entry
  // being checked.
  std::array<uint8_t, 64> log_head_{};
  uint64_t log_entry_left_ = 0;
  uint32_t log_crc_ = 0;
  uint32_t log_expected_crc_ = 0;
};

}  // namespace

std::unique_ptr<Decoder> MakeVhdxDecoder(GuestWriter* writer, const DecoderOptions& options) {
  return std::make_unique<VhdxDecoder>(writer, options);
}

}  // namespace cdi::formats
