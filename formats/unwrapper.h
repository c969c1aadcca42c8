// Unwrappers: gzip, xz and zstd decompressors as ByteSinks.
//
// An unwrapper is fed the compressed bytes of one wrapper layer, in order and
// in chunks of any size, and pushes the decompressed bytes into a downstream
// ByteSink in chunks of at most kUnwrapChunkBytes. Its memory is fixed: one
// output buffer of kUnwrapChunkBytes plus the decompressor's own state (85 KiB
// for gzip, ISA-L's igzip; the stream's dictionary for xz, at most UnwrapOptions::xz_memlimit;
// the frame's window for zstd, at most 2^zstd_window_log_max), whatever the
// size of the image.
//
// What a stream may hold:
//  - gzip: one or more members (RFC 1952), as `cat a.gz b.gz` or pigz make.
//  - xz: one or more streams, each optionally followed by Stream Padding (zero
//    bytes, a multiple of four, as the .xz format requires).
//  - zstd: one or more frames, skippable frames among them (RFC 8878).
// Zero bytes after the last complete member or frame are padding (as block
// devices and tape archives add) and are ignored; for xz they must come in
// multiples of four. Any other byte that does not start a new member, stream
// or frame is refused as kCorruptImage: an image with something appended is
// not silently cut.
//
// Errors:
//  - kCorruptImage: the compressed data is damaged (message names the wrapper
//    and the compressed offset, counted from the first byte this unwrapper was
//    fed), the stream ends early (at Finish), or unexpected data follows it.
//  - kTooSmall: the output would pass UnwrapOptions::max_output_bytes; raised
//    before any byte past the limit is pushed downstream. The message contains
//    "is larger than the reported available storage", which CDI's controller
//    maps to "DataVolume too small to contain image".
//  - kUnsupported: xz needs more memory than xz_memlimit, a zstd frame needs a
//    larger window than 2^zstd_window_log_max, or xz uses unknown options.
//  - A non-ok Status from the downstream sink is returned unchanged.
// After an error the unwrapper must not be fed again.
//
// Thread-safety: none; one thread feeds an unwrapper. The xz unwrapper may use
// worker threads internally (UnwrapOptions::threads); the downstream sink is
// always called from the feeding thread.
#ifndef CDI_FORMATS_UNWRAPPER_H_
#define CDI_FORMATS_UNWRAPPER_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/detect.h"

