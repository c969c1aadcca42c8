// Running programs from tests: the built binaries, qemu-img, nginx, openssl.
#ifndef CDI_TEST_SUPPORT_PROCESS_H_
#define CDI_TEST_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cdi::test {

struct RunResult {
  int exit_code = -1;   // exit status, or 128 + signal number when killed
  std::string out;      // standard output
  std::string err;      // standard error
};

struct RunOptions {
  // Replaces these variables in the child's environment (others are inherited).
  std::map<std::string, std::string> env;
  // Variables removed from the child's environment.
  std::vector<std::string> unset_env;
  std::string stdin_data;  // written to the child's standard input, then closed
  std::string working_dir;
  std::chrono::seconds timeout{300};
};

// Runs argv[0] (searched in PATH) to completion, capturing its output.
RunResult Run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Runs `command` with /bin/sh -c; throws std::runtime_error if it fails.
std::string Sh(const std::string& command);

// A child started in the background; killed (SIGTERM, then SIGKILL) and reaped
// at scope end. Output goes to the given log file.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv, const std::string& log_path,
                    const RunOptions& options = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `signal`; returns at once.
  void Signal(int signal);
  // Waits up to `timeout` for the child to exit; returns its exit code as in
  // RunResult, or -1 if it is still running.
  int Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// Path of the directory holding the built binaries (build/bin).
std::string BinDir();
// Path of the source tree's root.
std::string SourceDir();
// True when running as root (loop devices, nginx on privileged setups).
bool IsRoot();
// True when `program` is found in PATH.
bool HaveProgram(const std::string& program);

// Waits until 127.0.0.1:`port` accepts connections; false if `process` exits
// first or `timeout` passes.
bool WaitListening(uint16_t port, BackgroundProcess& process, std::chrono::milliseconds timeout);

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_PROCESS_H_
