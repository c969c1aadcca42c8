// Decompression of qcow2 compressed clusters, inline or on worker threads.
#ifndef CDI_FORMATS_QCOW2_INFLATE_H_
#define CDI_FORMATS_QCOW2_INFLATE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "cdi/status.h"
#include "formats/qcow2/qcow2_format.h"

namespace cdi::formats::qcow2 {

// Inflates one compressed cluster at a time. Not thread-safe: one per thread.
class ClusterInflater {
 public:
  // `cluster_bits` bounds the zstd window this inflater accepts.
  ClusterInflater(CompressionType type, uint32_t cluster_bits);
  ~ClusterInflater();
  ClusterInflater(const ClusterInflater&) = delete;
  ClusterInflater& operator=(const ClusterInflater&) = delete;

  // Inflates `input` into exactly `out.size()` bytes (one cluster). Data that
  // inflates to less, or to more, is corrupt (kCorruptImage; the message
  // names neither the cluster nor its offset: the caller adds them). Bytes
  // after the end of the compressed stream are ignored: the descriptor's
  // range ends at a sector boundary, past the compressed data. `*consumed`
  // is set to the bytes of `input` the stream used.
  Status Inflate(std::span<const uint8_t> input, std::span<uint8_t> out, size_t* consumed);

  // Upper bound of the memory one inflater holds, for budgeting.
  static uint64_t MemoryBound(CompressionType type, uint32_t cluster_bits);

 private:
  Status InflateZlib(std::span<const uint8_t> input, std::span<uint8_t> out, size_t* consumed);
  Status InflateZlibStream(std::span<const uint8_t> input, std::span<uint8_t> out,
                           size_t* consumed);
  Status InflateZstd(std::span<const uint8_t> input, std::span<uint8_t> out, size_t* consumed);

  CompressionType type_;
  uint32_t cluster_bits_;
  struct Deflate;  // libdeflate, the fast path
  std::unique_ptr<Deflate> deflate_;
  struct Zlib;  // zlib, for what libdeflate refuses
  std::unique_ptr<Zlib> zlib_;
  struct ZstdContext;
  std::unique_ptr<ZstdContext> zstd_;
};

// One compressed cluster on its way through the pool. Buffers are kept when a
// job is reused.
struct InflateJob {
  uint64_t guest_offset = 0;
  uint64_t guest_length = 0;  // bytes of the cluster inside the virtual disk
  uint64_t host_offset = 0;   // for messages
  std::vector<uint8_t> input;
  size_t input_size = 0;
  std::vector<uint8_t> output;  // one cluster
  Status status;
  size_t consumed = 0;  // input bytes the compressed stream used
  // Host offset up to which the input bytes after the stream must be kept
  // (another cluster may start there); 0 when none.
  uint64_t keep_until = 0;
  // Inflated from bytes the gaps kept (the cluster passed before its table),
  // not from the stream as it passes.
  bool from_gaps = false;
};

// Inflates jobs on `threads` worker threads (0 or 1: inline, on the caller's
// thread, inside Submit). Jobs complete in any order. All methods are called
// from one thread (the decoder's); the destructor stops and joins workers.
class InflatePool {
 public:
  InflatePool(CompressionType type, uint32_t cluster_bits, unsigned threads);
  ~InflatePool();
  InflatePool(const InflatePool&) = delete;
  InflatePool& operator=(const InflatePool&) = delete;

  void Submit(std::unique_ptr<InflateJob> job);
  // A finished job, or null when none is finished yet.
  std::unique_ptr<InflateJob> TryTakeDone();
  // Waits for a finished job. Precondition: in_flight() > 0.
  std::unique_ptr<InflateJob> WaitDone();
  size_t in_flight() const { return in_flight_; }
  unsigned threads() const { return static_cast<unsigned>(workers_.size()); }

 private:
  void WorkerLoop();

  CompressionType type_;
  uint32_t cluster_bits_;
  std::unique_ptr<ClusterInflater> inline_inflater_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable done_ready_;
  std::deque<std::unique_ptr<InflateJob>> pending_;
  std::deque<std::unique_ptr<InflateJob>> done_;
  bool stopping_ = false;
  size_t in_flight_ = 0;  // submitted and not yet taken back
};

}  // namespace cdi::formats::qcow2

#endif  // CDI_FORMATS_QCOW2_INFLATE_H_
