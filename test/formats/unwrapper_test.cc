// gzip, xz and zstd unwrapping, checked against the real tools.
#include "formats/unwrapper.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "formats/pipeline.h"
#include "test/formats/formats_testing.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::Compress;
using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingSink;
using testing::RecordingWriter;

constexpr size_t kMiB = 1 << 20;
constexpr Format kWrappers[] = {Format::kGzip, Format::kXz, Format::kZstd};

std::string Name(Format format) { return std::string(FormatName(format)); }

std::string Suffix(Format wrapper) {
  switch (wrapper) {
    case Format::kGzip:
      return ".gz";
    case Format::kXz:
      return ".xz";
    default:
      return ".zst";
  }
}

// The messages users see, spelled out here so that a change to them is a
// deliberate one.
std::string EndsEarlyMessage(Format wrapper, uint64_t offset) {
  return "the " + Name(wrapper) + " stream ends early, at compressed offset " +
         std::to_string(offset) +
         ", before its end marker; the download was cut short or the file is truncated: retry "
         "the import, and check the file at its source ('" +
         Name(wrapper) + " -t FILE')";
}

std::string TrailingDataMessage(Format wrapper, uint64_t offset) {
  return "unexpected data after the end of the " + Name(wrapper) +
         " stream, at compressed offset " + std::to_string(offset) +
         "; the file has something appended or is damaged: recompress the image into a clean " +
         Suffix(wrapper) + " file and import that";
}

std::string TooLargeMessage(Format wrapper, uint64_t limit) {
  return "the decompressed image is larger than the reported available storage (" +
         std::to_string(limit) + " bytes): the " + Name(wrapper) +
         " stream decompresses to more than that; a larger volume is required";
}

struct Decoded {
  Status status;
  std::vector<std::string> chain;
  std::unique_ptr<RecordingWriter> writer;
  std::optional<uint64_t> declared_raw_size;
};

Decoded Decode(const std::string& stream, size_t chunk, PipelineOptions options = {},
               RecordingWriter::Content content = RecordingWriter::Content::kKeep) {
  Decoded decoded;
  decoded.writer = std::make_unique<RecordingWriter>(content);
  ImagePipeline pipeline(decoded.writer.get(), std::move(options));
  decoded.status = FeedInChunks(pipeline, stream, chunk);
  decoded.chain = pipeline.format_chain();
  decoded.declared_raw_size = pipeline.DeclaredRawSize();
  return decoded;
}

// Test data and its compressed form, made once per process: compressing
// 20 MiB with xz takes seconds.
const std::pair<std::string, std::string>& Sample(Format wrapper, size_t size, Pattern pattern) {
  static std::map<std::tuple<Format, size_t, Pattern>, std::pair<std::string, std::string>> cache;
  auto key = std::make_tuple(wrapper, size, pattern);
  auto it = cache.find(key);
  if (it == cache.end()) {
    std::string data = MakeData(size, pattern, static_cast<uint32_t>(size));
    // Level 1 keeps xz quick on the largest sample.
    std::vector<std::string> arguments;
    if (wrapper == Format::kXz && size > 4 * kMiB) arguments = {"-1"};
    std::string compressed = Compress(wrapper, data, arguments);
    it = cache.emplace(key, std::make_pair(std::move(data), std::move(compressed))).first;
  }
  return it->second;
}

using RoundTripParam = std::tuple<Format, size_t, Pattern, size_t>;

class RoundTripTest : public ::testing::TestWithParam<RoundTripParam> {};

TEST_P(RoundTripTest, DecodesWhatTheToolMade) {
  auto [wrapper, size, pattern, chunk] = GetParam();
  if (chunk < 4096 && size > 2 * kMiB) GTEST_SKIP() << "tiny chunks are covered on the smaller sizes";
  const auto& [data, compressed] = Sample(wrapper, size, pattern);

  Decoded decoded = Decode(compressed, chunk);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_EQ(decoded.chain, (std::vector<std::string>{Name(wrapper), "raw"}));
  const RecordingWriter& writer = *decoded.writer;
  EXPECT_TRUE(writer.CoverageOk());
  ASSERT_TRUE(writer.description().has_value());
  EXPECT_EQ(writer.description()->format, "raw");
  // Inside a wrapper the length shows only at the end.
  EXPECT_EQ(writer.description()->virtual_size, std::nullopt);
  EXPECT_EQ(writer.image().size(), data.size());
  EXPECT_TRUE(writer.image() == data) << "the decompressed image differs from the original";
  for (const auto& op : writer.ops()) EXPECT_LE(op.length, kUnwrapChunkBytes);
}

