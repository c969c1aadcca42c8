#include "formats/qcow2/gap_keeper.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace cdi::formats::qcow2 {

Result<std::unique_ptr<GapKeeper>> GapKeeper::Create(const Spool::Options& spool_options,
                                                     const ClaimQueue* queue, uint32_t cluster_bits,
                                                     bool refcounts_trusted) {
  std::unique_ptr<GapKeeper> keeper(
      new GapKeeper(spool_options, queue, cluster_bits, refcounts_trusted));
  const uint64_t cluster_size = keeper->cluster_size();
  if (!keeper->buffer_reservation_.Resize(keeper->budget_, cluster_size)) {
    return keeper->budget_->Exhausted("cluster buffers", cluster_size);
  }
  keeper->buffer_.resize(cluster_size);
  return keeper;
}

GapKeeper::GapKeeper(const Spool::Options& spool_options, const ClaimQueue* queue,
                     uint32_t cluster_bits, bool refcounts_trusted)
    : queue_(queue),
      cluster_bits_(cluster_bits),
      refcounts_trusted_(refcounts_trusted),
      budget_(spool_options.budget),
      spool_(std::make_unique<Spool>(spool_options)) {
  budget_->set_reclaimer([this](uint64_t wanted) { return spool_->SpillMemory(wanted); });
}

GapKeeper::~GapKeeper() { budget_->set_reclaimer(nullptr); }

Result<uint64_t> GapKeeper::Take(uint64_t position, std::span<const uint8_t> bytes) {
  uint64_t count = bytes.size();
  if (!keeping()) return count;
  // Free clusters (refcount 0) hold nothing a table may refer to.
  while (!free_ranges_.empty() && free_ranges_.begin()->second <= position) {
    const auto [start, end] = *free_ranges_.begin();
    free_ranges_.erase(free_ranges_.begin());
    AddPassedFree(start, end);
    ReserveFreeRanges();
  }
  if (!free_ranges_.empty()) {
    const auto& [free_start, free_end] = *free_ranges_.begin();
    if (free_start <= position) return std::min(count, free_end - position);
    count = std::min(count, free_start - position);
  }
  CDI_RETURN_IF_ERROR(spool_->Append(position, bytes.first(static_cast<size_t>(count))));
  return count;
}

void GapKeeper::AddFreeClusters(uint64_t first, uint64_t count, uint64_t position) {
  uint64_t start = first << cluster_bits_;
  uint64_t end = (first + count) << cluster_bits_;
  if (start < position) {
    uint64_t behind_end = std::min(end, position);
    // Take only what is kept whole: a free cluster that is also claimed is
    // a table error that the claim will report.
    for (uint64_t c = start; c < behind_end; c += cluster_size()) Drop(c, cluster_size());
    AddPassedFree(start, behind_end);
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
  if (!free_ranges_reservation_.Resize(
          budget_, (free_ranges_.size() + passed_free_.size() + 1) * kFreeRangeBytes,
          Reservation::Reclaim::kNo)) {
    free_ranges_full_ = true;  // an optimisation only: keep instead
    return;
  }
  free_ranges_.emplace(start, end);
}

void GapKeeper::ReleaseIfDone() {
  if (!keeping() && !released_) {
    released_ = true;
    spool_->Clear();
    passed_free_.clear();
    ReserveFreeRanges();
  }
}

Status GapKeeper::TakeBack(uint64_t host_offset, std::span<uint8_t> out) {
  CDI_RETURN_IF_ERROR(spool_->Read(host_offset, out));
  spool_->Take(host_offset, out.size());
  replayed_bytes_ += out.size();
  return Status::Ok();
}

Status GapKeeper::Copy(uint64_t host_offset, std::span<uint8_t> out) {
  CDI_RETURN_IF_ERROR(spool_->Read(host_offset, out));
  replayed_bytes_ += out.size();
  return Status::Ok();
}

void GapKeeper::Drop(uint64_t host_offset, uint64_t length) {
  if (Holds(host_offset, length)) spool_->Take(host_offset, length);
}

void GapKeeper::AddPassedFree(uint64_t start, uint64_t end) {
  if (start >= end) return;
  // Coalesce with the range that ends here (ranges pass in host order).
  if (!passed_free_.empty()) {
    auto last = std::prev(passed_free_.end());
    if (last->second == start) {
      last->second = end;
      return;
    }
  }
  // Only to explain an error better: without room, a mapped free cluster is
  // reported as a cluster referenced twice.
  if (!free_ranges_reservation_.Resize(
          budget_, (free_ranges_.size() + passed_free_.size() + 1) * kFreeRangeBytes,
          Reservation::Reclaim::kNo)) {
    return;
  }
  passed_free_.emplace(start, end);
}

void GapKeeper::ReserveFreeRanges() {
  free_ranges_reservation_.Resize(budget_,
                                  (free_ranges_.size() + passed_free_.size()) * kFreeRangeBytes);
}

bool GapKeeper::MarkedFree(uint64_t host_offset, uint64_t length) const {
  const uint64_t end = host_offset + length;
  for (const auto* ranges : {&passed_free_, &free_ranges_}) {
    // The last range starting before `end` is the only one that may overlap.
    auto after = ranges->lower_bound(end);
    if (after == ranges->begin()) continue;
    if (std::prev(after)->second > host_offset) return true;
  }
  return false;
}

Status GapKeeper::FreeButMapped(const std::string& what) {
  return CorruptImageError(
      "qcow2: " + what +
      " lies in a cluster that the refcounts mark free (refcount 0), yet a table maps it: the "
      "image's metadata is inconsistent (qemu-img check reports it as 'refcount=0 "
      "reference=1'); repair the image with 'qemu-img check -r all IMAGE', then import it again");
}

Status GapKeeper::Replay(const Run& run, GuestOutput& output) {
  if (!Holds(run.host_offset, run.length)) {
    if (MarkedFree(run.host_offset, run.length)) return FreeButMapped(ClaimText(run.claim()));
    return CorruptImageError("qcow2: " + ClaimText(run.claim()) +
                             " overlaps image metadata or data already mapped (a cluster "
                             "referenced twice)" +
                             kCheckAdvice);
  }
  for (uint64_t done = 0; done < run.length;) {
    uint64_t host = run.host_offset + done;
    uint64_t piece = std::min<uint64_t>(run.length - done, buffer_.size());
    // The spool keeps all-zero stretches as ranges without bytes: they come
    // back as Zero rather than as zeros copied out to be written.
    if (spool_->IsZero(host, piece)) {
      CDI_RETURN_IF_ERROR(output.Zero(run.guest_offset + done, piece));
    } else if (auto view = spool_->View(host, piece)) {
      CDI_RETURN_IF_ERROR(output.Write(run.guest_offset + done, view->bytes));
    } else {
      std::span<uint8_t> buffer(buffer_.data(), static_cast<size_t>(piece));
      CDI_RETURN_IF_ERROR(spool_->Read(host, buffer));
      CDI_RETURN_IF_ERROR(output.Write(run.guest_offset + done, buffer));
    }
    done += piece;
  }
  spool_->Take(run.host_offset, run.length);
  replayed_bytes_ += run.length;
  return Status::Ok();
}

}  // namespace cdi::formats::qcow2
