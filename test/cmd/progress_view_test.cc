#include "cmd/cli/progress_view.h"

#include <gtest/gtest.h>

#include <chrono>

namespace cdi::cli {
namespace {

using std::chrono::seconds;

TEST(ProgressViewTest, BarShowsPercentSizesAndEta) {
  ProgressView view(ProgressStyle::kNone, stderr, stdout);
  Progress start{.phase = Phase::kTransferring, .source_bytes = 0, .source_size = 4ull << 30};
  view.BarLine(start);
  Progress half = start;
  half.source_bytes = 2ull << 30;
  half.elapsed = seconds(2);
  std::string line = view.BarLine(half);
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("2.0 GiB / 4.0 GiB"), std::string::npos) << line;
  EXPECT_NE(line.find("1.0 GiB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:02"), std::string::npos) << line;
}

TEST(ProgressViewTest, UnknownSizeShowsBytesWithoutPercent) {
  ProgressView view(ProgressStyle::kNone, stderr, stdout);
  Progress p{.phase = Phase::kTransferring, .source_bytes = 3 << 20, .elapsed = seconds(1)};
  std::string line = view.BarLine(p);
  EXPECT_EQ(line.find('%'), std::string::npos) << line;
  EXPECT_NE(line.find("3.0 MiB"), std::string::npos) << line;
}

TEST(ProgressViewTest, JsonLineCarriesTheCounters) {
  ProgressView view(ProgressStyle::kNone, stderr, stdout);
  Progress p{.phase = Phase::kFlushing, .source_bytes = 10, .source_size = 10, .guest_bytes = 64,
             .virtual_size = 64, .elapsed = std::chrono::milliseconds(1500)};
  EXPECT_EQ(view.JsonLine(p),
            "{\"event\":\"progress\",\"phase\":\"flushing\",\"source_bytes\":10,\"source_size\":10,"
            "\"guest_bytes\":64,\"virtual_size\":64,\"fraction\":0.9990,\"elapsed_seconds\":1.500}");
}

TEST(ProgressViewTest, PlainLinesAreWrittenAtEachTenthAndPhaseChange) {
  char* text = nullptr;
  size_t length = 0;
  FILE* out = open_memstream(&text, &length);
  ProgressView view(ProgressStyle::kPlain, out, out);
  for (int i = 0; i <= 100; ++i) {
    view.Update(Progress{.phase = Phase::kTransferring, .source_bytes = static_cast<uint64_t>(i),
                         .source_size = 100, .elapsed = std::chrono::milliseconds(i)});
  }
  view.Update(Progress{.phase = Phase::kDone, .source_bytes = 100, .source_size = 100});
  fclose(out);
  std::string lines(text, length);
  free(text);
  size_t count = 0;
  for (char c : lines) count += c == '\n';
  EXPECT_EQ(count, 11u) << lines;  // 0%..90% (99% clamps into the 90s), then done
  EXPECT_NE(lines.find("progress: done 100%"), std::string::npos) << lines;
}

}  // namespace
}  // namespace cdi::cli
