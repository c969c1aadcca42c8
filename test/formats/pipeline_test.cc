// The whole format side: detection, unwrapping and decoding chained together.
#include "formats/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "formats/detect.h"
#include "test/formats/formats_testing.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::Compress;
using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingWriter;
using Chain = std::vector<std::string>;

constexpr size_t kMiB = 1 << 20;

TEST(PipelineTest, RawImageFedOneByteAtATime) {
  std::string data = MakeData(100003, Pattern::kZeroRuns);
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {.decoder = {.container_size = data.size()}});
  ASSERT_TRUE(FeedInChunks(pipeline, data, 1).ok());
  EXPECT_EQ(pipeline.format_chain(), Chain{"raw"});
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_EQ(writer.description()->virtual_size, data.size());
  EXPECT_TRUE(writer.image() == data);
  ASSERT_TRUE(pipeline.Describe().has_value());
  EXPECT_EQ(pipeline.Describe()->format, "raw");
  EXPECT_EQ(pipeline.Describe()->virtual_size, data.size());
}

TEST(PipelineTest, StreamShorterThanTheDetectionWindowIsDetectedAtTheEnd) {
  for (size_t size : {size_t{1}, size_t{100}, kDetectBytes - 1, kDetectBytes, kDetectBytes + 1}) {
    std::string data = MakeData(size, Pattern::kRandom);
    data[0] = 'x';  // not a magic by chance
    RecordingWriter writer;
    ImagePipeline pipeline(&writer, {});
    ASSERT_TRUE(FeedInChunks(pipeline, data, 7).ok()) << size;
    EXPECT_EQ(pipeline.format_chain(), Chain{"raw"});
    EXPECT_TRUE(writer.CoverageOk());
    EXPECT_TRUE(writer.image() == data) << size;
  }
}

TEST(PipelineTest, EmptyStreamIsAZeroByteRawImage) {
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {.decoder = {.container_size = 0}});
  EXPECT_EQ(pipeline.Describe(), std::nullopt);
  ASSERT_TRUE(pipeline.Finish().ok());
  EXPECT_EQ(pipeline.format_chain(), Chain{"raw"});
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_TRUE(writer.ops().empty());
  EXPECT_EQ(pipeline.Describe()->virtual_size, 0u);
}

TEST(PipelineTest, EmptyImageInsideGzipIsAZeroByteRawImage) {
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  ASSERT_TRUE(FeedInChunks(pipeline, Compress(Format::kGzip, ""), 3).ok());
  EXPECT_EQ(pipeline.format_chain(), (Chain{"gzip", "raw"}));
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_TRUE(writer.ops().empty());
  EXPECT_EQ(pipeline.Describe()->virtual_size, 0u);
}

// A first chunk that holds the detection window is detected in place and
// handed to the writer as it is: no copy on the hot path.
TEST(PipelineTest, LargeChunksReachTheWriterWithoutACopy) {
  std::string first = MakeData(kMiB, Pattern::kRandom);
  std::string second = MakeData(kMiB, Pattern::kRandom, 2);
  first[0] = 'x';
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  ASSERT_TRUE(pipeline.Feed(Bytes(first)).ok());
  ASSERT_TRUE(pipeline.Feed(Bytes(second)).ok());
  ASSERT_TRUE(pipeline.Finish().ok());
  // The last 512 bytes of the stream so far are held back (a fixed VHD footer
  // would be there): each chunk but those goes out in place.
  ASSERT_EQ(writer.ops().size(), 4u);
  EXPECT_EQ(writer.ops()[0].data, Bytes(first).data());
  EXPECT_EQ(writer.ops()[0].length, kMiB - 512);
  EXPECT_EQ(writer.ops()[1].length, 512u);
  EXPECT_EQ(writer.ops()[2].data, Bytes(second).data());
  EXPECT_EQ(writer.ops()[2].length, kMiB - 512);
  EXPECT_EQ(writer.ops()[3].length, 512u);
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_EQ(writer.image(), first + second);
}

