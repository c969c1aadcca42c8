#include "formats/qcow2/claim_queue.h"

#include <algorithm>
#include <string>

namespace cdi::formats::qcow2 {
namespace {

// Min-heap order on host offset.
struct LaterHost {
  bool operator()(const Run& a, const Run& b) const { return a.host_offset > b.host_offset; }
};

}  // namespace

ClaimQueue::ClaimQueue(const Header& header, MemoryBudget* budget)
    : budget_(budget), geometry_(header.geometry) {
  l1_.claim = {ClaimKind::kL1, header.l1_table_offset, header.l1_table_offset + header.l1_bytes(),
               0};
  l1_.present = header.l1_size > 0;
  l1_.read = !l1_.present;
  refcount_table_.claim = {ClaimKind::kRefcountTable, header.refcount_table_offset,
                           header.refcount_table_offset + header.refcount_table_bytes(), 0};
  refcount_table_.present = true;
  snapshot_table_.claim = {
      ClaimKind::kSnapshotTable, header.snapshots_offset,
      header.snapshots_offset + uint64_t{header.nb_snapshots} * kSnapshotEntryFixedBytes, 0};
  snapshot_table_.present = header.nb_snapshots > 0;
  snapshot_table_.read = !snapshot_table_.present;
}

Claim ClaimQueue::Peek() const {
  Claim best;
  auto consider = [&best](const Claim& claim) {
    if (best.kind == ClaimKind::kNone || claim.start < best.start) best = claim;
  };
  const uint64_t cluster = geometry_.cluster_size();
  if (l1_.present && !l1_.reached) consider(l1_.claim);
  if (!refcount_table_.reached) consider(refcount_table_.claim);
  if (refcount_table_.read && next_refcount_block_ < refcount_blocks_.size()) {
    uint64_t start = refcount_blocks_[next_refcount_block_].host_offset;
    consider({ClaimKind::kRefcountBlock, start, start + cluster, 0});
  }
  if (snapshot_table_.present && !snapshot_table_.reached) consider(snapshot_table_.claim);
  if (snapshot_table_.read && next_snapshot_l1_ < snapshot_l1s_.size()) {
    const Extent& l1 = snapshot_l1s_[next_snapshot_l1_];
    consider({ClaimKind::kSnapshotL1, l1.start, l1.end, 0});
  }
  if (l1_.read && next_l2_ < l2_tables_.size()) {
    const TableRef& ref = l2_tables_[next_l2_];
    consider({ClaimKind::kL2, ref.host_offset, ref.host_offset + cluster,
              geometry_.l1_index_to_guest_offset(ref.index)});
  }
  if (!runs_.empty()) consider(runs_.front().claim());
  return best;
}

ClaimQueue::HeaderTable& ClaimQueue::Table(ClaimKind kind) {
  if (kind == ClaimKind::kL1) return l1_;
  if (kind == ClaimKind::kRefcountTable) return refcount_table_;
  return snapshot_table_;
}

void ClaimQueue::Reach(ClaimKind table) { Table(table).reached = true; }

TableRef ClaimQueue::PopTable(ClaimKind kind) {
  if (kind == ClaimKind::kL2) return l2_tables_[next_l2_++];
  return refcount_blocks_[next_refcount_block_++];
}

void ClaimQueue::PopSnapshotL1() { ++next_snapshot_l1_; }

Run ClaimQueue::PopRun() {
  std::pop_heap(runs_.begin(), runs_.end(), LaterHost());
  Run run = runs_.back();
  runs_.pop_back();
  return run;
}

Status ClaimQueue::PushL2Table(TableRef ref) {
  return PushTableRef(l2_tables_, l2_tables_reservation_, ref, "L2 tables");
}

Status ClaimQueue::PushRefcountBlock(TableRef ref) {
  return PushTableRef(refcount_blocks_, refcount_blocks_reservation_, ref, "refcount blocks");
}

Status ClaimQueue::PushTableRef(std::vector<TableRef>& refs, Reservation& reservation, TableRef ref,
                                const char* what) {
  if (refs.size() == refs.capacity()) {
    size_t capacity = std::max<size_t>(16, refs.capacity() * 2);
    if (!reservation.Resize(budget_, capacity * sizeof(TableRef))) {
      return budget_->Exhausted(std::string("the list of ") + what,
                                capacity * sizeof(TableRef) - reservation.bytes());
    }
    refs.reserve(capacity);
  }
  refs.push_back(ref);
  return Status::Ok();
}

Status ClaimQueue::PushSnapshotL1(Extent l1) {
  if (snapshot_l1s_.size() == snapshot_l1s_.capacity()) {
    size_t capacity = std::max<size_t>(8, snapshot_l1s_.capacity() * 2);
    if (!snapshot_l1s_reservation_.Resize(budget_, capacity * sizeof(Extent))) {
      return budget_->Exhausted("the list of snapshot L1 tables", capacity * sizeof(Extent));
    }
    snapshot_l1s_.reserve(capacity);
  }
  snapshot_l1s_.push_back(l1);
  return Status::Ok();
}

Status ClaimQueue::PushRun(const Run& run) {
  if (runs_.size() == runs_.capacity()) {
    size_t capacity = std::max<size_t>(64, runs_.capacity() * 2);
    if (!runs_reservation_.Resize(budget_, capacity * sizeof(Run))) {
      return budget_->Exhausted("the list of data clusters ahead",
                                capacity * sizeof(Run) - runs_reservation_.bytes());
    }
    runs_.reserve(capacity);
  }
  runs_.push_back(run);
  std::push_heap(runs_.begin(), runs_.end(), LaterHost());
  return Status::Ok();
}

Status ClaimQueue::FinishTable(ClaimKind table) {
  Table(table).read = true;
  switch (table) {
    case ClaimKind::kL1:
      return SortTableRefs(l2_tables_, "L2 table", "L1");
    case ClaimKind::kRefcountTable:
      return SortTableRefs(refcount_blocks_, "refcount block", "refcount");
    default:
      break;
  }
  std::sort(snapshot_l1s_.begin(), snapshot_l1s_.end(),
            [](const Extent& a, const Extent& b) { return a.start < b.start; });
  snapshot_l1s_.erase(std::unique(snapshot_l1s_.begin(), snapshot_l1s_.end(),
                                  [](const Extent& a, const Extent& b) {
                                    return a.start == b.start && a.end == b.end;
                                  }),
                      snapshot_l1s_.end());
  return Status::Ok();
}

Status ClaimQueue::SortTableRefs(std::vector<TableRef>& refs, const char* what, const char* table) {
  std::sort(refs.begin(), refs.end(),
            [](const TableRef& a, const TableRef& b) { return a.host_offset < b.host_offset; });
  for (size_t i = 1; i < refs.size(); ++i) {
    if (refs[i].host_offset == refs[i - 1].host_offset) {
      return CorruptImageError("qcow2: the " + std::string(what) + " at " +
                               Hex(refs[i].host_offset) + " is referenced by " + table +
                               " entries " + std::to_string(refs[i - 1].index) + " and " +
                               std::to_string(refs[i].index) + kCheckAdvice);
    }
  }
  return Status::Ok();
}

}  // namespace cdi::formats::qcow2
