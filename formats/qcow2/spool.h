// The spool: image bytes that passed before the decoder knew what they are.
//
// A streaming decoder sees host clusters in file order. A cluster that arrives
// before the table that maps it (an L2 table placed after its data, an L1
// table moved to the end by a resize) is kept here, keyed by its host offset,
// until its mapping arrives or until no table can refer to it any more.
//
// Storage: all-zero stretches cost nothing (only their range is recorded);
// other bytes go to memory blocks while the MemoryBudget allows, and beyond it
// to a scratch file created unlinked (O_TMPFILE) in the scratch directory, so
// that nothing is left behind whatever happens to the process.
//
// Bytes are handed out once: Take() marks the units (clusters or subclusters)
// of a range as used and frees their storage, so a second reference to the
// same cluster is seen as such. Single-threaded.
#ifndef CDI_FORMATS_QCOW2_SPOOL_H_
#define CDI_FORMATS_QCOW2_SPOOL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/memory_budget.h"

namespace cdi::formats::qcow2 {

class Spool {
 public:
  struct Options {
    MemoryBudget* budget = nullptr;  // must outlive the spool
    std::string scratch_dir;         // empty: $TMPDIR, else /tmp
    uint64_t unit_size = 65536;      // granularity of Take(): a power of two >= 512
    uint64_t block_size = 65536;     // size of one memory block
    uint64_t keep_free = 0;          // memory the spool leaves free for tables
    std::string format = "qcow2";    // the decoder, as its messages name it
  };

  explicit Spool(Options options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Stores `bytes` found at `host_offset`. Offsets must not go backwards.
  Status Append(uint64_t host_offset, std::span<const uint8_t> bytes);

  // Stores bytes that passed earlier without being stored (the tail of a
  // compressed cluster's range, once its stream's length is known). They
  // must not overlap stored bytes.
  Status Insert(uint64_t host_offset, std::span<const uint8_t> bytes);

  // How many bytes from `host_offset` on (at most `max`) are stored
  // contiguously and not yet taken.
  uint64_t AvailableLength(uint64_t host_offset, uint64_t max) const;

  // Copies stored bytes; the whole range must be available.
  Status Read(uint64_t host_offset, std::span<uint8_t> out) const;

  // The stored bytes without a copy when they lie in one memory block. The
  // view keeps its block alive even if the spool moves the bytes to disk.
  struct MemoryView {
    std::shared_ptr<const void> keepalive;
    std::span<const uint8_t> bytes;
  };
  std::optional<MemoryView> View(uint64_t host_offset, uint64_t length) const;

  // True when the whole range is an all-zero stretch.
  bool IsZero(uint64_t host_offset, uint64_t length) const;

  // Marks the units overlapping the range as used and releases their storage.
  void Take(uint64_t host_offset, uint64_t length);

  // Forgets everything (no table can refer to the bytes any more).
  void Clear();

  // Moves bytes held in memory to the scratch file until `wanted` bytes of the
  // budget are free again; returns the bytes freed. For MemoryBudget's reclaimer.
  uint64_t SpillMemory(uint64_t wanted);

  // The host offset (at least `from`) of the first byte stored there and not
  // yet taken, or of a taken one before it in the same fragment; nullopt
  // when none is.
  std::optional<uint64_t> FirstHeld(uint64_t from) const {
    auto it = fragments_.upper_bound(from);
    if (it != fragments_.begin() && std::prev(it)->second.end > from) --it;
    if (it == fragments_.end()) return std::nullopt;
    return std::max(it->first, from);
  }

  // The host ranges [start, end) before `before` whose bytes are stored and
  // not yet taken, in order, neighbours merged; nullopt when there are more
  // than `max_ranges` of them or they hold more than `max_bytes`.
  std::optional<std::vector<std::pair<uint64_t, uint64_t>>> HeldBefore(uint64_t before,
                                                                      size_t max_ranges,
                                                                      uint64_t max_bytes) const;

  // Bytes ever stored (all-zero stretches cost nothing and do not count),
  // ever written to the scratch file, and taken back.
  uint64_t stored_bytes() const { return stored_bytes_; }
  uint64_t scratch_bytes() const { return scratch_bytes_; }
  uint64_t used_bytes() const { return used_bytes_; }

  // A deferred error from SpillMemory (which cannot return one).
  const Status& deferred_error() const { return deferred_error_; }

 private:
  struct Block;
  class ScratchFile;
  enum class Storage : uint8_t { kZero, kMemory, kFile };
  struct Fragment {
    uint64_t end = 0;  // host offset one past the last byte
    Storage storage = Storage::kZero;
    std::shared_ptr<Block> block;  // kMemory
    uint64_t storage_offset = 0;   // where the first byte lies in the block or the file
    uint64_t first_unit = 0;       // unit index of the fragment's first byte
    std::vector<bool> taken;       // per unit overlapping the fragment
    uint64_t live_units = 0;
    Reservation reservation;  // index overhead and bitmap
  };
  using FragmentMap = std::map<uint64_t, Fragment>;

  Status AppendRun(uint64_t host_offset, std::span<const uint8_t> bytes, bool zero);
  Status AppendToMemory(uint64_t host_offset, std::span<const uint8_t> bytes, size_t* stored);
  Status AppendToFile(uint64_t host_offset, std::span<const uint8_t> bytes);
  // Starts a fragment at host_offset (length 0); the caller extends it.
  Result<Fragment*> NewFragment(uint64_t host_offset, Storage storage);
  // Grows a fragment to `end`, with its bitmap and reservation.
  Status Extend(Fragment& fragment, uint64_t start, uint64_t end);
  Status ReserveIndex(Reservation& reservation, uint64_t bytes);
  Status EnsureScratchFile();
  FragmentMap::const_iterator Find(uint64_t host_offset) const;
  void ReleaseStorage(uint64_t start, Fragment& fragment, uint64_t from, uint64_t to);

  Options options_;
  FragmentMap fragments_;
  std::shared_ptr<Block> current_block_;
  std::unique_ptr<ScratchFile> scratch_;
  uint64_t scratch_end_ = 0;
  uint64_t last_end_ = 0;
  uint64_t stored_bytes_ = 0;
  uint64_t scratch_bytes_ = 0;
  uint64_t used_bytes_ = 0;
  Status deferred_error_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_SPOOL_H_
