#include "formats/qcow2/qcow2_decoder.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/zero.h"
#include "formats/qcow2/inflate.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/qcow2_format.h"
#include "formats/qcow2/qcow2_header.h"
#include "formats/qcow2/spool.h"

namespace cdi::formats {
namespace qcow2 {
namespace {

// Memory kept free for the tables while the spool fills.
constexpr uint64_t kMinTableHeadroom = 256 << 10;
constexpr char kCheckAdvice[] = "; the image is corrupt: check it with 'qemu-img check'";
constexpr char kPastEndAdvice[] =
    "; the image is truncated or corrupt: fetch it again, or check it with 'qemu-img check'";

// The kinds of host ranges the tables claim.
enum class ClaimKind : uint8_t {
  kNone,
  kL1,
  kRefcountTable,
  kRefcountBlock,
  kSnapshotTable,
  kSnapshotL1,
  kL2,
  kData,
  kCompressed,
};

// A host range some table claims, for ordering and for messages.
struct Claim {
  ClaimKind kind = ClaimKind::kNone;
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t guest_offset = 0;  // kL2, kData, kCompressed
};

std::string ClaimText(const Claim& claim) {
  std::string range = " at host offset " + Hex(claim.start);
  switch (claim.kind) {
    case ClaimKind::kNone:
      return "nothing";
    case ClaimKind::kL1:
      return "the L1 table" + range;
    case ClaimKind::kRefcountTable:
      return "the refcount table" + range;
    case ClaimKind::kRefcountBlock:
      return "a refcount block" + range;
    case ClaimKind::kSnapshotTable:
      return "the snapshot table" + range;
    case ClaimKind::kSnapshotL1:
      return "the L1 table of an internal snapshot" + range;
    case ClaimKind::kL2:
      return "the L2 table for guest offset " + Hex(claim.guest_offset) + range;
    case ClaimKind::kData:
      return "the data for guest offset " + Hex(claim.guest_offset) + range;
    case ClaimKind::kCompressed:
      return "the compressed cluster for guest offset " + Hex(claim.guest_offset) + range;
  }
  return "?";
}

// Data whose mapping is known: `length` host bytes at host_offset hold guest
// bytes from guest_offset on (standard), or inflate to a cluster of which the
// first guest_length bytes are guest data (compressed).
struct Run {
  uint64_t host_offset = 0;
  uint64_t guest_offset = 0;
  uint64_t length = 0;
  uint32_t guest_length = 0;  // compressed only
  bool compressed = false;

  uint64_t host_end() const { return host_offset + length; }
  Claim claim() const {
    return {compressed ? ClaimKind::kCompressed : ClaimKind::kData, host_offset, host_end(),
            guest_offset};
  }
};

// Min-heap order on host offset.
struct LaterHost {
  bool operator()(const Run& a, const Run& b) const { return a.host_offset > b.host_offset; }
};

// A table that is one cluster (L2 table, refcount block), known but not yet seen.
struct TableRef {
  uint64_t host_offset = 0;
  uint64_t index = 0;  // L1 index (L2 tables) or refcount table index (blocks)
};

// A table of 8-byte entries spanning clusters (L1, refcount table), parsed as it streams.
struct EntryTable {
  ClaimKind kind = ClaimKind::kNone;
  uint64_t start = 0;
  uint64_t end = 0;
  bool present = false;
  bool started = false;
  bool done = false;
  uint8_t partial[kTableEntryBytes] = {};
  size_t partial_size = 0;
};

// A host range known to hold metadata this decoder only skips.
struct Extent {
  uint64_t start = 0;
  uint64_t end = 0;
};

// The snapshot table ("Snapshots"), parsed as it streams for the places of
// the snapshots' L1 tables; only the active L1 table maps guest data.
struct SnapshotTable {
  uint64_t start = 0;
  uint32_t count = 0;
  bool started = false;
  bool done = false;
  uint32_t entries_done = 0;
  uint8_t fixed[kSnapshotEntryFixedBytes] = {};
  size_t fixed_filled = 0;
  uint64_t skip = 0;  // bytes of the current entry after its fixed part
};

// A compressed cluster whose bytes are being gathered.
struct Collector {
  Run run;
  std::unique_ptr<InflateJob> job;
};

// How the decoder reads a file it sees once, in order.
//
// Every structure the header and the tables point to is a claim on a host
// range: the L1 table, the refcount table and its blocks, the snapshot table
// and the snapshots' L1 tables, each L2 table the L1 table names, and each
// data or compressed cluster an L2 table maps. Claims wait in host order
// (sorted lists for tables, a min-heap for data); when the input reaches a
// claim's start it becomes the active claim and its bytes are parsed, written
// to the guest, gathered for inflation, or skipped. A claim that starts
// inside another one is an overlap: the image is corrupt.
//
// Bytes no claim covers are a gap. While a table still to come may map them
// (the L1 table is not read yet, or some L2 table is not), gaps go to the
// spool, except clusters the refcounts mark free; once nothing can refer to
// them, gaps are dropped and the spool is emptied. A table that maps bytes
// already passed takes them from the spool.
class Qcow2Decoder final : public Decoder {
 public:
  Qcow2Decoder(GuestWriter* writer, const DecoderOptions& options)
      : writer_(writer), options_(options), budget_(options.memory_budget) {}

  ~Qcow2Decoder() override {
    // Workers stop before the jobs and buffers they use go away.
    pool_.reset();
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!failure_.ok()) return failure_;
    if (finished_) return Fail(InternalError("qcow2 decoder: Feed() called after Finish()"));
    Status status = FeedImpl(bytes);
    if (!status.ok()) return Fail(std::move(status));
    return status;
  }

  Status Finish() override {
    if (!failure_.ok()) return failure_;
    if (finished_) return Fail(InternalError("qcow2 decoder: Finish() called twice"));
    Status status = FinishImpl();
    if (!status.ok()) return Fail(std::move(status));
    return status;
  }

  ImageDescription Describe() const override { return description_; }

 private:
  Status Fail(Status status) {
    failure_ = status;
    // Stop the workers; nothing they finish is written any more.
    pool_.reset();
    return status;
  }

  uint64_t cluster_size() const { return geometry_.cluster_size(); }

  // --- Input ------------------------------------------------------------------

  Status FeedImpl(std::span<const uint8_t> bytes) {
    if (options_.container_size && bytes.size() > *options_.container_size - position_) {
      return InvalidArgumentError("qcow2 decoder: fed more than the container size of " +
                                  std::to_string(*options_.container_size) + " bytes");
    }
    while (!bytes.empty()) {
      if (!header_done_) {
        CDI_RETURN_IF_ERROR(FeedHeader(bytes));
      } else {
        CDI_RETURN_IF_ERROR(Step(bytes));
      }
    }
    if (pool_) CDI_RETURN_IF_ERROR(CollectDone(Wait::kNo));
    return Status::Ok();
  }

