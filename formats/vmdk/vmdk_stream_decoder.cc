#include "formats/vmdk/vmdk_stream_decoder.h"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "formats/vmdk/vmdk_format.h"

namespace cdi::formats::vmdk {
namespace {

// Bytes one entry of the covered-ranges map costs (node and allocator overhead).
constexpr uint64_t kRangeEntryBytes = 64;
// A zlib inflate state with its 32 KiB window (for grains libdeflate
// refuses), and libdeflate's decode tables (12 KiB).
constexpr uint64_t kInflateStateBytes = 64ull << 10;
constexpr uint64_t kTableBytes = kGtesPerGt * 4;

class StreamBody final : public ExtentBody {
 public:
  StreamBody(GuestWriter* writer, const Header& header, const DecoderOptions& options,
             uint64_t position, uint64_t max_compressed, uint64_t fixed_memory)
      : writer_(writer),
        header_(header),
        budget_(options.memory_budget),
        fixed_memory_(fixed_memory),
        max_compressed_(max_compressed),
        position_(position),
        skip_(header.overhead * kSectorSize - position) {
    uint64_t gd_start = header.gd_offset * kSectorSize;
    uint64_t gd_bytes = header.gd_entries() * 4;
    if (header.gd_offset != kGdAtEnd && gd_start >= position &&
        gd_start + gd_bytes <= header.overhead * kSectorSize &&
        fixed_memory_ + gd_bytes <= budget_) {
      // The grain directory and tables lie before the grains: count the
      // grains they name, to tell an image that ends after its last grain
      // from a truncated one when the end-of-stream marker is missing.
      state_ = State::kDirectory;
      skip_ = gd_start - position;
      want_ = static_cast<size_t>(gd_bytes);
    }
    grain_.resize(header.grain_bytes());
    buffer_.reserve(kMarkerHeaderSize);
    std::memset(&zlib_, 0, sizeof(zlib_));
    zlib_ok_ = inflateInit(&zlib_) == Z_OK;
    deflate_ = libdeflate_alloc_decompressor();
  }
  ~StreamBody() override {
    if (zlib_ok_) inflateEnd(&zlib_);
    libdeflate_free_decompressor(deflate_);
  }
  StreamBody(const StreamBody&) = delete;
  StreamBody& operator=(const StreamBody&) = delete;

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      if (state_ == State::kDone) {
        position_ += bytes.size();  // after the end-of-stream marker: ignored
        return Status::Ok();
      }
      if (skip_ > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, bytes.size()));
        skip_ -= n;
        position_ += n;
        bytes = bytes.subspan(n);
        continue;
      }
      size_t n = std::min(want_ - buffer_.size(), bytes.size());
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
      position_ += n;
      bytes = bytes.subspan(n);
      if (buffer_.size() == want_) CDI_RETURN_IF_ERROR(OnBuffer());
    }
    return Status::Ok();
  }

  Status Finish() override {
    bool ends_after_last_grain = state_ == State::kMarker && skip_ == 0 && buffer_.empty() &&
                                 expected_grains_ && grains_seen_ == *expected_grains_;
    if (state_ != State::kDone && !ends_after_last_grain) {
      return TruncatedError(position_, skip_ > 0 || state_ == State::kMarker
                                           ? "its end-of-stream marker"
                                           : "the end of the marker at offset " +
                                                 std::to_string(marker_offset_));
    }
    uint64_t grain_bytes = header_.grain_bytes();
    uint64_t capacity = header_.capacity_bytes();
    uint64_t next = 0;  // first grain not yet covered
    for (const auto& [first, end] : covered_) {
      if (first > next) CDI_RETURN_IF_ERROR(writer_->Zero(next * grain_bytes, (first - next) * grain_bytes));
      next = end;
    }
    if (next * grain_bytes < capacity) {
      CDI_RETURN_IF_ERROR(writer_->Zero(next * grain_bytes, capacity - next * grain_bytes));
    }
    return Status::Ok();
  }

 private:
  enum class State { kDirectory, kTable, kMarker, kMetadataType, kGrain, kDone };

  // The grains the directory and tables before the markers name, once read.
  void OnDirectory() {
    uint64_t start = header_.overhead * kSectorSize;
    for (uint64_t i = 0; i < header_.gd_entries(); ++i) {
      uint64_t sector = LoadLe32(buffer_, i * 4);
      if (sector == 0) continue;
      if (sector * kSectorSize < position_ || sector * kSectorSize + kTableBytes > start) {
        tables_.clear();  // a table outside the preamble: no count
        return ToMarkers();
      }
      tables_.push_back({sector, i});
    }
    std::sort(tables_.begin(), tables_.end());
    for (size_t i = 1; i < tables_.size(); ++i) {
      if (tables_[i].first * kSectorSize < tables_[i - 1].first * kSectorSize + kTableBytes) {
        tables_.clear();
        return ToMarkers();
      }
    }
    if (tables_.empty()) return ToMarkers(0);
    state_ = State::kTable;
    skip_ = tables_[0].first * kSectorSize - position_;
    want_ = kTableBytes;
  }

  void OnTable() {
    bool zeroed_grain_gte = (header_.flags & kFlagZeroedGrainGte) != 0;
    uint64_t first_grain = tables_[next_table_].second * kGtesPerGt;
    for (size_t i = 0; i < kGtesPerGt && first_grain + i < header_.grain_count(); ++i) {
      uint32_t entry = LoadLe32(buffer_, i * 4);
      if (entry != 0 && !(entry == kZeroedGrainGte && zeroed_grain_gte)) ++counted_;
    }
    if (++next_table_ == tables_.size()) return ToMarkers(counted_);
    skip_ = tables_[next_table_].first * kSectorSize - position_;
  }

  void ToMarkers(std::optional<uint64_t> expected_grains = std::nullopt) {
    expected_grains_ = expected_grains;
    tables_ = {};
    state_ = State::kMarker;
    want_ = kMarkerHeaderSize;
    skip_ = header_.overhead * kSectorSize - position_;
  }

  Status OnBuffer() {
    std::span<const uint8_t> data(buffer_);
    switch (state_) {
      case State::kDirectory:
        OnDirectory();
        buffer_.clear();
        return Status::Ok();
      case State::kTable:
        OnTable();
        buffer_.clear();
        return Status::Ok();
      case State::kMarker: {
        marker_offset_ = position_ - kMarkerHeaderSize;
        value_ = LoadLe64(data, 0);
        uint32_t size = LoadLe32(data, 8);
        buffer_.clear();
        if (size == 0) {
          state_ = State::kMetadataType;
          want_ = 4;
          return Status::Ok();
        }
        CDI_RETURN_IF_ERROR(CheckGrainMarker(size));
        state_ = State::kGrain;
        want_ = size;
        buffer_.reserve(size);
        return Status::Ok();
      }
      case State::kMetadataType: {
        uint32_t type = LoadLe32(data, 0);
        buffer_.clear();
        return OnMetadataMarker(type);
      }
      case State::kGrain: {
        CDI_RETURN_IF_ERROR(InflateGrain());
        uint64_t used = kMarkerHeaderSize + buffer_.size();
        skip_ = (used + kSectorSize - 1) / kSectorSize * kSectorSize - used;
        buffer_.clear();
        state_ = State::kMarker;
        want_ = kMarkerHeaderSize;
        return Status::Ok();
      }
      case State::kDone:
        break;
    }
    return Status::Ok();
  }

  std::string At() const { return " (marker at offset " + std::to_string(marker_offset_) + ")"; }

  Status CheckGrainMarker(uint32_t size) {
    if (value_ >= header_.capacity) {
      return CorruptImageError("vmdk stream: a grain's LBA " + std::to_string(value_) +
                               " is past the capacity of " + std::to_string(header_.capacity) +
                               " sectors" + At() + "; the image is corrupt");
    }
    if (value_ % header_.grain_size != 0) {
      return CorruptImageError("vmdk stream: a grain's LBA " + std::to_string(value_) +
                               " is not a multiple of the grain size of " +
                               std::to_string(header_.grain_size) + " sectors" + At() +
                               "; the image is corrupt");
    }
    if (size > max_compressed_) {
      return CorruptImageError("vmdk stream: a grain's compressed size " + std::to_string(size) +
                               " is larger than any compressed grain of " +
                               std::to_string(header_.grain_bytes()) + " bytes (at most " +
                               std::to_string(max_compressed_) + ")" + At() +
                               "; the image is corrupt");
    }
    return Status::Ok();
  }

  Status OnMetadataMarker(uint32_t type) {
    uint64_t rest = kMetadataMarkerSize - kMarkerHeaderSize - 4;
    switch (static_cast<MarkerType>(type)) {
      case MarkerType::kEndOfStream:
        state_ = State::kDone;
        return Status::Ok();
      case MarkerType::kGrainTable:
      case MarkerType::kGrainDirectory:
      case MarkerType::kFooter:
        if (value_ > kMaxCapacitySectors) {
          return CorruptImageError("vmdk stream: a metadata marker of type " +
                                   std::to_string(type) + " claims " + std::to_string(value_) +
                                   " sectors of data" + At() + "; the image is corrupt");
        }
        skip_ = rest + value_ * kSectorSize;
        state_ = State::kMarker;
        want_ = kMarkerHeaderSize;
        return Status::Ok();
    }
    return CorruptImageError("vmdk stream: unknown marker type " + std::to_string(type) + At() +
                             "; the image is corrupt");
  }

  // A grain is a zlib stream of known greatest output: libdeflate inflates
  // it whole, about twice as fast as zlib. What libdeflate refuses goes to
  // zlib, which says what is wrong (inflate/qcow2's InflateZlib explains the
  // few streams the two read differently).
  Status InflateGrain() {
    uint64_t guest_offset = value_ * kSectorSize;
    uint64_t length = std::min<uint64_t>(grain_.size(), header_.capacity_bytes() - guest_offset);
    size_t inflated = 0;
    if (deflate_ != nullptr &&
        libdeflate_zlib_decompress(deflate_, buffer_.data(), buffer_.size(), grain_.data(),
                                   grain_.size(), &inflated) == LIBDEFLATE_SUCCESS &&
        inflated >= length) {
      return WriteGrain(guest_offset, length);
    }
    return InflateGrainWithZlib();
  }

  Status InflateGrainWithZlib() {
    if (!zlib_ok_ || inflateReset(&zlib_) != Z_OK) {
      return InternalError("vmdk stream: zlib could not be initialised");
    }
    zlib_.next_in = buffer_.data();
    zlib_.avail_in = static_cast<uInt>(buffer_.size());
    zlib_.next_out = grain_.data();
    zlib_.avail_out = static_cast<uInt>(grain_.size());
    int result = inflate(&zlib_, Z_FINISH);
    uint64_t inflated = grain_.size() - zlib_.avail_out;
    uint64_t guest_offset = value_ * kSectorSize;
    uint64_t length = std::min<uint64_t>(grain_.size(), header_.capacity_bytes() - guest_offset);
    if (result != Z_STREAM_END) {
      return CorruptImageError(
          "vmdk stream: the grain at LBA " + std::to_string(value_) + At() +
          (result == Z_BUF_ERROR && zlib_.avail_out == 0 ? " inflates to more than the grain size"
                                                         : " is not valid zlib data") +
          "; the image is corrupt");
    }
    if (inflated < length) {
      return CorruptImageError("vmdk stream: the grain at LBA " + std::to_string(value_) + At() +
                               " inflates to " + std::to_string(inflated) + " bytes, not " +
                               std::to_string(length) + "; the image is corrupt");
    }
    return WriteGrain(guest_offset, length);
  }

  // Writes the first `length` bytes of the grain just inflated.
  Status WriteGrain(uint64_t guest_offset, uint64_t length) {
    CDI_RETURN_IF_ERROR(Cover(value_ / header_.grain_size));
    ++grains_seen_;
    return writer_->Write(guest_offset, std::span<const uint8_t>(grain_).first(length));
  }

  // Records grain `index` as covered; a grain seen twice is corrupt.
  Status Cover(uint64_t index) {
    auto next = covered_.upper_bound(index);
    auto previous = next == covered_.begin() ? covered_.end() : std::prev(next);
    if (previous != covered_.end() && previous->second > index) {
      return CorruptImageError("vmdk stream: a second grain for LBA " + std::to_string(value_) +
                               At() + "; the image is corrupt");
    }
    bool joins_previous = previous != covered_.end() && previous->second == index;
    bool joins_next = next != covered_.end() && next->first == index + 1;
    if (joins_previous && joins_next) {
      previous->second = next->second;
      covered_.erase(next);
    } else if (joins_previous) {
      previous->second = index + 1;
    } else if (joins_next) {
      uint64_t end = next->second;
      covered_.erase(next);
      covered_.emplace(index, end);
    } else {
      if (fixed_memory_ + (covered_.size() + 1) * kRangeEntryBytes > budget_) {
        return MemoryBudgetError("the list of grains seen", (covered_.size() + 1) * kRangeEntryBytes,
                                 budget_ - std::min(budget_, fixed_memory_));
      }
      covered_.emplace(index, index + 1);
    }
    return Status::Ok();
  }

  GuestWriter* writer_;
  Header header_;
  uint64_t budget_;
  uint64_t fixed_memory_;
  uint64_t max_compressed_;
  uint64_t position_;  // offset of the next byte fed
  uint64_t skip_;      // bytes to pass over before the next field
  State state_ = State::kMarker;
  size_t want_ = kMarkerHeaderSize;  // bytes the current field needs in buffer_
  std::vector<uint8_t> buffer_;
  std::vector<uint8_t> grain_;  // one inflated grain
  uint64_t marker_offset_ = 0;
  uint64_t value_ = 0;  // the current marker's LBA or sector count
  std::map<uint64_t, uint64_t> covered_;  // first grain -> one past the last, merged
  z_stream zlib_;
  bool zlib_ok_ = false;
  libdeflate_decompressor* deflate_ = nullptr;  // null when out of memory: zlib alone
  // The grain tables before the grains: {sector, directory index}, by sector.
  std::vector<std::pair<uint64_t, uint64_t>> tables_;
  size_t next_table_ = 0;
  uint64_t counted_ = 0;                    // grains the tables read so far name
  std::optional<uint64_t> expected_grains_;  // grains the tables name, when read
  uint64_t grains_seen_ = 0;
};

}  // namespace

Result<std::unique_ptr<ExtentBody>> MakeStreamBody(GuestWriter* writer, const Header& header,
                                                    const DecoderOptions& options,
                                                    uint64_t position) {
  uint64_t max_compressed = compressBound(static_cast<uLong>(header.grain_bytes()));
  uint64_t fixed = header.grain_bytes() + max_compressed + kInflateStateBytes;
  if (fixed > options.memory_budget) {
    return MemoryBudgetError("one compressed and one inflated grain of " +
                                 std::to_string(header.grain_bytes()) + " bytes",
                             fixed, options.memory_budget);
  }
  if (max_compressed > UINT32_MAX) max_compressed = UINT32_MAX;
  return std::unique_ptr<ExtentBody>(
      new StreamBody(writer, header, options, position, max_compressed, fixed));
}

}  // namespace cdi::formats::vmdk
