// The points between xz blocks that the xz unwrapper reports (for
// checkpoints) and an xz stream continued at one of them, against streams
// the real xz tool wrote: with block sizes in the headers (`xz -T2`), without
// them (`xz -T1 --block-size`), several streams, and damaged ones.
#include "formats/xz_blocks.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/pipeline.h"
#include "formats/unwrapper.h"
#include "test/formats/formats_testing.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::Compress;
using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingSink;
using testing::RecordingWriter;

constexpr size_t kKiB = 1024;

struct Unwrapped {
  Status status;
  std::string output;
  std::vector<XzBlockEnd> points;
};

// Unwraps `stream` (from compressed offset `at`'s point when given) in
// chunks of `chunk`, recording the points between blocks.
Unwrapped Unwrap(const std::string& stream, size_t chunk, unsigned threads,
                 const std::optional<XzBlockEnd>& at = std::nullopt, uint64_t memlimit = 128 << 20) {
  Unwrapped result;
  RecordingSink sink;
  UnwrapOptions options;
  options.threads = threads;
  options.xz_memlimit = memlimit;
  options.xz_continue_at = at;
  options.on_xz_block_end = [&](const XzBlockEnd& end) {
    // A point's bytes are all decompressed when it is reported.
    EXPECT_GE(sink.data().size() + kUnwrapChunkBytes, end.decompressed - (at ? at->decompressed : 0));
    result.points.push_back(end);
  };
  Result<std::unique_ptr<ByteSink>> unwrapper = MakeXzUnwrapper(&sink, options);
  if (!unwrapper.ok()) {
    result.status = unwrapper.status();
    return result;
  }
  result.status = FeedInChunks(**unwrapper, at ? stream.substr(at->compressed) : stream, chunk);
  result.output = sink.data();
  return result;
}

struct Sample;
std::vector<Sample> MakeSamples();

struct Sample {
  const char* name;
  std::string data;
  std::string stream;
  size_t blocks;  // the points every decoder reports
};

const std::vector<Sample>& Samples() {
  static const std::vector<Sample> samples = MakeSamples();
  return samples;
}

std::vector<Sample> MakeSamples() {
  const std::string a = MakeData(1200 * kKiB + 7, Pattern::kZeroRuns, 41);
  const std::string b = MakeData(700 * kKiB, Pattern::kRandom, 42);
  const std::string sized = Compress(Format::kXz, a, {"-0", "-T2", "--block-size=256KiB"});
  const std::string unsized = Compress(Format::kXz, b, {"-0", "-T1", "--block-size=256KiB"});
  return {
      {"block sizes in the headers (xz -T2)", a, sized, 5},
      {"no block sizes in the headers (xz -T1 --block-size)", b, unsized, 3},
      {"two streams, Stream Padding between", a + b, sized + std::string(8, '\0') + unsized, 8},
      {"one block", b, Compress(Format::kXz, b, {"-0"}), 1},
  };
}

TEST(XzBlocksTest, EveryPointContinuesToTheSameImage) {
  for (const Sample& sample : Samples()) {
    SCOPED_TRACE(sample.name);
    for (unsigned threads : {1u, 3u}) {
      SCOPED_TRACE(std::to_string(threads) + " threads");
      Unwrapped whole = Unwrap(sample.stream, 65536, threads);
      ASSERT_TRUE(whole.status.ok()) << whole.status.ToString();
      EXPECT_TRUE(whole.output == sample.data);
      ASSERT_EQ(whole.points.size(), sample.blocks);
      for (size_t i = 1; i < whole.points.size(); ++i) {
        EXPECT_GT(whole.points[i].compressed, whole.points[i - 1].compressed);
      }
      for (const XzBlockEnd& point : whole.points) {
        SCOPED_TRACE("continued at " + std::to_string(point.compressed));
        EXPECT_EQ(point.stream.check, 4u);  // CRC64, xz's default
        Unwrapped rest = Unwrap(sample.stream, 4093, threads, point);
        ASSERT_TRUE(rest.status.ok()) << rest.status.ToString();
        EXPECT_TRUE(rest.output == sample.data.substr(point.decompressed));
      }
    }
  }
}

TEST(XzBlocksTest, TheBlockByBlockDecoderDecodesInTinyChunks) {
  const Sample sample = Samples()[2];
  Unwrapped whole = Unwrap(sample.stream, 7, 1);
  ASSERT_TRUE(whole.status.ok()) << whole.status.ToString();
  EXPECT_TRUE(whole.output == sample.data);
  EXPECT_EQ(whole.points.size(), sample.blocks);
}

