// The hand-over to CDI's own programs, as the overlay image does it: the
// built cdi-importer and cdi-source-update-poller, pointed at a stand-in for
// CDI's binary (a script that records its arguments, environment and process
// id), checked for what an admin would see: which pods go to CDI's binary,
// with what, and what happens when the image has none.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test/e2e/pod_harness.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

// A stand-in for one of CDI's programs: writes its argv (one a line), its
// environment and its process id under `record_dir`, then exits 42.
struct StandIn {
  TempDir dir;
  std::string program = dir.File("cdi-program");

  StandIn() {
    WriteFile(program, "#!/bin/sh\n"
                       "printf '%s\\n' \"$0\" \"$@\" > " + dir.File("args") + "\n"
                       "env > " + dir.File("env") + "\n"
                       "exit 42\n");
    Sh("chmod 755 " + program);
  }
  bool ran() const { return FileExists(dir.File("args")); }
  std::string args() const { return ReadFile(dir.File("args")); }
  std::string env() const { return ReadFile(dir.File("env")); }
};

std::map<std::string, std::string> RegistryPod() {
  // Registries are read here through docker:// references; CDI's
  // oci-archive: transport is CDI's importer's.
  return {{"IMPORTER_SOURCE", "registry"},
          {"IMPORTER_ENDPOINT", "oci-archive:/data/vm-disk.tar"},
          {"IMPORTER_ACCESS_KEY_ID", "robot"},
          {"IMPORTER_SECRET_KEY", "s3cr3t-token"},
          {"IMPORTER_IMAGE_SIZE", "10Gi"},
          {"OWNER_UID", "owner-1"}};
}

TEST(HandoverTest, ImporterHandsRegistryToCdiWithItsArgumentsAndEnvironment) {
  StandIn cdi;
  PodHarness pod;
  pod.handover_program = cdi.program;
  std::vector<std::string> argv = pod.Argv();
  argv.push_back("-alsologtostderr");
  RunResult r = test::Run(argv, pod.Options(RegistryPod()));

  // CDI's binary replaced the process: its exit code is the pod's.
  EXPECT_EQ(r.exit_code, 42) << r.err;
  ASSERT_TRUE(cdi.ran()) << r.err;
  // klog's arguments only, as CDI's controller and image pass them; the
  // path flags of runs outside a pod are not CDI's.
  EXPECT_EQ(cdi.args(), cdi.program + "\n-v=1\n-alsologtostderr\n");
  const std::string env = cdi.env();
  for (const auto& [name, value] : RegistryPod()) {
    EXPECT_TRUE(Contains(env, name + "=" + value + "\n")) << name << " missing in\n" << env;
  }
  EXPECT_TRUE(Contains(r.err, "IMPORTER_SOURCE=registry (an oci-archive: endpoint) is not "
                              "implemented by this importer: "
                              "handing the pod over to CDI's importer " +
                                  cdi.program))
      << r.err;
  EXPECT_FALSE(Contains(r.err, "s3cr3t-token")) << r.err;
  // The metric port is CDI's binary's to open: nothing was served before.
  EXPECT_FALSE(Contains(r.err, "Serving the progress metric")) << r.err;
  // The termination message is CDI's binary's to write.
  EXPECT_EQ(pod.ReadTermination(), "");
}

TEST(HandoverTest, EverySourceCdiKnowsAndThisImporterDoesNotIsHandedOver) {
  const std::vector<std::map<std::string, std::string>> pods = {
      {{"IMPORTER_SOURCE", "gcs"}, {"IMPORTER_ENDPOINT", "gs://bucket/disk.img"}},
      {{"IMPORTER_SOURCE", "imageio"}, {"IMPORTER_ENDPOINT", "https://engine/ovirt-engine/api"}},
      {{"IMPORTER_SOURCE", "vddk"}, {"IMPORTER_ENDPOINT", "https://vcenter.example.com"}},
      // Registry node pull: an http source read from the containerimage server.
      {{"IMPORTER_SOURCE", "http"},
       {"IMPORTER_ENDPOINT", "http://localhost:8100/disk.img"},
       {"IMPORTER_PULL_METHOD", "node"},
       {"IMPORTER_READY_FILE", "/shared/ready"},
       {"IMPORTER_DONE_FILE", "/shared/done"}},
  };
  for (const auto& env : pods) {
    StandIn cdi;
    PodHarness pod;
    pod.handover_program = cdi.program;
    RunResult r = test::Run(pod.Argv(), pod.Options(env));
    const std::string what = env.at("IMPORTER_SOURCE");
    EXPECT_EQ(r.exit_code, 42) << what << "\n" << r.err;
    ASSERT_TRUE(cdi.ran()) << what;
    EXPECT_EQ(cdi.args(), cdi.program + "\n-v=1\n") << what;
    for (const auto& [name, value] : env) {
      EXPECT_TRUE(Contains(cdi.env(), name + "=" + value + "\n")) << what << ": " << name;
    }
  }
}

