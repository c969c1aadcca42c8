// gzip (RFC 1952) through zlib's inflate, member after member.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <string>

#include "formats/unwrapper.h"

namespace cdi::formats {
namespace {

// RFC 1952 section 2.3.1: every member starts with ID1 ID2 = 1F 8B.
constexpr uint8_t kGzipId1 = 0x1F;
// 15-bit window (the largest deflate uses) + 16: expect a gzip header and trailer.
constexpr int kGzipWindowBits = 15 + 16;

// Owns an inflate state.
class InflateStream {
 public:
  InflateStream() = default;
  ~InflateStream() {
    if (initialized_) inflateEnd(&stream_);
  }
  InflateStream(const InflateStream&) = delete;
  InflateStream& operator=(const InflateStream&) = delete;

  Status Init() {
    int ret = inflateInit2(&stream_, kGzipWindowBits);
    if (ret != Z_OK) {
      return InternalError("cannot set up the gzip decompressor (zlib error " +
                           std::to_string(ret) + "); the importer may be out of memory");
    }
    initialized_ = true;
    return Status::Ok();
  }
  z_stream* get() { return &stream_; }

 private:
  z_stream stream_{};
  bool initialized_ = false;
};

class GzipUnwrapper final : public Unwrapper {
 public:
  GzipUnwrapper(ByteSink* downstream, uint64_t max_output_bytes)
      : Unwrapper(Format::kGzip, downstream, max_output_bytes) {}

  Status Init() { return inflate_.Init(); }

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      switch (state_) {
        case State::kInMember: {
          size_t consumed = 0;
          CDI_RETURN_IF_ERROR(Inflate(bytes, &consumed));
          bytes = bytes.subspan(consumed);
          break;
        }
        case State::kBetweenMembers:
          if (bytes[0] == 0) {
            state_ = State::kZeroPadding;
          } else if (bytes[0] == kGzipId1) {
            // Another member (cat a.gz b.gz, pigz): inflate's header check
            // judges the rest of its magic.
            if (inflateReset(inflate_.get()) != Z_OK) {
              return InternalError("cannot reset the gzip decompressor for the next member");
            }
            state_ = State::kInMember;
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
    if (state_ == State::kInMember) return EndsEarlyError();
    return FinishOutput();
  }

 private:
  enum class State {
    kInMember,        // inside a member: header, deflate data or trailer
    kBetweenMembers,  // a member just ended; the next byte decides
    kZeroPadding,     // only zero bytes may follow
  };

  // Inflates from the start of `bytes` until they are used up or the member
  // ends; sets *consumed to the bytes used.
  Status Inflate(std::span<const uint8_t> bytes, size_t* consumed) {
    z_stream* stream = inflate_.get();
    // avail_in is 32 bits wide; one member's worth is taken at a time anyway.
    size_t offered = std::min<size_t>(bytes.size(), UINT_MAX);
    stream->next_in = const_cast<Bytef*>(bytes.data());  // zlib does not write through next_in
    stream->avail_in = static_cast<uInt>(offered);
    while (true) {
      std::span<uint8_t> out = output_space();
      stream->next_out = out.data();
      stream->avail_out = static_cast<uInt>(out.size());
      uInt in_before = stream->avail_in;
      int ret = inflate(stream, Z_NO_FLUSH);
      input_offset_ += in_before - stream->avail_in;
      CDI_RETURN_IF_ERROR(Produced(out.size() - stream->avail_out));
      switch (ret) {
        case Z_OK:
          break;
        case Z_STREAM_END:
          state_ = State::kBetweenMembers;
          *consumed = offered - stream->avail_in;
          return Status::Ok();
        case Z_BUF_ERROR:
          // No progress was possible: all input is used and no output is pending.
          *consumed = offered;
          return Status::Ok();
        case Z_NEED_DICT:
          return CorruptError("the data asks for a preset dictionary, which gzip never uses");
        case Z_MEM_ERROR:
          return InternalError("out of memory while decompressing gzip");
        default:  // Z_DATA_ERROR, Z_STREAM_ERROR
          return CorruptError(stream->msg != nullptr ? stream->msg : "invalid deflate data");
      }
      // Input used up and room left for output: inflate has nothing more to give.
      if (stream->avail_in == 0 && stream->avail_out > 0) {
        *consumed = offered;
        return Status::Ok();
      }
    }
  }

  InflateStream inflate_;
  State state_ = State::kInMember;
};

}  // namespace

Result<std::unique_ptr<ByteSink>> MakeGzipUnwrapper(ByteSink* downstream,
                                                    const UnwrapOptions& options) {
  auto unwrapper = std::make_unique<GzipUnwrapper>(downstream, options.max_output_bytes);
  CDI_RETURN_IF_ERROR(unwrapper->Init());
  return std::unique_ptr<ByteSink>(std::move(unwrapper));
}

}  // namespace cdi::formats