  // Gathers the first bytes until the header and its extensions are complete.
  Status FeedHeader(std::span<const uint8_t>& bytes) {
    size_t take = static_cast<size_t>(
        std::min<uint64_t>(bytes.size(), header_needed_ - header_bytes_.size()));
    header_bytes_.insert(header_bytes_.end(), bytes.begin(), bytes.begin() + take);
    bytes = bytes.subspan(take);
    position_ += take;
    if (header_bytes_.size() < header_needed_) return Status::Ok();
    CDI_ASSIGN_OR_RETURN(HeaderParse parse, ParseHeader(header_bytes_, options_.container_size));
    if (!parse.header) {
      header_needed_ = parse.bytes_needed;
      if (!header_reservation_.Resize(&budget_, header_needed_)) {
        return budget_.Exhausted("the qcow2 header", header_needed_);
      }
      return Status::Ok();
    }
    return Start(*parse.header);
  }

  // The header is valid: size the buffers, describe the image, call Begin.
  Status Start(const Header& header) {
    header_ = header;
    geometry_ = header.geometry;
    header_done_ = true;
    header_bytes_.clear();
    header_bytes_.shrink_to_fit();
    header_reservation_.Reset();

    const uint64_t cluster = cluster_size();
    job_bytes_ = 3 * cluster + kSectorSize;  // input (up to 2 clusters) and output
    const uint64_t fixed = 2 * cluster;  // table_buffer_ and spool_buffer_
    unsigned threads = options_.threads != 0 ? options_.threads
                                             : std::max(1u, std::thread::hardware_concurrency());
    const uint64_t inflater_bytes =
        ClusterInflater::MemoryBound(header.compression_type, geometry_.cluster_bits);
    const uint64_t minimum = fixed + job_bytes_ + inflater_bytes + kMinTableHeadroom;
    if (budget_.budget() < minimum) {
      return InvalidArgumentError("the memory budget of " + std::to_string(budget_.budget()) +
                                  " bytes is too small to decode a qcow2 image with " +
                                  std::to_string(cluster) + "-byte clusters; at least " +
                                  std::to_string(minimum) +
                                  " bytes are needed: raise the memory budget");
    }
    if (!fixed_reservation_.Resize(&budget_, fixed)) {
      return budget_.Exhausted("cluster buffers", fixed);
    }
    table_buffer_.resize(cluster);
    spool_buffer_.resize(cluster);

    // Decompression gets at most half of what is left: each worker wants its
    // inflater and two jobs, so that it always has the next one queued.
    const uint64_t for_inflation = (budget_.available() - kMinTableHeadroom) / 2;
    uint64_t per_worker = inflater_bytes + 2 * job_bytes_;
    workers_ = static_cast<unsigned>(
        std::clamp<uint64_t>(for_inflation / per_worker, 1, std::max(1u, threads)));
    const uint64_t inflaters = workers_ * inflater_bytes;
    max_jobs_ = std::max<uint64_t>(
        1, (for_inflation > inflaters ? for_inflation - inflaters : 0) / job_bytes_);
    max_jobs_ = std::min<uint64_t>(max_jobs_, 2 * workers_ + 2);

    Spool::Options spool_options;
    spool_options.budget = &budget_;
    spool_options.scratch_dir = options_.scratch_dir;
    spool_options.unit_size = geometry_.subcluster_size();
    spool_options.block_size = std::max<uint64_t>(cluster, 64 << 10);
    spool_options.keep_free = std::max(kMinTableHeadroom, budget_.budget() / 8);
    spool_ = std::make_unique<Spool>(spool_options);
    budget_.set_reclaimer([this](uint64_t wanted) { return spool_->SpillMemory(wanted); });

    // Refcounts name free clusters, which no table can refer to; the dirty
    // bit says they "may be inconsistent", so they are then not used.
    refcounts_trusted_ = !header.dirty();

    l1_.kind = ClaimKind::kL1;
    l1_.start = header.l1_table_offset;
    l1_.end = header.l1_table_offset + header.l1_bytes();
    l1_.present = header.l1_size > 0;
    l1_.done = !l1_.present;
    refcount_table_.kind = ClaimKind::kRefcountTable;
    refcount_table_.start = header.refcount_table_offset;
    refcount_table_.end = header.refcount_table_offset + header.refcount_table_bytes();
    refcount_table_.present = true;
    snapshots_.start = header.snapshots_offset;
    snapshots_.count = header.nb_snapshots;
    snapshots_.done = header.nb_snapshots == 0;

    description_.format = "qcow2";
    description_.virtual_size = header.virtual_size;
    auto& details = description_.details;
    details.emplace_back("version", std::to_string(header.version));
    details.emplace_back("cluster size", std::to_string(cluster));
    details.emplace_back("compression type",
                         header.compression_type == CompressionType::kZstd ? "zstd" : "zlib");
    details.emplace_back("virtual size", std::to_string(header.virtual_size));
    details.emplace_back("extended L2", geometry_.extended_l2 ? "yes" : "no");
    if (header.dirty()) details.emplace_back("dirty", "yes");
    if (header.nb_snapshots > 0) {
      details.emplace_back("internal snapshots", std::to_string(header.nb_snapshots));
    }
    return writer_->Begin(description_);
  }

  // --- Dispatch ---------------------------------------------------------------

  // Consumes bytes of the input (or activates the claim that starts here).
  Status Step(std::span<const uint8_t>& bytes) {
    if (position_ < cluster_size()) {
      // The rest of the header cluster: nothing else may live there.
      Consume(bytes, std::min<uint64_t>(bytes.size(), cluster_size() - position_));
      return Status::Ok();
    }
    switch (active_) {
      case ClaimKind::kL1:
      case ClaimKind::kRefcountTable:
        return StepEntryTable(bytes);
      case ClaimKind::kL2:
      case ClaimKind::kRefcountBlock:
        return StepClusterTable(bytes);
      case ClaimKind::kData:
        return StepData(bytes);
      case ClaimKind::kCompressed:
        return StepCompressed(bytes);
      case ClaimKind::kSnapshotTable:
        return StepSnapshotTable(bytes);
      case ClaimKind::kSnapshotL1:
        return StepSkip(bytes);
      case ClaimKind::kNone:
        break;
    }
    Claim next = PeekNext();
    if (next.kind != ClaimKind::kNone) {
      if (next.start < position_) return Overlap(next, last_claim_);
      if (next.start == position_) return Activate(next);
    }
    uint64_t gap_end = next.kind != ClaimKind::kNone ? next.start : UINT64_MAX;
    return StepGap(bytes, gap_end);
  }

  void Consume(std::span<const uint8_t>& bytes, uint64_t count) {
    bytes = bytes.subspan(static_cast<size_t>(count));
    position_ += count;
  }

  // The claim with the lowest host offset among those not yet reached.
  Claim PeekNext() const {
    Claim best;
    auto consider = [&best](const Claim& claim) {
      if (best.kind == ClaimKind::kNone || claim.start < best.start) best = claim;
    };
    if (l1_.present && !l1_.started) consider({ClaimKind::kL1, l1_.start, l1_.end, 0});
    if (!refcount_table_.started) {
      consider({ClaimKind::kRefcountTable, refcount_table_.start, refcount_table_.end, 0});
    }
    if (refcount_table_.done && next_refblock_ < pending_refblocks_.size()) {
      uint64_t start = pending_refblocks_[next_refblock_].host_offset;
      consider({ClaimKind::kRefcountBlock, start, start + cluster_size(), 0});
    }
    if (snapshots_.count > 0 && !snapshots_.started) {
      consider({ClaimKind::kSnapshotTable, snapshots_.start,
                snapshots_.start + uint64_t{snapshots_.count} * kSnapshotEntryFixedBytes, 0});
    }
    if (snapshots_.done && next_snapshot_l1_ < snapshot_l1s_.size()) {
      const Extent& l1 = snapshot_l1s_[next_snapshot_l1_];
      consider({ClaimKind::kSnapshotL1, l1.start, l1.end, 0});
    }
    if (l1_.done && next_l2_ < pending_l2_.size()) {
      const TableRef& ref = pending_l2_[next_l2_];
      consider({ClaimKind::kL2, ref.host_offset, ref.host_offset + cluster_size(),
                geometry_.l1_index_to_guest_offset(ref.index)});
    }
    if (!runs_.empty()) consider(runs_.front().claim());
    return best;
  }

