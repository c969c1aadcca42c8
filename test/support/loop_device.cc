#include "test/support/loop_device.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "test/support/process.h"

namespace cdi::test {
namespace {

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Runs a cleanup command a few times: udev or a closing file may hold the
// device for a moment after the test lets go of it.
bool RunWithRetries(const std::vector<std::string>& argv) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (Run(argv).exit_code == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

std::string LoopDevice::Unavailable() {
  if (!IsRoot()) return "needs root to attach loop devices; run the tests as root";
  if (!HaveProgram("losetup")) return "losetup not found; install util-linux";
  if (access("/dev/loop-control", F_OK) != 0) {
    return "no /dev/loop-control; load the loop module (modprobe loop)";
  }
  return "";
}

LoopDevice::LoopDevice(const LoopDeviceOptions& options)
    : owns_file_(options.existing_file.empty()),
      backing_file_(!owns_file_                   ? options.existing_file
                    : options.backing_dir.empty() ? dir_.File("backing.img")
                                                  : options.backing_dir + "/loop-backing.img"),
      size_(owns_file_ ? options.size : FileSize(options.existing_file)) {
  if (owns_file_) {
    std::ofstream out(backing_file_, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot create " + backing_file_);
    if (options.fill) {
      std::vector<char> chunk(1 << 20, static_cast<char>(*options.fill));
      for (uint64_t done = 0; done < size_;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size_ - done));
        out.write(chunk.data(), static_cast<std::streamsize>(n));
        done += n;
      }
    }
    out.close();
    if (!out) throw std::runtime_error("cannot write " + backing_file_);
  }
  if (owns_file_ && !options.fill &&
      truncate(backing_file_.c_str(), static_cast<off_t>(size_)) != 0) {
    throw std::runtime_error("cannot size " + backing_file_);
  }
  std::vector<std::string> argv = {"losetup", "-f", "--show", "--sector-size",
                                   std::to_string(options.sector_size)};
  if (options.access == LoopAccess::kReadOnly) argv.push_back("--read-only");
  argv.push_back(backing_file_);
  RunResult r = Run(argv);
  if (r.exit_code != 0) throw std::runtime_error("losetup -f --show failed: " + r.err);
  path_ = Trim(r.out);
  if (path_.empty()) throw std::runtime_error("losetup printed no device");
}

LoopDevice::~LoopDevice() {
  if (!path_.empty() && !RunWithRetries({"losetup", "-d", path_})) {
    ADD_FAILURE() << "could not detach " << path_ << "; detach it with losetup -d " << path_;
  }
  if (owns_file_) unlink(backing_file_.c_str());
}

std::string MountUnavailable() {
  if (!IsRoot()) return "needs root to mount filesystems; run the tests as root";
  if (!HaveProgram("mount")) return "mount not found; install util-linux";
  return "";
}

ScopedMount::ScopedMount(const std::vector<std::string>& arguments, std::string mount_point)
    : mount_point_(std::move(mount_point)) {
  std::vector<std::string> argv = {"mount"};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  argv.push_back(mount_point_);
  RunResult r = Run(argv);
  if (r.exit_code != 0) {
    mount_point_.clear();
    throw std::runtime_error("mount failed: " + r.err);
  }
}

ScopedMount::~ScopedMount() {
  if (mount_point_.empty()) return;
  if (!RunWithRetries({"umount", mount_point_})) {
    Run({"umount", "-l", mount_point_});
    ADD_FAILURE() << mount_point_ << " was busy at the end of the test; unmounted lazily";
  }
}

}  // namespace cdi::test