INSTANTIATE_TEST_SUITE_P(Wrappers, RoundTripTest,
                         ::testing::Combine(::testing::ValuesIn(kWrappers),
                                            ::testing::Values(0, 1, 4095, kMiB + 3,
                                                              20 * kMiB + 12345),
                                            ::testing::Values(Pattern::kRandom, Pattern::kZeroRuns),
                                            ::testing::Values(1, 7, 4096, kMiB)),
                         [](const auto& test_info) {
                           return Name(std::get<0>(test_info.param)) + "_size" +
                                  std::to_string(std::get<1>(test_info.param)) +
                                  (std::get<2>(test_info.param) == Pattern::kRandom ? "_random"
                                                                                    : "_zeroruns") +
                                  "_chunk" + std::to_string(std::get<3>(test_info.param));
                         });

TEST(GzipTest, DecodesEveryMemberOfAMultiMemberFile) {
  std::string a = MakeData(300000, Pattern::kZeroRuns, 1);
  std::string b = MakeData(5, Pattern::kRandom, 2);
  std::string c = MakeData(kMiB + 17, Pattern::kRandom, 3);
  std::string stream =
      Compress(Format::kGzip, a) + Compress(Format::kGzip, b) + Compress(Format::kGzip, c, {"-1"});
  for (size_t chunk : {1, 4096, 1 << 22}) {
    Decoded decoded = Decode(stream, chunk);
    ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_TRUE(decoded.writer->CoverageOk());
    EXPECT_TRUE(decoded.writer->image() == a + b + c) << "chunk " << chunk;
  }
}

// What gzip's header and trailer carry is checked as zlib checks it: reserved
// flags, the header's CRC16, the data's CRC32 and its length.
TEST(GzipTest, HeaderAndTrailerChecksRefuseADamagedMember) {
  std::string data = MakeData(100000, Pattern::kZeroRuns, 4);
  const std::string good = Compress(Format::kGzip, data);
  std::string second = Compress(Format::kGzip, data);
  struct Case {
    std::string name;
    std::string stream;
    uint64_t offset;  // where the damage is noticed, at least
    std::string what;
  };
  std::vector<Case> cases;
  std::string reserved = good;
  reserved[3] = static_cast<char>(reserved[3] | 0x20);
  cases.push_back({"reserved flag", reserved, 3, "(unknown header flags set)"});
  // The same in the second member: its offset is counted from the first byte.
  std::string reserved_second = second;
  reserved_second[3] = static_cast<char>(reserved_second[3] | 0x80);
  cases.push_back(
      {"reserved flag, second member", good + reserved_second, good.size() + 3,
       "(unknown header flags set)"});
  // FHCRC set over a header whose CRC16 is wrong.
  std::string hcrc = good.substr(0, 10);
  hcrc[3] = static_cast<char>(hcrc[3] | 0x02);
  cases.push_back({"header crc", hcrc + std::string("\x12\x34", 2) + good.substr(10), 10,
                   "(incorrect header, data or length check)"});
  std::string crc = good;
  crc[crc.size() - 8] = static_cast<char>(crc[crc.size() - 8] ^ 1);
  cases.push_back({"data crc", crc, crc.size() - 8, "(incorrect header, data or length check)"});
  std::string length = good;
  length[length.size() - 4] = static_cast<char>(length[length.size() - 4] ^ 1);
  cases.push_back(
      {"length", length, length.size() - 8, "(incorrect header, data or length check)"});
  for (const Case& c : cases) {
    for (size_t chunk : {size_t{1}, size_t{4096}}) {
      Decoded decoded = Decode(c.stream, chunk);
      EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage) << c.name;
      const std::string& message = decoded.status.message();
      const std::string prefix = "the gzip stream is corrupt at compressed offset ";
      ASSERT_EQ(message.substr(0, prefix.size()), prefix) << c.name << ": " << message;
      EXPECT_GE(std::stoull(message.substr(prefix.size())), c.offset) << c.name << ": " << message;
      EXPECT_NE(message.find(c.what), std::string::npos) << c.name << ": " << message;
    }
  }
}