TEST(PipelineTest, KnownSizeOfARawImageIsEnforced) {
  std::string data = MakeData(50000, Pattern::kRandom);
  data[0] = 'x';
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {.decoder = {.container_size = 60000}});
  Status status = FeedInChunks(pipeline, data, 4096);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(status.message(),
            "the raw image ends early, after 50000 of the 60000 bytes its source announced; the "
            "download was cut short or the source changed: retry the import");
}

// The source's length is that of the compressed file: it says nothing about
// the image inside.
TEST(PipelineTest, KnownSizeDoesNotApplyInsideAWrapper) {
  std::string data = MakeData(kMiB, Pattern::kZeroRuns);
  std::string compressed = Compress(Format::kXz, data);
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {.decoder = {.container_size = compressed.size()}});
  ASSERT_TRUE(FeedInChunks(pipeline, compressed, 4096).ok());
  EXPECT_EQ(writer.description()->virtual_size, std::nullopt);
  EXPECT_TRUE(writer.image() == data);
}

TEST(PipelineTest, IsoImageIsRawWithANote) {
  std::string iso = MakeData(kDetectBytes + 2048, Pattern::kZeroRuns);
  iso[0] = 'x';
  iso.replace(0x8001, 5, "CD001");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  ASSERT_TRUE(FeedInChunks(pipeline, Compress(Format::kZstd, iso), 4096).ok());
  EXPECT_EQ(pipeline.format_chain(), (Chain{"zstd", "raw"}));
  using Details = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(pipeline.Describe()->details, (Details{{"content", "iso"}}));
  EXPECT_TRUE(writer.image() == iso);
}

TEST(PipelineTest, DifferentWrappersStack) {
  std::string data = MakeData(kMiB + 3, Pattern::kZeroRuns);
  std::string stream =
      Compress(Format::kZstd, Compress(Format::kXz, Compress(Format::kGzip, data)));
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  ASSERT_TRUE(FeedInChunks(pipeline, stream, 7).ok());
  EXPECT_EQ(pipeline.format_chain(), (Chain{"zstd", "xz", "gzip", "raw"}));
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_TRUE(writer.image() == data);
}

class NestedWrapperTest : public ::testing::TestWithParam<Format> {};

TEST_P(NestedWrapperTest, SecondLayerOfTheSameWrapperIsRefused) {
  Format wrapper = GetParam();
  std::string name(FormatName(wrapper));
  std::string data = MakeData(100000, Pattern::kZeroRuns);
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, Compress(wrapper, Compress(wrapper, data)), 4096);
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(status.message(), "the image is compressed with " + name + " twice (" + name +
                                  " inside " + name +
                                  "); only one layer of each compression is unwrapped: "
                                  "decompress it once ('" +
                                  name + " -d') and import the result");
  EXPECT_EQ(pipeline.format_chain(), (Chain{name, name}));
  EXPECT_EQ(writer.begin_calls(), 0);
}

INSTANTIATE_TEST_SUITE_P(Wrappers, NestedWrapperTest,
                         ::testing::Values(Format::kGzip, Format::kXz, Format::kZstd),
                         [](const auto& test_info) {
                           return std::string(FormatName(test_info.param));
                         });

// Every format detection knows has a decoder: a VHDX header section that
// is not valid reaches the VHDX decoder, wrapped or not, and is refused there.
TEST(PipelineTest, VhdxReachesItsDecoder) {
  std::string image(320 * 1024, '\0');
  image.replace(0, 8, "vhdxfile");
  for (bool wrapped : {false, true}) {
    RecordingWriter writer;
    ImagePipeline pipeline(&writer, {});
    Status status = FeedInChunks(pipeline, wrapped ? Compress(Format::kGzip, image) : image, 4096);
    EXPECT_EQ(status.code(), ErrorCode::kCorruptImage);
    EXPECT_NE(status.message().find("neither header is valid"), std::string::npos)
        << status.message();
    EXPECT_EQ(pipeline.format_chain(), wrapped ? (Chain{"gzip", "vhdx"}) : Chain{"vhdx"});
    EXPECT_EQ(writer.begin_calls(), 0);
  }
}