TEST(XzBlocksTest, APointThatDoesNotMatchTheStreamIsRefused) {
  const Sample sample = Samples()[0];
  Unwrapped whole = Unwrap(sample.stream, 65536, 1);
  ASSERT_TRUE(whole.status.ok());
  const XzBlockEnd point = whole.points[1];
  struct Case {
    const char* name;
    XzBlockEnd at;
    std::string what;
  };
  XzBlockEnd more_output = point;
  more_output.decompressed += 1;
  XzBlockEnd other_check = point;
  other_check.stream.check = 1;  // CRC32
  XzBlockEnd inside_a_block = point;
  inside_a_block.compressed += 100;
  const Case cases[] = {
      {"the image bytes before it are not the Index's", more_output,
       "the Index lists blocks before compressed offset"},
      {"another check", other_check, "the xz stream is corrupt"},
      {"not where a block begins", inside_a_block, "the xz stream is corrupt"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Unwrapped rest = Unwrap(sample.stream, 65536, 1, c.at);
    ASSERT_EQ(rest.status.code(), ErrorCode::kCorruptImage) << rest.status.ToString();
    EXPECT_NE(rest.status.message().find(c.what), std::string::npos) << rest.status.message();
  }
}

TEST(XzBlocksTest, DamageIsFoundWithPointsAsWithout) {
  for (const Sample& sample : Samples()) {
    SCOPED_TRACE(sample.name);
    struct Case {
      const char* name;
      std::string stream;
      std::string what;
    };
    std::string in_data = sample.stream;
    in_data[in_data.size() / 2] ^= 0x55;
    std::string in_index = sample.stream;
    in_index[in_index.size() - 12 - 5] ^= 0x01;  // the Index's CRC32 or a record
    std::string in_footer = sample.stream;
    in_footer[in_footer.size() - 7] ^= 0x01;  // the Backward Size
    const Case cases[] = {
        {"a byte of a block", in_data, "corrupt"},
        {"a byte of the Index", in_index, "corrupt"},
        {"a byte of the footer", in_footer, "corrupt"},
        {"cut short", sample.stream.substr(0, sample.stream.size() - 20), "ends early"},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      for (unsigned threads : {1u, 3u}) {
        Unwrapped result = Unwrap(c.stream, 65536, threads);
        ASSERT_EQ(result.status.code(), ErrorCode::kCorruptImage) << threads;
        EXPECT_NE(result.status.message().find(c.what), std::string::npos)
            << result.status.message();
      }
    }
  }
}

TEST(XzBlocksTest, TheMemoryLimitHoldsAndIsWordedAsForTheStreamDecoder) {
  const std::string data = MakeData(300 * kKiB, Pattern::kRandom, 43);
  const std::string stream = Compress(Format::kXz, data, {"-9"});
  Unwrapped result = Unwrap(stream, 65536, 1, std::nullopt, 1 << 20);
  EXPECT_EQ(result.status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(result.status.message(),
            "the xz stream at compressed offset 0 needs 65 MiB of memory to decompress, more "
            "than the xz memory limit of 1 MiB (1048576 bytes); recompress the image with a "
            "smaller dictionary (for example 'xz -6', which needs 9 MiB) or raise the "
            "importer's xz memory limit");
}

// Through the pipeline: a raw image continued at a point lands at its guest
// offset, and TakeFrameBoundary hands out points only for bytes covered.
TEST(XzBlocksTest, ThePipelineContinuesARawImageAtAPoint) {
  const Sample sample = Samples()[0];
  PipelineOptions options;
  options.frame_boundaries = true;
  RecordingWriter first;
  ImagePipeline pipeline(&first, options);
  // All but the Index and footer: the decompressed bytes are pushed on a MiB
  // at a time, and the chain is known once the image inside was detected.
  ASSERT_TRUE(pipeline.Feed(Bytes(sample.stream).first(sample.stream.size() - 40)).ok());
  EXPECT_EQ(pipeline.TakeFrameBoundary(0), std::nullopt);
  std::optional<FrameBoundary> point = pipeline.TakeFrameBoundary(UINT64_MAX);
  ASSERT_TRUE(point.has_value());
  ASSERT_TRUE(point->xz_stream.has_value());
  EXPECT_EQ(pipeline.format_chain(), (std::vector<std::string>{"xz", "raw"}));

  PipelineOptions resumed = options;
  resumed.resume_xz_at = point;
  RecordingWriter second;
  ImagePipeline rest(&second, resumed);
  ASSERT_TRUE(
      FeedInChunks(rest, sample.stream.substr(point->compressed), 65536).ok());
  EXPECT_EQ(rest.format_chain(), (std::vector<std::string>{"xz", "raw"}));
  const std::string image = second.image();
  ASSERT_EQ(image.size(), sample.data.size());
  EXPECT_TRUE(image.substr(point->decompressed) == sample.data.substr(point->decompressed));
}

}  // namespace
}  // namespace cdi::formats
