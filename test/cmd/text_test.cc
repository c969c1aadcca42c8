#include "cmd/cli/text.h"

#include <gtest/gtest.h>

#include "cmd/cli/exit_codes.h"

namespace cdi::cli {
namespace {

TEST(TextTest, HumanBytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(10ull << 30), "10.0 GiB");
}

TEST(TextTest, HumanDuration) {
  EXPECT_EQ(HumanDuration(7), "0:07");
  EXPECT_EQ(HumanDuration(3723), "1:02:03");
  EXPECT_EQ(HumanDuration(-1), "--:--");
}

TEST(TextTest, JsonStringEscapes) {
  EXPECT_EQ(JsonString("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

TEST(TextTest, Base64) {
  std::string out;
  ASSERT_TRUE(DecodeBase64("aGVsbG8gd29ybGQ=", &out));
  EXPECT_EQ(out, "hello world");
  ASSERT_TRUE(DecodeBase64("aGVs\nbG8", &out));
  EXPECT_EQ(out, "hello");
  EXPECT_FALSE(DecodeBase64("aGVs*bG8", &out));
  EXPECT_FALSE(DecodeBase64("aGk=aGk=", &out));
}

TEST(ExitCodesTest, EachErrorClassHasItsOwnCode) {
  EXPECT_EQ(ExitCodeFor(ErrorCode::kOk), 0);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kInvalidArgument), 2);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kUnsupported), 3);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kCorruptImage), 4);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kNetwork), 5);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kTls), 6);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kTooSmall), 7);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kIo), 8);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kChecksumMismatch), 9);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kCancelled), 130);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kInternal), 1);
  // Every code is documented in the table shown by --help.
  for (int code : {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130}) {
    EXPECT_NE(ExitCodeTable().find(" " + std::to_string(code) + "  "), std::string_view::npos)
        << code;
  }
}

}  // namespace
}  // namespace cdi::cli