TEST(XzTest, DecodesConcatenatedStreamsWithStreamPadding) {
  std::string a = MakeData(300000, Pattern::kZeroRuns, 1);
  std::string b = MakeData(kMiB + 5, Pattern::kRandom, 2);
  std::string padding(8, '\0');
  std::string stream = Compress(Format::kXz, a) + padding + Compress(Format::kXz, b, {"-0"}) +
                       Compress(Format::kXz, "") + padding;
  for (size_t chunk : {1, 4096, 1 << 22}) {
    Decoded decoded = Decode(stream, chunk);
    ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_TRUE(decoded.writer->CoverageOk());
    EXPECT_TRUE(decoded.writer->image() == a + b) << "chunk " << chunk;
  }
}

// Multi-block streams, as `xz -T0` makes, decode the same on one thread or many.
TEST(XzTest, DecodesMultiBlockStreamsWithAnyThreadCount) {
  std::string data = MakeData(6 * kMiB + 1, Pattern::kZeroRuns, 4);
  std::string stream = Compress(Format::kXz, data, {"-T2", "--block-size=500KiB", "-0"});
  for (unsigned threads : {0u, 1u, 3u}) {
    PipelineOptions options;
    options.decoder.threads = threads;
    Decoded decoded = Decode(stream, 65536, options);
    ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_TRUE(decoded.writer->CoverageOk());
    EXPECT_TRUE(decoded.writer->image() == data) << threads << " threads";
  }
}

// RFC 8878 section 3.1.2: magic 0x184D2A5?, a 4-byte little-endian size, then that many bytes.
std::string SkippableFrame(const std::string& payload, uint8_t variant = 0) {
  std::string frame = {static_cast<char>(0x50 | variant), '\x2A', '\x4D', '\x18'};
  uint32_t size = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) frame += static_cast<char>(size >> (8 * i));
  return frame + payload;
}

TEST(ZstdTest, DecodesEveryFrameAndSkipsSkippableFrames) {
  std::string a = MakeData(300000, Pattern::kZeroRuns, 1);
  std::string b = MakeData(kMiB + 5, Pattern::kRandom, 2);
  std::string stream = Compress(Format::kZstd, a) + SkippableFrame("not image data") +
                       Compress(Format::kZstd, b) + SkippableFrame("", 0xF) +
                       Compress(Format::kZstd, "");
  for (size_t chunk : {1, 4096, 1 << 22}) {
    Decoded decoded = Decode(stream, chunk);
    ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_TRUE(decoded.writer->CoverageOk());
    EXPECT_TRUE(decoded.writer->image() == a + b) << "chunk " << chunk;
  }
}

// pzstd writes a skippable frame before every frame, the first one included.
TEST(ZstdTest, DecodesWhatPzstdMade) {
  if (!cdi::test::HaveProgram("pzstd")) GTEST_SKIP() << "pzstd is not installed";
  std::string data = MakeData(3 * kMiB + 11, Pattern::kZeroRuns);
  cdi::test::RunOptions run_options;
  run_options.stdin_data = data;
  cdi::test::RunResult made = cdi::test::Run({"pzstd", "-q", "-c", "-p", "2"}, run_options);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Decoded decoded = Decode(made.out, 4096);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_EQ(decoded.chain, (std::vector<std::string>{"zstd", "raw"}));
  EXPECT_TRUE(decoded.writer->image() == data);
}

// What `zstd FILE` writes declares the size; what it writes from a pipe, and
// pzstd's leading skippable frame, do not say it.
TEST(ZstdTest, TheFrameHeaderDeclaresTheSizeWhenZstdKnewIt) {
  std::string data = MakeData(3 * kMiB + 11, Pattern::kZeroRuns);
  cdi::test::TempDir dir;
  cdi::test::WriteFile(dir.File("disk.raw"), data);
  cdi::test::RunResult made =
      cdi::test::Run({"zstd", "-q", "-1", "-c", dir.File("disk.raw")});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(ZstdDeclaredFrameSize(Bytes(made.out)), data.size());
  cdi::test::RunOptions piped;
  piped.stdin_data = data;
  made = cdi::test::Run({"zstd", "-q", "-1", "-c"}, piped);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(ZstdDeclaredFrameSize(Bytes(made.out)), std::nullopt);
  EXPECT_EQ(ZstdDeclaredFrameSize(Bytes(made.out.substr(0, 3))), std::nullopt);
}