TEST(PipelineTest, VhdxMadeByQemuImgIsDecoded) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  cdi::test::TempDir dir;
  std::string path = dir.File("image.vhdx");
  cdi::test::RunResult r = cdi::test::Run({"qemu-img", "create", "-q", "-f", "vhdx", path, "16M"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, cdi::test::ReadFile(path), 65536);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(pipeline.format_chain(), Chain{"vhdx"});
  ASSERT_TRUE(pipeline.Describe().has_value());
  EXPECT_EQ(pipeline.Describe()->virtual_size, 16 * kMiB);
  EXPECT_EQ(writer.image(), std::string(16 * kMiB, '\0'));
  EXPECT_TRUE(writer.CoverageOk());
}

// Whatever the qcow2 decoder can do today, a compressed qcow2 reaches it.
TEST(PipelineTest, QcowInsideGzipReachesTheQcowDecoder) {
  if (!cdi::test::HaveProgram("qemu-img")) GTEST_SKIP() << "qemu-img is not installed";
  cdi::test::TempDir dir;
  std::string path = dir.File("image.qcow2");
  cdi::test::RunResult r = cdi::test::Run({"qemu-img", "create", "-q", "-f", "qcow2", path, "1M"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, Compress(Format::kGzip, cdi::test::ReadFile(path)), 4096);
  EXPECT_EQ(pipeline.format_chain(), (Chain{"gzip", "qcow2"}));
  ASSERT_TRUE(pipeline.Describe().has_value());
  EXPECT_EQ(pipeline.Describe()->format, "qcow2");
  if (status.ok()) {
    EXPECT_TRUE(writer.CoverageOk());
    EXPECT_EQ(writer.description()->virtual_size, kMiB);
    EXPECT_EQ(writer.image(), std::string(kMiB, '\0'));
  } else {
    EXPECT_NE(status.message().find("qcow2"), std::string::npos) << status.ToString();
    EXPECT_NE(status.code(), ErrorCode::kInternal) << status.ToString();
  }
}

TEST(PipelineTest, FirstErrorIsReturnedFromThenOn) {
  std::string data = MakeData(100000, Pattern::kRandom);
  data[0] = 'x';
  RecordingWriter writer;
  writer.FailWith(IoError("writing the target failed: no space left on device"));
  ImagePipeline pipeline(&writer, {});
  Status first = pipeline.Feed(Bytes(data));
  EXPECT_EQ(first.code(), ErrorCode::kIo);
  EXPECT_EQ(first.message(), "writing the target failed: no space left on device");
  size_t calls = writer.ops().size();
  Status again = pipeline.Feed(Bytes(data));
  EXPECT_EQ(again.code(), ErrorCode::kIo);
  EXPECT_EQ(again.message(), first.message());
  EXPECT_EQ(pipeline.Finish().message(), first.message());
  EXPECT_EQ(writer.ops().size(), calls);
}

TEST(PipelineTest, FeedingAfterFinishIsABug) {
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  ASSERT_TRUE(pipeline.Feed(Bytes("abc")).ok());
  ASSERT_TRUE(pipeline.Finish().ok());
  Status status = pipeline.Feed(Bytes("d"));
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
  EXPECT_EQ(status.message(), "the image pipeline was fed after Finish()");

  RecordingWriter writer2;
  ImagePipeline pipeline2(&writer2, {});
  ASSERT_TRUE(pipeline2.Finish().ok());
  status = pipeline2.Finish();
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
  EXPECT_EQ(status.message(), "the image pipeline was finished twice");
}

}  // namespace
}  // namespace cdi::formats