TEST(HandoverTest, WithoutCdiImporterTheRefusalStays) {
  PodHarness pod;  // its hand-over program does not exist, as in the plain image
  PodResult r = pod.Run(RegistryPod());
  EXPECT_EQ(r.exit_code, 1) << r.log;
  EXPECT_TRUE(Contains(r.termination,
                       "Unable to connect to registry data source: endpoint "
                       "\"oci-archive:/data/vm-disk.tar\" is not a docker:// image reference"))
      << r.termination;
  EXPECT_TRUE(Contains(r.termination, "Containerfile.cdi-overlay")) << r.termination;
  EXPECT_TRUE(Contains(r.log, "no hand-over to CDI's importer, " + pod.handover_program +
                                  " is not in this image"))
      << r.log;
}

TEST(HandoverTest, SourcesThisImporterHandlesStayHere) {
  StandIn cdi;
  PodHarness pod;
  pod.handover_program = cdi.program;
  std::vector<std::string> argv = pod.Argv();
  // klog's flags as CDI's image entrypoint and controller pass them.
  for (const char* flag : {"-alsologtostderr", "-logtostderr=false", "--logtostderr", "-v=3"}) {
    argv.push_back(flag);
  }
  RunResult r = test::Run(argv, pod.Options({{"IMPORTER_SOURCE", "none"},
                                       {"IMPORTER_IMAGE_SIZE", "1Mi"},
                                       {"OWNER_UID", "u"}}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(cdi.ran());
  EXPECT_EQ(pod.ReadTermination(), R"({"preallocationApplied":false,"message":"Import Complete"})");
  EXPECT_EQ(FileSize(pod.data_dir() + "/disk.img"), 1u << 20);
}

TEST(HandoverTest, ImporterPrintsItsVersion) {
  RunResult r = test::Run({BinDir() + "/cdi-importer", "--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "cdi-importer 0.1.0\n");
}

TEST(HandoverTest, PollerHandsOverWithCdisArgumentsAndEnvironment) {
  StandIn cdi;
  RunOptions options;
  options.env = {{"IMPORTER_ACCESS_KEY_ID", "robot"},
                 {"IMPORTER_SECRET_KEY", "s3cr3t"},
                 {"INSECURE_TLS", "false"}};
  RunResult r = test::Run({BinDir() + "/cdi-source-update-poller", "-ns", "golden", "-cron", "fedora",
                     "-url", "docker://quay.io/containerdisks/fedora:latest",
                     "-handover-program=" + cdi.program, "-certdir", "/certs"},
                    options);
  EXPECT_EQ(r.exit_code, 42) << r.err;
  ASSERT_TRUE(cdi.ran()) << r.err;
  EXPECT_EQ(cdi.args(), cdi.program +
                            "\n-ns\ngolden\n-cron\nfedora\n-url\n"
                            "docker://quay.io/containerdisks/fedora:latest\n-certdir\n/certs\n");
  for (const auto& [name, value] : options.env) {
    EXPECT_TRUE(Contains(cdi.env(), name + "=" + value + "\n")) << name;
  }
  EXPECT_TRUE(Contains(r.err, "handing DataImportCron golden/fedora over to " + cdi.program))
      << r.err;
}

TEST(HandoverTest, PollerWithoutCdiPollerFailsClearly) {
  TempDir dir;
  const std::string missing = dir.File("cdi-source-update-poller");
  RunResult r = test::Run({BinDir() + "/cdi-source-update-poller", "-ns", "golden", "-cron", "fedora",
                     "-url", "docker://quay.io/containerdisks/fedora:latest",
                     "--handover-program", missing});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "Failed to get image digest: ")) << r.err;
  EXPECT_TRUE(Contains(r.err, missing)) << r.err;
  EXPECT_TRUE(Contains(r.err, "Containerfile.cdi-overlay")) << r.err;

  r = test::Run({BinDir() + "/cdi-source-update-poller", "-ns", "golden", "-handover-program", missing});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "One or more mandatory parameters are missing")) << r.err;

  r = test::Run({BinDir() + "/cdi-source-update-poller", "-nss", "golden"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "flag provided but not defined: -nss")) << r.err;
  EXPECT_TRUE(Contains(r.err, "Usage of ")) << r.err;

  r = test::Run({BinDir() + "/cdi-source-update-poller", "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "cdi-source-update-poller 0.1.0\n");
}

}  // namespace
}  // namespace cdi::test
