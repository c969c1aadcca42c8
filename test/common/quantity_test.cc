#include "cdi/quantity.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>

namespace cdi {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// The list of accepted forms every quantity error ends with.
constexpr const char* kQuantityForms =
    "expected a number of bytes such as 11381663335, 10Gi, 1.5Gi, 500M or 1e9: digits with an "
    "optional fraction, then at most one suffix: Ki Mi Gi Ti Pi Ei (powers of 1024), k M G T P E "
    "(powers of 1000), m u n (thousandths, millionths, billionths) or an exponent e<n> / E<n>";

struct ValidQuantity {
  const char* text;
  uint64_t bytes;
};

void PrintTo(const ValidQuantity& q, std::ostream* os) { *os << '"' << q.text << '"'; }

class ValidQuantityTest : public testing::TestWithParam<ValidQuantity> {};

TEST_P(ValidQuantityTest, ParsesAsKubernetesDoes) {
  Result<uint64_t> bytes = ParseQuantity(GetParam().text);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(*bytes, GetParam().bytes);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidQuantityTest,
    testing::Values(
        ValidQuantity{"0", 0}, ValidQuantity{"1", 1}, ValidQuantity{"11381663335", 11381663335},
        ValidQuantity{"00012", 12}, ValidQuantity{"+10Mi", 10 * kMiB}, ValidQuantity{"1k", 1000},
        ValidQuantity{"500M", 500000000}, ValidQuantity{"1G", 1000000000},
        ValidQuantity{"2T", 2000000000000}, ValidQuantity{"1P", 1000000000000000},
        ValidQuantity{"1E", 1000000000000000000}, ValidQuantity{"1Ki", kKiB},
        ValidQuantity{"512Mi", 512 * kMiB}, ValidQuantity{"10Gi", 10 * kGiB},
        ValidQuantity{"3Ti", 3ull << 40}, ValidQuantity{"1Pi", 1ull << 50},
        ValidQuantity{"7Ei", 7ull << 60}, ValidQuantity{"1.5Gi", 1610612736},
        ValidQuantity{"0.5Ki", 512}, ValidQuantity{".5Mi", 512 * kKiB},
        ValidQuantity{"1.G", 1000000000}, ValidQuantity{"2.5", 3}, ValidQuantity{"0.1", 1},
        ValidQuantity{"1.0000000001", 2}, ValidQuantity{"1e9", 1000000000},
        ValidQuantity{"1E3", 1000}, ValidQuantity{"1e+3", 1000}, ValidQuantity{"1.5e3", 1500},
        ValidQuantity{"5e-1", 1}, ValidQuantity{"15e-1", 2}, ValidQuantity{"1e-2147483647", 1},
        ValidQuantity{"0e999", 0}, ValidQuantity{"500m", 1}, ValidQuantity{"1000m", 1},
        ValidQuantity{"1500m", 2}, ValidQuantity{"1u", 1}, ValidQuantity{"1n", 1},
        ValidQuantity{"1.5Ki", 1536}, ValidQuantity{"0.1Ki", 103}, ValidQuantity{"-0", 0},
        ValidQuantity{"0Gi", 0}, ValidQuantity{"9223372036854775807", 9223372036854775807ull},
        ValidQuantity{"9.223372036854775807E", 9223372036854775807ull},
        ValidQuantity{"8191.999999999999999Pi", 9223372036854775807ull}));

struct InvalidQuantity {
  const char* text;
  const char* why;  // the part of the message between the quantity and the forms
};

void PrintTo(const InvalidQuantity& q, std::ostream* os) { *os << '"' << q.text << '"'; }

class InvalidQuantityTest : public testing::TestWithParam<InvalidQuantity> {};

TEST_P(InvalidQuantityTest, IsRefusedWithTheReasonAndTheAcceptedForms) {
  Result<uint64_t> bytes = ParseQuantity(GetParam().text);
  ASSERT_FALSE(bytes.ok()) << GetParam().text << " parsed as " << *bytes;
  EXPECT_EQ(bytes.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bytes.status().message(), std::string("invalid quantity \"") + GetParam().text +
                                          "\": " + GetParam().why + "; " + kQuantityForms);
}

INSTANTIATE_TEST_SUITE_P(
    Table, InvalidQuantityTest,
    testing::Values(InvalidQuantity{"", "it is empty"},
                    InvalidQuantity{"abc", "it does not start with a number"},
                    InvalidQuantity{"Gi", "it does not start with a number"},
                    InvalidQuantity{".", "it does not start with a number"},
                    InvalidQuantity{"+", "it does not start with a number"},
                    InvalidQuantity{" 1Gi", "it does not start with a number"},
                    InvalidQuantity{"-1", "it is negative; a size must be zero or more"},
                    InvalidQuantity{"-1.5Gi", "it is negative; a size must be zero or more"},
                    InvalidQuantity{"1K", "unknown suffix \"K\""},
                    InvalidQuantity{"1gi", "unknown suffix \"gi\""},
                    InvalidQuantity{"1GiB", "unknown suffix \"GiB\""},
                    InvalidQuantity{"1 Gi", "unknown suffix \" Gi\""},
                    InvalidQuantity{"1Gi ", "unknown suffix \"Gi \""},
                    InvalidQuantity{"0x10", "unknown suffix \"x10\""},
                    InvalidQuantity{"1.5.5", "unknown suffix \".5\""},
                    InvalidQuantity{"1e", "unknown suffix \"e\""},
                    InvalidQuantity{"1e1.5",
                                    "\"e1.5\" is not a valid exponent (a whole number from "
                                    "-2147483647 to 2147483647 after e or E)"},
                    InvalidQuantity{"1ee3",
                                    "\"ee3\" is not a valid exponent (a whole number from "
                                    "-2147483647 to 2147483647 after e or E)"},
                    InvalidQuantity{"1e2147483648",
                                    "\"e2147483648\" is not a valid exponent (a whole "
                                    "number from -2147483647 to 2147483647 after e or E)"},
                    InvalidQuantity{"8Ei",
                                    "it is larger than the largest size Kubernetes holds, "
                                    "9223372036854775807 bytes (8Ei - 1); request a smaller size"},
                    InvalidQuantity{"9223372036854775808",
                                    "it is larger than the largest size Kubernetes "
                                    "holds, 9223372036854775807 bytes (8Ei - 1); "
                                    "request a smaller size"},
                    InvalidQuantity{"1e19",
                                    "it is larger than the largest size Kubernetes holds, "
                                    "9223372036854775807 bytes (8Ei - 1); request a smaller size"},
                    InvalidQuantity{"1e2147483647",
                                    "it is larger than the largest size Kubernetes holds, "
                                    "9223372036854775807 bytes (8Ei - 1); request a smaller "
                                    "size"},
                    InvalidQuantity{
                        "99999999999999999999999Ki",
                        "it is larger than the largest size Kubernetes holds, "
                        "9223372036854775807 bytes (8Ei - 1); request a smaller size"}));

TEST(UsableSpaceTest, MatchesCdisWorkedExample) {
  // A PVC of 11381663335 bytes with CDI's default overhead holds exactly 10Gi.
  EXPECT_EQ(UsableSpace(0.06, 11381663335), 10 * kGiB);
  EXPECT_EQ(RequiredSpace(0.06, 10 * kGiB), 11381663335u);
}

TEST(UsableSpaceTest, ScalesToLargerVolumes) {
  EXPECT_EQ(RequiredSpace(0.06, 100 * kGiB), 113816633344u);
  EXPECT_EQ(UsableSpace(0.06, 113816633344), 100 * kGiB);
  EXPECT_EQ(RequiredSpace(0.06, 1ull << 40), 1165482325443u);
  EXPECT_EQ(UsableSpace(0.06, 1165482325443), 1ull << 40);
}

TEST(UsableSpaceTest, RoundsAtTheMebibyteBoundaries) {
  // 11381663334 / 1.06 = 10737418239.6..., which ceil() lifts to exactly 10Gi.
  EXPECT_EQ(UsableSpace(0.06, 11381663334), 10 * kGiB);
  // One byte less and the usable size drops a whole MiB.
  EXPECT_EQ(UsableSpace(0.06, 11381663333), 10 * kGiB - kMiB);
  // Requests round up to whole MiB before the overhead is added.
  EXPECT_EQ(RequiredSpace(0.06, 10 * kGiB - 1), 11381663335u);
  EXPECT_EQ(RequiredSpace(0.06, 10 * kGiB + 1), 11382774825u);
  EXPECT_EQ(RequiredSpace(0, 1), kMiB);
  EXPECT_EQ(UsableSpace(0, 5 * kMiB - 1), 4 * kMiB);
  EXPECT_EQ(UsableSpace(0, 5 * kMiB), 5 * kMiB);
  EXPECT_EQ(UsableSpace(0.06, kMiB), 0u);
  EXPECT_EQ(UsableSpace(0.06, 0), 0u);
  EXPECT_EQ(RequiredSpace(0.06, 0), 0u);
}

TEST(UsableSpaceTest, IsExactWhereFloatingPointIsNot) {
  // 25Mi * 1.1 is exactly 28835840; in doubles it comes out a hair above and
  // ceil() would ask for one byte more.
  EXPECT_EQ(RequiredSpace(0.1, 25 * kMiB), 28835840u);
  EXPECT_EQ(RequiredSpace(0.07, 475 * kMiB), 532938752u);
  EXPECT_EQ(UsableSpace(0.1, 28835840), 25 * kMiB);
}

TEST(UsableSpaceTest, SaturatesInsteadOfOverflowing) {
  EXPECT_EQ(RequiredSpace(0.06, UINT64_MAX), UINT64_MAX);
  EXPECT_EQ(UsableSpace(0, UINT64_MAX), UINT64_MAX / kMiB * kMiB);
  EXPECT_EQ(UsableSpace(0.5, UINT64_MAX), 12297829382472335360u);
}

TEST(ParseOverheadTest, AcceptsPlainFractionsBelowOne) {
  for (auto [text, value] :
       {std::pair{"0.06", 0.06}, std::pair{"0", 0.0}, std::pair{"0.055", 0.055},
        std::pair{".1", 0.1}, std::pair{"0.999", 0.999}, std::pair{"0.0", 0.0}}) {
    Result<double> overhead = ParseOverhead(text);
    ASSERT_TRUE(overhead.ok()) << text << ": " << overhead.status().ToString();
    EXPECT_EQ(*overhead, value) << text;
  }
}

TEST(ParseOverheadTest, RefusesNegativesOneAndJunk) {
  const std::string kForms =
      "; expected the fraction of a volume kept for filesystem metadata as a decimal from 0 up "
      "to (not including) 1, such as 0.06 (CDI's default) or 0 for block volumes";
  for (auto [text, why] : {std::pair{"", "it is empty"}, std::pair{"-0.06", "it is negative"},
                           std::pair{"1", "an overhead of 1 or more leaves no usable space"},
                           std::pair{"1.5", "an overhead of 1 or more leaves no usable space"},
                           std::pair{"abc", "it is not a plain decimal number"},
                           std::pair{"0.06 ", "it is not a plain decimal number"},
                           std::pair{"6e-2", "it is not a plain decimal number"},
                           std::pair{"+0.06", "it is not a plain decimal number"},
                           std::pair{"0..1", "it is not a plain decimal number"},
                           std::pair{".", "it is not a plain decimal number"},
                           std::pair{"nan", "it is not a plain decimal number"},
                           std::pair{"6%", "it is not a plain decimal number"}}) {
    Result<double> overhead = ParseOverhead(text);
    ASSERT_FALSE(overhead.ok()) << text << " parsed as " << *overhead;
    EXPECT_EQ(overhead.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(overhead.status().message(),
              std::string("invalid filesystem overhead \"") + text + "\": " + why + kForms);
  }
}

TEST(CheckOverheadTest, OneRangeForEveryFace) {
  EXPECT_TRUE(CheckOverhead(0).ok());
  EXPECT_TRUE(CheckOverhead(0.06).ok());
  EXPECT_TRUE(CheckOverhead(0.999).ok());
  for (double bad : {-0.01, 1.0, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    Status status = CheckOverhead(bad);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("filesystem overhead must be at least 0 and below 1"),
              std::string::npos)
        << status.message();
  }
  EXPECT_NE(CheckOverhead(1.5).message().find("got 1.5;"), std::string::npos)
      << CheckOverhead(1.5).message();
}

}  // namespace
}  // namespace cdi
