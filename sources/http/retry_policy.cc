#include "sources/http/retry_policy.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace cdi::importer {
namespace {

std::string Seconds(std::chrono::milliseconds duration) {
  double seconds = std::chrono::duration<double>(duration).count();
  char text[32];
  // Whole seconds read better; short test budgets need the fraction.
  if (seconds >= 10 || seconds == std::floor(seconds)) {
    std::snprintf(text, sizeof text, "%.0f s", seconds);
  } else {
    std::snprintf(text, sizeof text, "%.1f s", seconds);
  }
  return text;
}

std::string Retries(int count) {
  return std::to_string(count) + (count == 1 ? " retry" : " retries");
}

}  // namespace

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value, std::time_t now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    int64_t seconds = 0;
    auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (error == std::errc::result_out_of_range) return std::chrono::seconds(INT32_MAX);
    if (error != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return std::chrono::seconds(seconds);
  }
  // curl parses the three date formats HTTP allows (RFC 9110 section 5.6.7).
  std::string date(value);
  std::time_t when = curl_getdate(date.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return std::chrono::seconds(std::max<std::time_t>(0, when - now));
}

std::chrono::milliseconds BackoffDelay(const NetworkSettings& settings, int retry,
                                       std::mt19937_64& random) {
  using std::chrono::milliseconds;
  const milliseconds initial = std::max(milliseconds(0), settings.retry_initial_delay);
  const milliseconds cap = std::max(initial, settings.retry_max_delay);
  milliseconds nominal = initial;
  for (int i = 1; i < retry && nominal < cap; ++i) nominal *= 2;
  nominal = std::min(nominal, cap);
  const int64_t half = nominal.count() / 2;
  std::uniform_int_distribution<int64_t> jitter(0, nominal.count() - half);
  return milliseconds(half + jitter(random));
}

RetryBudget::RetryBudget(const NetworkSettings& settings)
    : RetryBudget(settings, std::random_device()()) {}

RetryBudget::RetryBudget(const NetworkSettings& settings, uint64_t seed)
    : settings_(settings), random_(seed) {}

Result<RetryBudget::Wait> RetryBudget::Next(const Status& failure,
                                            std::optional<std::chrono::seconds> retry_after,
                                            Clock::time_point now) {
  using std::chrono::milliseconds;
  if (settings_.max_retries <= 0) return failure;
  if (!outage_start_) outage_start_ = now;
  const auto spent = std::chrono::duration_cast<milliseconds>(now - *outage_start_);
  if (retries_ >= settings_.max_retries) {
    return failure.Annotate("giving up after " + Retries(retries_) + " in " + Seconds(spent));
  }
  Wait wait;
  wait.retry = retries_ + 1;
  if (retry_after) {
    wait.delay = std::chrono::duration_cast<milliseconds>(*retry_after);
    wait.from_retry_after = true;
  } else {
    wait.delay = BackoffDelay(settings_, wait.retry, random_);
  }
  if (spent + wait.delay > settings_.retry_budget) {
    if (wait.from_retry_after) {
      return failure.Annotate("giving up: the server asks to retry after " + Seconds(wait.delay) +
                              ", beyond the retry budget of " + Seconds(settings_.retry_budget));
    }
    return failure.Annotate("giving up after " + Retries(retries_) + ": the retry budget of " +
                            Seconds(settings_.retry_budget) + " would be spent");
  }
  ++retries_;
  ++total_retries_;
  return wait;
}

void RetryBudget::Recovered() {
  retries_ = 0;
  outage_start_.reset();
}

}  // namespace cdi::importer
