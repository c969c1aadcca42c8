// What apply shows: the progress rows, the summary table, the JSON report and
// the exit code, from a hand-made plan and outcomes.
#include "cmd/cdi-image/report.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "cmd/cdi-image/multi_progress.h"
#include "test/manifests/apply_test_util.h"
#include "test/support/temp_dir.h"

namespace cdi::apply {
namespace {

using test::Contains;

// Two DataVolumes of a pool sharing download #1, and one of its own (#2).
Plan TwoDownloads() {
  Plan plan;
  ObjectRef pool{
      .kind = "VirtualMachinePool", .ns = "default", .name = "pool", .file = "p.yaml", .line = 1};
  for (int i = 0; i < 2; ++i) {
    DataVolumePlan dv;
    dv.ns = "default";
    dv.name = "disk-" + std::to_string(i);
    dv.declared_in = pool;
    dv.field = "spec.virtualMachineTemplate.spec.dataVolumeTemplates[0]";
    dv.line = 20;
    dv.replica = i;
    dv.requested = 1ull << 30;
    dv.pvc_size = 1ull << 30;
    dv.usable_size = 1012ull << 20;
    dv.filesystem_overhead = 0.06;
    dv.target = "/pvcs/default/" + dv.name + "/disk.img";
    dv.download = 0;
    plan.data_volumes.push_back(dv);
  }
  DataVolumePlan other = plan.data_volumes[0];
  other.name = "other";
  other.replica = -1;
  other.target = "/dev/sdz";
  other.volume_mode = VolumeMode::kBlock;
  other.download = 1;
  plan.data_volumes.push_back(other);
  plan.downloads.resize(2);
  plan.downloads[0].display_url = "https://images.example/pool.qcow2";
  plan.downloads[0].origin = "DataSource default/ds";
  plan.downloads[0].data_volumes = {0, 1};
  plan.downloads[1].display_url = "https://images.example/other.raw";
  plan.downloads[1].origin = "DataVolume default/other";
  plan.downloads[1].data_volumes = {2};
  return plan;
}

std::vector<Outcome> PoolOkOtherTooSmall() {
  std::vector<Outcome> outcomes(3);
  ImportResult result;
  result.format_chain = {"xz", "qcow2"};
  result.virtual_size = 8ull << 20;
  result.bytes_written = 3ull << 20;
  for (int i = 0; i < 2; ++i) {
    outcomes[i].attempted = true;
    outcomes[i].result = result;
    outcomes[i].target_size = 1012ull << 20;
    outcomes[i].elapsed = std::chrono::seconds(62);
  }
  outcomes[2].attempted = true;
  outcomes[2].status = TooSmallError(
      "virtual image size 9 is larger than the reported available "
      "storage 8. A larger PVC is required");
  return outcomes;
}

TEST(ReportTest, SummaryTableHasARowPerDataVolumeAndEveryFailureMessage) {
  EXPECT_EQ(SummaryTable(TwoDownloads(), PoolOkOtherTooSmall()),
            "DATAVOLUME      PVC PATH                       IMAGE       VIRTUAL SIZE  WRITTEN  "
            "TIME  RESULT\n"
            "default/disk-0  /pvcs/default/disk-0/disk.img  xz > qcow2  8.0 MiB       3.0 MiB  "
            "1:02  ok\n"
            "default/disk-1  /pvcs/default/disk-1/disk.img  xz > qcow2  8.0 MiB       3.0 MiB  "
            "1:02  ok\n"
            "default/other   /dev/sdz                       -           -             -        "
            "0:00  failed (too-small)\n"
            "\n"
            "default/other: virtual image size 9 is larger than the reported available storage 8. "
            "A larger PVC is required\n");
}

TEST(ReportTest, ExitCodeIsThatOfTheFirstFailureInPlanOrder) {
  std::vector<Outcome> outcomes = PoolOkOtherTooSmall();
  EXPECT_EQ(ExitCodeOf(outcomes), 7);
  outcomes[1].status = NetworkError("HTTP 404");
  EXPECT_EQ(ExitCodeOf(outcomes), 5);
  outcomes[1].status = Status::Ok();
  outcomes[2].status = Status::Ok();
  EXPECT_EQ(ExitCodeOf(outcomes), 0);
  outcomes[0].status = CancelledError();
  EXPECT_EQ(ExitCodeOf(outcomes), 130);
}

TEST(ReportTest, PlanTextNamesDownloadsAndTargets) {
  const std::string text = PlanText(TwoDownloads());
  EXPECT_TRUE(Contains(text, "3 DataVolumes from 2 downloads\n")) << text;
  EXPECT_TRUE(Contains(text,
                       "download #1: https://images.example/pool.qcow2\n  declared by "
                       "DataSource default/ds\n  into 2 DataVolumes, read once\n"))
      << text;
  EXPECT_TRUE(Contains(text, "default/other   #2        Block       /dev/sdz")) << text;
  EXPECT_TRUE(Contains(text,
                       "1.0 GiB (pvc)  1.0 GiB  1012.0 MiB  VirtualMachinePool "
                       "default/pool spec.virtualMachineTemplate.spec.dataVolumeTemplates[0] "
                       "(p.yaml:20)"))
      << text;
}

TEST(ReportTest, JsonOfADryRunHasThePlanWithoutResults) {
  const std::string json = ReportJson(TwoDownloads(), {}, Problems(), RunMode::kDryRun, 0);
  EXPECT_TRUE(Contains(json,
                       "{\"dry_run\":true,\"exit_code\":0,\"downloads\":[{\"url\":"
                       "\"https://images.example/pool.qcow2\""))
      << json;
  EXPECT_TRUE(Contains(json,
                       "\"name\":\"disk-1\",\"declared_in\":\"VirtualMachinePool "
                       "default/pool\""))
      << json;
  EXPECT_TRUE(Contains(json,
                       "\"requested_bytes\":1073741824,\"pvc_bytes\":1073741824,"
                       "\"filesystem_overhead\":0.06,\"usable_bytes\":1061158912}"))
      << json;
  EXPECT_FALSE(Contains(json, "\"result\"")) << json;
}

TEST(ReportTest, JsonListsProblemsWithTheirParts) {
  Problems problems;
  problems.Add(ObjectRef{.kind = "DataSource", .ns = "default", .name = "ds", .file = "d.yaml"}, 7,
               "spec.source.http.url", "is required");
  const std::string json = ReportJson(Plan{}, {}, problems, RunMode::kImport, 2);
  EXPECT_EQ(json,
            "{\"dry_run\":false,\"exit_code\":2,\"downloads\":[],\"data_volumes\":[],\"problems\":"
            "[{\"file\":\"d.yaml\",\"line\":7,\"object\":\"DataSource default/ds\",\"field\":"
            "\"spec.source.http.url\",\"message\":\"is required\",\"text\":\"d.yaml:7: DataSource "
            "default/ds: spec.source.http.url: is required\"}],\"notes\":[]}");
}

// ---------------------------------------------------------------------------
// Progress

std::string ReadAll(FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, file)) > 0;) text.append(buffer, n);
  return text;
}

