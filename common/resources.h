// What this process may use of the machine: CPUs and memory, from its cgroup
// (v2 or v1), its CPU affinity and the machine's memory. Worker threads and
// the default memory budget are sized from it, so that an importer pod with
// CDI's 750m CPU limit runs one decoder thread and a node-local run with no
// limit uses every core.
//
// Read from the files the kernel shows, under a root directory ("/" for this
// process; a test writes the same files under a directory of its own):
//   proc/self/cgroup      the process's cgroup in each hierarchy
//                         ("0::/path" for v2, "4:memory:/path" for v1)
//   proc/self/mountinfo   where each hierarchy is mounted (fstype cgroup2, or
//                         cgroup with the controller among its options), and
//                         which cgroup its mount shows as its root
//   <mount>/<path>/       v2: cpu.max ("max 100000", "75000 100000") and
//                         memory.max ("max", bytes); v1: cpu.cfs_quota_us
//                         (-1: none) with cpu.cfs_period_us, and
//                         memory.limit_in_bytes (2^63 rounded down to a page:
//                         none)
//   proc/meminfo          MemTotal, the machine's memory
// Every cgroup from the process's up to the mount's root is read and the
// tightest limit wins, as the kernel applies them. A cgroup directory the
// mount does not show (a container that sees its own cgroup as the root of
// the mount, without a cgroup namespace) is read at the mount's root. A
// controller mounted as v1 is read there (a hybrid system's v2 hierarchy has
// no controllers); else v2's. Missing or unreadable files mean "no limit".
#ifndef CDI_COMMON_RESOURCES_H_
#define CDI_COMMON_RESOURCES_H_

#include <cstdint>
#include <optional>
#include <string>

namespace cdi {

struct ProcessResources {
  // CPUs the process may keep busy: those its affinity mask allows, lowered
  // to its cgroup's CPU quota rounded up (750m: 1; 2500m: 3); at least 1.
  unsigned cpus = 1;
  // The cgroup's CPU quota in CPUs (0.75 for 750m), when one is set.
  std::optional<double> cpu_quota;
  // The cgroup's memory limit in bytes, when one is set.
  std::optional<uint64_t> memory_limit;
  // The machine's memory in bytes (MemTotal); 0 when unknown.
  uint64_t machine_memory = 0;

  // Memory the process may use: its cgroup's limit, else the machine's
  // memory (capped by it when both are known); 0 when neither is known.
  uint64_t memory() const;
  // "2 CPUs (cgroup quota 1.5), memory limit 600 MiB (cgroup)", for the log.
  std::string Describe() const;
};

// Reads the resources of the process whose proc/self and cgroup files are
// found under `root` ("/" for this one). `affinity_cpus` is the number of
// CPUs the process's affinity mask allows (0: unknown; then 1 unless a
// quota says more).
ProcessResources ReadProcessResources(const std::string& root, unsigned affinity_cpus);

// This process's resources, read on the first call (thread-safe); the
// affinity mask is the calling thread's at that time.
const ProcessResources& ThisProcessResources();

}  // namespace cdi

#endif  // CDI_COMMON_RESOURCES_H_