TEST(ZstdTest, ThePipelineTellsTheDeclaredSizeOfARawImageOnly) {
  std::string data = MakeData(kMiB + 5, Pattern::kZeroRuns);
  cdi::test::TempDir dir;
  cdi::test::WriteFile(dir.File("disk.raw"), data);
  cdi::test::RunResult made =
      cdi::test::Run({"zstd", "-q", "-1", "-c", dir.File("disk.raw")});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Decoded decoded = Decode(made.out, 4096);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_EQ(decoded.declared_raw_size, data.size());

  decoded = Decode(Compress(Format::kGzip, data), 4096);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_EQ(decoded.declared_raw_size, std::nullopt);
}

class WrapperErrorTest : public ::testing::TestWithParam<Format> {};

TEST_P(WrapperErrorTest, TruncatedStreamEndsEarly) {
  Format wrapper = GetParam();
  std::string compressed = Sample(wrapper, kMiB + 3, Pattern::kZeroRuns).second;
  for (size_t length : {compressed.size() / 2, compressed.size() - 1}) {
    for (size_t chunk : {size_t{7}, kMiB}) {
      Decoded decoded = Decode(compressed.substr(0, length), chunk);
      EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage);
      EXPECT_EQ(decoded.status.message(), EndsEarlyMessage(wrapper, length));
    }
  }
}

TEST_P(WrapperErrorTest, StreamOfOnlyTheMagicEndsEarly) {
  Format wrapper = GetParam();
  size_t magic_length = wrapper == Format::kGzip ? 2 : wrapper == Format::kXz ? 6 : 4;
  std::string magic = Compress(wrapper, "").substr(0, magic_length);
  Decoded decoded = Decode(magic, 1);
  EXPECT_EQ(decoded.chain, (std::vector<std::string>{Name(wrapper)}));
  EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(decoded.status.message(), EndsEarlyMessage(wrapper, magic.size()));
}

TEST_P(WrapperErrorTest, CorruptedStreamIsReportedWithItsOffset) {
  Format wrapper = GetParam();
  std::string compressed = Sample(wrapper, kMiB + 3, Pattern::kZeroRuns).second;
  size_t flipped = compressed.size() / 2;
  compressed[flipped] = static_cast<char>(compressed[flipped] ^ 0x55);
  Decoded decoded = Decode(compressed, 4096);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage) << decoded.status.ToString();
  const std::string& message = decoded.status.message();
  std::string prefix = "the " + Name(wrapper) + " stream is corrupt at compressed offset ";
  std::string suffix = "; the file is damaged: check it at its source ('" + Name(wrapper) +
                       " -t FILE') and import an intact copy";
  ASSERT_EQ(message.substr(0, prefix.size()), prefix) << message;
  ASSERT_GE(message.size(), suffix.size());
  EXPECT_EQ(message.substr(message.size() - suffix.size()), suffix) << message;
  // The offset where the damage was noticed: at or after the damaged byte
  // (a checksum notices it only at the end of its block), within the file.
  uint64_t offset = std::stoull(message.substr(prefix.size()));
  EXPECT_GE(offset, flipped) << message;
  EXPECT_LE(offset, compressed.size()) << message;
}

TEST_P(WrapperErrorTest, DataAfterTheStreamIsRefused) {
  Format wrapper = GetParam();
  std::string data = MakeData(100000, Pattern::kZeroRuns);
  std::string compressed = Compress(wrapper, data);
  Decoded decoded = Decode(compressed + "GARBAGE", 4096);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(decoded.status.message(), TrailingDataMessage(wrapper, compressed.size()));

  // Zero padding first: the offset is that of the first non-zero byte.
  decoded = Decode(compressed + std::string(12, '\0') + "\x01", 5);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(decoded.status.message(), TrailingDataMessage(wrapper, compressed.size() + 12));
}

