// Renders import progress for people (a bar on a terminal, plain lines in a
// log) and for machines (JSON lines).
#ifndef CDI_CMD_CLI_PROGRESS_VIEW_H_
#define CDI_CMD_CLI_PROGRESS_VIEW_H_

#include <cstdio>
#include <deque>
#include <string>
#include <string_view>
#include <utility>

#include "cdi/import.h"

namespace cdi::cli {

enum class ProgressStyle { kAuto, kBar, kPlain, kJson, kNone };

// "bar", "plain", "json", "none"; anything else (the flag's "auto") is kAuto.
ProgressStyle ParseProgressStyle(std::string_view text);

// kAuto becomes kBar when `stream` is a terminal, else kPlain.
ProgressStyle ResolveStyle(ProgressStyle style, FILE* stream);

class ProgressView {
 public:
  // Bar and plain lines go to `human`, JSON lines to `machine`. Neither is owned.
  ProgressView(ProgressStyle style, FILE* human, FILE* machine);

  void Update(const Progress& progress);
  // Ends the bar's line so that later output starts on a fresh line.
  void Finish();

  // One rendered line for the current state, without "\r" (for tests).
  std::string BarLine(const Progress& progress);
  std::string PlainLine(const Progress& progress);
  std::string JsonLine(const Progress& progress);

 private:
  double Rate(const Progress& progress);

  ProgressStyle style_;
  FILE* human_;
  FILE* machine_;
  bool bar_drawn_ = false;
  double last_plain_ = -1;          // elapsed seconds at the last plain line
  int last_plain_decile_ = -1;
  Phase last_phase_ = Phase::kConnecting;
  double last_json_ = -1;
  std::deque<std::pair<double, uint64_t>> samples_;  // (elapsed, bytes) for the rate
};

}  // namespace cdi::cli

#endif  // CDI_CMD_CLI_PROGRESS_VIEW_H_
