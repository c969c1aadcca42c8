// Signals that follow the first one (as `timeout -k`, a pod's deletion and
// impatient users send them) never cut the cleanup short: the partial file is
// removed, a device's first and last MiB are zeroed, and the exit code is
// 130. The project's fault server holds each import part way (its "gate").
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/support/http_server.h"
#include "test/support/loop_device.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

// Waits until `ready()` holds; false if `process` exits first. The limit is
// a safety net, not a measurement.
bool WaitUntil(BackgroundProcess& process, const std::function<bool()>& ready) {
  for (int i = 0; i < 3000; ++i) {
    if (ready()) return true;
    if (process.Wait(std::chrono::milliseconds(20)) != -1) return false;
  }
  return false;
}

// `length` bytes of the device at `offset`, read past the page cache.
std::string ReadDevice(const std::string& path, uint64_t offset, size_t length) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return "cannot open " + path;
  void* buffer = std::aligned_alloc(4096, length);
  ssize_t n = pread(fd, buffer, length, static_cast<off_t>(offset));
  std::string bytes(static_cast<const char*>(buffer), n > 0 ? static_cast<size_t>(n) : 0);
  std::free(buffer);
  close(fd);
  return bytes;
}

class SignalCleanupTest : public ::testing::Test {
 protected:
  // Signals the import's process group with each of `signals`, back to back.
  static void SignalAll(BackgroundProcess& import, const std::vector<int>& signals) {
    for (int signal : signals) kill(-import.pid(), signal);
  }

  TempDir www_;
  TempDir out_;
  TempDir logs_;
  const std::string gate_ = logs_.File("gate");
};

TEST_F(SignalCleanupTest, MoreSignalsStillLeaveNoPartialFile) {
  WriteFile(www_.File("disk.raw"), RandomBytes(4 << 20, 51));
  FaultServer server(www_.path(), R"({"/gated": {"file": "disk.raw", "gate": {"after": 2097152,
                                      "file": ")" + gate_ + R"("}}})");
  // Two different signals back to back are both delivered (a signal sent
  // again while it is pending is delivered once); the same signal again is
  // sent once the first one was handled.
  for (bool same : {false, true}) {
    SCOPED_TRACE(same ? "SIGTERM, then SIGTERM twice" : "SIGTERM and SIGINT");
    const std::string log = logs_.File("import.log");
    const size_t requests = server.RequestsFor("/gated").size();
    BackgroundProcess import({BinDir() + "/cdi-image", "import", server.Url("/gated"),
                              out_.File("disk.img"), "--progress", "none"},
                             log);
    ASSERT_TRUE(WaitUntil(import, [&] {
      return FileExists(out_.File(".disk.img.partial")) &&
             server.RequestsFor("/gated").size() > requests;
    })) << ReadFile(log);
    if (same) {
      import.Signal(SIGTERM);
      // Until the first one is handled, unless the import is done already.
      for (int i = 0; i < 3000 && !Contains(ReadFile(log), "cancelling") &&
                      import.Wait(std::chrono::milliseconds(20)) == -1;
           ++i) {
      }
      import.Signal(SIGTERM);  // nothing, once the import has ended
      import.Signal(SIGTERM);
    } else {
      SignalAll(import, {SIGTERM, SIGINT});
    }
    EXPECT_EQ(import.Wait(std::chrono::seconds(30)), 130) << ReadFile(log);
    const std::string output = ReadFile(log);
    if (!same) {
      EXPECT_TRUE(Contains(output, "still cleaning up")) << output;
    }
    EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{}) << output;
  }
}

TEST_F(SignalCleanupTest, MoreSignalsStillWipeTheDevicesEnds) {
  CDI_SKIP_UNLESS_LOOP_DEVICES();
  constexpr uint64_t kDevice = 16 << 20;
  const std::string image = RandomBytes(12 << 20, 52);
  WriteFile(www_.File("disk.raw"), image);
  // Held after 9 MiB: the image's start is on the device by then.
  FaultServer server(www_.path(), R"({"/gated": {"file": "disk.raw", "gate": {"after": 9437184,
                                      "file": ")" + gate_ + R"("}}})");
  LoopDevice device({.size = kDevice, .fill = 0xAA});
  const std::string log = logs_.File("import.log");
  BackgroundProcess import({BinDir() + "/cdi-image", "import", server.Url("/gated"),
                            device.path(), "--progress", "none"},
                           log);
  ASSERT_TRUE(WaitUntil(import, [&] {
    return ReadDevice(device.path(), 0, 4096) == image.substr(0, 4096);
  })) << ReadFile(log);
  SignalAll(import, {SIGTERM, SIGINT});
  EXPECT_EQ(import.Wait(std::chrono::seconds(30)), 130) << ReadFile(log);
  const std::string zeros(1 << 20, '\0');
  EXPECT_TRUE(ReadDevice(device.path(), 0, 1 << 20) == zeros) << "the first MiB is not zero";
  EXPECT_TRUE(ReadDevice(device.path(), kDevice - (1 << 20), 1 << 20) == zeros)
      << "the last MiB is not zero";
}

}  // namespace
}  // namespace cdi::test
