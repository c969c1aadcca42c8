// gzip (RFC 1952) through ISA-L's igzip inflate, member after member.
//
// igzip inflates the same streams as zlib about twice as fast (it reads
// wider words and decodes with larger tables), checks the same things (the
// header's CRC16, the data's CRC32 and ISIZE, every symbol and distance),
// and reads the header's optional fields itself. The one check it leaves
// out, reserved FLG bits, is made here, as zlib makes it.
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <string>

#include "formats/unwrapper.h"

namespace cdi::formats {
namespace {

// RFC 1952 section 2.3.1: every member starts with ID1 ID2 = 1F 8B.
constexpr uint8_t kGzipId1 = 0x1F;
// Section 2.3.1: FLG is the member's fourth byte; bits 5 to 7 are reserved
// and must be zero.
constexpr uint64_t kFlagsOffset = 3;
constexpr uint8_t kReservedFlags = 0xE0;

// What an igzip error means, in zlib's words where zlib has them.
std::string IgzipError(int ret) {
  switch (ret) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid literal/length or distance code";
    case ISAL_INVALID_LOOKBACK:
      return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER:
      return "incorrect header check";
    case ISAL_UNSUPPORTED_METHOD:
      return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "incorrect header, data or length check";
    default:
      return "igzip error " + std::to_string(ret);
  }
}

class GzipUnwrapper final : public Unwrapper {
 public:
  GzipUnwrapper(ByteSink* downstream, uint64_t max_output_bytes)
      : Unwrapper(Format::kGzip, downstream, max_output_bytes) {}

  // The state (85 KiB: history, tables, a header buffer) lives on the heap.
  Status Init() {
    state_ = std::make_unique<inflate_state>();
    StartMember();
    return Status::Ok();
  }

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      switch (phase_) {
        case Phase::kInMember: {
          size_t consumed = 0;
          CDI_RETURN_IF_ERROR(Inflate(bytes, &consumed));
          bytes = bytes.subspan(consumed);
          break;
        }
        case Phase::kBetweenMembers:
          if (bytes[0] == 0) {
            phase_ = Phase::kZeroPadding;
          } else if (bytes[0] == kGzipId1) {
            // Another member (cat a.gz b.gz, pigz): igzip's header check
            // judges the rest of its magic.
            StartMember();
          } else {
            return TrailingDataError(input_offset_);
          }
          break;
        case Phase::kZeroPadding: {
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
    if (phase_ == Phase::kInMember) return EndsEarlyError();
    return FinishOutput();
  }

 private:
  enum class Phase {
    kInMember,        // inside a member: header, deflate data or trailer
    kBetweenMembers,  // a member just ended; the next byte decides
    kZeroPadding,     // only zero bytes may follow
  };

  void StartMember() {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;  // parse the header, check the trailer
    member_start_ = input_offset_;
    phase_ = Phase::kInMember;
  }

  // Inflates from the start of `bytes` until they are used up or the member
  // ends; sets *consumed to the bytes used.
  Status Inflate(std::span<const uint8_t> bytes, size_t* consumed) {
    // The FLG byte, before igzip reads past it.
    if (input_offset_ <= member_start_ + kFlagsOffset &&
        member_start_ + kFlagsOffset - input_offset_ < bytes.size() &&
        (bytes[member_start_ + kFlagsOffset - input_offset_] & kReservedFlags) != 0) {
      return CorruptErrorAt(member_start_ + kFlagsOffset, "unknown header flags set");
    }
    inflate_state* state = state_.get();
    // avail_in is 32 bits wide; one member's worth is taken at a time anyway.
    size_t offered = std::min<size_t>(bytes.size(), UINT_MAX);
    state->next_in = const_cast<uint8_t*>(bytes.data());  // igzip does not write through next_in
    state->avail_in = static_cast<uint32_t>(offered);
    while (true) {
      std::span<uint8_t> out = output_space();
      state->next_out = out.data();
      state->avail_out = static_cast<uint32_t>(out.size());
      uint32_t in_before = state->avail_in;
      int ret = isal_inflate(state);
      input_offset_ += in_before - state->avail_in;
      const size_t produced = out.size() - state->avail_out;
      CDI_RETURN_IF_ERROR(Produced(produced));
      // Negative: the data is corrupt. The positive codes say only that
      // igzip stopped at the end of its input or output.
      if (ret < 0) return CorruptError(IgzipError(ret));
      if (state->block_state == ISAL_BLOCK_FINISH) {
        // igzip hands back the input past the trailer it read ahead.
        phase_ = Phase::kBetweenMembers;
        *consumed = offered - state->avail_in;
        return Status::Ok();
      }
      // Input used up and room left for output: igzip has nothing more to give.
      if (state->avail_in == 0 && state->avail_out > 0) {
        *consumed = offered;
        return Status::Ok();
      }
      if (in_before == state->avail_in && produced == 0) {
        return InternalError("the gzip decompressor stopped making progress at compressed offset " +
                             std::to_string(input_offset_));
      }
    }
  }

  std::unique_ptr<inflate_state> state_;
  Phase phase_ = Phase::kInMember;
  uint64_t member_start_ = 0;  // compressed offset of the current member's first byte
};

}  // namespace

Result<std::unique_ptr<ByteSink>> MakeGzipUnwrapper(ByteSink* downstream,
                                                    const UnwrapOptions& options) {
  auto unwrapper = std::make_unique<GzipUnwrapper>(downstream, options.max_output_bytes);
  CDI_RETURN_IF_ERROR(unwrapper->Init());
  return std::unique_ptr<ByteSink>(std::move(unwrapper));
}

}  // namespace cdi::formats
