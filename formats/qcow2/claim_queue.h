// The claims not yet reached, in host order.
//
// The header names three tables: the L1 table, the refcount table and the
// snapshot table. Reading them adds claims: the L2 table each L1 entry names,
// each refcount block, each snapshot's L1 table; reading L2 tables adds data
// runs. The claims a table names are collected while it is read and join the
// queue, sorted, once it has been read whole (FinishTable), which is when a
// table naming one place twice is refused. Data runs wait in a min-heap.
//
// Peek() returns the claim with the lowest host offset; on a tie the order is
// L1, refcount table, refcount block, snapshot table, snapshot L1, L2 table,
// data. The lists' memory is reserved from the MemoryBudget: a list that
// outgrows it is an error naming the list (MemoryBudget::Exhausted).
// Single-threaded.
#ifndef CDI_FORMATS_QCOW2_CLAIM_QUEUE_H_
#define CDI_FORMATS_QCOW2_CLAIM_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/qcow2_format.h"
#include "formats/qcow2/qcow2_header.h"

namespace cdi::formats::qcow2 {

class ClaimQueue {
 public:
  // `budget` must outlive the queue.
  ClaimQueue(const Header& header, MemoryBudget* budget);
  ClaimQueue(const ClaimQueue&) = delete;
  ClaimQueue& operator=(const ClaimQueue&) = delete;

  // The claim with the lowest host offset among those not yet reached;
  // kind kNone when none is left.
  Claim Peek() const;

  // Taking the claim Peek() returned, by its kind:
  // kL1, kRefcountTable, kSnapshotTable: the table is being read.
  void Reach(ClaimKind table);
  // kL2, kRefcountBlock: which L1 or refcount table entry named it.
  TableRef PopTable(ClaimKind kind);
  void PopSnapshotL1();
  // kData, kCompressed.
  Run PopRun();

  // Claims found while reading a table.
  Status PushL2Table(TableRef ref);
  Status PushRefcountBlock(TableRef ref);
  Status PushSnapshotL1(Extent l1);
  Status PushRun(const Run& run);

  // The table (kL1, kRefcountTable, kSnapshotTable) has been read: the
  // claims it names join the queue. Two L1 entries naming one L2 table, or
  // two refcount table entries naming one block, are an error here;
  // snapshots may share an L1 table's place only by being the same table.
  Status FinishTable(ClaimKind table);

  // True while some table not yet read could map bytes passing now: the L1
  // table, or an L2 table it names.
  bool ReferencesPossible() const { return !l1_.read || next_l2_ < l2_tables_.size(); }

 private:
  // A table the header names.
  struct HeaderTable {
    Claim claim;
    bool present = false;
    bool reached = false;
    bool read = false;
  };
  HeaderTable& Table(ClaimKind kind);
  Status PushTableRef(std::vector<TableRef>& refs, Reservation& reservation, TableRef ref,
                      const char* what);
  static Status SortTableRefs(std::vector<TableRef>& refs, const char* what, const char* table);

  MemoryBudget* budget_;
  Geometry geometry_;
  HeaderTable l1_;
  HeaderTable refcount_table_;
  HeaderTable snapshot_table_;

  std::vector<TableRef> l2_tables_;  // sorted once the L1 table is read
  size_t next_l2_ = 0;
  Reservation l2_tables_reservation_;
  std::vector<TableRef> refcount_blocks_;  // sorted once the refcount table is read
  size_t next_refcount_block_ = 0;
  Reservation refcount_blocks_reservation_;
  std::vector<Extent> snapshot_l1s_;  // sorted once the snapshot table is read
  size_t next_snapshot_l1_ = 0;
  Reservation snapshot_l1s_reservation_;
  std::vector<Run> runs_;  // min-heap by host offset
  Reservation runs_reservation_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_CLAIM_QUEUE_H_
