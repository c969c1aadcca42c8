#include "formats/xz_blocks.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace cdi::formats {
namespace {

// .xz format section 3.1.2: Block Flags, the second byte of a Block Header.
constexpr uint8_t kCompressedSizePresent = 0x40;
constexpr uint8_t kUncompressedSizePresent = 0x80;
// Section 4.1: the Index begins with the Index Indicator, a zero byte where a
// Block Header would begin.
constexpr uint8_t kIndexIndicator = 0x00;

uint64_t CeilFour(uint64_t size) { return (size + 3) & ~uint64_t{3}; }

// A block's record as the Index holds it, folded into a running CRC64.
uint64_t HashRecord(uint64_t hash, uint64_t unpadded, uint64_t uncompressed) {
  std::array<uint8_t, 16> record{};
  for (size_t i = 0; i < 8; ++i) {
    record[i] = static_cast<uint8_t>(unpadded >> (8 * i));
    record[8 + i] = static_cast<uint8_t>(uncompressed >> (8 * i));
  }
  return lzma_crc64(record.data(), record.size(), hash);
}

void FreeFilterOptions(std::span<lzma_filter> filters) {
  for (lzma_filter& filter : filters) {
    if (filter.id == LZMA_VLI_UNKNOWN) break;
    free(filter.options);  // liblzma allocated them with malloc (no allocator given)
    filter.options = nullptr;
  }
}

// Takes bytes from `in` into `buffer` until it holds `want`; returns the bytes taken.
size_t Gather(std::span<const uint8_t> in, std::span<uint8_t> buffer, size_t want, size_t* have) {
  const size_t take = std::min(want - *have, in.size());
  std::copy_n(in.begin(), take, buffer.begin() + static_cast<ptrdiff_t>(*have));
  *have += take;
  return take;
}

}  // namespace

std::optional<bool> XzFirstBlockHasSizes(std::span<const uint8_t> head) {
  if (head.size() <= kXzStreamHeaderBytes) return std::nullopt;
  if (head[kXzStreamHeaderBytes] == kIndexIndicator) return false;  // no block at all
  if (head.size() <= kXzStreamHeaderBytes + 1) return std::nullopt;
  const uint8_t flags = head[kXzStreamHeaderBytes + 1];
  return (flags & kCompressedSizePresent) != 0 && (flags & kUncompressedSizePresent) != 0;
}

// ---- XzBlockTracker ----

void XzBlockTracker::Start(const XzStreamStart& stream) {
  stream_ = stream;
  offset_ = stream.compressed;
  decompressed_ = stream.decompressed;
  state_ = State::kStreamHeader;
  have_ = 0;
  want_ = kXzStreamHeaderBytes;
}

void XzBlockTracker::Observe(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    size_t used = 0;
    switch (state_) {
      case State::kBlind:
        used = bytes.size();
        break;
      case State::kStreamHeader: {
        used = Gather(bytes, header_, want_, &have_);
        if (have_ < want_) break;
        lzma_stream_flags flags{};
        if (lzma_stream_header_decode(&flags, header_.data()) != LZMA_OK) {
          state_ = State::kBlind;  // the stream decoder reports it
          break;
        }
        stream_.check = static_cast<uint32_t>(flags.check);
        state_ = State::kBlockStart;
        break;
      }
      case State::kBlockStart:
        if (bytes[0] == kIndexIndicator) {
          state_ = State::kBlind;  // the blocks are over; the decoder ends the stream
          break;
        }
        want_ = lzma_block_header_size_decode(bytes[0]);
        have_ = 0;
        state_ = State::kBlockHeader;
        break;
      case State::kBlockHeader:
        used = Gather(bytes, header_, want_, &have_);
        if (have_ == want_) BlockHeaderComplete();
        break;
      case State::kSkip: {
        used = static_cast<size_t>(std::min<uint64_t>(skip_, bytes.size()));
        skip_ -= used;
        if (skip_ > 0) break;
        offset_ += used;
        bytes = bytes.subspan(used);
        decompressed_ += block_output_;
        ends_.push_back(XzBlockEnd{offset_, decompressed_, stream_});
        state_ = State::kBlockStart;
        continue;
      }
    }
    offset_ += used;
    bytes = bytes.subspan(used);
  }
}

