#include "manifests/targets.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "pvc/capacity.h"

namespace cdi::apply {
namespace {

std::string Errno(int error) { return std::strerror(error); }

// The size of the block device at `path`, read without opening it for writing
// (the import opens it exclusively later).
Result<uint64_t> DeviceSize(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return InvalidArgumentError(path + ": " + Errno(errno));
  }
  if (!S_ISBLK(st.st_mode)) return InvalidArgumentError(path + " is not a block device");
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open " + path + ": " + Errno(errno));
  uint64_t size = 0;
  const int result = ioctl(fd, BLKGETSIZE64, &size);
  const int error = errno;
  close(fd);
  if (result != 0) return IoError("cannot read the size of " + path + ": " + Errno(error));
  return size;
}

std::string SizeText(uint64_t bytes) { return std::to_string(bytes) + " bytes"; }

}  // namespace

void CheckTargets(ExistingFile existing, Plan* plan, Problems* problems) {
  // Devices by number: two paths (a link and its device) may name one, and
  // two DataVolumes written onto one device would each report success for
  // a disk that holds the other's image.
  std::map<dev_t, const DataVolumePlan*> devices;
  for (DataVolumePlan& dv : plan->data_volumes) {
    auto report = [&](const std::string& field, std::string message) {
      problems->Add(dv.declared_in, dv.line, field, "DataVolume " + dv.name + ": " + message);
    };
    if (dv.volume_mode == VolumeMode::kBlock) {
      Result<uint64_t> size = DeviceSize(dv.target);
      if (!size.ok()) {
        report("", "--block " + dv.name + "=" + dv.target + ": " + size.status().message());
        continue;
      }
      dv.usable_size = *size;
      struct stat st {};
      if (stat(dv.target.c_str(), &st) == 0) {
        auto [it, added] = devices.emplace(st.st_rdev, &dv);
        if (!added) {
          report("", "--block " + dv.name + "=" + dv.target + ": " + dv.target +
                         " is the same device as " + it->second->target +
                         ", given to DataVolume " + it->second->name +
                         "; give each DataVolume a device of its own");
          continue;
        }
      }
      if (dv.requested && *size < *dv.requested) {
        report(dv.size_field,
               "the device " + dv.target + " holds " + SizeText(*size) + ", less than the " +
                   SizeText(*dv.requested) +
                   " requested (a volume smaller than its claim is never bound); give a larger "
                   "device or request less");
      }
      continue;
    }
    std::error_code error;
    const std::filesystem::path target(dv.target);
    const std::filesystem::path dir = target.parent_path();
    if (std::filesystem::exists(dir, error) && !std::filesystem::is_directory(dir, error)) {
      report("", dir.string() + " is in the way: it is not a directory");
      continue;
    }
    if (existing == ExistingFile::kRefuse && std::filesystem::exists(target, error)) {
      report("", dv.target + " already exists; pass --force to replace it");
    }
  }
}

Status PrepareTargets(const Plan& plan, bool checkpoints) {
  for (const DataVolumePlan& dv : plan.data_volumes) {
    std::filesystem::path dir = std::filesystem::path(dv.target).parent_path();
    if (dv.volume_mode == VolumeMode::kBlock) {
      if (!checkpoints || dv.checkpoint_dir.empty()) continue;
      dir = dv.checkpoint_dir;
    }
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return IoError("cannot create " + dir.string() + ": " + error.message());
  }
  return Status::Ok();
}

void RemoveEmptyCheckpointDirs(const Plan& plan) {
  for (const DataVolumePlan& dv : plan.data_volumes) {
    if (dv.volume_mode != VolumeMode::kBlock || dv.checkpoint_dir.empty()) continue;
    const std::filesystem::path dir = dv.checkpoint_dir;
    // rmdir: only an empty directory goes.
    if (rmdir(dir.c_str()) == 0) rmdir(dir.parent_path().c_str());
  }
}

TargetSpec ToTargetSpec(const DataVolumePlan& dv, ExistingFile existing) {
  TargetSpec target;
  target.path = dv.target;
  target.preallocation = dv.preallocation;
  if (dv.volume_mode == VolumeMode::kBlock) {
    target.kind = TargetKind::kBlockDevice;
    return target;
  }
  target.kind = TargetKind::kFile;
  target.requested_size = dv.pvc_size;
  target.filesystem_overhead = dv.filesystem_overhead;
  target.existing = existing;
  return target;
}

Result<uint64_t> CurrentCapacity(const DataVolumePlan& dv) {
  if (dv.volume_mode == VolumeMode::kBlock) return DeviceSize(dv.target);
  const std::string dir = std::filesystem::path(dv.target).parent_path().string();
  CDI_ASSIGN_OR_RETURN(uint64_t available, pvc::AvailableSpace(dir));
  const uint64_t bound = dv.pvc_size ? std::min(available, *dv.pvc_size) : available;
  return UsableSpace(dv.filesystem_overhead, bound);
}

}  // namespace cdi::apply
