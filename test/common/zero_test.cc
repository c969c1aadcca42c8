#include "common/zero.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

namespace cdi {
namespace {

TEST(IsAllZeroTest, FindsASingleNonZeroByteAnywhere) {
  for (size_t length : {0u, 1u, 15u, 16u, 17u, 4096u}) {
    std::vector<uint8_t> buffer(length, 0);
    EXPECT_TRUE(IsAllZero(std::span<const uint8_t>(buffer.data(), length))) << length;
    for (size_t i = 0; i < length; i += (length > 64 ? 61 : 1)) {
      buffer[i] = 1;
      EXPECT_FALSE(IsAllZero(std::span<const uint8_t>(buffer.data(), length))) << length << " at " << i;
      buffer[i] = 0;
    }
  }
}

}  // namespace
}  // namespace cdi