void XzBlockTracker::BlockHeaderComplete() {
  std::array<lzma_filter, LZMA_FILTERS_MAX + 1> filters{};
  lzma_block block{};
  block.version = 1;
  block.check = static_cast<lzma_check>(stream_.check);
  block.header_size = static_cast<uint32_t>(want_);
  block.filters = filters.data();
  const lzma_ret ret = lzma_block_header_decode(&block, nullptr, header_.data());
  if (ret == LZMA_OK) FreeFilterOptions(filters);
  const lzma_vli total = ret == LZMA_OK ? lzma_block_total_size(&block) : 0;
  if (ret != LZMA_OK || block.compressed_size == LZMA_VLI_UNKNOWN ||
      block.uncompressed_size == LZMA_VLI_UNKNOWN || total == 0 || total < want_) {
    // A damaged header (the decoder reports it) or one without its sizes:
    // where this block ends is not known without decoding it.
    state_ = State::kBlind;
    return;
  }
  skip_ = total - want_;
  block_output_ = block.uncompressed_size;
  state_ = State::kSkip;
}

// ---- XzBlockDecoder ----

XzBlockDecoder::XzBlockDecoder(const XzStreamStart& stream, uint64_t memlimit)
    : state_(State::kStreamHeader),
      memlimit_(memlimit),
      stream_(stream),
      offset_(stream.compressed),
      decompressed_(stream.decompressed) {
  want_ = kXzStreamHeaderBytes;
  filters_[0].id = LZMA_VLI_UNKNOWN;
}

XzBlockDecoder::XzBlockDecoder(const XzBlockEnd& at, uint64_t memlimit)
    : state_(State::kBlockStart),
      memlimit_(memlimit),
      stream_(at.stream),
      offset_(at.compressed),
      decompressed_(at.decompressed) {
  filters_[0].id = LZMA_VLI_UNKNOWN;
  flags_.version = 0;
  flags_.check = static_cast<lzma_check>(at.stream.check);
  flags_.backward_size = LZMA_VLI_UNKNOWN;
  // The Index must list blocks adding up to exactly what lies before the
  // point; a point before the first block's start can match no Index.
  const uint64_t first_block = at.stream.compressed + kXzStreamHeaderBytes;
  before_total_ = at.compressed >= first_block ? at.compressed - first_block : UINT64_MAX;
  before_output_ = at.decompressed >= at.stream.decompressed
                       ? at.decompressed - at.stream.decompressed
                       : UINT64_MAX;
}

XzBlockDecoder::~XzBlockDecoder() {
  lzma_end(&lzma_);
  FreeFilters();
}

void XzBlockDecoder::FreeFilters() { FreeFilterOptions(filters_); }

XzBlockDecoder::Step XzBlockDecoder::Fail(Step step, Problem problem, std::string what) const {
  step.problem = problem;
  step.what = std::move(what);
  return step;
}

void XzBlockDecoder::IndexByte(uint8_t byte) {
  index_crc_ = lzma_crc32(&byte, 1, index_crc_);
  ++index_size_;
}

