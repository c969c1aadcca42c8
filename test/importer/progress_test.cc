#include "importer/progress.h"

#include <gtest/gtest.h>

#include <vector>

namespace cdi {
namespace {

TEST(ProgressTest, FractionUsesBytesReadWhenTheSourceSizeIsKnown) {
  Progress p{.phase = Phase::kTransferring, .source_bytes = 50, .source_size = 200,
             .guest_bytes = 900, .virtual_size = 1000};
  EXPECT_DOUBLE_EQ(*p.Fraction(), 0.25);
}

TEST(ProgressTest, FractionFallsBackToDecodedBytes) {
  Progress p{.phase = Phase::kTransferring, .source_bytes = 50, .guest_bytes = 300,
             .virtual_size = 1000};
  EXPECT_DOUBLE_EQ(*p.Fraction(), 0.3);
  Progress unknown{.phase = Phase::kTransferring, .source_bytes = 50};
  EXPECT_FALSE(unknown.Fraction().has_value());
}

TEST(ProgressTest, OnlyDoneIsComplete) {
  Progress read_all{.phase = Phase::kTransferring, .source_bytes = 200, .source_size = 200};
  EXPECT_LT(*read_all.Fraction(), 1.0);
  read_all.phase = Phase::kFlushing;
  EXPECT_LT(*read_all.Fraction(), 1.0);
  EXPECT_GT(*read_all.Fraction(), 0.99);
  read_all.phase = Phase::kDone;
  EXPECT_DOUBLE_EQ(*read_all.Fraction(), 1.0);
}

TEST(ProgressReporterTest, ThrottlesButAlwaysReportsPhaseChanges) {
  std::vector<Phase> seen;
  importer::ProgressReporter reporter([&](const Progress& p) { seen.push_back(p.phase); },
                                      std::chrono::steady_clock::now());
  reporter.Report(Progress{.phase = Phase::kTransferring});
  for (int i = 0; i < 100; ++i) reporter.Report(Progress{.phase = Phase::kTransferring});
  reporter.Report(Progress{.phase = Phase::kFlushing});
  reporter.Report(Phase::kDone);
  ASSERT_GE(seen.size(), 3u);
  EXPECT_LT(seen.size(), 50u);  // most of the 100 back-to-back calls are dropped
  EXPECT_EQ(seen.front(), Phase::kTransferring);
  EXPECT_EQ(seen[seen.size() - 2], Phase::kFlushing);
  EXPECT_EQ(seen.back(), Phase::kDone);
}

}  // namespace
}  // namespace cdi
