// The recording writer's contract checks must catch what they claim to.
#include <gtest/gtest.h>

#include <string>

#include "test/formats/formats_testing.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::RecordingWriter;

TEST(RecordingWriterTest, AcceptsCompleteCoverageInAnyOrder) {
  RecordingWriter writer;
  ASSERT_TRUE(writer.Begin({.format = "test", .virtual_size = 10}).ok());
  ASSERT_TRUE(writer.Write(6, Bytes("6789")).ok());
  ASSERT_TRUE(writer.Zero(2, 4).ok());
  ASSERT_TRUE(writer.Write(0, Bytes("01")).ok());
  EXPECT_TRUE(writer.CoverageOk());
  EXPECT_EQ(writer.image(), std::string("01\0\0\0\0"
                                        "6789",
                                        10));
  EXPECT_EQ(writer.end(), 10u);
}

TEST(RecordingWriterTest, CatchesAnOverlap) {
  RecordingWriter writer;
  ASSERT_TRUE(writer.Begin({.format = "test", .virtual_size = 4}).ok());
  ASSERT_TRUE(writer.Write(0, Bytes("abc")).ok());
  ASSERT_TRUE(writer.Zero(2, 2).ok());
  EXPECT_FALSE(writer.CoverageOk());
}

TEST(RecordingWriterTest, CatchesAGapAndAShortImage) {
  RecordingWriter gap;
  ASSERT_TRUE(gap.Begin({.format = "test"}).ok());
  ASSERT_TRUE(gap.Write(0, Bytes("ab")).ok());
  ASSERT_TRUE(gap.Write(3, Bytes("d")).ok());
  EXPECT_FALSE(gap.CoverageOk());

  RecordingWriter short_image;
  ASSERT_TRUE(short_image.Begin({.format = "test", .virtual_size = 5}).ok());
  ASSERT_TRUE(short_image.Write(0, Bytes("ab")).ok());
  EXPECT_FALSE(short_image.CoverageOk());
}

TEST(RecordingWriterTest, CatchesWritesBeforeBeginAndBeginTwice) {
  RecordingWriter early;
  ASSERT_TRUE(early.Write(0, Bytes("a")).ok());
  ASSERT_TRUE(early.Begin({.format = "test"}).ok());
  EXPECT_FALSE(early.CoverageOk());

  RecordingWriter twice;
  ASSERT_TRUE(twice.Begin({.format = "test"}).ok());
  ASSERT_TRUE(twice.Begin({.format = "test"}).ok());
  EXPECT_FALSE(twice.CoverageOk());

  RecordingWriter never;
  EXPECT_FALSE(never.CoverageOk());
}

TEST(RecordingWriterTest, CatchesARangePastTheVirtualSize) {
  RecordingWriter writer;
  ASSERT_TRUE(writer.Begin({.format = "test", .virtual_size = 4}).ok());
  ASSERT_TRUE(writer.Write(0, Bytes("abcd")).ok());
  ASSERT_TRUE(writer.Zero(4, 1).ok());
  ::testing::AssertionResult result = writer.CoverageOk();
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("outside the virtual size 4"), std::string::npos)
      << result.message();
}

TEST(RecordingWriterTest, CatchesAnEmptyRange) {
  RecordingWriter writer;
  ASSERT_TRUE(writer.Begin({.format = "test"}).ok());
  ASSERT_TRUE(writer.Zero(0, 0).ok());
  EXPECT_FALSE(writer.CoverageOk());
}

}  // namespace
}  // namespace cdi::formats