TEST_P(WrapperErrorTest, ZeroPaddingAfterTheStreamIsIgnored) {
  Format wrapper = GetParam();
  std::string data = MakeData(100000, Pattern::kZeroRuns);
  Decoded decoded = Decode(Compress(wrapper, data) + std::string(512, '\0'), 100);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_TRUE(decoded.writer->image() == data);
}

TEST_P(WrapperErrorTest, BombStopsAtTheLimitBeforeWritingPastIt) {
  Format wrapper = GetParam();
  std::string compressed = Compress(wrapper, std::string(64 * kMiB, '\0'));
  ASSERT_LT(compressed.size(), 1 * kMiB);
  const uint64_t limit = 4 * kMiB + 1;
  PipelineOptions options;
  options.max_unwrapped_bytes = limit;
  Decoded decoded = Decode(compressed, 4096, options);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(decoded.status.message(), TooLargeMessage(wrapper, limit));
  EXPECT_LE(decoded.writer->end(), limit);
}

TEST_P(WrapperErrorTest, OutputOfExactlyTheLimitFits) {
  Format wrapper = GetParam();
  const auto& [data, compressed] = Sample(wrapper, kMiB + 3, Pattern::kZeroRuns);
  PipelineOptions options;
  options.max_unwrapped_bytes = data.size();
  Decoded decoded = Decode(compressed, 4096, options);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_TRUE(decoded.writer->image() == data);

  options.max_unwrapped_bytes = data.size() - 1;
  decoded = Decode(compressed, 4096, options);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(decoded.status.message(), TooLargeMessage(wrapper, data.size() - 1));
  EXPECT_LE(decoded.writer->end(), data.size() - 1);
}

TEST_P(WrapperErrorTest, DownstreamErrorIsReturnedUnchanged) {
  Format wrapper = GetParam();
  RecordingSink sink;
  sink.FailWith(IoError("writing the target failed: no space left on device"));
  auto unwrapper = MakeUnwrapper(wrapper, &sink, {});
  ASSERT_TRUE(unwrapper.ok()) << unwrapper.status().ToString();
  Status status =
      FeedInChunks(**unwrapper, Sample(wrapper, kMiB + 3, Pattern::kRandom).second, kMiB);
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_EQ(status.message(), "writing the target failed: no space left on device");
}

TEST_P(WrapperErrorTest, PushesBoundedChunksAndFinishesDownstreamOnce) {
  Format wrapper = GetParam();
  const auto& [data, compressed] = Sample(wrapper, 20 * kMiB + 12345, Pattern::kZeroRuns);
  RecordingSink sink;
  auto unwrapper = MakeUnwrapper(wrapper, &sink, {});
  ASSERT_TRUE(unwrapper.ok()) << unwrapper.status().ToString();
  ASSERT_TRUE(FeedInChunks(**unwrapper, compressed, 4 * kMiB).ok());
  EXPECT_TRUE(sink.data() == data);
  EXPECT_EQ(sink.finish_calls(), 1);
  for (size_t size : sink.chunk_sizes()) {
    EXPECT_GT(size, 0u);
    EXPECT_LE(size, kUnwrapChunkBytes);
  }
}

INSTANTIATE_TEST_SUITE_P(Wrappers, WrapperErrorTest, ::testing::ValuesIn(kWrappers),
                         [](const auto& test_info) { return Name(test_info.param); });

TEST(XzTest, StreamPaddingMustBeAMultipleOfFour) {
  std::string data = MakeData(1000, Pattern::kRandom);
  std::string compressed = Compress(Format::kXz, data);
  Decoded decoded = Decode(compressed + std::string(3, '\0'), 4096);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(decoded.status.message(),
            "the xz stream is corrupt at compressed offset " +
                std::to_string(compressed.size() + 3) +
                " (Stream Padding of 3 zero bytes, not a multiple of four); the file is damaged: "
                "check it at its source ('xz -t FILE') and import an intact copy");

  decoded = Decode(compressed + std::string(5, '\0') + compressed, 4096);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(decoded.status.message(),
            "the xz stream is corrupt at compressed offset " +
                std::to_string(compressed.size() + 5) +
                " (Stream Padding of 5 zero bytes, not a multiple of four); the file is damaged: "
                "check it at its source ('xz -t FILE') and import an intact copy");
}

