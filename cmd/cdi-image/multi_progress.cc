#include "cmd/cdi-image/multi_progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "cdi/text.h"

namespace cdi::apply {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

std::string Chain(const std::vector<std::string>& chain) {
  std::string text;
  for (const auto& layer : chain) text += (text.empty() ? "" : " > ") + layer;
  return text;
}

// Columns of the terminal behind `out`, or 0 when unknown.
size_t TerminalWidth(FILE* out) {
  struct winsize size {};
  if (ioctl(fileno(out), TIOCGWINSZ, &size) != 0) return 0;
  return size.ws_col;
}

// The first line of a message, shortened for one row.
std::string FirstLine(const std::string& message) { return message.substr(0, message.find('\n')); }

}  // namespace

MultiProgressView::MultiProgressView(cli::ProgressStyle style, FILE* out, const Plan& plan)
    : style_(cli::ResolveStyle(style, out)),
      out_(out),
      plan_(plan),
      downloads_(plan.downloads.size()),
      bar_text_(plan.downloads.size(), "waiting"),
      final_text_(plan.data_volumes.size()) {
  for (const DataVolumePlan& dv : plan.data_volumes) {
    name_width_ = std::max(name_width_, dv.QualifiedName().size());
  }
  for (DownloadState& state : downloads_) {
    state.rate = std::make_unique<cli::ProgressView>(cli::ProgressStyle::kNone, out, out);
  }
}

MultiProgressView::~MultiProgressView() = default;

std::string MultiProgressView::RowText(size_t i) const {
  std::string name = plan_.data_volumes[i].QualifiedName();
  name.resize(name_width_, ' ');
  const std::string& state =
      final_text_[i].empty() ? bar_text_[plan_.data_volumes[i].download] : final_text_[i];
  return name + "  " + state;
}

std::vector<std::string> MultiProgressView::Lines() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> lines;
  for (size_t i = 0; i < plan_.data_volumes.size(); ++i) lines.push_back(RowText(i));
  return lines;
}

void MultiProgressView::Redraw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  const size_t width = TerminalWidth(out_);
  std::string text;
  // Back to the first row, then rewrite every row; a row longer than the
  // terminal would wrap and break the count, so it is cut.
  if (lines_drawn_ > 0) text += "\033[" + std::to_string(lines_drawn_) + "A";
  for (size_t i = 0; i < plan_.data_volumes.size(); ++i) {
    std::string row = RowText(i);
    if (width > 1 && row.size() >= width) row.resize(width - 1);
    text += "\r" + row + "\033[K\n";
  }
  lines_drawn_ = plan_.data_volumes.size();
  std::fputs(text.c_str(), out_);
  std::fflush(out_);
}

void MultiProgressView::PlainProgress(size_t d, const Progress& p) {
  DownloadState& state = downloads_[d];
  const double now = std::chrono::duration<double>(p.elapsed).count();
  const auto fraction = p.Fraction();
  const int decile = fraction ? static_cast<int>(*fraction * 10) : -1;
  const bool phase_changed = p.phase != state.last_phase;
  state.last_phase = p.phase;
  if (!phase_changed && decile <= state.last_decile && now - state.last_plain < 10) return;
  state.last_decile = decile;
  state.last_plain = now;
  // Label the line with the download's first DataVolume; a pool's others
  // follow the same stream.
  const DownloadPlan& download = plan_.downloads[d];
  std::string label = plan_.data_volumes[download.data_volumes.front()].QualifiedName();
  if (download.data_volumes.size() > 1) {
    label += " (+" + std::to_string(download.data_volumes.size() - 1) + " sharing the download)";
  }
  std::fprintf(out_, "%s: %s\n", label.c_str(), state.rate->PlainLine(p).c_str());
  std::fflush(out_);
}

void MultiProgressView::Update(size_t d, const Progress& progress) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (d >= downloads_.size()) return;
  DownloadState& state = downloads_[d];
  state.last = progress;
  switch (style_) {
    case cli::ProgressStyle::kBar:
      bar_text_[d] = state.rate->BarLine(progress);
      Redraw(progress.phase != Phase::kTransferring);
      break;
    case cli::ProgressStyle::kPlain:
      PlainProgress(d, progress);
      break;
    default:
      break;
  }
}

void MultiProgressView::DownloadDone(size_t d, const std::vector<Outcome>& outcomes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (d >= downloads_.size()) return;
  for (size_t i : plan_.downloads[d].data_volumes) {
    const Outcome& outcome = outcomes[i];
    if (outcome.status.ok() && outcome.result) {
      final_text_[i] = "done: " + Chain(outcome.result->format_chain) + ", " +
                       HumanBytes(outcome.result->virtual_size) + " in " +
                       HumanDuration(std::chrono::duration<double>(outcome.elapsed).count());
    } else {
      final_text_[i] = "failed: " + FirstLine(outcome.status.message());
    }
    if (style_ == cli::ProgressStyle::kPlain) {
      std::fprintf(out_, "%s: %s\n", plan_.data_volumes[i].QualifiedName().c_str(),
                   final_text_[i].c_str());
    }
  }
  if (style_ == cli::ProgressStyle::kPlain) std::fflush(out_);
  if (style_ == cli::ProgressStyle::kBar) Redraw(true);
}

void MultiProgressView::Finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (style_ == cli::ProgressStyle::kBar && lines_drawn_ > 0) Redraw(true);
}

}  // namespace cdi::apply
