#include "pod/progress_metric.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

namespace cdi::pod {
namespace {

// Label values escape backslash, double quote and newline (exposition format).
std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string FormatPercent(double percent) {
  if (!std::isfinite(percent) || percent <= 0) return "0";
  char buffer[64];
  auto [end, error] =
      std::to_chars(buffer, buffer + sizeof buffer, percent, std::chars_format::fixed);
  if (error != std::errc()) return "0";
  return std::string(buffer, end);
}

ProgressMetric::ProgressMetric(std::string owner_uid) : owner_uid_(std::move(owner_uid)) {}

void ProgressMetric::Update(std::optional<double> fraction) {
  if (!fraction || !std::isfinite(*fraction)) return;
  double percent = std::clamp(*fraction, 0.0, 1.0) * 100.0;
  // A counter only grows (CDI adds the difference): a lower estimate is kept out.
  if (percent > percent_.load(std::memory_order_relaxed)) {
    percent_.store(percent, std::memory_order_relaxed);
  }
}

std::string ProgressMetric::Exposition() const {
  std::string name(kProgressMetricName);
  return "# HELP " + name + " The import progress in percentage\n# TYPE " + name + " counter\n" +
         name + "{ownerUID=\"" + EscapeLabelValue(owner_uid_) + "\"} " + FormatPercent(percent()) +
         "\n";
}

}  // namespace cdi::pod
