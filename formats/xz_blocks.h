// The block framing of an .xz stream (the .xz file format 1.1, sections 2
// and 3), so that an import can stop between two blocks and a later one
// continue there:
//
//   Stream Header (12 bytes) | Block ... Block | Index | Stream Footer (12 bytes)
//   Block = Block Header | Compressed Data | Block Padding (to 4) | Check
//
// Two pieces, used by the xz unwrapper (formats/xz_unwrapper.cc) when it
// reports points between blocks (UnwrapOptions::on_xz_block_end):
//
//  - XzBlockTracker follows, from the compressed bytes alone, the framing of
//    a stream that liblzma's (threaded) stream decoder decodes: it learns
//    where each block ends from its header, when the header records the
//    block's sizes (as `xz -T0` writes every block). It checks nothing; the
//    stream decoder does. A block whose header leaves its sizes out ends the
//    tracking of that stream.
//
//  - XzBlockDecoder decodes a stream itself, block by block, with liblzma's
//    block decoder for each: from the Stream Header, or continued at a block
//    (or the Index) that an earlier import reached. It checks what liblzma's
//    stream decoder checks: the Stream Header, each Block Header, the sizes a
//    header records, each block's check, the Index (its records against the
//    blocks decoded, its padding and CRC32) and the Stream Footer (its CRC32,
//    its flags against the header's, its Backward Size against the Index). A
//    continued stream did not see its first blocks: its Index must list,
//    before the blocks decoded here, blocks whose sizes add up to exactly the
//    compressed and decompressed bytes before the point it continued at.
//    Such a stream's blocks are checked as above; the blocks before the point
//    were checked by the import that decoded them.
//
// Offsets are compressed bytes from the first byte the unwrapper was fed (a
// continued import's counting from the whole source's start), decompressed
// bytes are all of the unwrapper's output, earlier streams included.
//
// Thread-safety: none; one thread uses each.
#ifndef CDI_FORMATS_XZ_BLOCKS_H_
#define CDI_FORMATS_XZ_BLOCKS_H_

#include <lzma.h>

#include <array>
#include <cstdint>
#include <deque>
#include <span>
#include <string>

#include "formats/unwrapper.h"

namespace cdi::formats {

// .xz format section 2.1.1: the Stream Header and Footer are 12 bytes each.
inline constexpr size_t kXzStreamHeaderBytes = 12;

// Whether the start of a stream, `head` (its Stream Header and the start of
// the first Block Header), shows a first block whose header records both its
// compressed and uncompressed sizes, which liblzma's threaded decoder needs
// to decode blocks in parallel. nullopt: `head` is too short to tell.
std::optional<bool> XzFirstBlockHasSizes(std::span<const uint8_t> head);

class XzBlockTracker {
 public:
  // A stream begins at compressed offset `stream.compressed`.
  void Start(const XzStreamStart& stream);
  // The stream decoder consumed `bytes`, which follow what it consumed before.
  void Observe(std::span<const uint8_t> bytes);
  // Block ends seen and not yet taken, oldest first: a block is over (its
  // check verified) once the decoder's output goes past its end.
  std::deque<XzBlockEnd>& ends() { return ends_; }

 private:
  enum class State { kStreamHeader, kBlockStart, kBlockHeader, kSkip, kBlind };
  void BlockHeaderComplete();

  State state_ = State::kBlind;
  XzStreamStart stream_;
  uint64_t offset_ = 0;        // compressed bytes observed
  uint64_t decompressed_ = 0;  // the decompressed end of the last block seen
  std::array<uint8_t, LZMA_BLOCK_HEADER_SIZE_MAX> header_{};
  size_t have_ = 0;           // bytes of the header (stream or block) gathered
  size_t want_ = 0;           // its size
  uint64_t skip_ = 0;         // bytes of the current block still to pass
  uint64_t block_output_ = 0;  // the current block's uncompressed size
  std::deque<XzBlockEnd> ends_;
};

class XzBlockDecoder {
 public:
  // What went wrong; the xz unwrapper words the message.
  enum class Problem {
    kNone,
    kCorrupt,      // `what` says what
    kMemlimit,     // a block needs `needed` bytes of memory, more than the limit
    kOptions,      // filters or a check this liblzma does not support
    kOutOfMemory,
  };
  struct Step {
    size_t in_used = 0;
    size_t out_used = 0;
    bool block_ended = false;   // a block ended: block_end() says where
    bool stream_ended = false;  // the Stream Footer was read and checked
    Problem problem = Problem::kNone;
    std::string what;
    uint64_t needed = 0;
  };