TEST(XzTest, StreamNeedingMoreMemoryThanTheLimitIsRefused) {
  std::string data = MakeData(100000, Pattern::kRandom);
  std::string compressed = Compress(Format::kXz, data, {"-9"});
  for (unsigned threads : {1u, 0u}) {
    PipelineOptions options;
    options.xz_memlimit = kMiB;
    options.decoder.threads = threads;
    Decoded decoded = Decode(compressed, 4096, options);
    EXPECT_EQ(decoded.status.code(), ErrorCode::kUnsupported) << threads << " threads";
    EXPECT_EQ(decoded.status.message(),
              "the xz stream at compressed offset 0 needs 65 MiB of memory to decompress, more "
              "than the xz memory limit of 1 MiB (1048576 bytes); recompress the image with a "
              "smaller dictionary (for example 'xz -6', which needs 9 MiB) or raise the "
              "importer's xz memory limit")
        << threads << " threads";
    EXPECT_EQ(decoded.writer->end(), 0u);
  }
  // The same stream within the default limit decodes.
  Decoded decoded = Decode(compressed, 4096);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_TRUE(decoded.writer->image() == data);
}

TEST(XzTest, SmallDictionaryFitsASmallLimit) {
  std::string data = MakeData(100000, Pattern::kRandom);
  PipelineOptions options;
  options.xz_memlimit = kMiB;
  options.decoder.threads = 1;
  Decoded decoded = Decode(Compress(Format::kXz, data, {"-0"}), 4096, options);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_TRUE(decoded.writer->image() == data);
}

TEST(ZstdTest, FrameWithALargerWindowThanTheLimitIsRefused) {
  std::string data = MakeData(100000, Pattern::kRandom);
  std::string normal = Compress(Format::kZstd, data);
  std::string long_window = Compress(Format::kZstd, data, {"--long=28"});
  // The second frame is the one refused: its offset is the first frame's length.
  Decoded decoded = Decode(normal + long_window, 4096);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(decoded.status.message(),
            "the zstd frame at compressed offset " + std::to_string(normal.size()) +
                " needs a window of 256 MiB (268435456 bytes) to decompress, more than the zstd "
                "window limit of 128 MiB (2^27 bytes); recompress the image with a smaller "
                "window (without --long, or with --long=27 or less) or raise the importer's zstd "
                "window limit");

  // A lower limit refuses what the default accepts.
  PipelineOptions options;
  options.zstd_window_log_max = 20;
  decoded = Decode(Compress(Format::kZstd, data, {"--long=27"}), 1, options);
  EXPECT_EQ(decoded.status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(decoded.status.message(),
            "the zstd frame at compressed offset 0 needs a window of 128 MiB (134217728 bytes) "
            "to decompress, more than the zstd window limit of 1 MiB (2^20 bytes); recompress "
            "the image with a smaller window (without --long, or with --long=20 or less) or raise "
            "the importer's zstd window limit");

  // Raised to the frame's window, it decodes.
  options.zstd_window_log_max = 28;
  decoded = Decode(long_window, 4096, options);
  ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
  EXPECT_TRUE(decoded.writer->image() == data);
}

TEST(ZstdTest, WindowLimitOutsideWhatLibzstdAcceptsIsAnInvalidArgument) {
  RecordingSink sink;
  UnwrapOptions options;
  options.zstd_window_log_max = 99;
  auto unwrapper = MakeZstdUnwrapper(&sink, options);
  ASSERT_FALSE(unwrapper.ok());
  EXPECT_EQ(unwrapper.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(unwrapper.status().message().substr(0, 42),
            "the zstd window limit 2^99 is not accepted");
}

TEST(UnwrapperTest, OnlyCompressionsHaveAnUnwrapper) {
  RecordingSink sink;
  auto unwrapper = MakeUnwrapper(Format::kQcow2, &sink, {});
  ASSERT_FALSE(unwrapper.ok());
  EXPECT_EQ(unwrapper.status().code(), ErrorCode::kInternal);
  EXPECT_EQ(unwrapper.status().message(),
            "no unwrapper for qcow2, which is not a compression wrapper");
}

}  // namespace
}  // namespace cdi::formats