  Status Overlap(const Claim& later, const Claim& earlier) {
    bool both_data = (later.kind == ClaimKind::kData || later.kind == ClaimKind::kCompressed) &&
                     (earlier.kind == ClaimKind::kData || earlier.kind == ClaimKind::kCompressed);
    if (both_data && later.start == earlier.start) {
      return CorruptImageError(
          "qcow2: host cluster " + Hex(later.start) + " is referenced twice, for guest offsets " +
          Hex(earlier.guest_offset) + " and " + Hex(later.guest_offset) + kCheckAdvice);
    }
    return CorruptImageError("qcow2: " + ClaimText(later) + " overlaps " + ClaimText(earlier) +
                             " (ending at " + Hex(earlier.end) + ")" + kCheckAdvice);
  }

  // Makes `next` (which starts at position_) the active claim.
  Status Activate(const Claim& next) {
    if (next.kind == ClaimKind::kL1 || next.kind == ClaimKind::kL2) {
      CDI_RETURN_IF_ERROR(SettleKeptBytes());
    }
    switch (next.kind) {
      case ClaimKind::kL1:
        l1_.started = true;
        break;
      case ClaimKind::kRefcountTable:
        refcount_table_.started = true;
        break;
      case ClaimKind::kRefcountBlock:
        table_index_ = pending_refblocks_[next_refblock_++].index;
        table_filled_ = 0;
        break;
      case ClaimKind::kL2:
        table_index_ = pending_l2_[next_l2_++].index;
        table_filled_ = 0;
        break;
      case ClaimKind::kData:
        data_ = PopRun();
        break;
      case ClaimKind::kCompressed:
        return ActivateCompressed();
      case ClaimKind::kSnapshotTable:
        snapshots_.started = true;
        break;
      case ClaimKind::kSnapshotL1:
        ++next_snapshot_l1_;
        break;
      case ClaimKind::kNone:
        return InternalError("qcow2 decoder: activating nothing");
    }
    last_claim_ = next;
    // Nothing else may start inside this range.
    Claim after = PeekNext();
    if (after.kind != ClaimKind::kNone && after.start < next.end) return Overlap(after, next);
    active_ = next.kind;
    return Status::Ok();
  }

  Run PopRun() {
    std::pop_heap(runs_.begin(), runs_.end(), LaterHost());
    Run run = runs_.back();
    runs_.pop_back();
    return run;
  }

  // Bytes no claim covers: spooled while a table to come may map them.
  Status StepGap(std::span<const uint8_t>& bytes, uint64_t gap_end) {
    uint64_t count = std::min<uint64_t>(bytes.size(), gap_end - position_);
    if (!ReferencesPossible()) {
      Consume(bytes, count);
      return Status::Ok();
    }
    // Free clusters (refcount 0) hold nothing a table may refer to.
    while (!free_ranges_.empty() && free_ranges_.begin()->second <= position_) {
      free_ranges_.erase(free_ranges_.begin());
      free_ranges_reservation_.Resize(&budget_, free_ranges_.size() * kFreeRangeBytes);
    }
    if (!free_ranges_.empty()) {
      const auto& [free_start, free_end] = *free_ranges_.begin();
      if (free_start <= position_) {
        Consume(bytes, std::min(count, free_end - position_));
        return Status::Ok();
      }
      count = std::min(count, free_start - position_);
    }
    CDI_RETURN_IF_ERROR(spool_->Append(position_, bytes.first(static_cast<size_t>(count))));
    Consume(bytes, count);
    return Status::Ok();
  }

  // True while some table not yet read could map bytes passing now.
  bool ReferencesPossible() const { return !l1_.done || next_l2_ < pending_l2_.size(); }

  // Once no table can refer to spooled bytes, they go.
  void ReleaseSpoolIfDone() {
    if (!ReferencesPossible() && !spool_released_) {
      spool_released_ = true;
      spool_->Clear();
    }
  }

  // --- L1 table and refcount table ----------------------------------------------

  Status StepEntryTable(std::span<const uint8_t>& bytes) {
    EntryTable& table = active_ == ClaimKind::kL1 ? l1_ : refcount_table_;
    while (!bytes.empty() && position_ < table.end) {
      uint64_t entry;
      if (table.partial_size == 0 && bytes.size() >= kTableEntryBytes) {
        entry = LoadBE64(bytes.data());
        Consume(bytes, kTableEntryBytes);
      } else {
        size_t take = std::min(bytes.size(), kTableEntryBytes - table.partial_size);
        std::memcpy(table.partial + table.partial_size, bytes.data(), take);
        table.partial_size += take;
        Consume(bytes, take);
        if (table.partial_size < kTableEntryBytes) break;
        table.partial_size = 0;
        entry = LoadBE64(table.partial);
      }
      uint64_t index = (position_ - kTableEntryBytes - table.start) / kTableEntryBytes;
      if (active_ == ClaimKind::kL1) {
        CDI_RETURN_IF_ERROR(ProcessL1Entry(index, entry));
      } else {
        CDI_RETURN_IF_ERROR(ProcessRefcountTableEntry(index, entry));
      }
    }
    if (position_ < table.end) return Status::Ok();
    table.done = true;
    active_ = ClaimKind::kNone;
    return &table == &l1_ ? FinishL1() : FinishRefcountTable();
  }

