// ImportSpec::memory_budget against what the process may use.
#include "importer/memory_plan.h"

#include <gtest/gtest.h>

namespace cdi::importer {
namespace {

ProcessResources Resources(std::optional<uint64_t> limit, uint64_t machine) {
  ProcessResources resources;
  resources.memory_limit = limit;
  resources.machine_memory = machine;
  return resources;
}

TEST(MemoryPlanTest, ASetBudgetHoldsTheXzThreadsToo) {
  MemoryPlan plan = PlanMemory(256 * kMiB, Resources(600 * kMiB, 16 * kGiB));
  EXPECT_FALSE(plan.automatic);
  EXPECT_EQ(plan.budget, 256 * kMiB);
  EXPECT_EQ(plan.xz_threading, 256 * kMiB);
  EXPECT_EQ(plan.xz_memlimit, 256 * kMiB);
  // A small budget still decodes any stream one thread can: as before.
  plan = PlanMemory(32 * kMiB, Resources(std::nullopt, 16 * kGiB));
  EXPECT_EQ(plan.budget, 32 * kMiB);
  EXPECT_EQ(plan.xz_threading, 32 * kMiB);
  EXPECT_EQ(plan.xz_memlimit, kXzMinMemlimit);
}

TEST(MemoryPlanTest, CdisDefaultPodLimit) {
  // CDI's importer pod: limits of 600M memory (and 750m CPU).
  MemoryPlan plan = PlanMemory(0, Resources(600'000'000, 16 * kGiB));
  EXPECT_TRUE(plan.automatic);
  EXPECT_EQ(plan.budget, kDefaultMemoryBudget);
  EXPECT_EQ(plan.xz_threading, 300'000'000u);
  EXPECT_EQ(plan.xz_memlimit, 300'000'000u);
}

TEST(MemoryPlanTest, ASmallLimitShrinksTheBudget) {
  MemoryPlan plan = PlanMemory(0, Resources(128 * kMiB, 16 * kGiB));
  EXPECT_EQ(plan.budget, 32 * kMiB);
  EXPECT_EQ(plan.xz_threading, 64 * kMiB);
  plan = PlanMemory(0, Resources(40 * kMiB, 16 * kGiB));
  EXPECT_EQ(plan.budget, kMinMemoryBudget);
  EXPECT_EQ(plan.xz_threading, kMinMemoryBudget * 5 / 4);
}

TEST(MemoryPlanTest, NoLimitIsTheMachine) {
  MemoryPlan plan = PlanMemory(0, Resources(std::nullopt, 8 * kGiB));
  EXPECT_EQ(plan.budget, kDefaultMemoryBudget);
  EXPECT_EQ(plan.xz_threading, 4 * kGiB);
  // Nothing known: the default budget, for the threads as well.
  plan = PlanMemory(0, Resources(std::nullopt, 0));
  EXPECT_EQ(plan.budget, kDefaultMemoryBudget);
  EXPECT_EQ(plan.xz_threading, kDefaultMemoryBudget);
  EXPECT_EQ(plan.xz_memlimit, kXzMinMemlimit);
}

}  // namespace
}  // namespace cdi::importer
