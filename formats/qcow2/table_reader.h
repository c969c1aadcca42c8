// The table reader: what the entries of the mapping tables say.
//
// Interprets L1 entries, whole L2 tables ("Cluster mapping", "Extended L2
// Entries"), refcount table entries and whole refcount blocks ("Host cluster
// management"), checking every entry against the header and, when known, the
// image's length before anything uses it. A bad entry is kCorruptImage with a
// message naming the entry, its value and the guest offset it maps.
//
// Pure: no I/O, no allocation beyond messages, no state between calls. Where
// a table lies relative to the bytes read so far is the caller's business.
#ifndef CDI_FORMATS_QCOW2_TABLE_READER_H_
#define CDI_FORMATS_QCOW2_TABLE_READER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/qcow2_header.h"

namespace cdi::formats::qcow2 {

// What one L1 entry says about the guest range it maps.
struct L1Mapping {
  enum class Kind {
    kPastDisk,  // the entry lies past the virtual disk (VM state): nothing to map
    kZero,      // no L2 table: the range reads as zeros
    kL2Table,   // the L2 table at l2_offset maps the range
  };
  Kind kind = Kind::kPastDisk;
  uint64_t guest_offset = 0;
  uint64_t guest_length = 0;  // inside the virtual disk
  uint64_t l2_offset = 0;     // kL2Table
};

// Receives what an L2 table maps, in guest order.
class MappingSink {
 public:
  virtual ~MappingSink() = default;
  // Host bytes holding guest data. Contiguous standard clusters (and
  // subclusters) of one table come as one run.
  virtual Status MapRun(const Run& run) = 0;
  // Guest bytes that read as zeros: unallocated, or marked zero.
  virtual Status MapZero(uint64_t guest_offset, uint64_t length) = 0;
};

class TableReader {
 public:
  // `container_size`, when known, is the length of the image: nothing may
  // point past it.
  TableReader(const Header& header, std::optional<uint64_t> container_size);

  // L1 entry `index`: bits 9-55 locate an L2 table; 0 means the whole range
  // it maps is unallocated.
  Result<L1Mapping> ReadL1Entry(uint64_t index, uint64_t entry) const;

  // "qcow2: L1 entry <index> (<entry>, guest offset <offset>) <what><advice>",
  // also for checks that need more than the entry ("points to an L2 table at
  // ... that overlaps other metadata").
  Status L1EntryError(uint64_t index, uint64_t entry, const std::string& what,
                      const char* advice = kCheckAdvice) const;

  // The L2 table at host offset `l2_offset`, named by L1 entry `l1_index`:
  // `table` is its cluster. Entries past the virtual disk are ignored.
  Status ReadL2Table(uint64_t l2_offset, uint64_t l1_index, std::span<const uint8_t> table,
                     MappingSink& sink) const;

  // Refcount table entry `index`: the host offset of a refcount block, or 0
  // when the entry names none.
  Result<uint64_t> ReadRefcountTableEntry(uint64_t index, uint64_t entry) const;

  // The refcount block named by refcount table entry `table_index`: calls
  // `on_free(first_cluster, count)` for each run of host clusters with a
  // refcount of 0, in host order.
  void ReadRefcountBlock(uint64_t table_index, std::span<const uint8_t> block,
                         const std::function<void(uint64_t, uint64_t)>& on_free) const;

 private:
  Header header_;
  Geometry geometry_;
  std::optional<uint64_t> container_size_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_TABLE_READER_H_
