#include "formats/qcow2/compressed_collector.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/resources.h"

namespace cdi::formats::qcow2 {
namespace {

// One job: its input (up to two clusters and a sector) and its output.
uint64_t JobBytes(const Geometry& geometry) { return 3 * geometry.cluster_size() + kSectorSize; }

}  // namespace

uint64_t CompressedCollector::MinimumMemory(const Geometry& geometry, CompressionType type) {
  return JobBytes(geometry) + ClusterInflater::MemoryBound(type, geometry.cluster_bits);
}

CompressedCollector::CompressedCollector(const Options& options, MemoryBudget* budget,
                                         GapKeeper* gaps, GuestOutput* output)
    : geometry_(options.geometry),
      compression_type_(options.compression_type),
      budget_(budget),
      gaps_(gaps),
      output_(output),
      job_bytes_(JobBytes(options.geometry)) {
  unsigned threads = options.threads != 0 ? options.threads : ThisProcessResources().cpus;
  const uint64_t inflater_bytes =
      ClusterInflater::MemoryBound(compression_type_, geometry_.cluster_bits);
  // Each worker wants its inflater and two jobs, so that it always has the
  // next one queued.
  const uint64_t for_inflation = (budget_->available() - options.keep_free) / 2;
  uint64_t per_worker = inflater_bytes + 2 * job_bytes_;
  workers_ = static_cast<unsigned>(
      std::clamp<uint64_t>(for_inflation / per_worker, 1, std::max(1u, threads)));
  const uint64_t inflaters = workers_ * inflater_bytes;
  max_jobs_ = std::max<uint64_t>(
      1, (for_inflation > inflaters ? for_inflation - inflaters : 0) / job_bytes_);
  max_jobs_ = std::min<uint64_t>(max_jobs_, 2 * workers_ + 2);
}

CompressedCollector::~CompressedCollector() {
  // Workers stop before the jobs and buffers they use go away.
  pool_.reset();
}

Result<Claim> CompressedCollector::Activate(ClaimQueue& queue) {
  const Run run = queue.PopRun();
  const Claim claim = run.claim();
  // "Another compressed cluster may map to the tail of the final sector used
  // by this compressed cluster", and nowhere else in it.
  for (const Gathering& other : gathering_) {
    if (run.host_offset == other.run.host_offset ||
        run.host_offset + kSectorSize < other.run.host_end()) {
      return OverlapError(claim, other.run.claim());
    }
  }
  const Claim after = queue.Peek();
  if (after.kind != ClaimKind::kNone && after.start < claim.end &&
      (after.kind != ClaimKind::kCompressed || after.start + kSectorSize < claim.end)) {
    return OverlapError(after, claim);
  }
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<InflateJob> job, AcquireJob());
  job->guest_offset = run.guest_offset;
  job->guest_length = run.guest_length;
  job->host_offset = run.host_offset;
  job->input_size = 0;
  Gathering gathering;
  gathering.run = run;
  gathering.job = std::move(job);
  gathering_.push_back(std::move(gathering));
  return claim;
}

Result<uint64_t> CompressedCollector::Step(ClaimQueue& queue, uint64_t position,
                                           std::span<const uint8_t> bytes, Claim* last_claim) {
  const Claim next = queue.Peek();
  if (next.kind != ClaimKind::kNone && next.start <= position) {
    if (next.start < position || next.kind != ClaimKind::kCompressed) {
      return OverlapError(next, gathering_.front().run.claim());
    }
    CDI_ASSIGN_OR_RETURN(*last_claim, Activate(queue));
    return uint64_t{0};
  }
  uint64_t limit = next.kind != ClaimKind::kNone ? next.start : UINT64_MAX;
  for (const Gathering& g : gathering_) limit = std::min(limit, g.run.host_end());
  const uint64_t count = std::min<uint64_t>(bytes.size(), limit - position);
  Gather(position, bytes.first(static_cast<size_t>(count)));
  return count;
}