namespace cdi::formats {

// The most bytes an unwrapper pushes downstream in one Feed() call.
inline constexpr size_t kUnwrapChunkBytes = 1 << 20;

// Where an xz stream begins: what a point inside it needs to be continued
// (formats/xz_blocks.h).
struct XzStreamStart {
  uint32_t check = 0;         // the integrity check its Stream Header names (lzma_check)
  uint64_t compressed = 0;    // the compressed offset of its Stream Header
  uint64_t decompressed = 0;  // the bytes earlier streams decompress to
};

// A point between two blocks of an xz stream, or after its last block: a
// Block Header or the Index begins at `compressed`, and the blocks before it
// (earlier streams included) decompress to `decompressed` bytes.
struct XzBlockEnd {
  uint64_t compressed = 0;
  uint64_t decompressed = 0;
  XzStreamStart stream;
};

struct UnwrapOptions {
  // No more than this many decompressed bytes are pushed downstream.
  uint64_t max_output_bytes = UINT64_MAX;
  // liblzma's memory limit (bytes) for decoding an xz stream, threads included.
  uint64_t xz_memlimit = 128ull << 20;
  // What the threads of the threaded xz decoder may hold together: liblzma
  // runs as many as fit (one at least). 0: xz_memlimit; never more than it.
  uint64_t xz_memlimit_threading = 0;
  // zstd frames whose window is larger than 2^zstd_window_log_max bytes are refused.
  int zstd_window_log_max = 27;
  // xz decoder threads (only multi-block streams, as `xz -T0` makes, decode in
  // parallel); 0: one per CPU the process may use (ThisProcessResources:
  // affinity and cgroup quota); 1: decode on the feeding thread.
  unsigned threads = 1;
  // zstd: called from Feed() each time a frame (a skippable one too) ends,
  // with the compressed offset just past it (counted as in messages, see
  // zstd_continue_at) and the bytes decompressed up to there by this
  // unwrapper, pushed downstream or still buffered. A point between frames
  // is where a later import may continue the stream (importer/resume.h).
  std::function<void(uint64_t compressed, uint64_t decompressed)> on_frame_end;
  // zstd: the stream is continued at a point between frames that an earlier
  // import reached: the first byte fed is this compressed offset of the
  // whole stream (messages and on_frame_end count from the stream's start),
  // and a frame, a skippable frame or the zero padding after the last frame
  // begins there.
  std::optional<uint64_t> zstd_continue_at;
  // xz: called from Feed() or Finish() once a block is over, its check
  // verified, with the point after it (offsets counted as in messages, see
  // xz_continue_at). Points come from every block of a stream decoded on the
  // feeding thread, and from blocks that record their sizes in their headers
  // (as `xz -T0` writes them) in a stream the threaded decoder decodes
  // (formats/xz_blocks.h). Setting it makes the unwrapper choose per stream:
  // the threaded decoder when its first block records its sizes and threads
  // is not 1, otherwise its own block-by-block decoder (as fast as liblzma's
  // single-threaded one).
  std::function<void(const XzBlockEnd&)> on_xz_block_end;
  // xz: the stream is continued at a point an earlier import reached (an
  // on_xz_block_end point): the first byte fed is compressed byte
  // xz_continue_at->compressed of the whole source, where a Block Header or
  // the Index begins, and its output continues decompressed byte
  // xz_continue_at->decompressed (on_xz_block_end counts from the source's
  // start). The stream's Index must agree with the point (formats/xz_blocks.h).
  std::optional<XzBlockEnd> xz_continue_at;
};

// Makes the unwrapper for `wrapper` (gzip, xz or zstd; anything else is
// kInternal). `downstream` must outlive it. Fails only when the decompressor
// cannot be set up (out of memory, bad options).
Result<std::unique_ptr<ByteSink>> MakeUnwrapper(Format wrapper, ByteSink* downstream,
                                                const UnwrapOptions& options);

Result<std::unique_ptr<ByteSink>> MakeGzipUnwrapper(ByteSink* downstream,
                                                    const UnwrapOptions& options);
Result<std::unique_ptr<ByteSink>> MakeXzUnwrapper(ByteSink* downstream,
                                                  const UnwrapOptions& options);
// The decompressed size the zstd frame starting at `head` declares in its
// header (Frame_Content_Size, RFC 8878 section 3.1.1.1.4); nullopt when
// `head` does not start with a zstd frame (a skippable frame, too few bytes)
// or the header leaves the size out (as zstd does when it compresses a pipe).
// It is that frame's size: the stream's whole size when it is the only
// frame, as zstd writes a file.
std::optional<uint64_t> ZstdDeclaredFrameSize(std::span<const uint8_t> head);

Result<std::unique_ptr<ByteSink>> MakeZstdUnwrapper(ByteSink* downstream,
                                                    const UnwrapOptions& options);

// Keeps the first `N` bytes of the current member, stream or frame, for
// messages that need its header after the decompressor has consumed it.
template <size_t N>
class UnitHead {
 public:
  // A new unit starts at compressed offset `offset`.
  void Start(uint64_t offset) {
    offset_ = offset;
    length_ = 0;
  }
  // `offered` holds the input from compressed offset `at` on; it may repeat
  // bytes kept before (input offered again because it was not consumed).
  void Keep(uint64_t at, std::span<const uint8_t> offered) {
    uint64_t end = offset_ + length_;
    if (length_ == N || at > end || end - at >= offered.size()) return;
    size_t skip = static_cast<size_t>(end - at);
    size_t take = std::min(N - length_, offered.size() - skip);
    std::copy_n(offered.begin() + static_cast<ptrdiff_t>(skip), take,
                bytes_.begin() + static_cast<ptrdiff_t>(length_));
    length_ += take;
  }
  std::span<const uint8_t> bytes() const { return std::span(bytes_).first(length_); }
  uint64_t offset() const { return offset_; }

 private:
  std::array<uint8_t, N> bytes_{};
  size_t length_ = 0;
  uint64_t offset_ = 0;
};

// The part every unwrapper shares: the output buffer, the output limit, the
// compressed offset and the wording of errors. Subclasses decompress into
// output_space(), then call Produced().
class Unwrapper : public ByteSink {
 public:
  ~Unwrapper() override;

 protected:
  Unwrapper(Format wrapper, ByteSink* downstream, uint64_t max_output_bytes);

  // Where the next decompressed bytes go; never empty (Produced() pushes a
  // full buffer downstream before returning).
  std::span<uint8_t> output_space() { return std::span(output_).subspan(buffered_); }
  // Accounts for `length` bytes just written at the start of output_space():
  // fails with kTooSmall when the total passes the limit, pushes the buffer
  // downstream when it is full.
  Status Produced(size_t length);
  // Pushes buffered output downstream, then finishes the downstream sink.
  Status FinishOutput();
  // Bytes decompressed so far, pushed downstream or buffered.
  uint64_t output_total() const { return output_total_; }

  // Compressed bytes consumed so far; subclasses advance it.
  uint64_t input_offset_ = 0;

  Status CorruptError(std::string_view what) const;
  Status CorruptErrorAt(uint64_t offset, std::string_view what) const;
  Status EndsEarlyError() const;
  Status TrailingDataError(uint64_t offset) const;
  std::string_view name() const { return FormatName(wrapper_); }

 private:
  Status Push();

  Format wrapper_;
  ByteSink* downstream_;
  uint64_t max_output_bytes_;
  uint64_t output_total_ = 0;  // bytes decompressed, pushed or buffered
  std::vector<uint8_t> output_;
  size_t buffered_ = 0;
};

}  // namespace cdi::formats

#endif  // CDI_FORMATS_UNWRAPPER_H_
