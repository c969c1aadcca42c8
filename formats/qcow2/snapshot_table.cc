#include "formats/qcow2/snapshot_table.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace cdi::formats::qcow2 {

SnapshotTableReader::SnapshotTableReader(const Header& header,
                                         std::optional<uint64_t> container_size)
    : geometry_(header.geometry),
      container_size_(container_size),
      start_(header.snapshots_offset),
      count_(header.nb_snapshots) {}

Result<uint64_t> SnapshotTableReader::Read(uint64_t position, std::span<const uint8_t> bytes) {
  if (bytes.empty() || done()) return uint64_t{0};
  if (skip_ > 0) {
    uint64_t count = std::min<uint64_t>(skip_, bytes.size());
    skip_ -= count;
    if (skip_ == 0) EndEntry();
    return count;
  }
  size_t take = std::min(bytes.size(), kSnapshotEntryFixedBytes - fixed_filled_);
  std::memcpy(fixed_ + fixed_filled_, bytes.data(), take);
  fixed_filled_ += take;
  if (fixed_filled_ < kSnapshotEntryFixedBytes) return uint64_t{take};
  fixed_filled_ = 0;
  CDI_RETURN_IF_ERROR(ReadEntry(position + take));
  return uint64_t{take};
}

std::optional<Extent> SnapshotTableReader::TakeL1Table() {
  std::optional<Extent> l1 = l1_table_;
  l1_table_.reset();
  return l1;
}

// Snapshot table entry: the L1 table's offset and size, then the sizes of
// what follows the fixed part. `position` is where the fixed part ends.
Status SnapshotTableReader::ReadEntry(uint64_t position) {
  const uint64_t l1_offset = LoadBE64(fixed_ + kSnapshotL1OffsetOffset);
  const uint64_t l1_bytes = uint64_t{LoadBE32(fixed_ + kSnapshotL1SizeOffset)} * kTableEntryBytes;
  const uint32_t extra = LoadBE32(fixed_ + kSnapshotExtraDataSizeOffset);
  auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
    return CorruptImageError("qcow2: snapshot table entry " + std::to_string(entries_done_) + " " +
                             what + advice);
  };
  if (extra > kMaxSnapshotExtraData) {
    return bad("has " + std::to_string(extra) + " bytes of extra data, more than qemu's 1024");
  }
  const uint64_t variable = uint64_t{extra} + LoadBE16(fixed_ + kSnapshotIdSizeOffset) +
                            LoadBE16(fixed_ + kSnapshotNameSizeOffset);
  // Entries are padded "to the next multiple of 8", but qemu does not write
  // the last entry's padding when the table ends the file.
  const bool last = entries_done_ + 1 == count_;
  skip_ =
      last ? variable : AlignUp(kSnapshotEntryFixedBytes + variable, 8) - kSnapshotEntryFixedBytes;
  if (position + skip_ - start_ > kMaxSnapshotTableBytes) {
    return bad("ends past qemu's 64 MiB limit for the snapshot table");
  }
  if (l1_bytes > 0) {
    if (geometry_.offset_into_cluster(l1_offset) != 0 || l1_offset < geometry_.cluster_size()) {
      return bad("places its L1 table at " + Hex(l1_offset) +
                 ", not at a cluster boundary past the header");
    }
    if (l1_bytes > kMaxL1Bytes || l1_offset >= kMaxHostOffset ||
        (container_size_ && l1_offset + l1_bytes > *container_size_)) {
      return bad("has an L1 table at " + Hex(l1_offset) + " of " + std::to_string(l1_bytes) +
                     " bytes, past the end of the image or over qemu's limits",
                 kPastEndAdvice);
    }
    l1_table_ = Extent{l1_offset, l1_offset + l1_bytes};
  }
  if (skip_ == 0) EndEntry();
  return Status::Ok();
}

}  // namespace cdi::formats::qcow2
