// The snapshot table ("Snapshots"), read as it streams past for the places of
// the internal snapshots' L1 tables.
//
// Only the active L1 table maps guest data; the snapshots' L1 tables are
// learned so that the decoder skips them rather than spooling them. Each
// entry's fixed part is gathered across inputs of any size and checked
// against qemu's limits (extra data, table size) and the image's length; the
// variable part (extra data, ID, name, padding) is skipped. A bad entry is
// kCorruptImage naming the entry. Single-threaded; no I/O.
#ifndef CDI_FORMATS_QCOW2_SNAPSHOT_TABLE_H_
#define CDI_FORMATS_QCOW2_SNAPSHOT_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "cdi/status.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/qcow2_header.h"

namespace cdi::formats::qcow2 {

class SnapshotTableReader {
 public:
  // The table the header names; `container_size`, when known, bounds the L1
  // tables it may name.
  SnapshotTableReader(const Header& header, std::optional<uint64_t> container_size);

  // Reads from `bytes`, which lie at host offset `position` inside the table,
  // up to the end of the next entry's fixed part or of what follows it.
  // Returns the bytes used (at least one unless `bytes` is empty or done()).
  Result<uint64_t> Read(uint64_t position, std::span<const uint8_t> bytes);

  // The L1 table named by the entry whose fixed part Read() just completed,
  // once; nullopt when that snapshot has none (or none was just completed).
  std::optional<Extent> TakeL1Table();

  // Every entry has been read.
  bool done() const { return entries_done_ == count_; }

 private:
  Status ReadEntry(uint64_t position);
  void EndEntry() { ++entries_done_; }

  Geometry geometry_;
  std::optional<uint64_t> container_size_;
  uint64_t start_ = 0;
  uint32_t count_ = 0;
  uint32_t entries_done_ = 0;
  uint8_t fixed_[kSnapshotEntryFixedBytes] = {};
  size_t fixed_filled_ = 0;
  uint64_t skip_ = 0;  // bytes of the current entry after its fixed part
  std::optional<Extent> l1_table_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_SNAPSHOT_TABLE_H_
