#include "cmd/cli/progress_view.h"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include "cdi/text.h"

namespace cdi::cli {

ProgressStyle ParseProgressStyle(std::string_view text) {
  if (text == "bar") return ProgressStyle::kBar;
  if (text == "plain") return ProgressStyle::kPlain;
  if (text == "json") return ProgressStyle::kJson;
  if (text == "none") return ProgressStyle::kNone;
  return ProgressStyle::kAuto;
}
namespace {

constexpr int kBarWidth = 30;
constexpr double kRateWindowSeconds = 5.0;

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kConnecting: return "connecting";
    case Phase::kTransferring: return "transferring";
    case Phase::kFlushing: return "flushing";
    case Phase::kDone: return "done";
  }
  return "unknown";
}

double Seconds(std::chrono::nanoseconds duration) {
  return std::chrono::duration<double>(duration).count();
}

// The byte counter and its total that the fraction is based on.
std::pair<uint64_t, std::optional<uint64_t>> Counter(const Progress& p) {
  if (p.source_size) return {p.source_bytes, p.source_size};
  if (p.virtual_size) return {p.guest_bytes, p.virtual_size};
  return {p.source_bytes, std::nullopt};
}

}  // namespace

ProgressStyle ResolveStyle(ProgressStyle style, FILE* stream) {
  if (style != ProgressStyle::kAuto) return style;
  return isatty(fileno(stream)) ? ProgressStyle::kBar : ProgressStyle::kPlain;
}

ProgressView::ProgressView(ProgressStyle style, FILE* human, FILE* machine)
    : style_(ResolveStyle(style, human)), human_(human), machine_(machine) {}

double ProgressView::Rate(const Progress& p) {
  const double now = Seconds(p.elapsed);
  const uint64_t bytes = Counter(p).first;
  if (samples_.empty() || samples_.back().first < now) samples_.emplace_back(now, bytes);
  while (samples_.size() > 2 && now - samples_.front().first > kRateWindowSeconds) {
    samples_.pop_front();
  }
  const auto& [t0, b0] = samples_.front();
  if (now - t0 <= 0 || bytes < b0) return 0;
  return static_cast<double>(bytes - b0) / (now - t0);
}

std::string ProgressView::BarLine(const Progress& p) {
  const auto [done, total] = Counter(p);
  const double rate = Rate(p);
  std::optional<double> fraction = p.Fraction();
  std::string line;
  if (fraction) {
    int filled = static_cast<int>(*fraction * kBarWidth);
    line = "[" + std::string(static_cast<size_t>(filled), '=') +
           (filled < kBarWidth ? ">" : "") +
           std::string(static_cast<size_t>(std::max(0, kBarWidth - filled - 1)), ' ') + "] ";
    char percent[16];
    std::snprintf(percent, sizeof percent, "%3d%%", static_cast<int>(*fraction * 100));
    line += percent;
  } else {
    static const char kSpinner[] = "|/-\\";
    line = std::string("[") + kSpinner[static_cast<int>(Seconds(p.elapsed) * 4) % 4] + "] ";
  }
  line += "  " + HumanBytes(done);
  if (total) line += " / " + HumanBytes(*total);
  line += "  " + HumanBytes(static_cast<uint64_t>(rate)) + "/s";
  if (p.phase == Phase::kFlushing) {
    line += "  flushing to disk";
  } else if (total && rate > 0 && *total >= done) {
    line += "  ETA " + HumanDuration(static_cast<double>(*total - done) / rate);
  }
  return line;
}

std::string ProgressView::PlainLine(const Progress& p) {
  const auto [done, total] = Counter(p);
  std::string line = std::string("progress: ") + PhaseName(p.phase);
  if (auto fraction = p.Fraction()) {
    line += " " + std::to_string(static_cast<int>(*fraction * 100)) + "%";
  }
  line += ", " + HumanBytes(done);
  if (total) line += " of " + HumanBytes(*total);
  line += ", " + HumanDuration(Seconds(p.elapsed)) + " elapsed";
  return line;
}

std::string ProgressView::JsonLine(const Progress& p) {
  std::string line = "{\"event\":\"progress\",\"phase\":" + JsonString(PhaseName(p.phase));
  line += ",\"source_bytes\":" + std::to_string(p.source_bytes);
  if (p.source_size) line += ",\"source_size\":" + std::to_string(*p.source_size);
  line += ",\"guest_bytes\":" + std::to_string(p.guest_bytes);
  if (p.virtual_size) line += ",\"virtual_size\":" + std::to_string(*p.virtual_size);
  if (auto fraction = p.Fraction()) {
    char text[32];
    std::snprintf(text, sizeof text, "%.4f", *fraction);
    line += std::string(",\"fraction\":") + text;
  }
  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.3f", Seconds(p.elapsed));
  line += std::string(",\"elapsed_seconds\":") + elapsed + "}";
  return line;
}

void ProgressView::Update(const Progress& p) {
  const double now = Seconds(p.elapsed);
  const bool phase_changed = p.phase != last_phase_;
  last_phase_ = p.phase;
  switch (style_) {
    case ProgressStyle::kBar:
      std::fprintf(human_, "\r%s\033[K", BarLine(p).c_str());
      std::fflush(human_);
      bar_drawn_ = true;
      break;
    case ProgressStyle::kPlain: {
      const auto fraction = p.Fraction();
      const int decile = fraction ? static_cast<int>(*fraction * 10) : -1;
      if (phase_changed || decile > last_plain_decile_ || now - last_plain_ >= 10) {
        std::fprintf(human_, "%s\n", PlainLine(p).c_str());
        std::fflush(human_);
        last_plain_ = now;
        last_plain_decile_ = decile;
      }
      break;
    }
    case ProgressStyle::kJson:
      if (phase_changed || now - last_json_ >= 1.0) {
        std::fprintf(machine_, "%s\n", JsonLine(p).c_str());
        std::fflush(machine_);
        last_json_ = now;
      }
      break;
    case ProgressStyle::kAuto:
    case ProgressStyle::kNone:
      break;
  }
}

void ProgressView::Finish() {
  if (bar_drawn_) {
    std::fprintf(human_, "\n");
    std::fflush(human_);
    bar_drawn_ = false;
  }
}

}  // namespace cdi::cli
