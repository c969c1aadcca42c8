// xz (the .xz container, LZMA2) through liblzma, stream after stream.
#include <lzma.h>

#include <algorithm>
#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/resources.h"
#include "formats/unwrapper.h"
#include "formats/xz_blocks.h"

namespace cdi::formats {
namespace {

// .xz file format, section 2.1.1.1: every stream starts with FD 37 7A 58 5A 00.
constexpr uint8_t kXzMagicFirstByte = 0xFD;
// Section 2.2: Stream Padding comes in multiples of four bytes.
constexpr uint64_t kStreamPaddingAlignment = 4;

std::string MiB(uint64_t bytes) {
  // Rounded up: "needs 65 MiB" must not read as fitting in a 64 MiB limit.
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}

// Owns a liblzma decoder.
class LzmaStream {
 public:
  LzmaStream() = default;
  ~LzmaStream() { lzma_end(&stream_); }
  LzmaStream(const LzmaStream&) = delete;
  LzmaStream& operator=(const LzmaStream&) = delete;
  lzma_stream* get() { return &stream_; }

 private:
  lzma_stream stream_ = LZMA_STREAM_INIT;
};

class XzUnwrapper final : public Unwrapper {
 public:
  XzUnwrapper(ByteSink* downstream, const UnwrapOptions& options)
      : Unwrapper(Format::kXz, downstream, options.max_output_bytes),
        memlimit_(options.xz_memlimit),
        memlimit_threading_(options.xz_memlimit_threading != 0
                                ? std::min(options.xz_memlimit_threading, memlimit_)
                                : memlimit_),
        threads_(options.threads != 0 ? options.threads : ThisProcessResources().cpus),
        on_block_end_(options.on_xz_block_end) {
    if (options.xz_continue_at) {
      // Continued where a block (or the Index) begins: decoded block by block.
      const XzBlockEnd& at = *options.xz_continue_at;
      input_offset_ = at.compressed;
      base_ = at.decompressed;
      stream_head_.Start(at.stream.compressed);
      blocks_.emplace(at, memlimit_);
      state_ = State::kBlocks;
    }
  }

  bool continued() const { return state_ == State::kBlocks; }

  // Sets the decoder up for the next stream. Concatenation is handled here
  // rather than with LZMA_CONCATENATED so that data after the last stream
  // gets its own message and the same rules as gzip and zstd. With points
  // between blocks asked for, the decoder is chosen once the first block's
  // header shows whether it records its sizes.
  Status StartStream() {
    stream_head_.Start(input_offset_);
    if (on_block_end_) {
      state_ = State::kChoosing;
      choosing_.clear();
      return Status::Ok();
    }
    return StartLzma();
  }

