#include "common/resources.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "cdi/text.h"
#include "common/text.h"

namespace cdi {
namespace {

namespace fs = std::filesystem;

// v1 shows "no limit" as the largest page-aligned signed 64-bit number
// (9223372036854771712); anything from 2^62 up is no limit.
constexpr uint64_t kNoLimitFrom = uint64_t{1} << 62;

std::optional<std::string> ReadText(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

std::optional<int64_t> ParseInt(std::string_view text) {
  text = TrimSpace(text);
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// `path` (absolute, from the live system's root) under `root`.
fs::path Under(const std::string& root, std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return fs::path(root) / fs::path(path);
}

// One cgroup hierarchy: where it is mounted and the process's cgroup in it.
struct Hierarchy {
  fs::path mount;  // under root
  fs::path leaf;   // the process's cgroup directory, under `mount` (or `mount` itself)
};

struct MountLine {
  std::string root;         // the cgroup the mount shows as its root
  std::string mount_point;  // absolute
  std::string fstype;
  std::vector<std::string> options;  // super options: "rw", "cpu", "cpuacct", ...
};

// proc/self/mountinfo: "36 25 0:31 / /sys/fs/cgroup/memory rw,... - cgroup cgroup rw,memory".
std::vector<MountLine> ReadCgroupMounts(const std::string& root) {
  std::vector<MountLine> mounts;
  std::optional<std::string> text = ReadText(Under(root, "/proc/self/mountinfo"));
  if (!text) return mounts;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream before(line.substr(0, dash));
    std::istringstream after(line.substr(dash + 3));
    std::string id, parent, device, mount_root, mount_point, fstype, source, super_options;
    if (!(before >> id >> parent >> device >> mount_root >> mount_point)) continue;
    if (!(after >> fstype >> source >> super_options)) continue;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    MountLine mount{mount_root, mount_point, fstype, {}};
    for (std::string_view option : Split(super_options, ',')) mount.options.emplace_back(option);
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

// The process's cgroup directory under `mount`: its path in the hierarchy
// less the part the mount shows as its root; the mount's root when that
// directory is not there.
Hierarchy Locate(const std::string& root, const MountLine& mount, std::string_view cgroup_path) {
  Hierarchy hierarchy;
  hierarchy.mount = Under(root, mount.mount_point);
  hierarchy.leaf = hierarchy.mount;
  std::string_view relative = cgroup_path;
  if (mount.root != "/") {
    if (relative.substr(0, mount.root.size()) != mount.root) return hierarchy;
    relative.remove_prefix(mount.root.size());
  }
  while (!relative.empty() && relative.front() == '/') relative.remove_prefix(1);
  if (relative.empty()) return hierarchy;
  fs::path leaf = hierarchy.mount / fs::path(relative);
  std::error_code error;
  if (fs::is_directory(leaf, error)) hierarchy.leaf = leaf;
  return hierarchy;
}

// The directories from `hierarchy.leaf` up to its mount, leaf first.
std::vector<fs::path> Chain(const Hierarchy& hierarchy) {
  std::vector<fs::path> chain;
  fs::path at = hierarchy.leaf;
  while (true) {
    chain.push_back(at);
    if (at == hierarchy.mount || !at.has_parent_path() || at.parent_path() == at) break;
    at = at.parent_path();
  }
  return chain;
}

struct Hierarchies {
  std::optional<Hierarchy> cpu_v1, memory_v1, unified;
};

Hierarchies FindHierarchies(const std::string& root) {
  Hierarchies found;
  // proc/self/cgroup: "hierarchy-id:controllers:path"; v2's line is "0::path".
  std::optional<std::string> text = ReadText(Under(root, "/proc/self/cgroup"));
  std::vector<MountLine> mounts = ReadCgroupMounts(root);
  std::string unified_path;
  std::vector<std::pair<std::vector<std::string>, std::string>> v1_paths;
  bool have_unified = false;
  if (text) {
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      size_t first = line.find(':');
      size_t second = first == std::string::npos ? first : line.find(':', first + 1);
      if (second == std::string::npos) continue;
      std::string_view controllers = std::string_view(line).substr(first + 1, second - first - 1);
      std::string path = line.substr(second + 1);
      if (line.substr(0, first) == "0" && controllers.empty()) {
        unified_path = path;
        have_unified = true;
      } else {
        std::vector<std::string> names;
        for (std::string_view name : Split(controllers, ',')) names.emplace_back(name);
        v1_paths.emplace_back(std::move(names), path);
      }
    }
  }
  auto has = [](const std::vector<std::string>& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  for (const MountLine& mount : mounts) {
    if (mount.fstype == "cgroup2") {
      if (!found.unified) {
        found.unified = Locate(root, mount, have_unified ? unified_path : "/");
      }
      continue;
    }
    for (const char* controller : {"cpu", "memory"}) {
      if (!has(mount.options, controller)) continue;
      std::string path = "/";
      for (const auto& [names, cgroup] : v1_paths) {
        if (has(names, controller)) path = cgroup;
      }
      auto& slot = std::string_view(controller) == "cpu" ? found.cpu_v1 : found.memory_v1;
      if (!slot) slot = Locate(root, mount, path);
    }
  }
  // No mountinfo (a chroot without /proc): the usual places.
  if (mounts.empty()) {
    fs::path base = Under(root, "/sys/fs/cgroup");
    std::error_code error;
    if (fs::exists(base / "cgroup.controllers", error)) {
      found.unified = Hierarchy{base, base};
    } else {
      if (fs::is_directory(base / "cpu", error)) found.cpu_v1 = Hierarchy{base / "cpu", base / "cpu"};
      if (fs::is_directory(base / "memory", error)) {
        found.memory_v1 = Hierarchy{base / "memory", base / "memory"};
      }
    }
  }
  return found;
}

// The tightest CPU quota along `chain`, in CPUs.
std::optional<double> CpuQuotaV2(const std::vector<fs::path>& chain) {
  std::optional<double> quota;
  for (const fs::path& dir : chain) {
    std::optional<std::string> text = ReadText(dir / "cpu.max");
    if (!text) continue;
    std::vector<std::string_view> fields = Split(TrimSpace(*text), ' ');
    if (fields.size() != 2 || fields[0] == "max") continue;
    std::optional<int64_t> max = ParseInt(fields[0]);
    std::optional<int64_t> period = ParseInt(fields[1]);
    if (!max || !period || *max <= 0 || *period <= 0) continue;
    double cpus = static_cast<double>(*max) / static_cast<double>(*period);
    quota = quota ? std::min(*quota, cpus) : cpus;
  }
  return quota;
}

std::optional<double> CpuQuotaV1(const std::vector<fs::path>& chain) {
  std::optional<double> quota;
  for (const fs::path& dir : chain) {
    std::optional<std::string> max_text = ReadText(dir / "cpu.cfs_quota_us");
    std::optional<std::string> period_text = ReadText(dir / "cpu.cfs_period_us");
    if (!max_text || !period_text) continue;
    std::optional<int64_t> max = ParseInt(*max_text);
    std::optional<int64_t> period = ParseInt(*period_text);
    if (!max || !period || *max <= 0 || *period <= 0) continue;  // -1: no quota
    double cpus = static_cast<double>(*max) / static_cast<double>(*period);
    quota = quota ? std::min(*quota, cpus) : cpus;
  }
  return quota;
}

// The tightest memory limit along `chain`, read from `file` ("max": none).
std::optional<uint64_t> MemoryLimit(const std::vector<fs::path>& chain, const char* file) {
  std::optional<uint64_t> limit;
  for (const fs::path& dir : chain) {
    std::optional<std::string> text = ReadText(dir / file);
    if (!text) continue;
    std::optional<int64_t> bytes = ParseInt(*text);
    if (!bytes || *bytes <= 0 || static_cast<uint64_t>(*bytes) >= kNoLimitFrom) continue;
    limit = limit ? std::min(*limit, static_cast<uint64_t>(*bytes)) : static_cast<uint64_t>(*bytes);
  }
  return limit;
}

uint64_t MachineMemory(const std::string& root) {
  std::optional<std::string> text = ReadText(Under(root, "/proc/meminfo"));
  if (!text) return 0;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("MemTotal:", 0) != 0) continue;
    std::istringstream fields(line.substr(9));
    uint64_t kib = 0;
    std::string unit;
    if (fields >> kib) return kib * 1024;
  }
  return 0;
}

std::string Cpus(double cpus) {
  std::ostringstream text;
  text << cpus;
  return text.str();
}

}  // namespace

uint64_t ProcessResources::memory() const {
  if (memory_limit && machine_memory != 0) return std::min(*memory_limit, machine_memory);
  if (memory_limit) return *memory_limit;
  return machine_memory;
}

std::string ProcessResources::Describe() const {
  std::string text = std::to_string(cpus) + (cpus == 1 ? " CPU" : " CPUs");
  if (cpu_quota) text += " (cgroup quota " + Cpus(*cpu_quota) + ")";
  if (memory_limit) {
    text += ", memory limit " + HumanBytes(*memory_limit) + " (cgroup)";
  } else if (machine_memory != 0) {
    text += ", no memory limit (machine " + HumanBytes(machine_memory) + ")";
  }
  return text;
}

ProcessResources ReadProcessResources(const std::string& root, unsigned affinity_cpus) {
  ProcessResources resources;
  Hierarchies hierarchies = FindHierarchies(root);
  if (hierarchies.cpu_v1) {
    resources.cpu_quota = CpuQuotaV1(Chain(*hierarchies.cpu_v1));
  } else if (hierarchies.unified) {
    resources.cpu_quota = CpuQuotaV2(Chain(*hierarchies.unified));
  }
  if (hierarchies.memory_v1) {
    resources.memory_limit = MemoryLimit(Chain(*hierarchies.memory_v1), "memory.limit_in_bytes");
  } else if (hierarchies.unified) {
    resources.memory_limit = MemoryLimit(Chain(*hierarchies.unified), "memory.max");
  }
  resources.machine_memory = MachineMemory(root);
  unsigned cpus = affinity_cpus;
  if (resources.cpu_quota) {
    // A quota of 0.75 CPUs is one CPU busy 75% of the time: one thread.
    auto quota_cpus = static_cast<unsigned>(
        std::min(std::ceil(*resources.cpu_quota - 1e-9), 65536.0));
    cpus = cpus == 0 ? quota_cpus : std::min(cpus, quota_cpus);
  }
  resources.cpus = std::max(1u, cpus);
  return resources;
}

const ProcessResources& ThisProcessResources() {
  static const ProcessResources resources = [] {
    unsigned affinity = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) affinity = static_cast<unsigned>(CPU_COUNT(&set));
    if (affinity == 0) affinity = std::thread::hardware_concurrency();
    return ReadProcessResources("/", affinity);
  }();
  return resources;
}

}  // namespace cdi
