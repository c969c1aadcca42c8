#include "formats/vdi/vdi_decoder.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "formats/vdi/vdi_format.h"
#include "formats/vdi/vdi_header.h"

namespace cdi::formats {
namespace {

using vdi::Header;

// Marks a data block that no map entry names (yet).
constexpr uint32_t kNoGuestBlock = UINT32_MAX;

class VdiDecoder final : public Decoder {
 public:
  VdiDecoder(GuestWriter* writer, const DecoderOptions& options)
      : writer_(writer), options_(options) {
    description_.format = "vdi";
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!status_.ok()) return status_;
    status_ = Consume(bytes);
    return status_;
  }

  Status Finish() override {
    if (!status_.ok()) return status_;
    status_ = CheckComplete();
    return status_;
  }

  ImageDescription Describe() const override { return description_; }

 private:
  // Each byte of the input is handled by the part of the file it falls in.
  Status Consume(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      size_t used = 0;
      if (!header_) {
        CDI_ASSIGN_OR_RETURN(used, ConsumeHeader(bytes));
      } else if (position_ < header_->offset_bmap) {
        used = Skip(bytes, header_->offset_bmap);
      } else if (position_ < header_->map_end()) {
        CDI_ASSIGN_OR_RETURN(used, ConsumeMap(bytes));
      } else if (position_ < header_->offset_data) {
        used = Skip(bytes, header_->offset_data);
      } else if (position_ < header_->data_end()) {
        CDI_ASSIGN_OR_RETURN(used, ConsumeData(bytes));
      } else {
        used = bytes.size();  // after the last allocated block: not part of the image
      }
      position_ += used;
      bytes = bytes.subspan(used);
    }
    return Status::Ok();
  }

  size_t Skip(std::span<const uint8_t> bytes, uint64_t until) const {
    return static_cast<size_t>(std::min<uint64_t>(bytes.size(), until - position_));
  }

  Result<size_t> ConsumeHeader(std::span<const uint8_t> bytes) {
    size_t take = std::min(bytes.size(), sector_.size() - static_cast<size_t>(position_));
    std::memcpy(sector_.data() + position_, bytes.data(), take);
    if (position_ + take < sector_.size()) return take;
    CDI_ASSIGN_OR_RETURN(Header header,
                         vdi::ParseHeader(std::span<const uint8_t, vdi::kHeaderSectorBytes>(sector_),
                                          options_.container_size));
    uint64_t inverse_bytes = uint64_t{header.blocks_allocated} * sizeof(uint32_t);
    if (inverse_bytes > options_.memory_budget) {
      return InvalidArgumentError(
          "vdi decoding needs " + std::to_string(inverse_bytes) + " bytes of memory for the map of " +
          std::to_string(header.blocks_allocated) + " allocated blocks, beyond the memory budget of " +
          std::to_string(options_.memory_budget) + " bytes; raise the memory budget");
    }
    guest_block_of_.assign(header.blocks_allocated, kNoGuestBlock);
    header_ = header;
    description_ = vdi::DescribeHeader(header);
    CDI_RETURN_IF_ERROR(writer_->Begin(description_));
    return take;
  }