  // liblzma's stream decoder, threaded unless threads_ is 1; it reuses its
  // allocations from one stream to the next.
  Status StartLzma() {
    lzma_ret ret;
    if (threads_ == 1) {
      ret = lzma_stream_decoder(lzma_.get(), memlimit_, 0);
    } else {
      lzma_mt mt{};
      mt.threads = threads_;
      // The threading limit caps every thread's buffers together: with too
      // many threads liblzma uses fewer (down to one), and it refuses only
      // what one thread cannot fit in memlimit_stop.
      mt.memlimit_threading = memlimit_threading_;
      mt.memlimit_stop = memlimit_;
      ret = lzma_stream_decoder_mt(lzma_.get(), &mt);
    }
    if (ret != LZMA_OK) {
      return InternalError("cannot set up the xz decompressor (liblzma error " +
                           std::to_string(static_cast<int>(ret)) +
                           "); the importer may be out of memory");
    }
    state_ = State::kInStream;
    return Status::Ok();
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      switch (state_) {
        case State::kInStream: {
          size_t consumed = 0;
          CDI_RETURN_IF_ERROR(Decode(bytes, LZMA_RUN, &consumed));
          bytes = bytes.subspan(consumed);
          break;
        }
        case State::kBetweenStreams: {
          auto non_zero = std::find_if(bytes.begin(), bytes.end(), [](uint8_t b) { return b; });
          size_t zeros = static_cast<size_t>(non_zero - bytes.begin());
          padding_ += zeros;
          input_offset_ += zeros;
          bytes = bytes.subspan(zeros);
          if (bytes.empty()) break;
          if (bytes[0] != kXzMagicFirstByte) return TrailingDataError(input_offset_);
          if (padding_ % kStreamPaddingAlignment != 0) return PaddingError();
          padding_ = 0;
          CDI_RETURN_IF_ERROR(StartStream());
          break;
        }
        case State::kChoosing: {
          const size_t take = std::min(kChooseBytes - choosing_.size(), bytes.size());
          choosing_.insert(choosing_.end(), bytes.begin(),
                           bytes.begin() + static_cast<ptrdiff_t>(take));
          bytes = bytes.subspan(take);
          if (XzFirstBlockHasSizes(choosing_) || choosing_.size() == kChooseBytes) {
            CDI_RETURN_IF_ERROR(Choose());
          }
          break;
        }
        case State::kBlocks: {
          size_t consumed = 0;
          CDI_RETURN_IF_ERROR(DecodeBlocks(bytes, &consumed));
          bytes = bytes.subspan(consumed);
          break;
        }
      }
    }
    return Status::Ok();
  }

  Status Finish() override {
    // A stream too short to show its first block is decoded by what there is.
    if (state_ == State::kChoosing) CDI_RETURN_IF_ERROR(Choose());
    if (state_ == State::kBlocks) {
      size_t consumed = 0;
      CDI_RETURN_IF_ERROR(DecodeBlocks({}, &consumed));
      if (state_ == State::kBlocks) return EndsEarlyError();
    }
    if (state_ == State::kInStream) {
      // Drains what the decoder still holds (worker threads may be behind the
      // input); a stream whose end marker never came is then truncated.
      size_t consumed = 0;
      CDI_RETURN_IF_ERROR(Decode({}, LZMA_FINISH, &consumed));
      if (state_ == State::kInStream) return EndsEarlyError();
    }
    if (padding_ % kStreamPaddingAlignment != 0) return PaddingError();
    return FinishOutput();
  }

 private:
  enum class State {
    kInStream,        // inside a stream: header, blocks, index, footer (liblzma's decoder)
    kBetweenStreams,  // after a stream: Stream Padding, another stream, or the end
    kChoosing,        // a stream's first bytes, held until its first block shows its kind
    kBlocks,          // inside a stream decoded block by block (XzBlockDecoder)
  };
  // The Stream Header and the first two bytes of the first Block Header.
  static constexpr size_t kChooseBytes = kXzStreamHeaderBytes + 2;

  // All the output, a continued import's earlier part included.
  uint64_t Absolute() const { return base_ + output_total(); }

  // Chooses the decoder for the stream whose first bytes are held: the
  // threaded one (the tracker following its blocks) when its first block
  // records its sizes, so that blocks decode in parallel; otherwise the
  // block-by-block one, as fast as liblzma's on one thread, which is all that
  // liblzma's would use for such blocks. Then feeds it the bytes held.
  Status Choose() {
    const XzStreamStart stream{.check = 0, .compressed = input_offset_, .decompressed = Absolute()};
    if (threads_ != 1 && XzFirstBlockHasSizes(choosing_).value_or(false)) {
      CDI_RETURN_IF_ERROR(StartLzma());
      tracker_.Start(stream);
      tracking_ = true;
    } else {
      blocks_.emplace(stream, memlimit_);
      state_ = State::kBlocks;
    }
    std::vector<uint8_t> held = std::move(choosing_);
    choosing_.clear();
    return Feed(held);
  }

