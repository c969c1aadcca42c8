#include "formats/raw_decoder.h"

#include <gtest/gtest.h>

#include <string>

#include "test/formats/formats_testing.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingWriter;

TEST(RawDecoderTest, KnownSizeIsTheVirtualSizeAndEveryByteIsWrittenInOrder) {
  std::string data = MakeData(100003, Pattern::kZeroRuns);
  RecordingWriter writer;
  auto decoder = MakeRawDecoder(&writer, {.container_size = data.size()});
  ASSERT_TRUE(FeedInChunks(*decoder, data, 4096).ok());
  EXPECT_TRUE(writer.CoverageOk());
  ASSERT_TRUE(writer.description().has_value());
  EXPECT_EQ(writer.description()->format, "raw");
  EXPECT_EQ(writer.description()->virtual_size, data.size());
  EXPECT_TRUE(writer.description()->details.empty());
  EXPECT_TRUE(writer.image() == data);
  uint64_t expected_offset = 0;
  for (const auto& op : writer.ops()) {
    EXPECT_EQ(op.kind, RecordingWriter::Kind::kWrite);
    EXPECT_EQ(op.guest_offset, expected_offset);
    expected_offset += op.length;
  }
  EXPECT_EQ(writer.ops().size(), (data.size() + 4095) / 4096);
  EXPECT_EQ(decoder->Describe().virtual_size, data.size());
}

TEST(RawDecoderTest, UnknownSizeIsLearnedAtTheEnd) {
  std::string data = MakeData(5000, Pattern::kRandom);
  RecordingWriter writer;
  auto decoder = MakeRawDecoder(&writer, {});
  ASSERT_TRUE(FeedInChunks(*decoder, data, 1).ok());
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_EQ(writer.description()->virtual_size, std::nullopt);
  EXPECT_TRUE(writer.image() == data);
  EXPECT_EQ(writer.ops().size(), data.size());
  EXPECT_EQ(decoder->Describe().virtual_size, data.size());
}

TEST(RawDecoderTest, HandsTheFedBytesThroughWithoutCopying) {
  std::string data = MakeData(65536, Pattern::kRandom);
  RecordingWriter writer;
  auto decoder = MakeRawDecoder(&writer, {});
  ASSERT_TRUE(decoder->Feed(Bytes(data)).ok());
  ASSERT_EQ(writer.ops().size(), 1u);
  EXPECT_EQ(writer.ops()[0].data, Bytes(data).data());
}

TEST(RawDecoderTest, EmptyStreamIsAZeroByteImage) {
  for (std::optional<uint64_t> size : {std::optional<uint64_t>(), std::optional<uint64_t>(0)}) {
    RecordingWriter writer;
    auto decoder = MakeRawDecoder(&writer, {.container_size = size});
    ASSERT_TRUE(decoder->Feed({}).ok());
    ASSERT_TRUE(decoder->Finish().ok());
    EXPECT_EQ(writer.begin_calls(), 1);
    EXPECT_TRUE(writer.ops().empty());
    EXPECT_TRUE(writer.CoverageOk());
    EXPECT_EQ(decoder->Describe().virtual_size, 0u);
  }
}

TEST(RawDecoderTest, StreamShorterThanItsKnownSizeEndsEarly) {
  std::string data = MakeData(1000, Pattern::kRandom);
  RecordingWriter writer;
  auto decoder = MakeRawDecoder(&writer, {.container_size = 1500});
  Status status = FeedInChunks(*decoder, data, 300);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(status.message(),
            "the raw image ends early, after 1000 of the 1500 bytes its source announced; the "
            "download was cut short or the source changed: retry the import");
}

TEST(RawDecoderTest, StreamLongerThanItsKnownSizeStopsBeforeWritingPastIt) {
  std::string data = MakeData(1000, Pattern::kRandom);
  RecordingWriter writer;
  auto decoder = MakeRawDecoder(&writer, {.container_size = 700});
  Status status = FeedInChunks(*decoder, data, 300);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(status.message(),
            "the raw image is longer than the 700 bytes its source announced (more than 900 bytes "
            "arrived); the source changed during the import or reports a wrong length: retry the "
            "import, and check the source");
  EXPECT_EQ(writer.end(), 600u);
}

TEST(RawDecoderTest, IsoContentIsNotedInTheDetails) {
  RecordingWriter writer;
  auto decoder = MakeRawDecoder(&writer, {}, RawContent::kIso9660);
  ASSERT_TRUE(FeedInChunks(*decoder, "abc", 1).ok());
  using Details = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(writer.description()->details, (Details{{"content", "iso"}}));
  EXPECT_EQ(decoder->Describe().details, (Details{{"content", "iso"}}));
}

TEST(RawDecoderTest, WriterErrorIsReturnedUnchanged) {
  RecordingWriter writer;
  writer.FailWith(IoError("the target is read-only; import into a writable volume"));
  auto decoder = MakeRawDecoder(&writer, {});
  Status status = decoder->Feed(Bytes("abc"));
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_EQ(status.message(), "the target is read-only; import into a writable volume");
}

}  // namespace
}  // namespace cdi::formats