  // Reads map entries, an entry split across chunks included.
  Result<size_t> ConsumeMap(std::span<const uint8_t> bytes) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), header_->map_end() - position_));
    for (size_t i = 0; i < take; ++i) {
      entry_bytes_[entry_fill_++] = bytes[i];
      if (entry_fill_ < entry_bytes_.size()) continue;
      entry_fill_ = 0;
      CDI_RETURN_IF_ERROR(MapEntry(vdi::LoadLE32(entry_bytes_.data())));
    }
    if (position_ + take == header_->map_end()) CDI_RETURN_IF_ERROR(FlushZeros());
    return take;
  }

  Status MapEntry(uint32_t entry) {
    uint32_t guest_block = next_guest_block_++;
    uint64_t start = uint64_t{guest_block} * header_->block_size;
    uint64_t length = std::min<uint64_t>(header_->block_size, header_->disk_size - start);
    if (entry >= vdi::kMapZero) {
      if (zero_length_ == 0) zero_start_ = start;
      zero_length_ += length;
      return Status::Ok();
    }
    if (entry >= header_->blocks_allocated) {
      return CorruptImageError("vdi block map: guest block " + std::to_string(guest_block) +
                               " names data block " + std::to_string(entry) +
                               ", past the " + std::to_string(header_->blocks_allocated) +
                               " allocated blocks; the image is corrupt: check it with "
                               "'qemu-img check'");
    }
    if (guest_block_of_[entry] != kNoGuestBlock) {
      return CorruptImageError("vdi block map: guest blocks " +
                               std::to_string(guest_block_of_[entry]) + " and " +
                               std::to_string(guest_block) + " both name data block " +
                               std::to_string(entry) +
                               "; the image is corrupt: check it with 'qemu-img check'");
    }
    guest_block_of_[entry] = guest_block;
    return FlushZeros();
  }

  Status FlushZeros() {
    if (zero_length_ == 0) return Status::Ok();
    uint64_t length = zero_length_;
    zero_length_ = 0;
    return writer_->Zero(zero_start_, length);
  }

  // Writes the part of a data block in `bytes` at its guest offset.
  Result<size_t> ConsumeData(std::span<const uint8_t> bytes) {
    uint64_t from_data = position_ - header_->offset_data;
    uint64_t index = from_data / header_->block_size;
    uint64_t in_block = from_data % header_->block_size;
    size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), header_->block_size - in_block));
    uint32_t guest_block = guest_block_of_[index];
    if (guest_block == kNoGuestBlock) return take;
    uint64_t guest_offset = uint64_t{guest_block} * header_->block_size + in_block;
    if (guest_offset >= header_->disk_size) return take;  // the last block's tail
    size_t length = static_cast<size_t>(std::min<uint64_t>(take, header_->disk_size - guest_offset));
    CDI_RETURN_IF_ERROR(writer_->Write(guest_offset, bytes.first(length)));
    return take;
  }

  Status CheckComplete() {
    if (!header_) {
      return CorruptImageError("the vdi image ends after " + std::to_string(position_) +
                               " bytes, inside its " + std::to_string(vdi::kHeaderSectorBytes) +
                               "-byte header; the image is truncated: fetch it again");
    }
    if (position_ < header_->data_end()) {
      bool in_map = position_ < header_->map_end();
      return CorruptImageError(
          "the vdi image ends after " + std::to_string(position_) + " bytes, before the end of " +
          (in_map ? "its block map" : "its allocated data blocks") + " at byte " +
          std::to_string(in_map ? header_->map_end() : header_->data_end()) +
          "; the image is truncated: fetch it again");
    }
    return Status::Ok();
  }

  GuestWriter* writer_;
  DecoderOptions options_;
  ImageDescription description_;
  Status status_;  // the first error, returned from then on
  uint64_t position_ = 0;  // bytes of the container consumed so far
  std::array<uint8_t, vdi::kHeaderSectorBytes> sector_{};
  std::optional<Header> header_;
  // The inverted map: for each data block index, the guest block it holds.
  std::vector<uint32_t> guest_block_of_;
  std::array<uint8_t, vdi::kMapEntryBytes> entry_bytes_{};  // a map entry split across chunks
  size_t entry_fill_ = 0;
  uint32_t next_guest_block_ = 0;
  uint64_t zero_start_ = 0;  // a run of guest blocks that read as zero, not yet passed on
  uint64_t zero_length_ = 0;
};

}  // namespace

std::unique_ptr<Decoder> MakeVdiDecoder(GuestWriter* writer, const DecoderOptions& options) {
  return std::make_unique<VdiDecoder>(writer, options);
}

}  // namespace cdi::formats
