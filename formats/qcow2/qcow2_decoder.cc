// The qcow2 decoder's driver: it owns the read position and hands each input
// byte to the collaborator whose claim covers it.
#include "formats/qcow2/qcow2_decoder.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/text.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/claim_queue.h"
#include "formats/qcow2/compressed_collector.h"
#include "formats/qcow2/gap_keeper.h"
#include "formats/qcow2/guest_output.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/qcow2_format.h"
#include "formats/qcow2/qcow2_header.h"
#include "formats/qcow2/resume_point.h"
#include "formats/qcow2/snapshot_table.h"
#include "formats/qcow2/spool.h"
#include "formats/qcow2/table_reader.h"
#include "formats/qcow2/taken_back_log.h"

namespace cdi::formats {
namespace qcow2 {
namespace {

// Memory kept free for the tables while the spool fills.
constexpr uint64_t kMinTableHeadroom = 256 << 10;

// A table of 8-byte entries spanning clusters (L1, refcount table), read as
// it streams past; an entry may be split across inputs.
struct EntryStream {
  uint64_t start = 0;
  uint64_t end = 0;
  uint8_t partial[kTableEntryBytes] = {};
  size_t partial_size = 0;
};

// How the decoder reads a file it sees once, in order.
//
// Every structure the header and the tables point to is a claim on a host
// range (claim.h). Claims wait in host order (ClaimQueue); when the input
// reaches a claim's start it becomes the active claim and its bytes are
// parsed (TableReader, SnapshotTableReader), written to the guest, gathered
// for inflation (CompressedCollector), or skipped. A claim that starts inside
// another one is an overlap: the image is corrupt.
//
// Bytes no claim covers are a gap (GapKeeper): kept while a table still to
// come may map them, dropped once nothing can. A table that maps bytes already
// passed takes them back from the gaps. Everything for the guest leaves
// through one GuestOutput.
class Qcow2Decoder final : public Decoder, private MappingSink {
 public:
  Qcow2Decoder(GuestWriter* writer, const DecoderOptions& options,
               std::optional<Qcow2Resume> resume = std::nullopt)
      : options_(options),
        budget_(options.memory_budget),
        output_(writer),
        resume_(std::move(resume)) {}

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!failure_.ok()) return failure_;
    if (finished_) return Fail(InternalError("qcow2 decoder: Feed() called after Finish()"));
    Status status = Prime();
    if (status.ok()) status = FeedImpl(bytes);
    if (!status.ok()) return Fail(std::move(status));
    return status;
  }

  Status Finish() override {
    if (!failure_.ok()) return failure_;
    if (finished_) return Fail(InternalError("qcow2 decoder: Finish() called twice"));
    Status status = Prime();
    if (status.ok()) status = FinishImpl();
    if (!status.ok()) return Fail(std::move(status));
    return status;
  }

  ImageDescription Describe() const override { return description_; }

  Result<std::optional<ResumeAt>> ResumePoint() override {
    if (!failure_.ok()) return failure_;
    Result<std::optional<ResumeAt>> point = ResumePointImpl();
    if (!point.ok()) return Fail(point.status());
    return point;
  }

 private:
  Status Fail(Status status) {
    failure_ = status;
    // Stop the workers; nothing they finish is written any more.
    if (collector_) collector_->Stop();
    return status;
  }

  uint64_t cluster_size() const { return header_.cluster_size(); }

  void Consume(std::span<const uint8_t>& bytes, uint64_t count) {
    bytes = bytes.subspan(static_cast<size_t>(count));
    position_ += count;
  }

  // A list of claims that outgrew the memory budget: the spool's failure to
  // make room, if it had one, says more.
  Status OrSpillError(Status status) const {
    if (!status.ok()) CDI_RETURN_IF_ERROR(gaps_->spill_error());
    return status;
  }

  // --- Input and header -----------------------------------------------------------

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
    if (collector_) CDI_RETURN_IF_ERROR(collector_->CollectDone(CompressedCollector::Wait::kNo));
    return Status::Ok();
  }

