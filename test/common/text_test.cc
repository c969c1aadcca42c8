#include "common/text.h"

#include <gtest/gtest.h>

namespace cdi {
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

}  // namespace
}  // namespace cdi
