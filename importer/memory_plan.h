// ImportSpec::memory_budget resolved against what the process may use
// (common/resources.h): the budget the import's buffers, tables and
// out-of-order data live in, and what the threaded xz decoder may hold.
#ifndef CDI_IMPORTER_MEMORY_PLAN_H_
#define CDI_IMPORTER_MEMORY_PLAN_H_

#include <cstdint>
#include <string>

#include "cdi/quantity.h"
#include "common/resources.h"

namespace cdi::importer {

// The budget when the process's memory is unknown, and the most an
// automatic budget takes for buffers: what they use to full speed.
inline constexpr uint64_t kDefaultMemoryBudget = 64 * kMiB;
// The least a budget may be (ValidateSpec refuses less).
inline constexpr uint64_t kMinMemoryBudget = 16 * kMiB;
// What one xz stream may need to be decoded at all (one thread; xz -9's
// 64 MiB dictionary fits), whatever the budget, as before budgets were sized.
inline constexpr uint64_t kXzMinMemlimit = 128 * kMiB;

struct MemoryPlan {
  uint64_t budget = kDefaultMemoryBudget;  // buffers, tables, out-of-order data
  // What the threads of the threaded xz decoder may hold together: liblzma
  // runs as many as fit, up to one per CPU. Never past a budget the user set.
  uint64_t xz_threading = kDefaultMemoryBudget;
  // liblzma's hard limit for one stream: at least kXzMinMemlimit.
  uint64_t xz_memlimit = kXzMinMemlimit;
  bool automatic = false;  // sized from the process's resources

  // "budget 64.0 MiB, xz threads up to 300.0 MiB (sized from ...)", for the log.
  std::string Describe() const;
};

// `requested` is ImportSpec::memory_budget. Set (non-zero): that is the
// budget, and the xz threads stay within it too. 0 (the default): sized from
// `resources.memory()`, the cgroup's memory limit or else the machine's
// memory: a quarter of it for the budget, within [16 MiB, 64 MiB] (64 MiB
// when unknown), and up to half of it for xz's threads (which hold only what
// they need: a dictionary and a block's buffers each, 30 MiB or so for
// `xz -6 -T0`), never less than the budget.
MemoryPlan PlanMemory(uint64_t requested, const ProcessResources& resources);

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_MEMORY_PLAN_H_
