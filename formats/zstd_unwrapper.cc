// zstd (RFC 8878) through libzstd's streaming decoder, frame after frame.
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader, to say how large a refused window is
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <string>

#include "formats/unwrapper.h"

namespace cdi::formats {
namespace {

// RFC 8878 section 3.1.1: a frame starts with 28 B5 2F FD; section 3.1.2: a
// skippable frame with 5? 2A 4D 18 (magic 0x184D2A50..0x184D2A5F, little-endian).
constexpr uint8_t kFrameMagicFirstByte = 0x28;
constexpr uint8_t kSkippableMagicFirstByteMask = 0xF0;
constexpr uint8_t kSkippableMagicFirstByte = 0x50;

std::string MiB(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* context) const { ZSTD_freeDCtx(context); }
};

class ZstdUnwrapper final : public Unwrapper {
 public:
  ZstdUnwrapper(ByteSink* downstream, const UnwrapOptions& options)
      : Unwrapper(Format::kZstd, downstream, options.max_output_bytes),
        window_log_max_(options.zstd_window_log_max),
        on_frame_end_(options.on_frame_end) {
    if (options.zstd_continue_at) {
      // Continued between two frames: the next byte decides, as after a frame.
      input_offset_ = *options.zstd_continue_at;
      state_ = State::kBetweenFrames;
    }
  }

  Status Init() {
    context_.reset(ZSTD_createDCtx());
    if (context_ == nullptr) {
      return InternalError(
          "cannot set up the zstd decompressor; the importer may be out of memory");
    }
    size_t ret = ZSTD_DCtx_setParameter(context_.get(), ZSTD_d_windowLogMax, window_log_max_);
    if (ZSTD_isError(ret)) {
      return InvalidArgumentError("the zstd window limit 2^" + std::to_string(window_log_max_) +
                                  " is not accepted by libzstd (" + ZSTD_getErrorName(ret) +
                                  "); use a window log between " +
                                  std::to_string(ZSTD_WINDOWLOG_MIN) + " and " +
                                  std::to_string(ZSTD_WINDOWLOG_MAX));
    }
    return Status::Ok();
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      switch (state_) {
        case State::kInFrame: {
          size_t consumed = 0;
          CDI_RETURN_IF_ERROR(Decompress(bytes, &consumed));
          bytes = bytes.subspan(consumed);
          break;
        }
        case State::kBetweenFrames:
          if (bytes[0] == 0) {
            state_ = State::kZeroPadding;
          } else if (bytes[0] == kFrameMagicFirstByte ||
                     (bytes[0] & kSkippableMagicFirstByteMask) == kSkippableMagicFirstByte) {
            // libzstd starts the next frame by itself and judges the rest of the magic.
            StartFrame();
          } else {
            return TrailingDataError(input_offset_);
          }
          break;
        case State::kZeroPadding: {
          auto non_zero = std::find_if(bytes.begin(), bytes.end(), [](uint8_t b) { return b; });
          if (non_zero != bytes.end()) {
            return TrailingDataError(input_offset_ +
                                     static_cast<uint64_t>(non_zero - bytes.begin()));
          }
          input_offset_ += bytes.size();
          bytes = {};
          break;
        }
      }
    }
    return Status::Ok();
  }

  Status Finish() override {
    if (state_ == State::kInFrame) return EndsEarlyError();
    return FinishOutput();
  }

 private:
  enum class State {
    kInFrame,        // inside a frame (or a skippable frame)
    kBetweenFrames,  // a frame just ended; the next byte decides
    kZeroPadding,    // only zero bytes may follow
  };

  void StartFrame() {
    state_ = State::kInFrame;
    frame_head_.Start(input_offset_);
  }

  // Decompresses from the start of `bytes` until they are used up or the
  // frame ends; sets *consumed to the bytes used.
  Status Decompress(std::span<const uint8_t> bytes, size_t* consumed) {
    // Kept before decompressing: libzstd may buffer a header internally and
    // fail on it later, when the bytes are no longer in sight.
    frame_head_.Keep(input_offset_, bytes);
    ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
    while (true) {
      std::span<uint8_t> space = output_space();
      ZSTD_outBuffer out{space.data(), space.size(), 0};
      size_t in_before = in.pos;
      size_t ret = ZSTD_decompressStream(context_.get(), &out, &in);
      input_offset_ += in.pos - in_before;
      if (ZSTD_isError(ret)) return DecompressError(ret);
      CDI_RETURN_IF_ERROR(Produced(out.pos));
      if (ret == 0) {
        // libzstd returns 0 exactly at the end of a frame, output flushed,
        // with `in` positioned just past it.
        state_ = State::kBetweenFrames;
        *consumed = in.pos;
        if (on_frame_end_) on_frame_end_(input_offset_, output_total());
        return Status::Ok();
      }
      if (in.pos == in.size && out.pos < out.size) {
        *consumed = in.pos;
        return Status::Ok();
      }
    }
  }

  Status DecompressError(size_t ret) const {
    switch (ZSTD_getErrorCode(ret)) {
      case ZSTD_error_frameParameter_windowTooLarge: {
        std::string needed = "a larger window";
        ZSTD_frameHeader header{};
        std::span<const uint8_t> head = frame_head_.bytes();
        if (ZSTD_getFrameHeader(&header, head.data(), head.size()) == 0) {
          needed = "a window of " + MiB(header.windowSize) + " (" +
                   std::to_string(header.windowSize) + " bytes)";
        }
        uint64_t limit = uint64_t{1} << window_log_max_;
        return UnsupportedError(
            "the zstd frame at compressed offset " + std::to_string(frame_head_.offset()) +
            " needs " + needed + " to decompress, more than the zstd window limit of " +
            MiB(limit) + " (2^" + std::to_string(window_log_max_) +
            " bytes); recompress the image with a smaller window (without --long, or with "
            "--long=" +
            std::to_string(window_log_max_) +
            " or less) or raise the importer's zstd window limit");
      }
      case ZSTD_error_memory_allocation:
        return InternalError("out of memory while decompressing zstd");
      default:
        return CorruptError(ZSTD_getErrorName(ret));
    }
  }

  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> context_;
  int window_log_max_;
  std::function<void(uint64_t, uint64_t)> on_frame_end_;
  State state_ = State::kInFrame;
  // The current frame's header, to report the window of a refused frame.
  UnitHead<ZSTD_FRAMEHEADERSIZE_MAX> frame_head_;
};

}  // namespace

std::optional<uint64_t> ZstdDeclaredFrameSize(std::span<const uint8_t> head) {
  ZSTD_frameHeader header{};
  if (ZSTD_getFrameHeader(&header, head.data(), head.size()) != 0) return std::nullopt;
  if (header.frameType != ZSTD_frame || header.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN) {
    return std::nullopt;
  }
  return header.frameContentSize;
}

Result<std::unique_ptr<ByteSink>> MakeZstdUnwrapper(ByteSink* downstream,
                                                    const UnwrapOptions& options) {
  auto unwrapper = std::make_unique<ZstdUnwrapper>(downstream, options);
  CDI_RETURN_IF_ERROR(unwrapper->Init());
  return std::unique_ptr<ByteSink>(std::move(unwrapper));
}

}  // namespace cdi::formats
