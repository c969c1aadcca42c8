// Where a resume point may lie once tables took back bytes that passed
// before them (formats/qcow2/taken_back_log.h).
#include "formats/qcow2/taken_back_log.h"

#include <gtest/gtest.h>

namespace cdi::formats::qcow2 {
namespace {

TEST(TakenBackLogTest, APointBetweenTheBytesAndTheirTableMovesBeforeTheBytes) {
  TakenBackLog log;
  EXPECT_EQ(log.Before(5000), 5000u);
  log.Note(1000, 400);  // a table at 1000 took back bytes at 400
  EXPECT_EQ(log.Before(400), 400u);   // at the bytes: the stream brings them again
  EXPECT_EQ(log.Before(401), 400u);
  EXPECT_EQ(log.Before(1000), 400u);  // at the table: it is fed again, the bytes are not
  EXPECT_EQ(log.Before(1001), 1001u);  // past the table: it was read, the bytes written
}

TEST(TakenBackLogTest, AMovedPointMovesAgainForEveryTableItNowFallsBefore) {
  TakenBackLog log;
  log.Note(1000, 400);
  log.Note(2000, 900);
  EXPECT_EQ(log.Before(1500), 400u);  // to 900, which the first table forbids too
  EXPECT_EQ(log.Before(2001), 2001u);
}

TEST(TakenBackLogTest, OneTableTakingBackSeveralRangesKeepsTheLowest) {
  TakenBackLog log;
  log.Note(3000, 2500);
  log.Note(3000, 2200);
  log.Note(3000, 2800);
  EXPECT_EQ(log.size(), 1u);
  EXPECT_EQ(log.Before(2300), 2200u);
}

TEST(TakenBackLogTest, WhenFullTheEntriesMergeAndForbidAtLeastWhatTheyDid) {
  TakenBackLog log;
  for (uint64_t i = 0; i < TakenBackLog::kMaxEntries; ++i) log.Note(1000 * (i + 1), 1000 * i + 500);
  EXPECT_EQ(log.Before(1500), 1500u);  // between two entries' ranges: allowed
  log.Note(1000 * (TakenBackLog::kMaxEntries + 1), 1000 * TakenBackLog::kMaxEntries + 500);
  EXPECT_EQ(log.size(), 1u);
  EXPECT_EQ(log.Before(800), 500u);  // once forbidden, still forbidden
  EXPECT_EQ(log.Before(1500), 500u);  // and, coarser, what lay between them
  EXPECT_EQ(log.Before(1000 * (TakenBackLog::kMaxEntries + 1) + 1),
            1000 * (TakenBackLog::kMaxEntries + 1) + 1);
}

}  // namespace
}  // namespace cdi::formats::qcow2