  // Reports the block ends the tracker saw once the output went past them
  // (the threaded decoder hands a block's output on only after the blocks
  // before it are over, their checks verified), or all of them when the
  // stream ended.
  void ConfirmBlockEnds(bool stream_ended) {
    std::deque<XzBlockEnd>& ends = tracker_.ends();
    while (!ends.empty() && (stream_ended || ends.front().decompressed < Absolute())) {
      on_block_end_(ends.front());
      ends.pop_front();
    }
  }

  // Decodes with the block-by-block decoder from the start of `bytes` until
  // they are used up (at Finish, `bytes` is empty: until no output is left)
  // or the stream ends; sets *consumed to the bytes used.
  Status DecodeBlocks(std::span<const uint8_t> bytes, size_t* consumed) {
    stream_head_.Keep(input_offset_, bytes);
    size_t used = 0;
    while (true) {
      std::span<uint8_t> out = output_space();
      const XzBlockDecoder::Step step = blocks_->Code(bytes.subspan(used), out);
      used += step.in_used;
      input_offset_ += step.in_used;
      CDI_RETURN_IF_ERROR(Produced(step.out_used));
      if (step.problem != XzBlockDecoder::Problem::kNone) return BlockProblem(step);
      if (step.block_ended && on_block_end_) on_block_end_(blocks_->block_end());
      if (step.stream_ended) {
        state_ = State::kBetweenStreams;
        blocks_.reset();
        *consumed = used;
        return Status::Ok();
      }
      if (step.block_ended) continue;
      if (step.out_used == out.size()) continue;  // more output may be waiting
      if (used == bytes.size()) {
        *consumed = used;
        return Status::Ok();
      }
      if (step.in_used == 0 && step.out_used == 0) {
        return InternalError("the xz block decoder stopped at compressed offset " +
                             std::to_string(input_offset_));
      }
    }
  }

  Status BlockProblem(const XzBlockDecoder::Step& step) {
    switch (step.problem) {
      case XzBlockDecoder::Problem::kMemlimit:
        return MemlimitError(step.needed);
      case XzBlockDecoder::Problem::kOptions:
        return OptionsError();
      case XzBlockDecoder::Problem::kOutOfMemory:
        return InternalError("out of memory while decompressing xz");
      default:
        return CorruptError(step.what);
    }
  }

  Status OptionsError() const {
    return UnsupportedError(
        "the xz stream at compressed offset " + std::to_string(input_offset_) +
        " uses filters or options this importer does not support; recompress the image "
        "with plain 'xz' (LZMA2) and import that");
  }

  // Decodes from the start of `bytes` until they are used up (and, with
  // LZMA_FINISH, until the decoder has nothing more to give) or the stream
  // ends; sets *consumed to the bytes used.
  Status Decode(std::span<const uint8_t> bytes, lzma_action action, size_t* consumed) {
    stream_head_.Keep(input_offset_, bytes);
    lzma_stream* stream = lzma_.get();
    stream->next_in = bytes.data();
    stream->avail_in = bytes.size();
    while (true) {
      std::span<uint8_t> out = output_space();
      stream->next_out = out.data();
      stream->avail_out = out.size();
      size_t in_before = stream->avail_in;
      lzma_ret ret = lzma_code(stream, action);
      const size_t used = in_before - stream->avail_in;
      input_offset_ += used;
      if (tracking_ && used > 0) tracker_.Observe(std::span(stream->next_in - used, used));
      CDI_RETURN_IF_ERROR(Produced(out.size() - stream->avail_out));
      if (tracking_) ConfirmBlockEnds(ret == LZMA_STREAM_END);
      switch (ret) {
        case LZMA_OK:
          break;
        case LZMA_STREAM_END:
          tracking_ = false;
          state_ = State::kBetweenStreams;
          *consumed = bytes.size() - stream->avail_in;
          return Status::Ok();
        case LZMA_BUF_ERROR:
          // No progress possible: more input is needed (at LZMA_FINISH: the
          // stream is truncated, which the caller reports).
          *consumed = bytes.size();
          return Status::Ok();
        case LZMA_MEMLIMIT_ERROR:
          return MemlimitError(threads_ == 1 ? lzma_memusage(stream) : ProbeMemoryNeeded());
        case LZMA_FORMAT_ERROR:
          return CorruptError("not an xz stream header");
        case LZMA_OPTIONS_ERROR:
          return OptionsError();
        case LZMA_MEM_ERROR:
          return InternalError("out of memory while decompressing xz");
        case LZMA_DATA_ERROR:
          // At LZMA_FINISH liblzma reports a stream cut short as a data error.
          if (action == LZMA_FINISH) return EndsEarlyError();
          return CorruptError("compressed data is corrupt");
        default:
          return CorruptError("liblzma error " + std::to_string(static_cast<int>(ret)));
      }
      if (action == LZMA_RUN && stream->avail_in == 0 && stream->avail_out > 0) {
        *consumed = bytes.size();
        return Status::Ok();
      }
    }
  }

