#include "cmd/cli/exit_codes.h"

#include <gtest/gtest.h>

#include <string>

namespace cdi::cli {
namespace {

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