  // Gathers the first bytes until the header and its extensions are complete.
  Status FeedHeader(std::span<const uint8_t>& bytes) {
    size_t take = static_cast<size_t>(
        std::min<uint64_t>(bytes.size(), header_needed_ - header_bytes_.size()));
    header_bytes_.insert(header_bytes_.end(), bytes.begin(), bytes.begin() + take);
    Consume(bytes, take);
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

  // The header is valid: make the collaborators, describe the image, call Begin.
  Status Start(const Header& header) {
    header_ = header;
    header_done_ = true;
    header_bytes_.clear();
    header_bytes_.shrink_to_fit();
    header_reservation_.Reset();

    const Geometry& geometry = header.geometry;
    const uint64_t cluster = cluster_size();
    const uint64_t buffers = 2 * cluster;  // the table buffer and the gaps' replay buffer
    const uint64_t minimum = buffers +
                             CompressedCollector::MinimumMemory(geometry, header.compression_type) +
                             kMinTableHeadroom;
    if (budget_.budget() < minimum) {
      return InvalidArgumentError("the memory budget of " + std::to_string(budget_.budget()) +
                                  " bytes is too small to decode a qcow2 image with " +
                                  std::to_string(cluster) + "-byte clusters; at least " +
                                  std::to_string(minimum) +
                                  " bytes are needed: raise the memory budget");
    }
    if (!table_reservation_.Resize(&budget_, cluster)) {
      return budget_.Exhausted("cluster buffers", cluster);
    }
    table_buffer_.resize(cluster);

    reader_.emplace(header, options_.container_size);
    snapshots_.emplace(header, options_.container_size);
    queue_ = std::make_unique<ClaimQueue>(header, &budget_);
    l1_.start = header.l1_table_offset;
    l1_.end = header.l1_table_offset + header.l1_bytes();
    refcount_table_.start = header.refcount_table_offset;
    refcount_table_.end = header.refcount_table_offset + header.refcount_table_bytes();

    Spool::Options spool_options;
    spool_options.budget = &budget_;
    spool_options.scratch_dir = options_.scratch_dir;
    spool_options.unit_size = geometry.subcluster_size();
    spool_options.block_size = std::max<uint64_t>(cluster, 64 << 10);
    spool_options.keep_free = std::max(kMinTableHeadroom, budget_.budget() / 8);
    // Refcounts name free clusters, which no table can refer to; the dirty
    // bit says they "may be inconsistent", so they are then not used.
    CDI_ASSIGN_OR_RETURN(gaps_, GapKeeper::Create(spool_options, queue_.get(),
                                                  geometry.cluster_bits, !header.dirty()));

    CompressedCollector::Options collector_options;
    collector_options.geometry = geometry;
    collector_options.compression_type = header.compression_type;
    collector_options.threads = options_.threads;
    collector_options.keep_free = kMinTableHeadroom;
    collector_ =
        std::make_unique<CompressedCollector>(collector_options, &budget_, gaps_.get(), &output_);

    description_ = DescribeHeader(header);
    return output_.Begin(description_);
  }

  // --- Dispatch ----------------------------------------------------------------------

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
    Claim next = queue_->Peek();
    if (next.kind != ClaimKind::kNone) {
      if (next.start < position_) return OverlapError(next, last_claim_);
      if (next.start == position_) return Activate(next);
    }
    // Bytes no claim covers.
    uint64_t gap_end = next.kind != ClaimKind::kNone ? next.start : UINT64_MAX;
    uint64_t count = std::min<uint64_t>(bytes.size(), gap_end - position_);
    CDI_ASSIGN_OR_RETURN(uint64_t taken,
                         gaps_->Take(position_, bytes.first(static_cast<size_t>(count))));
    Consume(bytes, taken);
    return Status::Ok();
  }

  // Makes `next` (which starts at position_) the active claim.
  Status Activate(const Claim& next) {
    if (next.kind == ClaimKind::kL1 || next.kind == ClaimKind::kL2) {
      CDI_RETURN_IF_ERROR(collector_->SettleKeptBytes());
    }
    switch (next.kind) {
      case ClaimKind::kL1:
      case ClaimKind::kRefcountTable:
      case ClaimKind::kSnapshotTable:
        queue_->Reach(next.kind);
        break;
      case ClaimKind::kRefcountBlock:
      case ClaimKind::kL2:
        table_index_ = queue_->PopTable(next.kind).index;
        table_filled_ = 0;
        break;
      case ClaimKind::kData:
        data_ = queue_->PopRun();
        break;
      case ClaimKind::kCompressed: {
        CDI_ASSIGN_OR_RETURN(last_claim_, collector_->Activate(*queue_));
        active_ = ClaimKind::kCompressed;
        return Status::Ok();
      }
      case ClaimKind::kSnapshotL1:
        queue_->PopSnapshotL1();
        break;
      case ClaimKind::kNone:
        return InternalError("qcow2 decoder: activating nothing");
    }
    last_claim_ = next;
    // Nothing else may start inside this range.
    Claim after = queue_->Peek();
    if (after.kind != ClaimKind::kNone && after.start < next.end) return OverlapError(after, next);
    active_ = next.kind;
    return Status::Ok();
  }

