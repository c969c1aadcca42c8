#include "importer/memory_plan.h"

#include <algorithm>

#include "cdi/text.h"

namespace cdi::importer {

std::string MemoryPlan::Describe() const {
  return "budget " + HumanBytes(budget) + ", xz threads up to " + HumanBytes(xz_threading) +
         (automatic ? " (sized from the memory the process may use)" : " (the budget set)");
}

MemoryPlan PlanMemory(uint64_t requested, const ProcessResources& resources) {
  MemoryPlan plan;
  if (requested != 0) {
    plan.budget = requested;
    plan.xz_threading = requested;
  } else {
    plan.automatic = true;
    const uint64_t usable = resources.memory();
    plan.budget = usable == 0 ? kDefaultMemoryBudget
                              : std::clamp(usable / 4, kMinMemoryBudget, kDefaultMemoryBudget);
    plan.xz_threading = std::max(plan.budget, usable / 2);
  }
  plan.xz_memlimit = std::max(plan.xz_threading, kXzMinMemlimit);
  return plan;
}

}  // namespace cdi::importer
