// The gaps: host bytes no claim covered when they passed.
//
// A table still to come may map bytes that pass before it (an L2 table placed
// after its data, an L1 table moved to the end by a resize). While one may
// (ClaimQueue::ReferencesPossible), gap bytes are kept in the spool, except
// clusters the refcounts mark free, which no table may refer to; once none
// may, gaps are dropped and the spool is emptied. A table that maps kept
// bytes takes them back from here: an L2 table, a data run (written to the
// guest), or a compressed cluster's input.
//
// Kept bytes are handed back once: a second reference to them finds nothing,
// which the caller reports as a cluster referenced twice. Single-threaded.
#ifndef CDI_FORMATS_QCOW2_GAP_KEEPER_H_
#define CDI_FORMATS_QCOW2_GAP_KEEPER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/claim_queue.h"
#include "formats/qcow2/guest_output.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/spool.h"

namespace cdi::formats::qcow2 {

class GapKeeper {
 public:
  // `spool_options.budget` and `queue` must outlive the keeper. The spool's
  // memory comes from that budget, which may reclaim it by moving bytes to
  // the scratch file; one cluster buffer is reserved from it here.
  // `refcounts_trusted`: free clusters may be skipped (false for a dirty
  // image, whose refcounts "may be inconsistent").
  static Result<std::unique_ptr<GapKeeper>> Create(const Spool::Options& spool_options,
                                                   const ClaimQueue* queue, uint32_t cluster_bits,
                                                   bool refcounts_trusted);
  ~GapKeeper();
  GapKeeper(const GapKeeper&) = delete;
  GapKeeper& operator=(const GapKeeper&) = delete;

  // Takes gap bytes at host offset `position`: kept, skipped (free
  // clusters) or dropped. Returns how many of them it took (at least one).
  Result<uint64_t> Take(uint64_t position, std::span<const uint8_t> bytes);

  // True while gap bytes are kept: some table not yet read may map them.
  bool keeping() const { return queue_->ReferencesPossible(); }
  // True when a refcount block's free clusters are worth learning.
  bool wants_free_clusters() const { return refcounts_trusted_ && keeping(); }
  // Host clusters [first, first + count) have a refcount of 0: those ahead of
  // `position` will be skipped, those behind it let go of.
  void AddFreeClusters(uint64_t first, uint64_t count, uint64_t position);
  // Once nothing can refer to kept bytes any more, they go.
  void ReleaseIfDone();

  // True when [host_offset, host_offset + length) is kept whole and not yet taken back.
  bool Holds(uint64_t host_offset, uint64_t length) const {
    return spool_->AvailableLength(host_offset, length) == length;
  }
  // How many bytes from `host_offset` on (at most `max`) are kept contiguously.
  uint64_t HeldLength(uint64_t host_offset, uint64_t max) const {
    return spool_->AvailableLength(host_offset, max);
  }
  // Copies kept bytes out and takes them back (a table that passed). Precondition: Holds().
  Status TakeBack(uint64_t host_offset, std::span<uint8_t> out);
  // Copies kept bytes out, leaving them kept (a compressed cluster's input,
  // whose last sector another cluster may share).
  Status Copy(uint64_t host_offset, std::span<uint8_t> out);
  // Lets go of kept bytes that turned out to be metadata, when all of them are kept.
  void Drop(uint64_t host_offset, uint64_t length);
  // Writes the standard run whose bytes passed before its L2 table, and takes them back.
  Status Replay(const Run& run, GuestOutput& output);

  // True when [host_offset, host_offset + length) touches clusters the
  // refcounts marked free and that were skipped or let go of as such.
  bool MarkedFree(uint64_t host_offset, uint64_t length) const;
  // The kCorruptImage error of `what` (a ClaimText) that a table maps into
  // clusters the refcounts mark free: which inconsistency it is, and the
  // qemu-img command that repairs it.
  static Status FreeButMapped(const std::string& what);

  // Keeps bytes that passed earlier without being kept: the tail of a
  // compressed cluster's range, once its stream's length is known.
  Status Insert(uint64_t host_offset, std::span<const uint8_t> bytes) {
    return spool_->Insert(host_offset, bytes);
  }

  // An error the spool met while freeing memory, which explains a memory
  // budget that ran out; ok when none.
  const Status& spill_error() const { return spool_->deferred_error(); }
  // Bytes tables took back (spooling was needed when not 0).
  uint64_t replayed_bytes() const { return replayed_bytes_; }
  const Spool& spool() const { return *spool_; }
  // Forgets everything kept, at the end of the image.
  void Clear() { spool_->Clear(); }

 private:
  static constexpr uint64_t kFreeRangeBytes = 64;  // one map node

  GapKeeper(const Spool::Options& spool_options, const ClaimQueue* queue, uint32_t cluster_bits,
            bool refcounts_trusted);

  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits_; }

  const ClaimQueue* queue_;
  uint32_t cluster_bits_;
  bool refcounts_trusted_;
  MemoryBudget* budget_;
  std::unique_ptr<Spool> spool_;
  bool released_ = false;
  uint64_t replayed_bytes_ = 0;
  std::vector<uint8_t> buffer_;  // one cluster, for Replay
  Reservation buffer_reservation_;
  // Records the free range [start, end) as passed (skipped or let go of).
  void AddPassedFree(uint64_t start, uint64_t end);
  void ReserveFreeRanges();

  std::map<uint64_t, uint64_t> free_ranges_;  // start -> end, ahead of the position
  // Free ranges behind the position, kept while tables may still come, to
  // tell a free cluster that a late table maps from one referenced twice.
  std::map<uint64_t, uint64_t> passed_free_;
  Reservation free_ranges_reservation_;  // for both maps
  bool free_ranges_full_ = false;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_GAP_KEEPER_H_
