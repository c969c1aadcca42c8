#include "formats/qcow2/inflate.h"

#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <string>
#include <utility>

namespace cdi::formats::qcow2 {
namespace {

// The largest zstd window accepted: twice the cluster. qemu compresses each
// cluster in one call with its size known, which makes a single-segment frame
// whose window is the cluster itself; no frame for one cluster needs more.
// The limit keeps a hostile frame header from making the decoder allocate
// zstd's default maximum of 128 MiB.
uint32_t ZstdWindowLogMax(uint32_t cluster_bits) { return cluster_bits + 1; }

}  // namespace

struct ClusterInflater::Deflate {
  libdeflate_decompressor* decompressor = nullptr;
  ~Deflate() { libdeflate_free_decompressor(decompressor); }
};

struct ClusterInflater::Zlib {
  z_stream stream{};
  bool initialized = false;
  ~Zlib() {
    if (initialized) inflateEnd(&stream);
  }
};

struct ClusterInflater::ZstdContext {
  ZSTD_DCtx* context = nullptr;
  ~ZstdContext() { ZSTD_freeDCtx(context); }
};

ClusterInflater::ClusterInflater(CompressionType type, uint32_t cluster_bits)
    : type_(type), cluster_bits_(cluster_bits) {}

ClusterInflater::~ClusterInflater() = default;

uint64_t ClusterInflater::MemoryBound(CompressionType type, uint32_t cluster_bits) {
  // libdeflate's decode tables (12 KiB), and zlib's 32 KiB window and state
  // (7 KiB), set up only for a cluster libdeflate refuses.
  if (type == CompressionType::kZlib) return 64 << 10;
  // The window, plus a context (about 100 KiB) and block buffers (128 KiB each).
  return (uint64_t{1} << ZstdWindowLogMax(cluster_bits)) + (384 << 10);
}

Status ClusterInflater::Inflate(std::span<const uint8_t> input, std::span<uint8_t> out,
                                size_t* consumed) {
  *consumed = input.size();
  return type_ == CompressionType::kZlib ? InflateZlib(input, out, consumed)
                                         : InflateZstd(input, out, consumed);
}

// zlib compression type: "raw deflate" (qcow2.txt "compression_type": zlib)
// without zlib's header. qemu writes with a 4 KiB window; inflating with the
// largest window reads that and any other raw deflate stream.
//
// A cluster is a buffer of known size, which is what libdeflate inflates,
// about twice as fast as zlib. What it accepts is a complete stream of
// exactly one cluster, and `consumed` is exact (the stream's last byte),
// as zlib's. Anything else goes to zlib (InflateZlibStream), which says
// precisely what is wrong, and reads the one stream qemu accepts that
// libdeflate does not: one that fills the cluster and stops before its end
// marker. The other way round, libdeflate reads DEFLATE's reserved symbols
// (lengths 286-287, distances 30-31, which no encoder writes) as their
// neighbours where zlib refuses them; such a cluster inflates to bytes its
// writer chose, within the cluster, as any valid cluster does.
Status ClusterInflater::InflateZlib(std::span<const uint8_t> input, std::span<uint8_t> out,
                                    size_t* consumed) {
  if (!deflate_) {
    deflate_ = std::make_unique<Deflate>();
    deflate_->decompressor = libdeflate_alloc_decompressor();
    if (deflate_->decompressor == nullptr) {
      deflate_.reset();
      return InternalError("libdeflate: cannot allocate a decompressor (out of memory?)");
    }
  }
  size_t in_used = 0;
  size_t out_made = 0;
  libdeflate_result result =
      libdeflate_deflate_decompress_ex(deflate_->decompressor, input.data(), input.size(),
                                       out.data(), out.size(), &in_used, &out_made);
  if (result == LIBDEFLATE_SUCCESS && out_made == out.size()) {
    *consumed = in_used;
    return Status::Ok();
  }
  return InflateZlibStream(input, out, consumed);
}

Status ClusterInflater::InflateZlibStream(std::span<const uint8_t> input, std::span<uint8_t> out,
                                          size_t* consumed) {
  if (!zlib_) {
    zlib_ = std::make_unique<Zlib>();
    if (inflateInit2(&zlib_->stream, -MAX_WBITS) != Z_OK) {
      zlib_.reset();
      return InternalError("zlib: cannot initialise an inflate stream (out of memory?)");
    }
    zlib_->initialized = true;
  } else if (inflateReset(&zlib_->stream) != Z_OK) {
    return InternalError("zlib: cannot reset the inflate stream");
  }
  z_stream& stream = zlib_->stream;
  // Inputs and outputs are at most a few MiB: they fit zlib's uInt.
  stream.next_in = const_cast<Bytef*>(input.data());
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  int ret = inflate(&stream, Z_FINISH);
  if (ret == Z_STREAM_END) {
    *consumed = input.size() - stream.avail_in;
    if (stream.avail_out != 0) {
      return CorruptImageError("compressed data inflates to " +
                               std::to_string(out.size() - stream.avail_out) +
                               " bytes instead of one cluster of " + std::to_string(out.size()));
    }
    return Status::Ok();
  }
  if (ret != Z_BUF_ERROR && ret != Z_OK) {
    return CorruptImageError(
        std::string("compressed data is not valid deflate data (") +
        (stream.msg != nullptr ? stream.msg : "zlib error " + std::to_string(ret)) + ")");
  }
  if (stream.avail_out != 0) {
    return CorruptImageError("compressed data ends after " +
                             std::to_string(out.size() - stream.avail_out) +
                             " bytes of a cluster of " + std::to_string(out.size()));
  }
  // The cluster is full: the stream must not produce anything more.
  uint8_t extra = 0;
  stream.next_out = &extra;
  stream.avail_out = 1;
  ret = inflate(&stream, Z_FINISH);
  *consumed = input.size() - stream.avail_in;
  if (stream.avail_out == 0) {
    return CorruptImageError("compressed data inflates to more than one cluster of " +
                             std::to_string(out.size()) + " bytes");
  }
  if (ret != Z_STREAM_END && ret != Z_BUF_ERROR && ret != Z_OK) {
    return CorruptImageError(
        std::string("compressed data is not valid deflate data (") +
        (stream.msg != nullptr ? stream.msg : "zlib error " + std::to_string(ret)) + ")");
  }
  return Status::Ok();
}

// zstd compression type: one zstd frame per cluster, read like qemu does, as
// a stream that must yield exactly one cluster and end there.
Status ClusterInflater::InflateZstd(std::span<const uint8_t> input, std::span<uint8_t> out,
                                    size_t* consumed) {
  if (!zstd_) {
    zstd_ = std::make_unique<ZstdContext>();
    zstd_->context = ZSTD_createDCtx();
    if (zstd_->context == nullptr) {
      zstd_.reset();
      return InternalError("zstd: cannot create a decompression context (out of memory?)");
    }
    ZSTD_DCtx_setParameter(zstd_->context, ZSTD_d_windowLogMax,
                           static_cast<int>(ZstdWindowLogMax(cluster_bits_)));
  } else {
    ZSTD_DCtx_reset(zstd_->context, ZSTD_reset_session_only);
  }
  unsigned long long content_size = ZSTD_getFrameContentSize(input.data(), input.size());
  if (content_size != ZSTD_CONTENTSIZE_UNKNOWN && content_size != ZSTD_CONTENTSIZE_ERROR &&
      content_size != out.size()) {
    return CorruptImageError("compressed zstd frame holds " + std::to_string(content_size) +
                             " bytes instead of one cluster of " + std::to_string(out.size()));
  }
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  size_t ret = 1;
  while (output.pos < output.size) {
    size_t last_in = in.pos;
    size_t last_out = output.pos;
    ret = ZSTD_decompressStream(zstd_->context, &output, &in);
    if (ZSTD_isError(ret)) {
      return CorruptImageError(std::string("compressed data is not a valid zstd frame (") +
                               ZSTD_getErrorName(ret) + ")");
    }
    if (ret == 0) break;
    if (in.pos == last_in && output.pos == last_out) break;  // out of input
  }
  if (output.pos != output.size) {
    return CorruptImageError("compressed data inflates to " + std::to_string(output.pos) +
                             " bytes instead of one cluster of " + std::to_string(out.size()));
  }
  if (ret != 0) {
    // The cluster is full; the frame must end here (epilogue only, no output).
    uint8_t extra = 0;
    ZSTD_outBuffer tail{&extra, 1, 0};
    ret = ZSTD_decompressStream(zstd_->context, &tail, &in);
    if (ZSTD_isError(ret) || tail.pos != 0 || ret != 0) {
      return CorruptImageError("compressed zstd frame does not end after one cluster of " +
                               std::to_string(out.size()) + " bytes");
    }
  }
  *consumed = in.pos;
  return Status::Ok();
}

InflatePool::InflatePool(CompressionType type, uint32_t cluster_bits, unsigned threads)
    : type_(type), cluster_bits_(cluster_bits) {
  if (threads <= 1) {
    inline_inflater_ = std::make_unique<ClusterInflater>(type, cluster_bits);
    return;
  }
  workers_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

InflatePool::~InflatePool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void InflatePool::Submit(std::unique_ptr<InflateJob> job) {
  ++in_flight_;
  if (inline_inflater_) {
    job->status = inline_inflater_->Inflate(
        std::span<const uint8_t>(job->input.data(), job->input_size), job->output, &job->consumed);
    done_.push_back(std::move(job));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(job));
  }
  work_ready_.notify_one();
}

std::unique_ptr<InflateJob> InflatePool::TryTakeDone() {
  std::unique_ptr<InflateJob> job;
  if (inline_inflater_) {
    if (done_.empty()) return nullptr;
    job = std::move(done_.front());
    done_.pop_front();
  } else {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_.empty()) return nullptr;
    job = std::move(done_.front());
    done_.pop_front();
  }
  --in_flight_;
  return job;
}

std::unique_ptr<InflateJob> InflatePool::WaitDone() {
  if (inline_inflater_) return TryTakeDone();
  std::unique_ptr<InflateJob> job;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_ready_.wait(lock, [this] { return !done_.empty(); });
    job = std::move(done_.front());
    done_.pop_front();
  }
  --in_flight_;
  return job;
}

void InflatePool::WorkerLoop() {
  ClusterInflater inflater(type_, cluster_bits_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_ready_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    std::unique_ptr<InflateJob> job = std::move(pending_.front());
    pending_.pop_front();
    lock.unlock();
    job->status = inflater.Inflate(std::span<const uint8_t>(job->input.data(), job->input_size),
                                   job->output, &job->consumed);
    lock.lock();
    done_.push_back(std::move(job));
    done_ready_.notify_one();
  }
}

}  // namespace cdi::formats::qcow2