Progress Transferring(uint64_t done, uint64_t total) {
  Progress p;
  p.phase = Phase::kTransferring;
  p.source_bytes = done;
  p.source_size = total;
  p.elapsed = std::chrono::seconds(1);
  return p;
}

TEST(MultiProgressTest, BarRowsFollowTheirDownloadAndEndWithTheirResult) {
  Plan plan = TwoDownloads();
  FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  MultiProgressView view(cli::ProgressStyle::kBar, out, plan);
  EXPECT_EQ(view.Lines(),
            (std::vector<std::string>{"default/disk-0  waiting", "default/disk-1  waiting",
                                      "default/other   waiting"}));
  Progress first = Transferring(0, 100 << 20);
  first.phase = Phase::kConnecting;
  view.Update(0, first);
  view.Update(0, Transferring(50 << 20, 100 << 20));
  std::vector<std::string> lines = view.Lines();
  EXPECT_TRUE(Contains(lines[0], " 50%  50.0 MiB / 100.0 MiB")) << lines[0];
  EXPECT_EQ(lines[0].substr(16), lines[1].substr(16));  // the pool shares the stream
  EXPECT_EQ(lines[2], "default/other   waiting");
  view.DownloadDone(0, PoolOkOtherTooSmall());
  view.DownloadDone(1, PoolOkOtherTooSmall());
  view.Finish();
  EXPECT_EQ(view.Lines(),
            (std::vector<std::string>{"default/disk-0  done: xz > qcow2, 8.0 MiB in 1:02",
                                      "default/disk-1  done: xz > qcow2, 8.0 MiB in 1:02",
                                      "default/other   failed: virtual image size 9 is larger "
                                      "than the reported available storage 8. A larger PVC is "
                                      "required"}));
  const std::string drawn = ReadAll(out);
  // Rows are redrawn in place: back up three lines, clear each one.
  EXPECT_TRUE(Contains(drawn, "\033[3A\rdefault/disk-0  done: xz > qcow2, 8.0 MiB in 1:02\033[K\n"))
      << drawn;
  std::fclose(out);
}

TEST(MultiProgressTest, PlainLinesAtPhaseChangesAndTenthsThenOnePerDataVolume) {
  Plan plan = TwoDownloads();
  FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  MultiProgressView view(cli::ProgressStyle::kPlain, out, plan);
  view.Update(0, Transferring(0, 100));
  view.Update(0, Transferring(5, 100));   // same tenth: no line
  view.Update(0, Transferring(55, 100));  // a new tenth
  view.DownloadDone(0, PoolOkOtherTooSmall());
  EXPECT_EQ(ReadAll(out),
            "default/disk-0 (+1 sharing the download): progress: transferring 0%, 0 B of 100 B, "
            "0:01 elapsed\n"
            "default/disk-0 (+1 sharing the download): progress: transferring 55%, 55 B of 100 B, "
            "0:01 elapsed\n"
            "default/disk-0: done: xz > qcow2, 8.0 MiB in 1:02\n"
            "default/disk-1: done: xz > qcow2, 8.0 MiB in 1:02\n");
  std::fclose(out);
}

}  // namespace
}  // namespace cdi::apply
