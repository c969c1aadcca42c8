// A TCP relay on 127.0.0.1 that drops connections mid-way (the network
// failing under a client): test/server/drop_relay.py. TLS passes through it
// end to end. The first connection whose client sends more than the first
// threshold is closed there, then the next that passes the second, and so on.
#ifndef CDI_TEST_SUPPORT_DROP_RELAY_H_
#define CDI_TEST_SUPPORT_DROP_RELAY_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {

class DropRelay {
 public:
  DropRelay(uint16_t upstream_port, const std::vector<uint64_t>& drop_after) {
    std::string thresholds;
    for (uint64_t n : drop_after) thresholds += (thresholds.empty() ? "" : ",") + std::to_string(n);
    const std::string ports_file = dir_.File("ports.json");
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"python3", SourceDir() + "/test/server/drop_relay.py",
                                 "--upstream-port", std::to_string(upstream_port), "--drop-after",
                                 thresholds, "--ports-file", ports_file},
        dir_.File("relay.out"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!FileExists(ports_file)) {
      if (process_->Wait(std::chrono::milliseconds(0)) != -1 ||
          std::chrono::steady_clock::now() >= deadline) {
        throw std::runtime_error("the drop relay did not start:\n" + ReadFile(dir_.File("relay.out")));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::string ports = ReadFile(ports_file);
    port_ = static_cast<uint16_t>(std::stoi(ports.substr(ports.find(':') + 1)));
  }

  uint16_t port() const { return port_; }

 private:
  TempDir dir_;
  std::unique_ptr<BackgroundProcess> process_;
  uint16_t port_ = 0;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_DROP_RELAY_H_