XzBlockDecoder::Step XzBlockDecoder::Code(std::span<const uint8_t> in, std::span<uint8_t> out) {
  Step step;
  while (true) {
    const std::span<const uint8_t> rest = in.subspan(step.in_used);
    switch (state_) {
      case State::kStreamHeader:
      case State::kBlockHeader:
      case State::kFooter: {
        if (rest.empty()) return step;
        const size_t used = Gather(rest, header_, want_, &have_);
        step.in_used += used;
        offset_ += used;
        if (have_ < want_) return step;
        const bool ok = state_ == State::kStreamHeader ? StreamHeaderComplete(&step)
                        : state_ == State::kBlockHeader ? BlockHeaderComplete(&step)
                                                        : FooterComplete(&step);
        if (!ok || step.stream_ended) return step;
        break;
      }
      case State::kBlockStart:
        if (rest.empty()) return step;
        if (rest[0] == kIndexIndicator) {
          IndexByte(rest[0]);
          ++step.in_used;
          ++offset_;
          vli_ = 0;
          vli_pos_ = 0;
          state_ = State::kIndexCount;
        } else {
          want_ = lzma_block_header_size_decode(rest[0]);
          have_ = 0;
          state_ = State::kBlockHeader;
        }
        break;
      case State::kBlockData: {
        lzma_.next_in = rest.data();
        lzma_.avail_in = rest.size();
        lzma_.next_out = out.data() + step.out_used;
        lzma_.avail_out = out.size() - step.out_used;
        const lzma_ret ret = lzma_code(&lzma_, LZMA_RUN);
        const size_t used = rest.size() - lzma_.avail_in;
        const size_t produced = out.size() - step.out_used - lzma_.avail_out;
        step.in_used += used;
        step.out_used += produced;
        offset_ += used;
        decompressed_ += produced;
        switch (ret) {
          case LZMA_STREAM_END: {
            // The block is over: its sizes match its header's, its check is verified.
            const lzma_vli unpadded = lzma_block_unpadded_size(&block_);
            ++blocks_;
            blocks_total_ += CeilFour(unpadded);
            blocks_output_ += block_.uncompressed_size;
            blocks_hash_ = HashRecord(blocks_hash_, unpadded, block_.uncompressed_size);
            block_end_ = XzBlockEnd{offset_, decompressed_, stream_};
            step.block_ended = true;
            state_ = State::kBlockStart;
            return step;
          }
          case LZMA_OK:
          case LZMA_BUF_ERROR:  // no progress possible: more input is needed
            break;
          case LZMA_MEM_ERROR:
            return Fail(step, Problem::kOutOfMemory, "");
          case LZMA_OPTIONS_ERROR:
            return Fail(step, Problem::kOptions, "");
          default:
            return Fail(step, Problem::kCorrupt, "compressed data is corrupt");
        }
        if (step.out_used == out.size() || lzma_.avail_in == 0) return step;
        break;
      }
      case State::kIndexCount:
      case State::kIndexUnpadded:
      case State::kIndexUncompressed: {
        if (rest.empty()) return step;
        const uint8_t byte = rest[0];
        ++step.in_used;
        ++offset_;
        IndexByte(byte);
        size_t pos = 0;
        const lzma_ret ret = lzma_vli_decode(&vli_, &vli_pos_, &byte, &pos, 1);
        if (ret == LZMA_OK) break;  // more bytes of this number follow
        if (ret != LZMA_STREAM_END) {
          return Fail(step, Problem::kCorrupt, "the Index holds a number that is not valid");
        }
        const lzma_vli value = vli_;
        vli_ = 0;
        vli_pos_ = 0;
        if (state_ == State::kIndexCount) {
          records_ = value;
          if (records_ < blocks_) {
            return Fail(step, Problem::kCorrupt,
                        "the Index lists " + std::to_string(records_) + " blocks, fewer than the " +
                            std::to_string(blocks_) + " decoded");
          }
          record_ = 0;
          if (records_ == 0 && !IndexRecordsComplete(&step)) return step;
          state_ = records_ == 0 ? State::kIndexPadding : State::kIndexUnpadded;
        } else if (state_ == State::kIndexUnpadded) {
          if (value == 0) return Fail(step, Problem::kCorrupt, "the Index lists an empty block");
          unpadded_ = value;
          state_ = State::kIndexUncompressed;
        } else {
          // Records before the point the stream continued at, then one for
          // each block decoded here.
          const bool before = record_ < records_ - blocks_;
          uint64_t& total = before ? index_total_ : tail_total_;
          uint64_t& output = before ? index_output_ : tail_output_;
          if (__builtin_add_overflow(total, CeilFour(unpadded_), &total) ||
              __builtin_add_overflow(output, value, &output)) {
            return Fail(step, Problem::kCorrupt, "the Index's sizes add up to more than 2^64");
          }
          if (!before) tail_hash_ = HashRecord(tail_hash_, unpadded_, value);
          ++record_;
          if (record_ == records_ && !IndexRecordsComplete(&step)) return step;
          state_ = record_ < records_ ? State::kIndexUnpadded : State::kIndexPadding;
        }
        break;
      }
      case State::kIndexPadding:
        if (index_size_ % 4 == 0) {
          have_ = 0;
          want_ = 4;
          state_ = State::kIndexCrc;
          break;
        }
        if (rest.empty()) return step;
        if (rest[0] != 0) return Fail(step, Problem::kCorrupt, "the Index Padding is not zero");
        IndexByte(0);
        ++step.in_used;
        ++offset_;
        break;
      case State::kIndexCrc: {
        if (rest.empty()) return step;
        const size_t used = Gather(rest, header_, want_, &have_);
        step.in_used += used;
        offset_ += used;
        if (have_ < want_) return step;
        const uint32_t stored = static_cast<uint32_t>(header_[0]) |
                                static_cast<uint32_t>(header_[1]) << 8 |
                                static_cast<uint32_t>(header_[2]) << 16 |
                                static_cast<uint32_t>(header_[3]) << 24;
        if (stored != index_crc_) {
          return Fail(step, Problem::kCorrupt, "the Index's CRC32 does not match");
        }
        index_size_ += 4;
        have_ = 0;
        want_ = kXzStreamHeaderBytes;
        state_ = State::kFooter;
        break;
      }
      case State::kDone:
        return step;
    }
  }
}