void CompressedCollector::Gather(uint64_t position, std::span<const uint8_t> bytes) {
  for (Gathering& g : gathering_) {
    std::memcpy(g.job->input.data() + (position - g.run.host_offset), bytes.data(), bytes.size());
    g.job->input_size += bytes.size();
  }
  const uint64_t end = position + bytes.size();
  for (size_t i = 0; i < gathering_.size();) {
    if (gathering_[i].run.host_end() == end) {
      Submit(gathering_[i]);
      gathering_.erase(gathering_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

Status CompressedCollector::EndOfInput(uint64_t position) {
  for (const Gathering& g : gathering_) {
    if (position + kSectorSize <= g.run.host_end()) return TruncatedError(position, g.run.claim());
  }
  for (Gathering& g : gathering_) {  // nothing follows
    stream_in_flight_.insert(g.run.host_offset);
    pool_->Submit(std::move(g.job));
  }
  gathering_.clear();
  return Status::Ok();
}

// Hands a gathered cluster to the pool. The bytes after its stream are kept
// once the stream's length is known (EmitJob), up to where the next cluster
// being gathered starts.
void CompressedCollector::Submit(Gathering& gathering) {
  InflateJob& job = *gathering.job;
  job.keep_until = 0;
  if (gaps_->keeping()) {
    job.keep_until = gathering.run.host_end();
    for (const Gathering& other : gathering_) {
      if (other.run.host_offset > gathering.run.host_offset) {
        job.keep_until = std::min(job.keep_until, other.run.host_offset);
      }
    }
    ++keeps_in_flight_;
  }
  stream_in_flight_.insert(gathering.run.host_offset);
  pool_->Submit(std::move(gathering.job));
}

std::optional<uint64_t> CompressedCollector::FirstUnwritten() const {
  std::optional<uint64_t> first;
  if (!stream_in_flight_.empty()) first = *stream_in_flight_.begin();
  for (const Gathering& g : gathering_) {
    if (!first || g.run.host_offset < *first) first = g.run.host_offset;
  }
  return first;
}

Status CompressedCollector::FromGaps(const Run& run) {
  uint64_t available = gaps_->HeldLength(run.host_offset, run.length);
  if (available == 0) {
    if (gaps_->MarkedFree(run.host_offset, run.length)) {
      return GapKeeper::FreeButMapped(ClaimText(run.claim()));
    }
    return CorruptImageError("qcow2: " + ClaimText(run.claim()) +
                             " overlaps image metadata or data already mapped" + kCheckAdvice);
  }
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<InflateJob> job, AcquireJob());
  job->guest_offset = run.guest_offset;
  job->guest_length = run.guest_length;
  job->host_offset = run.host_offset;
  job->input_size = static_cast<size_t>(available);
  CDI_RETURN_IF_ERROR(
      gaps_->Copy(run.host_offset, std::span<uint8_t>(job->input.data(), job->input_size)));
  job->from_gaps = true;
  ++from_gaps_in_flight_;
  pool_->Submit(std::move(job));
  return Status::Ok();
}

Status CompressedCollector::SettleKeptBytes() {
  if (keeps_in_flight_ > 0) return CollectDone(Wait::kAll);
  return Status::Ok();
}

Result<std::unique_ptr<InflateJob>> CompressedCollector::AcquireJob() {
  if (!pool_) {
    pool_ = std::make_unique<InflatePool>(compression_type_, geometry_.cluster_bits, workers_);
    if (!inflater_reservation_.Resize(
            budget_,
            workers_ * ClusterInflater::MemoryBound(compression_type_, geometry_.cluster_bits))) {
      return budget_->Exhausted("decompression contexts", 0);
    }
  }
  while (free_jobs_.empty()) {
    // Beyond the usual number of jobs only when every job is gathering
    // bytes (compressed clusters sharing a sector need one each).
    bool may_create = jobs_created_ < max_jobs_ || pool_->in_flight() == 0;
    if (may_create && job_reservation_.Resize(budget_, (jobs_created_ + 1) * job_bytes_)) {
      auto job = std::make_unique<InflateJob>();
      job->input.resize(2 * geometry_.cluster_size() + kSectorSize);
      job->output.resize(geometry_.cluster_size());
      ++jobs_created_;
      return job;
    }
    if (pool_->in_flight() == 0) {
      CDI_RETURN_IF_ERROR(gaps_->spill_error());
      return budget_->Exhausted("compressed clusters being gathered", job_bytes_);
    }
    CDI_RETURN_IF_ERROR(EmitJob(pool_->WaitDone()));
  }
  std::unique_ptr<InflateJob> job = std::move(free_jobs_.back());
  free_jobs_.pop_back();
  job->keep_until = 0;
  job->consumed = 0;
  job->from_gaps = false;
  return job;
}

Status CompressedCollector::EmitJob(std::unique_ptr<InflateJob> job) {
  if (job->from_gaps) {
    --from_gaps_in_flight_;
  } else if (auto it = stream_in_flight_.find(job->host_offset); it != stream_in_flight_.end()) {
    stream_in_flight_.erase(it);
  }
  if (job->keep_until != 0) {
    --keeps_in_flight_;
    const uint64_t stream_end = job->host_offset + job->consumed;
    if (job->status.ok() && stream_end < job->keep_until && gaps_->keeping()) {
      CDI_RETURN_IF_ERROR(
          gaps_->Insert(stream_end, std::span<const uint8_t>(job->input.data() + job->consumed,
                                                             job->keep_until - stream_end)));
    }
  }
  if (!job->status.ok()) {
    return CorruptImageError("qcow2: the compressed cluster for guest offset " +
                             Hex(job->guest_offset) + " at host offset " + Hex(job->host_offset) +
                             ": " + job->status.message() + kCheckAdvice);
  }
  CDI_RETURN_IF_ERROR(output_->Write(
      job->guest_offset, std::span<const uint8_t>(job->output.data(), job->guest_length)));
  free_jobs_.push_back(std::move(job));
  return Status::Ok();
}

Status CompressedCollector::CollectDone(Wait wait) {
  if (!pool_) return Status::Ok();
  while (auto job = pool_->TryTakeDone()) CDI_RETURN_IF_ERROR(EmitJob(std::move(job)));
  while (wait == Wait::kAll && pool_->in_flight() > 0) {
    CDI_RETURN_IF_ERROR(EmitJob(pool_->WaitDone()));
  }
  return Status::Ok();
}

}  // namespace cdi::formats::qcow2
