// Real block devices and mounts for tests: a loop device over a temporary
// backing file, and a mount that is undone at scope end. Both need root.
#ifndef CDI_TEST_SUPPORT_LOOP_DEVICE_H_
#define CDI_TEST_SUPPORT_LOOP_DEVICE_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "test/support/temp_dir.h"

namespace cdi::test {

enum class LoopAccess { kReadWrite, kReadOnly };

struct LoopDeviceOptions {
  uint64_t size = 16ull << 20;  // bytes; a multiple of sector_size
  std::optional<uint8_t> fill;  // every byte of the device; nullopt: sparse, reads zero
  uint32_t sector_size = 512;   // the device's logical block size (losetup --sector-size)
  // Directory for the backing file (e.g. a small tmpfs, to make the device run
  // out of space); empty: a temporary directory of its own.
  std::string backing_dir;
  LoopAccess access = LoopAccess::kReadWrite;  // kReadOnly: losetup --read-only
  // An existing file to attach instead of a new one (size, fill and
  // backing_dir are then ignored; the file stays at scope end).
  std::string existing_file;
};

// A loop device attached (`losetup -f --show`) to a backing file in its own
// temporary directory (or options.backing_dir); detached and the file removed
// at scope end, also when the test fails. Throws std::runtime_error when it cannot be set up: call
// CDI_SKIP_UNLESS_LOOP_DEVICES() first.
class LoopDevice {
 public:
  explicit LoopDevice(const LoopDeviceOptions& options = {});
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;

  const std::string& path() const { return path_; }  // /dev/loopN
  const std::string& backing_file() const { return backing_file_; }
  uint64_t size() const { return size_; }

  // Empty when loop devices can be used here; otherwise why not, for GTEST_SKIP.
  static std::string Unavailable();

 private:
  TempDir dir_;
  bool owns_file_ = true;
  std::string backing_file_;
  std::string path_;
  uint64_t size_ = 0;
};

// Runs `mount <arguments...> <mount_point>` and unmounts at scope end (lazily
// if the mount is still busy). Throws std::runtime_error when mount fails.
class ScopedMount {
 public:
  ScopedMount(const std::vector<std::string>& arguments, std::string mount_point);
  ~ScopedMount();
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;

  const std::string& mount_point() const { return mount_point_; }

 private:
  std::string mount_point_;
};

// Empty when this process may mount filesystems (root); otherwise why not.
std::string MountUnavailable();

}  // namespace cdi::test

// Skips the current test, with the reason, unless loop devices can be attached.
#define CDI_SKIP_UNLESS_LOOP_DEVICES()                                                  \
  if (std::string cdi_why_ = ::cdi::test::LoopDevice::Unavailable(); !cdi_why_.empty()) \
  GTEST_SKIP() << cdi_why_

// Skips the current test, with the reason, unless it may mount filesystems.
#define CDI_SKIP_UNLESS_MOUNT()                                                  \
  if (std::string cdi_why_ = ::cdi::test::MountUnavailable(); !cdi_why_.empty()) \
  GTEST_SKIP() << cdi_why_

#endif  // CDI_TEST_SUPPORT_LOOP_DEVICE_H_
