// When the HTTP source tries again: exponential back-off with jitter, the
// server's Retry-After, and the budget of one outage (NetworkSettings).
//
//   RetryBudget budget(spec.network);
//   ... an attempt fails with a retryable `status` ...
//   Result<RetryBudget::Wait> wait = budget.Next(status, retry_after, Clock::now());
//   if (!wait.ok()) return wait.status();   // "giving up after 5 retries: ..."
//   sleep(wait->delay); try again
//   ... an attempt delivers bytes ...
//   budget.Recovered();
//
// Thread-safety: free functions have no shared state; a RetryBudget is used
// by one thread.
#ifndef CDI_SOURCES_HTTP_RETRY_POLICY_H_
#define CDI_SOURCES_HTTP_RETRY_POLICY_H_

#include <chrono>
#include <ctime>
#include <optional>
#include <random>
#include <string_view>

#include "cdi/import.h"
#include "cdi/status.h"

namespace cdi::importer {

// A Retry-After value (RFC 9110 section 10.2.3): delay-seconds, or an
// HTTP-date taken relative to `now` (a date in the past means 0). nullopt when
// it is neither.
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, std::time_t now);

// The back-off before retry number `retry` (1 for the first): uniformly
// random in [d/2, d] with d = min(retry_max_delay, retry_initial_delay *
// 2^(retry-1)). Half of it is fixed so that no retry comes too soon; the
// random half spreads the retries of many importers hit by the same outage.
std::chrono::milliseconds BackoffDelay(const NetworkSettings& settings, int retry,
                                       std::mt19937_64& random);

// Counts the retries of one outage, from its first failure until an attempt
// delivers bytes again, against max_retries and retry_budget.
class RetryBudget {
 public:
  using Clock = std::chrono::steady_clock;

  struct Wait {
    std::chrono::milliseconds delay{0};
    int retry = 0;                  // 1 for the first retry of this outage
    bool from_retry_after = false;  // the server's Retry-After chose the delay
  };

  // Seeds the jitter from std::random_device.
  explicit RetryBudget(const NetworkSettings& settings);
  RetryBudget(const NetworkSettings& settings, uint64_t seed);

  // An attempt failed at `now` with the retryable `failure`: returns how long
  // to wait before the next one, or, when the budget does not allow another,
  // `failure` annotated with why not ("giving up after 5 retries in 31 s"),
  // keeping its code. With max_retries 0, `failure` as it is.
  Result<Wait> Next(const Status& failure, std::optional<std::chrono::seconds> retry_after,
                    Clock::time_point now);

  // The last attempt delivered bytes: the next failure starts a new outage.
  void Recovered();

  // Retries granted so far, in all outages.
  int total_retries() const { return total_retries_; }

 private:
  const NetworkSettings settings_;
  std::mt19937_64 random_;
  int retries_ = 0;  // in this outage
  int total_retries_ = 0;
  std::optional<Clock::time_point> outage_start_;
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_RETRY_POLICY_H_