  // L1 table entry ("Cluster mapping"): bits 9-55 locate an L2 table; 0 means
  // the whole range it maps is unallocated.
  Status ProcessL1Entry(uint64_t index, uint64_t entry) {
    const uint64_t guest_offset = geometry_.l1_index_to_guest_offset(index);
    if (index >= geometry_.size_to_l1(header_.virtual_size)) return Status::Ok();  // past the disk
    const uint64_t guest_length = std::min<uint64_t>(uint64_t{1} << geometry_.l1_entry_bits(),
                                                     header_.virtual_size - guest_offset);
    auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
      return CorruptImageError("qcow2: L1 entry " + std::to_string(index) + " (" + Hex(entry) +
                               ", guest offset " + Hex(guest_offset) + ") " + what + advice);
    };
    if (entry & kL1EntryReservedMask) return bad("has reserved bits set");
    const uint64_t l2_offset = entry & kL1EntryOffsetMask;
    if (l2_offset == 0) return AddZero(guest_offset, guest_length);
    if (geometry_.offset_into_cluster(l2_offset) != 0) {
      return bad("points to an L2 table at " + Hex(l2_offset) + ", not aligned to a cluster");
    }
    if (options_.container_size && l2_offset + cluster_size() > *options_.container_size) {
      return bad("points to an L2 table at " + Hex(l2_offset) + ", past the end of the image (" +
                     std::to_string(*options_.container_size) + " bytes)",
                 kPastEndAdvice);
    }
    const uint64_t l2_end = l2_offset + cluster_size();
    if (l2_offset >= position_) return PushTableRef(pending_l2_, {l2_offset, index}, "L2 tables");
    if (l2_end > position_) {
      return Overlap({ClaimKind::kL2, l2_offset, l2_end, guest_offset}, last_claim_);
    }
    // The L2 table passed before the L1 table: it waits in the spool.
    if (spool_->AvailableLength(l2_offset, cluster_size()) < cluster_size()) {
      return bad("points to an L2 table at " + Hex(l2_offset) +
                 " that overlaps other metadata or is referenced twice");
    }
    CDI_RETURN_IF_ERROR(spool_->Read(l2_offset, table_buffer_));
    spool_->Take(l2_offset, cluster_size());
    spool_used_bytes_ += cluster_size();
    const Claim l1_claim = last_claim_;
    last_claim_ = {ClaimKind::kL2, l2_offset, l2_end, guest_offset};
    CDI_RETURN_IF_ERROR(ProcessL2Table(l2_offset, index, table_buffer_));
    last_claim_ = l1_claim;
    return Status::Ok();
  }

  Status FinishL1() {
    CDI_RETURN_IF_ERROR(SortTableRefs(pending_l2_, "L2 table", "L1"));
    ReleaseSpoolIfDone();
    return Status::Ok();
  }

  // Refcount table entry ("Host cluster management"): bits 9-63 locate a
  // refcount block, which is metadata and never guest data.
  Status ProcessRefcountTableEntry(uint64_t index, uint64_t entry) {
    auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
      return CorruptImageError("qcow2: refcount table entry " + std::to_string(index) + " (" +
                               Hex(entry) + ") " + what + advice);
    };
    if (entry & kRefcountTableEntryReservedMask) return bad("has reserved bits set");
    const uint64_t block = entry & kRefcountTableEntryOffsetMask;
    if (block == 0) return Status::Ok();
    if (geometry_.offset_into_cluster(block) != 0) return bad("is not aligned to a cluster");
    if (block >= kMaxHostOffset ||
        (options_.container_size && block + cluster_size() > *options_.container_size)) {
      return bad("points past the end of the image", kPastEndAdvice);
    }
    if (block >= position_) {
      return PushTableRef(pending_refblocks_, {block, index}, "refcount blocks");
    }
    if (block + cluster_size() > position_) {
      return Overlap({ClaimKind::kRefcountBlock, block, block + cluster_size(), 0}, last_claim_);
    }
    // A block that passed earlier (the refcount table moved when it grew):
    // whatever of it was spooled can go.
    uint64_t available = spool_->AvailableLength(block, cluster_size());
    if (available == cluster_size()) spool_->Take(block, cluster_size());
    return Status::Ok();
  }

  Status FinishRefcountTable() {
    return SortTableRefs(pending_refblocks_, "refcount block", "refcount");
  }

  Status PushTableRef(std::vector<TableRef>& refs, TableRef ref, const char* what) {
    if (refs.size() == refs.capacity()) {
      size_t capacity = std::max<size_t>(16, refs.capacity() * 2);
      Reservation& reservation =
          &refs == &pending_l2_ ? pending_l2_reservation_ : pending_refblocks_reservation_;
      if (!reservation.Resize(&budget_, capacity * sizeof(TableRef))) {
        CDI_RETURN_IF_ERROR(spool_->deferred_error());
        return budget_.Exhausted(std::string("the list of ") + what,
                                 capacity * sizeof(TableRef) - reservation.bytes());
      }
      refs.reserve(capacity);
    }
    refs.push_back(ref);
    return Status::Ok();
  }

  Status SortTableRefs(std::vector<TableRef>& refs, const char* what, const char* table) {
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

  // --- Internal snapshots -----------------------------------------------------------

  // Snapshot table entries: only their L1 tables' places matter here, so
  // that those tables are skipped rather than spooled.
  Status StepSnapshotTable(std::span<const uint8_t>& bytes) {
    SnapshotTable& table = snapshots_;
    while (!bytes.empty() && !table.done) {
      if (table.skip > 0) {
        uint64_t count = std::min<uint64_t>(table.skip, bytes.size());
        Consume(bytes, count);
        table.skip -= count;
        if (table.skip == 0) CDI_RETURN_IF_ERROR(EndSnapshotEntry());
        continue;
      }
      size_t take = std::min(bytes.size(), kSnapshotEntryFixedBytes - table.fixed_filled);
      std::memcpy(table.fixed + table.fixed_filled, bytes.data(), take);
      table.fixed_filled += take;
      Consume(bytes, take);
      if (table.fixed_filled < kSnapshotEntryFixedBytes) break;
      table.fixed_filled = 0;
      CDI_RETURN_IF_ERROR(ProcessSnapshotEntry());
    }
    if (!table.done) return Status::Ok();
    last_claim_.end = position_;
    active_ = ClaimKind::kNone;
    std::sort(snapshot_l1s_.begin(), snapshot_l1s_.end(),
              [](const Extent& a, const Extent& b) { return a.start < b.start; });
    // Snapshots may share an L1 table's place only by being the same table.
    snapshot_l1s_.erase(std::unique(snapshot_l1s_.begin(), snapshot_l1s_.end(),
                                    [](const Extent& a, const Extent& b) {
                                      return a.start == b.start && a.end == b.end;
                                    }),
                        snapshot_l1s_.end());
    return Status::Ok();
  }

  Status ProcessSnapshotEntry() {
    SnapshotTable& table = snapshots_;
    const uint8_t* fixed = table.fixed;
    const uint64_t l1_offset = LoadBE64(fixed + kSnapshotL1OffsetOffset);
    const uint64_t l1_bytes = uint64_t{LoadBE32(fixed + kSnapshotL1SizeOffset)} * kTableEntryBytes;
    const uint32_t extra = LoadBE32(fixed + kSnapshotExtraDataSizeOffset);
    auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
      return CorruptImageError("qcow2: snapshot table entry " + std::to_string(table.entries_done) +
                               " " + what + advice);
    };
    if (extra > kMaxSnapshotExtraData) {
      return bad("has " + std::to_string(extra) + " bytes of extra data, more than qemu's 1024");
    }
    const uint64_t variable = uint64_t{extra} + LoadBE16(fixed + kSnapshotIdSizeOffset) +
                              LoadBE16(fixed + kSnapshotNameSizeOffset);
    // Entries are padded "to the next multiple of 8", but qemu does not
    // write the last entry's padding when the table ends the file.
    const bool last = table.entries_done + 1 == table.count;
    table.skip = last ? variable
                      : AlignUp(kSnapshotEntryFixedBytes + variable, 8) - kSnapshotEntryFixedBytes;
    if (position_ + table.skip - table.start > kMaxSnapshotTableBytes) {
      return bad("ends past qemu's 64 MiB limit for the snapshot table");
    }
    if (l1_bytes > 0) {
      if (geometry_.offset_into_cluster(l1_offset) != 0 || l1_offset < cluster_size()) {
        return bad("places its L1 table at " + Hex(l1_offset) +
                   ", not at a cluster boundary past the header");
      }
      if (l1_bytes > kMaxL1Bytes || l1_offset >= kMaxHostOffset ||
          (options_.container_size && l1_offset + l1_bytes > *options_.container_size)) {
        return bad("has an L1 table at " + Hex(l1_offset) + " of " + std::to_string(l1_bytes) +
                       " bytes, past the end of the image or over qemu's limits",
                   kPastEndAdvice);
      }
      const Extent l1{l1_offset, l1_offset + l1_bytes};
      if (l1.start >= position_) {
        if (snapshot_l1s_.size() == snapshot_l1s_.capacity()) {
          size_t capacity = std::max<size_t>(8, snapshot_l1s_.capacity() * 2);
          if (!snapshot_l1s_reservation_.Resize(&budget_, capacity * sizeof(Extent))) {
            return budget_.Exhausted("the list of snapshot L1 tables", capacity * sizeof(Extent));
          }
          snapshot_l1s_.reserve(capacity);
        }
        snapshot_l1s_.push_back(l1);
      } else if (l1.end <= position_ && spool_->AvailableLength(l1.start, l1_bytes) == l1_bytes) {
        spool_->Take(l1.start, l1_bytes);  // it passed earlier: no need to keep it
      }
    }
    if (table.skip == 0) return EndSnapshotEntry();
    return Status::Ok();
  }