bool XzBlockDecoder::FlagsDecoded(lzma_ret ret, Step* step, const char* bad_magic,
                                  const char* bad_crc) const {
  switch (ret) {
    case LZMA_OK:
      return true;
    case LZMA_FORMAT_ERROR:
      *step = Fail(*step, Problem::kCorrupt, bad_magic);
      return false;
    case LZMA_OPTIONS_ERROR:
      *step = Fail(*step, Problem::kOptions, "");
      return false;
    default:
      *step = Fail(*step, Problem::kCorrupt, bad_crc);
      return false;
  }
}

bool XzBlockDecoder::StreamHeaderComplete(Step* step) {
  if (!FlagsDecoded(lzma_stream_header_decode(&flags_, header_.data()), step,
                    "not an xz stream header", "the Stream Header's CRC32 does not match")) {
    return false;
  }
  stream_.check = static_cast<uint32_t>(flags_.check);
  state_ = State::kBlockStart;
  return true;
}

bool XzBlockDecoder::BlockHeaderComplete(Step* step) {
  FreeFilters();
  block_ = lzma_block{};
  block_.version = 1;
  block_.check = static_cast<lzma_check>(stream_.check);
  block_.header_size = static_cast<uint32_t>(want_);
  block_.filters = filters_.data();
  switch (lzma_block_header_decode(&block_, nullptr, header_.data())) {
    case LZMA_OK:
      break;
    case LZMA_OPTIONS_ERROR:
      filters_[0].id = LZMA_VLI_UNKNOWN;
      *step = Fail(*step, Problem::kOptions, "");
      return false;
    default:
      filters_[0].id = LZMA_VLI_UNKNOWN;
      *step = Fail(*step, Problem::kCorrupt, "a Block Header is damaged");
      return false;
  }
  const uint64_t needed = lzma_raw_decoder_memusage(filters_.data());
  if (needed == UINT64_MAX) {
    FreeFilters();
    *step = Fail(*step, Problem::kOptions, "");
    return false;
  }
  if (needed > memlimit_) {
    FreeFilters();
    *step = Fail(*step, Problem::kMemlimit, "");
    step->needed = needed;
    return false;
  }
  const lzma_ret ret = lzma_block_decoder(&lzma_, &block_);
  // The decoder copied what it needs of the filters' options.
  FreeFilters();
  if (ret == LZMA_MEM_ERROR) {
    *step = Fail(*step, Problem::kOutOfMemory, "");
    return false;
  }
  if (ret != LZMA_OK) {
    *step = Fail(*step, Problem::kOptions, "");
    return false;
  }
  state_ = State::kBlockData;
  return true;
}

bool XzBlockDecoder::IndexRecordsComplete(Step* step) {
  if (index_total_ != before_total_ || index_output_ != before_output_) {
    *step = Fail(
        *step, Problem::kCorrupt,
        before_total_ == 0 && before_output_ == 0
            ? "the Index does not match the blocks of the stream"
            : "the Index lists blocks before compressed offset " +
                  std::to_string(block_end_.compressed) + " of " + std::to_string(index_total_) +
                  " compressed and " + std::to_string(index_output_) +
                  " decompressed bytes, not the " + std::to_string(before_total_) + " and " +
                  std::to_string(before_output_) + " that the import continued from");
    return false;
  }
  if (tail_total_ != blocks_total_ || tail_output_ != blocks_output_ || tail_hash_ != blocks_hash_) {
    *step = Fail(*step, Problem::kCorrupt, "the Index does not match the blocks of the stream");
    return false;
  }
  return true;
}

bool XzBlockDecoder::FooterComplete(Step* step) {
  lzma_stream_flags footer{};
  if (!FlagsDecoded(lzma_stream_footer_decode(&footer, header_.data()), step,
                    "the Stream Footer is missing after the Index",
                    "the Stream Footer's CRC32 does not match")) {
    return false;
  }
  if (lzma_stream_flags_compare(&flags_, &footer) != LZMA_OK) {
    *step = Fail(*step, Problem::kCorrupt, "the Stream Footer's flags differ from the header's");
    return false;
  }
  if (footer.backward_size != index_size_) {
    *step = Fail(*step, Problem::kCorrupt,
                 "the Stream Footer's Backward Size does not match the Index");
    return false;
  }
  state_ = State::kDone;
  step->stream_ended = true;
  return true;
}

}  // namespace cdi::formats