  // Bytes of a claimed range that carry nothing for the guest.
  Status StepSkip(std::span<const uint8_t>& bytes) {
    uint64_t count = std::min<uint64_t>(bytes.size(), last_claim_.end - position_);
    Consume(bytes, count);
    if (position_ == last_claim_.end) active_ = ClaimKind::kNone;
    return Status::Ok();
  }

  // --- L1 table and refcount table -------------------------------------------------------

  Status StepEntryTable(std::span<const uint8_t>& bytes) {
    EntryStream& table = active_ == ClaimKind::kL1 ? l1_ : refcount_table_;
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
        CDI_RETURN_IF_ERROR(PlaceL1Entry(index, entry));
      } else {
        CDI_RETURN_IF_ERROR(PlaceRefcountTableEntry(index, entry));
      }
    }
    if (position_ < table.end) return Status::Ok();
    const ClaimKind kind = active_;
    active_ = ClaimKind::kNone;
    CDI_RETURN_IF_ERROR(queue_->FinishTable(kind));
    if (kind == ClaimKind::kL1) gaps_->ReleaseIfDone();
    return Status::Ok();
  }

  // The L2 table an L1 entry names: waited for when ahead, read at once from
  // the gaps when it passed before the L1 table.
  Status PlaceL1Entry(uint64_t index, uint64_t entry) {
    CDI_ASSIGN_OR_RETURN(L1Mapping mapping, reader_->ReadL1Entry(index, entry));
    if (mapping.kind == L1Mapping::Kind::kPastDisk) return Status::Ok();
    if (mapping.kind == L1Mapping::Kind::kZero) {
      return output_.Zero(mapping.guest_offset, mapping.guest_length);
    }
    const uint64_t l2_offset = mapping.l2_offset;
    const uint64_t l2_end = l2_offset + cluster_size();
    if (l2_offset >= position_) return OrSpillError(queue_->PushL2Table({l2_offset, index}));
    if (l2_end > position_) {
      return OverlapError({ClaimKind::kL2, l2_offset, l2_end, mapping.guest_offset}, last_claim_);
    }
    if (!gaps_->Holds(l2_offset, cluster_size())) {
      if (gaps_->MarkedFree(l2_offset, cluster_size())) {
        return GapKeeper::FreeButMapped("the L2 table at host offset " + Hex(l2_offset) + " (L1 entry " +
                                        std::to_string(index) + ")");
      }
      return reader_->L1EntryError(index, entry,
                                   "points to an L2 table at " + Hex(l2_offset) +
                                       " that overlaps other metadata or is referenced twice");
    }
    taken_back_.Note(position_, l2_offset);
    CDI_RETURN_IF_ERROR(gaps_->TakeBack(l2_offset, table_buffer_));
    const Claim l1_claim = last_claim_;
    last_claim_ = {ClaimKind::kL2, l2_offset, l2_end, mapping.guest_offset};
    CDI_RETURN_IF_ERROR(reader_->ReadL2Table(l2_offset, index, table_buffer_, *this));
    last_claim_ = l1_claim;
    return Status::Ok();
  }

  // The refcount block an entry names: waited for when ahead; when it passed
  // earlier (the refcount table moved when it grew), what of it was kept can go.
  Status PlaceRefcountTableEntry(uint64_t index, uint64_t entry) {
    CDI_ASSIGN_OR_RETURN(uint64_t block, reader_->ReadRefcountTableEntry(index, entry));
    if (block == 0) return Status::Ok();
    if (block >= position_) return OrSpillError(queue_->PushRefcountBlock({block, index}));
    if (block + cluster_size() > position_) {
      return OverlapError({ClaimKind::kRefcountBlock, block, block + cluster_size(), 0},
                          last_claim_);
    }
    gaps_->Drop(block, cluster_size());
    return Status::Ok();
  }

  // --- Internal snapshots ------------------------------------------------------------------

  Status StepSnapshotTable(std::span<const uint8_t>& bytes) {
    while (!bytes.empty() && !snapshots_->done()) {
      CDI_ASSIGN_OR_RETURN(uint64_t used, snapshots_->Read(position_, bytes));
      Consume(bytes, used);
      if (std::optional<Extent> l1 = snapshots_->TakeL1Table()) {
        if (l1->start >= position_) {
          CDI_RETURN_IF_ERROR(queue_->PushSnapshotL1(*l1));
        } else if (l1->end <= position_) {
          gaps_->Drop(l1->start, l1->end - l1->start);  // it passed earlier: no need to keep it
        }
      }
    }
    if (!snapshots_->done()) return Status::Ok();
    last_claim_.end = position_;
    active_ = ClaimKind::kNone;
    return queue_->FinishTable(ClaimKind::kSnapshotTable);
  }

  // --- L2 tables and refcount blocks ----------------------------------------------------

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
    const ClaimKind kind = active_;
    active_ = ClaimKind::kNone;
    if (kind == ClaimKind::kRefcountBlock) {
      if (gaps_->wants_free_clusters()) {
        reader_->ReadRefcountBlock(table_index_, table, [this](uint64_t first, uint64_t count) {
          gaps_->AddFreeClusters(first, count, position_);
        });
      }
      return Status::Ok();
    }
    CDI_RETURN_IF_ERROR(reader_->ReadL2Table(start, table_index_, table, *this));
    gaps_->ReleaseIfDone();
    return Status::Ok();
  }

  // MappingSink: what an L2 table maps. Data ahead waits for its bytes; data
  // that passed before its table comes back from the gaps.
  Status MapRun(const Run& run) override {
    if (priming_ && run.host_offset < resume_->at) return MapKeptRun(run);
    if (run.host_offset >= position_) return OrSpillError(queue_->PushRun(run));
    if (run.host_end() > position_) return OverlapError(run.claim(), last_claim_);
    taken_back_.Note(position_, run.host_offset);
    return run.compressed ? collector_->FromGaps(run) : gaps_->Replay(run, output_);
  }

  Status MapZero(uint64_t guest_offset, uint64_t length) override {
    return output_.Zero(guest_offset, length);
  }

  // --- Data ----------------------------------------------------------------------------------

  Status StepData(std::span<const uint8_t>& bytes) {
    const uint64_t left = data_.host_end() - position_;
    const uint64_t count = std::min<uint64_t>(bytes.size(), left);
    const uint64_t guest = data_.guest_offset + (position_ - data_.host_offset);
    CDI_RETURN_IF_ERROR(output_.Write(guest, bytes.first(static_cast<size_t>(count))));
    Consume(bytes, count);
    if (count == left) active_ = ClaimKind::kNone;
    return Status::Ok();
  }

  Status StepCompressed(std::span<const uint8_t>& bytes) {
    CDI_ASSIGN_OR_RETURN(uint64_t used, collector_->Step(*queue_, position_, bytes, &last_claim_));
    Consume(bytes, used);
    if (!collector_->gathering()) active_ = ClaimKind::kNone;
    return Status::Ok();
  }

  // --- Continuing an earlier import (resume_point.h) ---------------------------------

  // Before the first input of a continued image: the metadata before the
  // resume point, fed at its host offsets, the bytes between them skipped.
  Status Prime() {
    if (!resume_ || primed_) return Status::Ok();
    primed_ = true;
    priming_ = true;
    for (const HostBytes& piece : resume_->metadata) {
      if (piece.offset < position_ || piece.offset + piece.bytes.size() > resume_->at) {
        return InternalError("qcow2 resume: metadata at host offset " + Hex(piece.offset) +
                             " out of order or past the resume point");
      }
      CDI_RETURN_IF_ERROR(SkipTo(piece.offset));
      CDI_RETURN_IF_ERROR(FeedImpl(piece.bytes));
    }
    CDI_RETURN_IF_ERROR(SkipTo(resume_->at));
    priming_ = false;
    resume_->metadata.clear();
    resume_->metadata.shrink_to_fit();
    return Status::Ok();
  }

  // Advances the input to `target` without its bytes: gaps are not kept,
  // refcount structures and snapshots not read. Tables the continued image
  // needs must have been fed.
  Status SkipTo(uint64_t target) {
    if (position_ < target && !header_done_) {
      return InternalError("qcow2 resume: the header was not fed whole");
    }
    while (position_ < target) {
      if (position_ < cluster_size()) {
        position_ = std::min(target, cluster_size());
        continue;
      }
      if (active_ == ClaimKind::kSnapshotL1) {
        position_ = std::min(target, last_claim_.end);
        if (position_ == last_claim_.end) active_ = ClaimKind::kNone;
        continue;
      }
      if (active_ != ClaimKind::kNone) {
        return InternalError("qcow2 resume: the metadata at host offset " + Hex(last_claim_.start) +
                             " was not fed whole");
      }
      const Claim next = queue_->Peek();
      if (next.kind == ClaimKind::kNone || next.start >= target) {
        position_ = target;
        break;
      }
      if (next.start > position_) {
        position_ = next.start;
        continue;
      }
      if (next.start < position_) return OverlapError(next, last_claim_);
      switch (next.kind) {
        case ClaimKind::kRefcountTable:
          queue_->Reach(next.kind);
          CDI_RETURN_IF_ERROR(queue_->FinishTable(next.kind));
          break;
        case ClaimKind::kSnapshotTable:
          queue_->Reach(next.kind);
          CDI_RETURN_IF_ERROR(queue_->FinishTable(next.kind));
          continue;  // its length is not known unread: what follows is skipped as a gap
        case ClaimKind::kRefcountBlock:
          queue_->PopTable(next.kind);
          break;
        case ClaimKind::kSnapshotL1:
          queue_->PopSnapshotL1();
          break;
        default:
          return InternalError("qcow2 resume: " + ClaimText(next) +
                               " lies before the resume point and was not fed");
      }
      last_claim_ = next;
      position_ = std::min(target, next.end);
    }
    return Status::Ok();
  }

  // A run an L2 table fed before the resume point maps below it: written by
  // the earlier import up to the resume point; the rest is still to come.
  Status MapKeptRun(const Run& run) {
    if (run.compressed) return output_.Kept(run.guest_offset, run.guest_length);
    const uint64_t kept = std::min(run.length, resume_->at - run.host_offset);
    CDI_RETURN_IF_ERROR(output_.Kept(run.guest_offset, kept));
    if (kept == run.length) return Status::Ok();
    Run rest = run;
    rest.host_offset += kept;
    rest.guest_offset += kept;
    rest.length -= kept;
    return OrSpillError(queue_->PushRun(rest));
  }

  Result<std::optional<ResumeAt>> ResumePointImpl() {
    const std::optional<ResumeAt> none;
    if (!header_done_ || finished_ || priming_ || position_ < cluster_size()) return none;
    // Cheap first: bytes kept at the start of the image allow no point.
    if (gaps_->spool().FirstHeld(0).value_or(UINT64_MAX) < cluster_size()) return none;
    // What the workers finished is written; the point goes before the
    // clusters they are still inflating (a continued decoder gathers them
    // again), so that asking for a point does not stall them. A cluster
    // inflated from the gaps' bytes is waited for: they are no longer held.
    CDI_RETURN_IF_ERROR(collector_->CollectDone(collector_->inflating_from_gaps()
                                                    ? CompressedCollector::Wait::kAll
                                                    : CompressedCollector::Wait::kNo));
    CDI_RETURN_IF_ERROR(output_.Flush());
    uint64_t at = position_;
    switch (active_) {
      case ClaimKind::kNone:
      case ClaimKind::kData:  // written up to here; the rest of the run follows
      case ClaimKind::kCompressed:
        break;
      default:  // a table read in part: read again
        at = last_claim_.start;
        break;
    }
    if (std::optional<uint64_t> unwritten = collector_->FirstUnwritten())
      at = std::min(at, *unwritten);
    at = taken_back_.Before(at);
    // What waits in the spool before the point goes with it (the next
    // import fetches it again), when it is little; otherwise the point
    // moves before it. The rest of the L1 table's last cluster is fed again
    // anyway (resume_point.h).
    const Spool& spool = gaps_->spool();
    const uint64_t l1_end = header_.l1_table_offset + header_.l1_bytes();
    const uint64_t l1_cluster_end = (l1_end + cluster_size() - 1) / cluster_size() * cluster_size();
    std::optional<std::vector<std::pair<uint64_t, uint64_t>>> held =
        spool.HeldBefore(at, kMaxHeldRanges, kMaxHeldBytes);
    if (held) {
      std::vector<std::pair<uint64_t, uint64_t>> kept;
      for (auto [start, end] : *held) {
        // Cut out [l1_end, l1_cluster_end).
        if (start < l1_end) kept.emplace_back(start, std::min(end, l1_end));
        if (end > l1_cluster_end) kept.emplace_back(std::max(start, l1_cluster_end), end);
      }
      held = std::move(kept);
    } else {
      std::optional<uint64_t> first = spool.FirstHeld(0);
      if (first && *first >= l1_end && *first < l1_cluster_end) first = spool.FirstHeld(l1_cluster_end);
      if (first) at = taken_back_.Before(std::min(at, *first));
      held.emplace();
    }
    if (at < cluster_size()) return none;
    return std::optional<ResumeAt>(ResumeAt{at, std::move(*held)});
  }

  // --- End of input ----------------------------------------------------------------------------

  Status FinishImpl() {
    if (!header_done_) {
      return CorruptImageError("qcow2 image is truncated: it ends after " +
                               std::to_string(position_) +
                               " bytes, inside its header; fetch the complete image again");
    }
    CDI_RETURN_IF_ERROR(collector_->EndOfInput(position_));
    if (active_ == ClaimKind::kCompressed) active_ = ClaimKind::kNone;
    if (active_ != ClaimKind::kNone) {
      Claim claim = last_claim_;
      if (active_ == ClaimKind::kData) claim = data_.claim();
      return TruncatedError(position_, claim);
    }
    Claim next = queue_->Peek();
    if (next.kind != ClaimKind::kNone) return TruncatedError(position_, next);
    if (options_.container_size && position_ < *options_.container_size) {
      return CorruptImageError(
          "qcow2 image is truncated: it ends after " + std::to_string(position_) + " of its " +
          std::to_string(*options_.container_size) + " bytes; fetch the complete image again");
    }
    CDI_RETURN_IF_ERROR(collector_->CollectDone(CompressedCollector::Wait::kAll));
    CDI_RETURN_IF_ERROR(output_.Flush());
    if (output_.covered() != header_.virtual_size) {
      return InternalError("qcow2 decoder covered " + std::to_string(output_.covered()) +
                           " bytes of a virtual size of " + std::to_string(header_.virtual_size));
    }
    finished_ = true;
    auto& details = description_.details;
    details.emplace_back("spooling", gaps_->replayed_bytes() > 0 ? "needed" : "not needed");
    details.emplace_back("spooled bytes", std::to_string(gaps_->spool().stored_bytes()));
    details.emplace_back("spooled bytes on disk", std::to_string(gaps_->spool().scratch_bytes()));
    details.emplace_back("peak memory", std::to_string(budget_.peak()));
    gaps_->Clear();
    return Status::Ok();
  }

  DecoderOptions options_;
  MemoryBudget budget_;  // first: every reservation below goes back to it
  GuestOutput output_;

  // A continued image: the resume point and its metadata, fed by Prime().
  std::optional<Qcow2Resume> resume_;
  bool primed_ = false;
  bool priming_ = false;
  // Tables that took back bytes which passed before them.
  qcow2::TakenBackLog taken_back_;
  // What a resume point may carry of the spool (ResumeAt::held): the next
  // import fetches it again, so a little, in a few ranges (the ends of host
  // clusters after compressed data, say).
  static constexpr size_t kMaxHeldRanges = 256;
  static constexpr uint64_t kMaxHeldBytes = 4ull << 20;
  Status failure_;
  bool finished_ = false;
  ImageDescription description_;

  // Header.
  bool header_done_ = false;
  std::vector<uint8_t> header_bytes_;
  uint64_t header_needed_ = 8;
  Reservation header_reservation_;
  Header header_;

  uint64_t position_ = 0;  // host offset of the next input byte

  // Readers of the tables.
  std::optional<TableReader> reader_;
  std::optional<SnapshotTableReader> snapshots_;
  EntryStream l1_;
  EntryStream refcount_table_;
  Reservation table_reservation_;
  std::vector<uint8_t> table_buffer_;  // an L2 table or refcount block split across inputs

  // The claim being read.
  ClaimKind active_ = ClaimKind::kNone;
  Claim last_claim_;
  uint64_t table_index_ = 0;
  uint64_t table_filled_ = 0;
  Run data_;

  // In destruction order from the bottom: the collector's workers stop
  // first; the gaps use the queue.
  std::unique_ptr<ClaimQueue> queue_;
  std::unique_ptr<GapKeeper> gaps_;
  std::unique_ptr<CompressedCollector> collector_;
};

}  // namespace
}  // namespace qcow2

std::unique_ptr<Decoder> MakeQcow2Decoder(GuestWriter* writer, const DecoderOptions& options) {
  return std::make_unique<qcow2::Qcow2Decoder>(writer, options);
}

std::unique_ptr<Decoder> MakeResumedQcow2Decoder(GuestWriter* writer, const DecoderOptions& options,
                                                 Qcow2Resume resume) {
  return std::make_unique<qcow2::Qcow2Decoder>(writer, options, std::move(resume));
}

}  // namespace cdi::formats
