// Runs build/bin/cdi-importer the way a kubelet runs CDI's importer pod:
// a controlled environment, a data directory (or a block device), and the
// termination log read back afterwards.
#ifndef CDI_TEST_POD_POD_HARNESS_H_
#define CDI_TEST_POD_POD_HARNESS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "test/e2e/e2e_util.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {

struct PodResult {
  int exit_code = -1;
  std::string log;          // standard error: the pod's log
  std::string termination;  // the termination log's content ("" when not written)
};

// Variables of CDI's contract (and proxies) that a test environment might
// hold: cleared for every run unless the test sets them.
inline const std::vector<std::string>& PodVariables() {
  static const std::vector<std::string> kNames = {"IMPORTER_SOURCE",
                                                  "IMPORTER_ENDPOINT",
                                                  "IMPORTER_CONTENTTYPE",
                                                  "IMPORTER_IMAGE_SIZE",
                                                  "FILESYSTEM_OVERHEAD",
                                                  "PREALLOCATION",
                                                  "INSECURE_TLS",
                                                  "IMPORTER_CERT_DIR",
                                                  "IMPORTER_ACCESS_KEY_ID",
                                                  "IMPORTER_SECRET_KEY",
                                                  "IMPORTER_CHECKSUM",
                                                  "OWNER_UID",
                                                  "CACHE_MODE",
                                                  "IMPORTER_PULL_METHOD",
                                                  "IMPORTER_READY_FILE",
                                                  "IMPORTER_DONE_FILE",
                                                  "IMPORTER_REGISTRY_IMAGE_ARCHITECTURE",
                                                  "AWS_ACCESS_KEY_ID",
                                                  "AWS_SECRET_ACCESS_KEY",
                                                  "AWS_SESSION_TOKEN",
                                                  "http_proxy",
                                                  "https_proxy",
                                                  "HTTPS_PROXY",
                                                  "all_proxy",
                                                  "ALL_PROXY"};
  return kNames;
}

class PodHarness {
 private:
  TempDir work_;  // first: the paths below are made from it

 public:
  PodHarness() { Sh("mkdir -p " + data_dir()); }

  // Paths of this pod. The block device path does not exist unless a test
  // points it at a device.
  std::string data_dir() const { return work_.File("data"); }
  std::string termination_log() const { return work_.File("termination-log"); }
  std::string work(const std::string& name) const { return work_.File(name); }
  std::string block_device = work_.File("no-block-device");
  std::string proxy_cert_dir = work_.File("proxycerts");
  std::string extra_headers_dir = work_.File("extraheaders");
  uint16_t metrics_port = UnusedPort();
  // CDI's importer, to hand sources over to: none unless a test puts one there.
  std::string handover_program = work_.File("no-cdi-importer");

  std::vector<std::string> Argv() const {
    return {BinDir() + "/cdi-importer",
            "--data-dir",
            data_dir(),
            "--block-device",
            block_device,
            "--scratch-dir",
            work_.File("scratch"),
            "--termination-log",
            termination_log(),
            "--metrics-address",
            "127.0.0.1:" + std::to_string(metrics_port),
            "--proxy-cert-dir",
            proxy_cert_dir,
            "--extra-headers-dir",
            extra_headers_dir,
            "--handover-program",
            handover_program,
            "-v=1"};
  }

  RunOptions Options(const std::map<std::string, std::string>& env) const {
    RunOptions options;
    options.env = env;
    options.unset_env = PodVariables();
    options.timeout = std::chrono::seconds(120);
    return options;
  }

  PodResult Run(const std::map<std::string, std::string>& env) {
    if (FileExists(termination_log())) Sh("rm -f " + termination_log());
    RunResult r = test::Run(Argv(), Options(env));
    return {r.exit_code, r.err, ReadTermination()};
  }

  std::string ReadTermination() const {
    return FileExists(termination_log()) ? ReadFile(termination_log()) : "";
  }
};

}  // namespace cdi::test

#endif  // CDI_TEST_POD_POD_HARNESS_H_