  Status EndSnapshotEntry() {
    if (++snapshots_.entries_done == snapshots_.count) snapshots_.done = true;
    return Status::Ok();
  }

  // Bytes of a claimed range that carry nothing for the guest.
  Status StepSkip(std::span<const uint8_t>& bytes) {
    uint64_t count = std::min<uint64_t>(bytes.size(), last_claim_.end - position_);
    Consume(bytes, count);
    if (position_ == last_claim_.end) active_ = ClaimKind::kNone;
    return Status::Ok();
  }

  // --- L2 tables and refcount blocks ----------------------------------------------

  Status StepClusterTable(std::span<const uint8_t>& bytes) {
    const uint64_t cluster = cluster_size();
    const uint64_t start = last_claim_.start;
    std::span<const uint8_t> table;
    if (table_filled_ == 0 && bytes.size() >= cluster) {
      table = bytes.first(static_cast<size_t>(cluster));  // parse in place
      Consume(bytes, cluster);
    } else {
      size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), cluster - table_filled_));
      std::memcpy(table_buffer_.data() + table_filled_, bytes.data(), take);
      table_filled_ += take;
      Consume(bytes, take);
      if (table_filled_ < cluster) return Status::Ok();
      table = table_buffer_;
    }
    table_filled_ = 0;
    ClaimKind kind = active_;
    active_ = ClaimKind::kNone;
    if (kind == ClaimKind::kRefcountBlock) return ProcessRefcountBlock(table_index_, table);
    CDI_RETURN_IF_ERROR(ProcessL2Table(start, table_index_, table));
    ReleaseSpoolIfDone();
    return Status::Ok();
  }

  // L2 table entries ("Cluster mapping", "Extended L2 Entries") for the guest
  // range of L1 entry `l1_index`.
  Status ProcessL2Table(uint64_t l2_offset, uint64_t l1_index, std::span<const uint8_t> table) {
    const uint64_t cluster = cluster_size();
    const uint64_t first_guest = geometry_.l1_index_to_guest_offset(l1_index);
    const uint64_t entry_bytes = geometry_.l2_entry_bytes();
    for (uint64_t i = 0; i < geometry_.l2_entries(); ++i) {
      const uint64_t guest_offset = first_guest + i * cluster;
      if (guest_offset >= header_.virtual_size) break;
      const uint64_t guest_length = std::min(cluster, header_.virtual_size - guest_offset);
      const uint8_t* raw = table.data() + i * entry_bytes;
      const uint64_t entry = LoadBE64(raw);
      const uint64_t bitmap = geometry_.extended_l2 ? LoadBE64(raw + 8) : 0;
      auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
        return CorruptImageError("qcow2: L2 entry " + std::to_string(i) + " (" + Hex(entry) +
                                 ") of the L2 table at " + Hex(l2_offset) + " (guest offset " +
                                 Hex(guest_offset) + ") " + what + advice);
      };

      if (entry & kL2EntryCompressed) {
        // "Compressed Clusters Descriptor"; compressed clusters "don't have
        // subclusters" and are never marked as having a refcount of one.
        if (bitmap != 0) return bad("is compressed but has a subcluster bitmap");
        if (entry & kL2EntryCopied) return bad("is compressed but has the copied flag set");
        CompressedRange range = DecodeCompressedEntry(entry, geometry_);
        if (range.host_offset >= kMaxHostOffset) {
          return bad("has a compressed offset beyond 2^56");
        }
        if (range.host_offset < cluster) return bad("points into the header cluster");
        if (options_.container_size &&
            range.host_offset + range.length > AlignUp(*options_.container_size, kSectorSize)) {
          return bad("has compressed data extending past the end of the image (" +
                         std::to_string(*options_.container_size) + " bytes)",
                     kPastEndAdvice);
        }
        Run run;
        run.host_offset = range.host_offset;
        run.guest_offset = guest_offset;
        run.length = range.length;
        run.guest_length = static_cast<uint32_t>(guest_length);
        run.compressed = true;
        CDI_RETURN_IF_ERROR(AddRun(run));
        continue;
      }

      // "Standard Cluster Descriptor".
      if (entry & kL2EntryReservedMask) return bad("has reserved bits set");
      const bool zero_flag = (entry & kL2EntryZero) != 0;
      if (zero_flag && (header_.version < 3 || geometry_.extended_l2)) {
        return bad(header_.version < 3 ? "has the zero flag, which version 2 images lack"
                                       : "has bit 0 set, reserved with extended L2 entries");
      }
      const uint64_t host_offset = entry & kL2EntryOffsetMask;
      if (geometry_.offset_into_cluster(host_offset) != 0) {
        return bad("points to host offset " + Hex(host_offset) + ", not aligned to a cluster");
      }
      // The bytes read must lie inside the image. With subclusters, a
      // cluster at the end of the file may be there only up to its last
      // allocated subcluster.
      auto check_host = [&](uint64_t host_end) -> Status {
        if (options_.container_size && host_end > *options_.container_size) {
          return bad("points to host offset " + Hex(host_offset) + ", past the end of the image (" +
                         std::to_string(*options_.container_size) + " bytes)",
                     kPastEndAdvice);
        }
        return Status::Ok();
      };

      if (!geometry_.extended_l2) {
        // Bit 0 "reads as all zeros" (a host offset then only describes a
        // preallocation); offset 0 is unallocated, which without a backing
        // file reads as zeros too. Like qemu, the copied flag does not matter here.
        if (zero_flag || host_offset == 0) {
          CDI_RETURN_IF_ERROR(AddZero(guest_offset, guest_length));
          continue;
        }
        CDI_RETURN_IF_ERROR(check_host(host_offset + guest_length));
        CDI_RETURN_IF_ERROR(AddRun({host_offset, guest_offset, guest_length, 0, false}));
        continue;
      }

      // Subcluster Allocation Bitmap: bit x allocated, bit 32+x reads as zeros.
      const uint64_t allocated = bitmap & kSubclusterAllocMask;
      const uint64_t zeroes = bitmap >> kSubclusterZeroShift;
      if (allocated & zeroes) {
        return bad("marks subclusters both allocated and zero (bitmap " + Hex(bitmap) + ")");
      }
      if (allocated != 0 && host_offset == 0) {
        return bad("has allocated subclusters (bitmap " + Hex(bitmap) + ") but no host offset");
      }
      const uint64_t subcluster = geometry_.subcluster_size();
      for (uint32_t s = 0; s < kSubclustersPerCluster; ++s) {
        const uint64_t sub_guest = guest_offset + s * subcluster;
        if (sub_guest >= guest_offset + guest_length) break;
        const uint64_t sub_length = std::min(subcluster, guest_offset + guest_length - sub_guest);
        if (allocated & (uint64_t{1} << s)) {
          CDI_RETURN_IF_ERROR(check_host(host_offset + s * subcluster + sub_length));
          CDI_RETURN_IF_ERROR(
              AddRun({host_offset + s * subcluster, sub_guest, sub_length, 0, false}));
        } else {
          // Zero, or unallocated, which reads as zeros without a backing file.
          CDI_RETURN_IF_ERROR(AddZero(sub_guest, sub_length));
        }
      }
    }
    return FlushRun();
  }

  // Refcount block entries ("Host cluster management"): a refcount of 0 marks
  // a free cluster, which no table may refer to.
  Status ProcessRefcountBlock(uint64_t table_index, std::span<const uint8_t> block) {
    if (!refcounts_trusted_ || !ReferencesPossible()) return Status::Ok();
    const uint64_t entries = header_.refcount_block_entries();
    const uint32_t bits = 1u << header_.refcount_order;
    const uint64_t max_cluster = kMaxHostOffset >> geometry_.cluster_bits;
    uint64_t free_first = 0;
    uint64_t free_count = 0;
    for (uint64_t j = 0; j < entries; ++j) {
      // Whether refcount entry j is 0: metadata being parsed, not guest data.
      bool zero;
      if (bits >= 8) {
        zero = IsAllZero(block.subspan(static_cast<size_t>(j * bits / 8), bits / 8));
      } else {
        uint8_t byte = block[static_cast<size_t>(j * bits / 8)];
        zero = ((byte >> ((j * bits) % 8)) & ((1u << bits) - 1)) == 0;
      }
      uint64_t host_cluster = table_index * entries + j;
      if (host_cluster >= max_cluster) break;
      if (zero && free_count > 0 && free_first + free_count == host_cluster) {
        ++free_count;
        continue;
      }
      if (free_count > 0) AddFreeClusters(free_first, free_count);
      free_count = 0;
      if (zero) {
        free_first = host_cluster;
        free_count = 1;
      }
    }
    if (free_count > 0) AddFreeClusters(free_first, free_count);
    return Status::Ok();
  }

  // Records free host clusters ahead, and lets go of spooled ones behind.
  void AddFreeClusters(uint64_t first, uint64_t count) {
    uint64_t start = first << geometry_.cluster_bits;
    uint64_t end = (first + count) << geometry_.cluster_bits;
    if (start < position_) {
      uint64_t behind_end = std::min(end, position_);
      // Take only what is stored whole: a free cluster that is also claimed
      // is a table error that the claim will report.
      for (uint64_t c = start; c < behind_end; c += cluster_size()) {
        if (spool_->AvailableLength(c, cluster_size()) == cluster_size()) {
          spool_->Take(c, cluster_size());
        }
      }
      start = behind_end;
    }
    if (start >= end || free_ranges_full_) return;
    // Coalesce with a range that ends here (blocks come in host order).
    if (!free_ranges_.empty()) {
      auto last = std::prev(free_ranges_.end());
      if (last->second == start) {
        last->second = end;
        return;
      }
    }
    if (!free_ranges_reservation_.Resize(&budget_, (free_ranges_.size() + 1) * kFreeRangeBytes,
                                         Reservation::Reclaim::kNo)) {
      free_ranges_full_ = true;  // an optimisation only: spool instead
      return;
    }
    free_ranges_.emplace(start, end);
  }

  // --- Data -------------------------------------------------------------------------

  // Coalesces contiguous standard runs of one L2 table, then registers them.
  Status AddRun(const Run& run) {
    if (pending_run_ && !run.compressed && !pending_run_->compressed &&
        pending_run_->host_end() == run.host_offset &&
        pending_run_->guest_offset + pending_run_->length == run.guest_offset) {
      pending_run_->length += run.length;
      return Status::Ok();
    }
    CDI_RETURN_IF_ERROR(FlushRun());
    pending_run_ = run;
    return Status::Ok();
  }

  Status FlushRun() {
    if (!pending_run_) return Status::Ok();
    Run run = *pending_run_;
    pending_run_.reset();
    if (run.host_offset >= position_) return PushRun(run);
    if (run.host_end() > position_) return Overlap(run.claim(), last_claim_);
    return run.compressed ? CompressedFromSpool(run) : DataFromSpool(run);
  }

  Status PushRun(const Run& run) {
    if (runs_.size() == runs_.capacity()) {
      size_t capacity = std::max<size_t>(64, runs_.capacity() * 2);
      if (!runs_reservation_.Resize(&budget_, capacity * sizeof(Run))) {
        CDI_RETURN_IF_ERROR(spool_->deferred_error());
        return budget_.Exhausted("the list of data clusters ahead",
                                 capacity * sizeof(Run) - runs_reservation_.bytes());
      }
      runs_.reserve(capacity);
    }
    runs_.push_back(run);
    std::push_heap(runs_.begin(), runs_.end(), LaterHost());
    return Status::Ok();
  }

  // A standard run whose bytes passed before its L2 table.
  Status DataFromSpool(const Run& run) {
    if (spool_->AvailableLength(run.host_offset, run.length) < run.length) {
      return CorruptImageError("qcow2: " + ClaimText(run.claim()) +
                               " overlaps image metadata or data already mapped (a cluster "
                               "referenced twice)" +
                               kCheckAdvice);
    }
    for (uint64_t done = 0; done < run.length;) {
      uint64_t host = run.host_offset + done;
      uint64_t piece = std::min<uint64_t>(run.length - done, spool_buffer_.size());
      // The spool keeps all-zero stretches as ranges without bytes: they
      // come back as Zero rather than as zeros copied out to be written.
      if (spool_->IsZero(host, piece)) {
        CDI_RETURN_IF_ERROR(AddZero(run.guest_offset + done, piece));
      } else if (auto view = spool_->View(host, piece)) {
        CDI_RETURN_IF_ERROR(EmitData(run.guest_offset + done, view->bytes));
      } else {
        std::span<uint8_t> buffer(spool_buffer_.data(), static_cast<size_t>(piece));
        CDI_RETURN_IF_ERROR(spool_->Read(host, buffer));
        CDI_RETURN_IF_ERROR(EmitData(run.guest_offset + done, buffer));
      }
      done += piece;
    }
    spool_->Take(run.host_offset, run.length);
    spool_used_bytes_ += run.length;
    return Status::Ok();
  }

  // A compressed cluster whose bytes passed before its L2 table. The range
  // may run into a neighbour's bytes that were not spooled; the compressed
  // stream itself ends before them, so the stored prefix is what counts.
  Status CompressedFromSpool(const Run& run) {
    uint64_t available = spool_->AvailableLength(run.host_offset, run.length);
    if (available == 0) {
      return CorruptImageError("qcow2: " + ClaimText(run.claim()) +
                               " overlaps image metadata or data already mapped" + kCheckAdvice);
    }
    CDI_ASSIGN_OR_RETURN(std::unique_ptr<InflateJob> job, AcquireJob());
    job->guest_offset = run.guest_offset;
    job->guest_length = run.guest_length;
    job->host_offset = run.host_offset;
    job->input_size = static_cast<size_t>(available);
    CDI_RETURN_IF_ERROR(
        spool_->Read(run.host_offset, std::span<uint8_t>(job->input.data(), job->input_size)));
    spool_used_bytes_ += available;
    pool_->Submit(std::move(job));
    return Status::Ok();
  }

  Status StepData(std::span<const uint8_t>& bytes) {
    const uint64_t left = data_.host_end() - position_;
    const uint64_t count = std::min<uint64_t>(bytes.size(), left);
    const uint64_t guest = data_.guest_offset + (position_ - data_.host_offset);
    CDI_RETURN_IF_ERROR(EmitData(guest, bytes.first(static_cast<size_t>(count))));
    Consume(bytes, count);
    if (count == left) active_ = ClaimKind::kNone;
    return Status::Ok();
  }

  // Writes guest data as it is. Finding the zero blocks in it is the writer's
  // job (GuestWriter), so the data is not scanned here.
  Status EmitData(uint64_t guest, std::span<const uint8_t> data) {
    if (data.empty()) return Status::Ok();
    covered_bytes_ += data.size();
    return writer_->Write(guest, data);
  }

  // Zero ranges are coalesced before they reach the writer.
  Status AddZero(uint64_t guest, uint64_t length) {
    if (length == 0) return Status::Ok();
    if (zero_length_ > 0 && zero_start_ + zero_length_ == guest) {
      zero_length_ += length;
      return Status::Ok();
    }
    CDI_RETURN_IF_ERROR(FlushZero());
    zero_start_ = guest;
    zero_length_ = length;
    return Status::Ok();
  }

  Status FlushZero() {
    if (zero_length_ == 0) return Status::Ok();
    uint64_t start = zero_start_;
    uint64_t length = zero_length_;
    zero_length_ = 0;
    covered_bytes_ += length;
    return writer_->Zero(start, length);
  }

  // --- Compressed clusters ------------------------------------------------------------

  Status ActivateCompressed() {
    Run run = PopRun();
    Claim claim = run.claim();
    // Another compressed cluster may start only in this one's last sector
    // ("Another compressed cluster may map to the tail of the final sector
    // used by this compressed cluster").
    for (const Collector& other : collectors_) {
      if (run.host_offset == other.run.host_offset ||
          run.host_offset + kSectorSize < other.run.host_end()) {
        return Overlap(claim, other.run.claim());
      }
    }
    Claim after = PeekNext();
    if (after.kind != ClaimKind::kNone && after.start < claim.end &&
        (after.kind != ClaimKind::kCompressed || after.start + kSectorSize < claim.end)) {
      return Overlap(after, claim);
    }
    CDI_ASSIGN_OR_RETURN(std::unique_ptr<InflateJob> job, AcquireJob());
    job->guest_offset = run.guest_offset;
    job->guest_length = run.guest_length;
    job->host_offset = run.host_offset;
    job->input_size = 0;
    Collector collector;
    collector.run = run;
    collector.job = std::move(job);
    collectors_.push_back(std::move(collector));
    last_claim_ = claim;
    active_ = ClaimKind::kCompressed;
    return Status::Ok();
  }

  Status StepCompressed(std::span<const uint8_t>& bytes) {
    Claim next = PeekNext();
    if (next.kind != ClaimKind::kNone && next.start <= position_) {
      if (next.start < position_ || next.kind != ClaimKind::kCompressed) {
        return Overlap(next, collectors_.front().run.claim());
      }
      return ActivateCompressed();
    }
    uint64_t limit = next.kind != ClaimKind::kNone ? next.start : UINT64_MAX;
    for (const Collector& c : collectors_) limit = std::min(limit, c.run.host_end());
    const uint64_t count = std::min<uint64_t>(bytes.size(), limit - position_);
    std::span<const uint8_t> piece = bytes.first(static_cast<size_t>(count));
    for (Collector& c : collectors_) {
      std::memcpy(c.job->input.data() + (position_ - c.run.host_offset), piece.data(),
                  piece.size());
      c.job->input_size += piece.size();
    }
    Consume(bytes, count);
    for (size_t i = 0; i < collectors_.size();) {
      if (collectors_[i].run.host_end() == position_) {
        Submit(collectors_[i]);
        collectors_.erase(collectors_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    if (collectors_.empty()) active_ = ClaimKind::kNone;
    return Status::Ok();
  }

  // Hands a gathered cluster to the pool. The descriptor's range runs to the
  // end of a sector, past the compressed stream; the bytes after the stream
  // may begin a cluster whose table is still to come. They are kept once the
  // stream's length is known (EmitJob), up to where the next known cluster
  // starts.
  void Submit(Collector& collector) {
    InflateJob& job = *collector.job;
    job.keep_until = 0;
    if (ReferencesPossible()) {
      job.keep_until = collector.run.host_end();
      for (const Collector& other : collectors_) {
        if (other.run.host_offset > collector.run.host_offset) {
          job.keep_until = std::min(job.keep_until, other.run.host_offset);
        }
      }
      ++keeps_in_flight_;
    }
    pool_->Submit(std::move(collector.job));
  }

  // Tables may refer to kept bytes: they must be in the spool first.
  Status SettleKeptBytes() {
    if (keeps_in_flight_ > 0) return CollectDone(Wait::kAll);
    return Status::Ok();
  }

  // A job with its buffers, waiting for a running one to finish if need be.
  Result<std::unique_ptr<InflateJob>> AcquireJob() {
    if (!pool_) {
      pool_ =
          std::make_unique<InflatePool>(header_.compression_type, geometry_.cluster_bits, workers_);
      if (!inflater_reservation_.Resize(
              &budget_, workers_ * ClusterInflater::MemoryBound(header_.compression_type,
                                                                geometry_.cluster_bits))) {
        return budget_.Exhausted("decompression contexts", 0);
      }
    }
    while (free_jobs_.empty()) {
      // Beyond the usual number of jobs only when every job is gathering
      // bytes (compressed clusters sharing a sector need one each).
      bool may_create = jobs_created_ < max_jobs_ || pool_->in_flight() == 0;
      if (may_create && job_reservation_.Resize(&budget_, (jobs_created_ + 1) * job_bytes_)) {
        auto job = std::make_unique<InflateJob>();
        job->input.resize(2 * cluster_size() + kSectorSize);
        job->output.resize(cluster_size());
        ++jobs_created_;
        return job;
      }
      if (pool_->in_flight() == 0) {
        CDI_RETURN_IF_ERROR(spool_->deferred_error());
        return budget_.Exhausted("compressed clusters being gathered", job_bytes_);
      }
      CDI_RETURN_IF_ERROR(EmitJob(pool_->WaitDone()));
    }
    std::unique_ptr<InflateJob> job = std::move(free_jobs_.back());
    free_jobs_.pop_back();
    job->keep_until = 0;
    job->consumed = 0;
    return job;
  }

  Status EmitJob(std::unique_ptr<InflateJob> job) {
    if (job->keep_until != 0) {
      --keeps_in_flight_;
      const uint64_t stream_end = job->host_offset + job->consumed;
      if (job->status.ok() && stream_end < job->keep_until && ReferencesPossible()) {
        CDI_RETURN_IF_ERROR(
            spool_->Insert(stream_end, std::span<const uint8_t>(job->input.data() + job->consumed,
                                                                job->keep_until - stream_end)));
      }
    }
    if (!job->status.ok()) {
      return CorruptImageError("qcow2: the compressed cluster for guest offset " +
                               Hex(job->guest_offset) + " at host offset " + Hex(job->host_offset) +
                               ": " + job->status.message() + kCheckAdvice);
    }
    CDI_RETURN_IF_ERROR(EmitData(job->guest_offset,
                                 std::span<const uint8_t>(job->output.data(), job->guest_length)));
    free_jobs_.push_back(std::move(job));
    return Status::Ok();
  }

  // Writes what the workers have finished; with kAll, waits for all of it.
  enum class Wait { kNo, kAll };
  Status CollectDone(Wait wait) {
    while (auto job = pool_->TryTakeDone()) CDI_RETURN_IF_ERROR(EmitJob(std::move(job)));
    while (wait == Wait::kAll && pool_->in_flight() > 0) {
      CDI_RETURN_IF_ERROR(EmitJob(pool_->WaitDone()));
    }
    return Status::Ok();
  }

  // --- End of input --------------------------------------------------------------------

  Status Truncated(const Claim& claim) {
    return CorruptImageError("qcow2 image is truncated: it ends after " +
                             std::to_string(position_) + " bytes, but " + ClaimText(claim) +
                             " needs bytes up to " + Hex(claim.end) +
                             "; fetch the complete image again");
  }

  Status FinishImpl() {
    if (!header_done_) {
      return CorruptImageError("qcow2 image is truncated: it ends after " +
                               std::to_string(position_) +
                               " bytes, inside its header; fetch the complete image again");
    }
    // The last compressed cluster's range may end in a sector the file does
    // not fully hold; its compressed stream must then end in the bytes it has.
    for (Collector& c : collectors_) {
      if (position_ + kSectorSize <= c.run.host_end()) return Truncated(c.run.claim());
    }
    for (Collector& c : collectors_) pool_->Submit(std::move(c.job));  // nothing follows
    collectors_.clear();
    if (active_ == ClaimKind::kCompressed) active_ = ClaimKind::kNone;
    if (active_ != ClaimKind::kNone) {
      Claim claim = last_claim_;
      if (active_ == ClaimKind::kData) claim = data_.claim();
      return Truncated(claim);
    }
    Claim next = PeekNext();
    if (next.kind != ClaimKind::kNone) return Truncated(next);
    if (options_.container_size && position_ < *options_.container_size) {
      return CorruptImageError(
          "qcow2 image is truncated: it ends after " + std::to_string(position_) + " of its " +
          std::to_string(*options_.container_size) + " bytes; fetch the complete image again");
    }
    if (pool_) CDI_RETURN_IF_ERROR(CollectDone(Wait::kAll));
    CDI_RETURN_IF_ERROR(FlushZero());
    if (covered_bytes_ != header_.virtual_size) {
      return InternalError("qcow2 decoder covered " + std::to_string(covered_bytes_) +
                           " bytes of a virtual size of " + std::to_string(header_.virtual_size));
    }
    finished_ = true;
    auto& details = description_.details;
    details.emplace_back("spooling", spool_used_bytes_ > 0 ? "needed" : "not needed");
    details.emplace_back("spooled bytes", std::to_string(spool_->stored_bytes()));
    details.emplace_back("spooled bytes on disk", std::to_string(spool_->scratch_bytes()));
    details.emplace_back("peak memory", std::to_string(budget_.peak()));
    spool_->Clear();
    return Status::Ok();
  }

  static constexpr uint64_t kFreeRangeBytes = 64;  // one map node

  GuestWriter* writer_;
  DecoderOptions options_;
  MemoryBudget budget_;
  Status failure_;
  bool finished_ = false;
  ImageDescription description_;

  // Header.
  bool header_done_ = false;
  std::vector<uint8_t> header_bytes_;
  uint64_t header_needed_ = 8;
  Reservation header_reservation_;
  Header header_;
  Geometry geometry_;

  uint64_t position_ = 0;  // host offset of the next input byte

  // Claims not yet reached.
  EntryTable l1_;
  EntryTable refcount_table_;
  std::vector<TableRef> pending_l2_;  // sorted once the L1 table is read
  size_t next_l2_ = 0;
  Reservation pending_l2_reservation_;
  std::vector<TableRef> pending_refblocks_;  // sorted once the refcount table is read
  size_t next_refblock_ = 0;
  Reservation pending_refblocks_reservation_;
  SnapshotTable snapshots_;
  std::vector<Extent> snapshot_l1s_;  // sorted once the snapshot table is read
  size_t next_snapshot_l1_ = 0;
  Reservation snapshot_l1s_reservation_;
  std::vector<Run> runs_;  // min-heap by host offset
  Reservation runs_reservation_;
  std::optional<Run> pending_run_;

  // The claim being read.
  ClaimKind active_ = ClaimKind::kNone;
  Claim last_claim_;
  uint64_t table_index_ = 0;
  uint64_t table_filled_ = 0;
  Run data_;
  std::vector<Collector> collectors_;

  // Buffers.
  Reservation fixed_reservation_;
  std::vector<uint8_t> table_buffer_;
  std::vector<uint8_t> spool_buffer_;

  // Out-of-order data and free clusters.
  std::unique_ptr<Spool> spool_;
  bool spool_released_ = false;
  uint64_t spool_used_bytes_ = 0;
  bool refcounts_trusted_ = true;
  std::map<uint64_t, uint64_t> free_ranges_;  // start -> end, ahead of position_
  Reservation free_ranges_reservation_;
  bool free_ranges_full_ = false;

  // Output.
  uint64_t zero_start_ = 0;
  uint64_t zero_length_ = 0;
  uint64_t covered_bytes_ = 0;

  // Decompression.
  unsigned workers_ = 1;
  uint64_t job_bytes_ = 0;
  uint64_t max_jobs_ = 1;
  uint64_t jobs_created_ = 0;
  Reservation job_reservation_;
  Reservation inflater_reservation_;
  uint64_t keeps_in_flight_ = 0;  // jobs whose trailing bytes go to the spool
  std::vector<std::unique_ptr<InflateJob>> free_jobs_;
  std::unique_ptr<InflatePool> pool_;
};

}  // namespace
}  // namespace qcow2

std::unique_ptr<Decoder> MakeQcow2Decoder(GuestWriter* writer, const DecoderOptions& options) {
  return std::make_unique<qcow2::Qcow2Decoder>(writer, options);
}

}  // namespace cdi::formats
