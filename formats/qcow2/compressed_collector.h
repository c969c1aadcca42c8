// The compressed-cluster collector: gathers each compressed cluster's bytes
// as they stream past, has them inflated on worker threads, and writes the
// inflated clusters to the guest.
//
// A compressed cluster's range ends at a sector boundary, past its compressed
// stream, and "another compressed cluster may map to the tail of the final
// sector used by this compressed cluster": several clusters may be gathered
// at once, each into its own job. Jobs complete in any order; their output is
// written as they come back, so guest writes of compressed clusters are not in
// guest order. The bytes after a stream (up to where the next known cluster
// starts) may hold the start of a cluster whose table is still to come: once
// the stream's length is known they go to the gaps (GapKeeper::Insert).
//
// A stream that does not inflate to exactly one cluster is kCorruptImage
// naming the cluster. Memory: a fixed number of jobs (each two clusters of
// input and one of output) and one inflater per worker, sized from what the
// MemoryBudget has left when the collector is made. All methods are called
// from the decoder's thread; the destructor stops and joins the workers.
#ifndef CDI_FORMATS_QCOW2_COMPRESSED_COLLECTOR_H_
#define CDI_FORMATS_QCOW2_COMPRESSED_COLLECTOR_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/claim.h"
#include "formats/qcow2/claim_queue.h"
#include "formats/qcow2/gap_keeper.h"
#include "formats/qcow2/guest_output.h"
#include "formats/qcow2/inflate.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/qcow2_format.h"

namespace cdi::formats::qcow2 {

class CompressedCollector {
 public:
  struct Options {
    Geometry geometry;
    CompressionType compression_type = CompressionType::kZlib;
    unsigned threads = 0;    // workers at most; 0: one per core
    uint64_t keep_free = 0;  // memory left to the tables, not used for inflation
  };

  // The least memory the collector works with: one job and one inflater.
  static uint64_t MinimumMemory(const Geometry& geometry, CompressionType type);

  // `budget`, `gaps` and `output` must outlive the collector. Decompression
  // gets at most half of what `budget` has free beyond options.keep_free.
  CompressedCollector(const Options& options, MemoryBudget* budget, GapKeeper* gaps,
                      GuestOutput* output);
  ~CompressedCollector();
  CompressedCollector(const CompressedCollector&) = delete;
  CompressedCollector& operator=(const CompressedCollector&) = delete;

  // --- Clusters in the stream -----------------------------------------------------

  // Starts gathering the compressed cluster that Peek() on `queue` returns,
  // which starts at the read position; returns its claim. Nothing may start
  // inside it but another compressed cluster, in its last sector.
  Result<Claim> Activate(ClaimQueue& queue);
  // Reads the bytes at host offset `position` into every cluster being
  // gathered, up to where the first of them ends or the next claim in
  // `queue` starts, and hands complete clusters to the workers; or, when a
  // compressed cluster starts at `position`, activates it and sets
  // `*last_claim` to its claim. Returns the bytes used.
  Result<uint64_t> Step(ClaimQueue& queue, uint64_t position, std::span<const uint8_t> bytes,
                        Claim* last_claim);
  // True while some cluster is being gathered.
  bool gathering() const { return !gathering_.empty(); }
  // The lowest host offset of a cluster from the stream whose guest write is
  // still to come (being gathered, or handed to the workers and not yet
  // written); nullopt when none is.
  std::optional<uint64_t> FirstUnwritten() const;
  // True while a cluster inflated from the gaps' bytes is not yet written.
  bool inflating_from_gaps() const { return from_gaps_in_flight_ > 0; }
  // End of input at `position`: the last clusters' ranges may end in a sector
  // the image does not fully hold, but their streams must end in what it has.
  Status EndOfInput(uint64_t position);

  // --- Clusters that passed before their L2 table -----------------------------------

  // Inflates the compressed `run` from the bytes the gaps kept. The range may
  // run into a neighbour's bytes that were not kept; the stream itself ends
  // before them, so the kept prefix is what counts.
  Status FromGaps(const Run& run);

  // --- Output ------------------------------------------------------------------------

  // Writes what the workers have finished; with kAll, waits for all of it.
  enum class Wait { kNo, kAll };
  Status CollectDone(Wait wait);
  // Before a table is read: bytes still to be kept after a stream must be
  // with the gaps first, as the table may map them.
  Status SettleKeptBytes();
  // Stops the workers; nothing they finish is written any more.
  void Stop() { pool_.reset(); }

 private:
  // A compressed cluster whose bytes are being gathered.
  struct Gathering {
    Run run;
    std::unique_ptr<InflateJob> job;
  };

  // Adds `bytes`, found at host offset `position`, to every cluster being
  // gathered; clusters that are complete go to the workers.
  void Gather(uint64_t position, std::span<const uint8_t> bytes);
  // A job with its buffers, waiting for a running one to finish if need be.
  Result<std::unique_ptr<InflateJob>> AcquireJob();
  void Submit(Gathering& gathering);
  Status EmitJob(std::unique_ptr<InflateJob> job);

  Geometry geometry_;
  CompressionType compression_type_;
  MemoryBudget* budget_;
  GapKeeper* gaps_;
  GuestOutput* output_;
  unsigned workers_ = 1;
  uint64_t job_bytes_ = 0;
  uint64_t max_jobs_ = 1;
  uint64_t jobs_created_ = 0;
  Reservation job_reservation_;
  Reservation inflater_reservation_;
  uint64_t keeps_in_flight_ = 0;  // jobs whose trailing bytes go to the gaps
  std::multiset<uint64_t> stream_in_flight_;  // host offsets of stream jobs not yet written
  uint64_t from_gaps_in_flight_ = 0;
  std::vector<Gathering> gathering_;
  std::vector<std::unique_ptr<InflateJob>> free_jobs_;
  // Last: its workers stop before the jobs and buffers they use go away.
  std::unique_ptr<InflatePool> pool_;
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_COMPRESSED_COLLECTOR_H_