  // The threaded decoder does not say how much memory a refused stream needs
  // (lzma_memusage reports what it holds). A single-threaded decoder with a
  // tiny limit, fed the stream's header and first block header, does.
  uint64_t ProbeMemoryNeeded() {
    LzmaStream probe;
    if (lzma_stream_decoder(probe.get(), 1, 0) != LZMA_OK) return 0;
    std::span<const uint8_t> head = stream_head_.bytes();
    std::array<uint8_t, 64> sink;  // the probe stops at the first block header: no output
    probe.get()->next_in = head.data();
    probe.get()->avail_in = head.size();
    probe.get()->next_out = sink.data();
    probe.get()->avail_out = sink.size();
    if (lzma_code(probe.get(), LZMA_RUN) != LZMA_MEMLIMIT_ERROR) return 0;
    return lzma_memusage(probe.get());
  }

  Status MemlimitError(uint64_t needed) const {
    std::string need = needed > memlimit_ ? MiB(needed) : "more";
    return UnsupportedError(
        "the xz stream at compressed offset " + std::to_string(stream_head_.offset()) + " needs " +
        need + " of memory to decompress, more than the xz memory limit of " + MiB(memlimit_) +
        " (" + std::to_string(memlimit_) +
        " bytes); recompress the image with a smaller dictionary (for example 'xz -6', which "
        "needs 9 MiB) or raise the importer's xz memory limit");
  }

  Status PaddingError() const {
    return CorruptError("Stream Padding of " + std::to_string(padding_) +
                        " zero bytes, not a multiple of four");
  }

  LzmaStream lzma_;
  uint64_t memlimit_;
  uint64_t memlimit_threading_;
  uint32_t threads_;
  std::function<void(const XzBlockEnd&)> on_block_end_;
  State state_ = State::kInStream;
  uint64_t padding_ = 0;  // zero bytes since the last stream ended
  uint64_t base_ = 0;     // output before the point a continued import began at
  std::vector<uint8_t> choosing_;  // kChoosing: the stream's first bytes
  std::optional<XzBlockDecoder> blocks_;  // kBlocks
  XzBlockTracker tracker_;  // follows the threaded decoder's stream when tracking_
  bool tracking_ = false;
  // .xz format sections 2.1.1 and 3.1: the 12-byte stream header and a block
  // header of at most 1024 bytes, enough to learn the first block's dictionary.
  UnitHead<12 + 1024> stream_head_;
};

}  // namespace

Result<std::unique_ptr<ByteSink>> MakeXzUnwrapper(ByteSink* downstream,
                                                  const UnwrapOptions& options) {
  auto unwrapper = std::make_unique<XzUnwrapper>(downstream, options);
  if (!unwrapper->continued()) CDI_RETURN_IF_ERROR(unwrapper->StartStream());
  return std::unique_ptr<ByteSink>(std::move(unwrapper));
}

}  // namespace cdi::formats
