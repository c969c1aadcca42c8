// Back-off, Retry-After and the retry budget, without a network.
#include "sources/http/retry_policy.h"

#include <gtest/gtest.h>

namespace cdi::importer {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

NetworkSettings Settings(int retries, milliseconds budget, milliseconds initial,
                         milliseconds max_delay) {
  NetworkSettings settings;
  settings.max_retries = retries;
  settings.retry_budget = budget;
  settings.retry_initial_delay = initial;
  settings.retry_max_delay = max_delay;
  return settings;
}

TEST(RetryAfterTest, SecondsAndHttpDates) {
  // 2015-10-21 07:28:00 UTC, the example of RFC 9110.
  const std::time_t now = 1445412480;
  EXPECT_EQ(ParseRetryAfter("120", now), seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), seconds(0));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), seconds(30));
  // The obsolete forms HTTP still allows.
  EXPECT_EQ(ParseRetryAfter("Wednesday, 21-Oct-15 07:29:00 GMT", now), seconds(60));
  EXPECT_EQ(ParseRetryAfter("Wed Oct 21 07:28:10 2015", now), seconds(10));
  // A date in the past means now.
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:00:00 GMT", now), seconds(0));
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-5", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), seconds(INT32_MAX));
}

TEST(BackoffTest, DoublesWithJitterBetweenHalfAndAllUpToTheCap) {
  NetworkSettings settings = Settings(10, seconds(300), milliseconds(1000), milliseconds(8000));
  std::mt19937_64 random(7);
  const int64_t nominal[] = {1000, 2000, 4000, 8000, 8000, 8000};
  for (int retry = 1; retry <= 6; ++retry) {
    int64_t low = INT64_MAX;
    int64_t high = 0;
    for (int i = 0; i < 2000; ++i) {
      int64_t delay = BackoffDelay(settings, retry, random).count();
      low = std::min(low, delay);
      high = std::max(high, delay);
    }
    const int64_t expected = nominal[retry - 1];
    EXPECT_GE(low, expected / 2) << retry;
    EXPECT_LE(high, expected) << retry;
    // The jitter really spreads the waits over the range.
    EXPECT_LT(low, expected / 2 + expected / 20) << retry;
    EXPECT_GT(high, expected - expected / 20) << retry;
  }
}

TEST(BackoffTest, ZeroInitialDelayMeansNoWait) {
  NetworkSettings settings = Settings(3, seconds(300), milliseconds(0), milliseconds(0));
  std::mt19937_64 random(1);
  EXPECT_EQ(BackoffDelay(settings, 1, random), milliseconds(0));
  EXPECT_EQ(BackoffDelay(settings, 3, random), milliseconds(0));
}

TEST(RetryBudgetTest, CountsRetriesAndGivesUpNamingThem) {
  RetryBudget budget(Settings(2, seconds(300), milliseconds(100), milliseconds(100)), 3);
  const Status failure = NetworkError("connection reset by h:1", Retryable::kYes);
  auto t0 = RetryBudget::Clock::now();
  Result<RetryBudget::Wait> first = budget.Next(failure, std::nullopt, t0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->retry, 1);
  EXPECT_FALSE(first->from_retry_after);
  EXPECT_GE(first->delay, milliseconds(50));
  EXPECT_LE(first->delay, milliseconds(100));
  Result<RetryBudget::Wait> second = budget.Next(failure, std::nullopt, t0 + seconds(1));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->retry, 2);
  Result<RetryBudget::Wait> third = budget.Next(failure, std::nullopt, t0 + seconds(12));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), ErrorCode::kNetwork);
  EXPECT_TRUE(third.status().retryable());
  EXPECT_EQ(third.status().message(), "giving up after 2 retries in 12 s: connection reset by h:1");
  EXPECT_EQ(budget.total_retries(), 2);
}

TEST(RetryBudgetTest, ProgressStartsANewOutage) {
  RetryBudget budget(Settings(1, seconds(300), milliseconds(10), milliseconds(10)), 3);
  const Status failure = NetworkError("stalled", Retryable::kYes);
  auto t0 = RetryBudget::Clock::now();
  ASSERT_TRUE(budget.Next(failure, std::nullopt, t0).ok());
  budget.Recovered();
  Result<RetryBudget::Wait> again = budget.Next(failure, std::nullopt, t0 + seconds(400));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->retry, 1);
  EXPECT_EQ(budget.total_retries(), 2);
  Result<RetryBudget::Wait> spent = budget.Next(failure, std::nullopt, t0 + seconds(401));
  ASSERT_FALSE(spent.ok());
  EXPECT_EQ(spent.status().message(), "giving up after 1 retry in 1 s: stalled");
}

TEST(RetryBudgetTest, TheTimeBudgetStopsRetriesThatWouldEndPastIt) {
  RetryBudget budget(Settings(10, seconds(10), milliseconds(4000), milliseconds(4000)), 3);
  const Status failure = NetworkError("HTTP 503 Service Unavailable from u", Retryable::kYes);
  auto t0 = RetryBudget::Clock::now();
  ASSERT_TRUE(budget.Next(failure, std::nullopt, t0).ok());
  // 9 s into the outage, a wait of at least 2 s would end past 10 s.
  Result<RetryBudget::Wait> late = budget.Next(failure, std::nullopt, t0 + seconds(9));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().message(),
            "giving up after 1 retry: the retry budget of 10 s would be spent: HTTP 503 Service "
            "Unavailable from u");
}

TEST(RetryBudgetTest, RetryAfterChoosesTheWaitWithinTheBudget) {
  RetryBudget budget(Settings(5, seconds(60), milliseconds(100), milliseconds(100)), 3);
  const Status failure = NetworkError("HTTP 429 Too Many Requests from u", Retryable::kYes);
  auto t0 = RetryBudget::Clock::now();
  Result<RetryBudget::Wait> wait = budget.Next(failure, seconds(30), t0);
  ASSERT_TRUE(wait.ok());
  EXPECT_EQ(wait->delay, seconds(30));
  EXPECT_TRUE(wait->from_retry_after);
  Result<RetryBudget::Wait> too_long = budget.Next(failure, seconds(3600), t0 + seconds(31));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().message(),
            "giving up: the server asks to retry after 3600 s, beyond the retry budget of 60 s: "
            "HTTP 429 Too Many Requests from u");
}

TEST(RetryBudgetTest, NoRetriesLeavesTheFailureAsItIs) {
  RetryBudget budget(Settings(0, seconds(300), milliseconds(100), milliseconds(100)), 3);
  const Status failure = NetworkError("connection refused by h:1 (u)", Retryable::kYes);
  Result<RetryBudget::Wait> wait = budget.Next(failure, std::nullopt, RetryBudget::Clock::now());
  ASSERT_FALSE(wait.ok());
  EXPECT_EQ(wait.status().message(), failure.message());
  EXPECT_TRUE(wait.status().retryable());
}

}  // namespace
}  // namespace cdi::importer
