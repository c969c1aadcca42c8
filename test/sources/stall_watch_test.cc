// Stall detection on a clock the test moves: the rate over a sliding window.
#include "sources/http/stall_watch.h"

#include <gtest/gtest.h>

#include <chrono>

namespace cdi::importer {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = StallWatch::Clock;

TEST(StallWatchTest, OffWithoutARateOrAWindow) {
  const Clock::time_point start{};
  StallWatch no_rate(0, seconds(10));
  no_rate.Restart(start, 0);
  EXPECT_FALSE(no_rate.Stalled(start + seconds(100), 0));
  StallWatch no_window(1024, seconds(0));
  no_window.Restart(start, 0);
  EXPECT_FALSE(no_window.Stalled(start + seconds(100), 0));
}

TEST(StallWatchTest, NeverStalledWithinTheFirstWindow) {
  const Clock::time_point start{};
  StallWatch watch(1000, seconds(5));
  watch.Restart(start, 0);
  for (auto now = start; now < start + seconds(5); now += milliseconds(100)) {
    EXPECT_FALSE(watch.Stalled(now, 0));
  }
  EXPECT_TRUE(watch.Stalled(start + seconds(5), 0));
}

TEST(StallWatchTest, TheRateOverTheLastWindowCounts) {
  const Clock::time_point start{};
  StallWatch watch(1000, seconds(5));  // 5000 bytes per window
  watch.Restart(start, 0);
  uint64_t bytes = 0;
  // Fast for ten seconds: 2000 bytes/s.
  for (auto now = start; now <= start + seconds(10); now += milliseconds(100)) {
    EXPECT_FALSE(watch.Stalled(now, bytes)) << (now - start).count();
    bytes += 200;
  }
  // Then nothing: stalled once the last window holds fewer than 5000 bytes,
  // which the fast seconds before it keep from happening at once.
  const uint64_t frozen = bytes;
  const auto slow = start + seconds(10) + milliseconds(100);
  EXPECT_FALSE(watch.Stalled(slow, frozen));
  EXPECT_FALSE(watch.Stalled(slow + seconds(2), frozen));
  EXPECT_TRUE(watch.Stalled(slow + seconds(5), frozen));
}

TEST(StallWatchTest, RestartForgetsTheSlowPast) {
  const Clock::time_point start{};
  StallWatch watch(1000, seconds(5));
  watch.Restart(start, 0);
  EXPECT_FALSE(watch.Stalled(start + seconds(4), 0));
  // The reader held the transfer back: the wait was not the network's fault.
  watch.Restart(start + seconds(4), 0);
  EXPECT_FALSE(watch.Stalled(start + seconds(8), 0));
  EXPECT_TRUE(watch.Stalled(start + seconds(9), 0));
}

}  // namespace
}  // namespace cdi::importer