  // A stream from its Stream Header, which begins at stream.compressed.
  XzBlockDecoder(const XzStreamStart& stream, uint64_t memlimit);
  // A stream continued at `at`, where a Block Header or the Index begins.
  XzBlockDecoder(const XzBlockEnd& at, uint64_t memlimit);
  ~XzBlockDecoder();
  XzBlockDecoder(const XzBlockDecoder&) = delete;
  XzBlockDecoder& operator=(const XzBlockDecoder&) = delete;

  // Decodes from `in` into `out` until `in` is used up and `out` has room,
  // `out` is full, a block ends, the stream ends, or a problem is found (after
  // which it must not be called again). `in` may be empty, to drain output.
  Step Code(std::span<const uint8_t> in, std::span<uint8_t> out);
  // The point just after the block that ended last.
  const XzBlockEnd& block_end() const { return block_end_; }
  // The check type of the stream, once its Stream Header was read.
  uint32_t check() const { return stream_.check; }

 private:
  enum class State {
    kStreamHeader,
    kBlockStart,  // a Block Header or the Index begins
    kBlockHeader,
    kBlockData,
    kIndexCount,
    kIndexUnpadded,
    kIndexUncompressed,
    kIndexPadding,
    kIndexCrc,
    kFooter,
    kDone,
  };
  Step Fail(Step step, Problem problem, std::string what) const;
  // Each returns false with step->problem set when the stream is damaged.
  // Whether a Stream Header or Footer decoded; otherwise says why in *step.
  bool FlagsDecoded(lzma_ret ret, Step* step, const char* bad_magic, const char* bad_crc) const;
  bool StreamHeaderComplete(Step* step);
  bool BlockHeaderComplete(Step* step);
  bool IndexRecordsComplete(Step* step);
  bool FooterComplete(Step* step);
  void FreeFilters();
  // Feeds one byte of the Index (all but its CRC32) to the running CRC32.
  void IndexByte(uint8_t byte);

  State state_;
  uint64_t memlimit_;
  XzStreamStart stream_;
  lzma_stream_flags flags_{};
  lzma_stream lzma_ = LZMA_STREAM_INIT;
  lzma_block block_{};
  std::array<lzma_filter, LZMA_FILTERS_MAX + 1> filters_{};
  uint64_t offset_;        // compressed bytes consumed
  uint64_t decompressed_;  // bytes produced
  std::array<uint8_t, LZMA_BLOCK_HEADER_SIZE_MAX> header_{};
  size_t have_ = 0;
  size_t want_ = 0;
  XzBlockEnd block_end_;
  // The blocks decoded here: how many, their sizes, a CRC64 of their records.
  uint64_t blocks_ = 0;
  uint64_t blocks_total_ = 0;  // compressed, each rounded up to four
  uint64_t blocks_output_ = 0;
  uint64_t blocks_hash_ = 0;
  // The Index's blocks before the point the stream was continued at (none
  // for a stream decoded from its header): what they must add up to.
  uint64_t before_total_ = 0;
  uint64_t before_output_ = 0;
  // The Index as it is read.
  lzma_vli vli_ = 0;
  size_t vli_pos_ = 0;
  uint64_t records_ = 0;     // the Index's Number of Records
  uint64_t record_ = 0;      // records read
  lzma_vli unpadded_ = 0;    // the Unpadded Size of the record being read
  uint64_t index_total_ = 0;  // records before the point, as read
  uint64_t index_output_ = 0;
  uint64_t tail_total_ = 0;   // the records of the blocks decoded here, as read
  uint64_t tail_output_ = 0;
  uint64_t tail_hash_ = 0;
  uint64_t index_size_ = 0;  // bytes of the Index so far
  uint32_t index_crc_ = 0;
};

}  // namespace cdi::formats

#endif  // CDI_FORMATS_XZ_BLOCKS_H_
