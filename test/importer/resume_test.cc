// Import() with checkpoints: an import continues where an earlier one
// stopped (its partial file and checkpoint on disk) with one range request,
// and starts over at byte 0, saying why, whenever that could mix two images.
// The project's fault server serves the image (test/server/fault_server.py).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "cdi/import.h"
#include "importer/checkpoint.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/log_capture.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

constexpr size_t kImageSize = 4 << 20;
constexpr uint64_t kClaimed = 2 << 20;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = test::RandomBytes(kImageSize, 17);
    // A zero run, left as a hole on the target, inside the part claimed.
    std::fill(image_.begin() + (1 << 20), image_.begin() + (1 << 20) + 300000, '\0');
    test::WriteFile(www_.File("disk.raw"), image_);
  }

  std::string Target() const { return out_.File("disk.img"); }
  std::string Partial() const { return out_.File(".disk.img.partial"); }
  std::string CheckpointFile() const { return out_.File(".disk.img.checkpoint"); }

  ImportSpec Spec(const test::FaultServer& server) const {
    ImportSpec spec;
    spec.source.url = server.Url("/disk.raw");
    spec.source.network.retry_initial_delay = std::chrono::milliseconds(10);
    spec.targets.push_back({.path = Target()});
    spec.resume.mode = ResumeMode::kCheckpoints;
    spec.resume.checkpoint_bytes = kMiB;
    return spec;
  }

  // What an import killed after `claimed` bytes leaves: its partial file
  // (with bytes written after its last checkpoint) and that checkpoint.
  void LeaveKilledImport(const test::FaultServer& server, const std::string& etag,
                         uint64_t claimed = kClaimed) {
    test::WriteFile(Partial(), image_.substr(0, claimed + 100000));
    Checkpoint checkpoint;
    checkpoint.url = server.Url("/disk.raw");
    checkpoint.length = kImageSize;
    checkpoint.etag = etag;
    checkpoint.target = Target();
    checkpoint.source_offset = checkpoint.target_bytes = claimed;
    ASSERT_TRUE(WriteCheckpoint(CheckpointFile(), checkpoint).ok());
  }

  void ExpectImported() {
    EXPECT_EQ(test::Sha256File(Target()), test::Sha256Bytes(image_));
    EXPECT_EQ(test::ListDir(out_.path()), std::vector<std::string>{"disk.img"});
  }

  test::TempDir www_;
  test::TempDir out_;
  std::string image_;
};

TEST_F(ResumeTest, ContinuesFromTheCheckpointWithOneRangeRequest) {
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\""}})");
  LeaveKilledImport(server, "\"v1\"");
  ImportSpec spec = Spec(server);
  // The checksum covers the whole image: the claimed part is read back from
  // the target.
  spec.checksum = "sha256:" + test::Sha256Bytes(image_);
  test::LogCapture log;
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString() << "\n" << log.text();
  EXPECT_EQ(result->resumed_from, kClaimed);
  EXPECT_EQ(result->bytes_read, kImageSize - kClaimed);
  ExpectImported();
  std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("range"), "bytes=2097152-");
  EXPECT_EQ(requests[0].Header("if-range"), "\"v1\"");
  EXPECT_EQ(server.BytesSent("/disk.raw", 1), kImageSize - kClaimed);
  const std::string text = log.text();
  EXPECT_TRUE(Contains(text, "Found a checkpoint of an earlier import of " +
                                 server.Url("/disk.raw") + " into " + Target() +
                                 ": its first 2097152 of 4194304 bytes are on the target"))
      << text;
  EXPECT_TRUE(Contains(text, "Checksum: digesting the 2097152 bytes already on the target"))
      << text;
  EXPECT_TRUE(Contains(text, "Checksum verification passed")) << text;
}

TEST_F(ResumeTest, AChangedImageStartsOverAndIsNeverMixed) {
  // The server's image now has another ETag: If-Range gets the whole of it.
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v2\""}})");
  image_ = test::RandomBytes(kImageSize, 18);
  test::WriteFile(www_.File("disk.raw"), image_);
  LeaveKilledImport(server, "\"v1\"");
  test::LogCapture log;
  Result<ImportResult> result = Import(Spec(server));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->resumed_from, 0u);
  ExpectImported();
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 1u);
  EXPECT_TRUE(Contains(log.text(),
                       "answered the request for bytes 2097152- with the whole image "
                       "(it changed since the earlier download): starting over from "
                       "byte 0"))
      << log.text();
}

TEST_F(ResumeTest, AServerThatIgnoresIfRangeStillNeverMixesImages) {
  test::FaultServer server(
      www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v2\"", "if_range": false}})");
  LeaveKilledImport(server, "\"v1\"");
  test::LogCapture log;
  Result<ImportResult> result = Import(Spec(server));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->resumed_from, 0u);
  ExpectImported();
  std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "");
  EXPECT_TRUE(Contains(log.text(), "; starting over from byte 0")) << log.text();
}

TEST_F(ResumeTest, AShorterImageOrAServerWithoutRangesStartsOver) {
  for (bool shorter : {false, true}) {
    SCOPED_TRACE(shorter ? "416: the image is shorter now" : "200: no ranges");
    test::FaultServer server(
        www_.path(), shorter ? R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\""}})"
                             : R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\"",
                                                 "ranges": false}})");
    LeaveKilledImport(server, "\"v1\"");
    if (shorter) {
      image_ = image_.substr(0, 1 << 20);
      test::WriteFile(www_.File("disk.raw"), image_);
    }
    test::LogCapture log;
    Result<ImportResult> result = Import(Spec(server));
    ASSERT_TRUE(result.ok()) << result.status().ToString() << "\n" << log.text();
    EXPECT_EQ(result->resumed_from, 0u);
    ExpectImported();
    EXPECT_TRUE(Contains(log.text(), shorter ? "416 Range Not Satisfiable, so the image on the "
                                               "server is shorter than it was; import it again; "
                                               "starting over from byte 0"
                                             : "with the whole image (it serves no ranges): "
                                               "starting over from byte 0"))
        << log.text();
    test::Sh("rm -f " + Target());
  }
}

TEST_F(ResumeTest, ADamagedCheckpointStartsOver) {
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\""}})");
  for (bool truncated : {true, false}) {
    SCOPED_TRACE(truncated ? "truncated" : "edited");
    LeaveKilledImport(server, "\"v1\"");
    std::string text = test::ReadFile(CheckpointFile());
    if (truncated) {
      text.resize(text.size() / 2);
    } else {
      text.replace(text.find("target-bytes 2097152"), 20, "target-bytes 3097152");
    }
    test::WriteFile(CheckpointFile(), text);
    test::LogCapture log;
    const size_t before = server.RequestsFor("/disk.raw").size();
    Result<ImportResult> result = Import(Spec(server));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->resumed_from, 0u);
    ExpectImported();
    std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
    ASSERT_EQ(requests.size(), before + 1);
    EXPECT_EQ(requests.back().Header("range"), "");
    EXPECT_TRUE(Contains(log.text(), "Importing " + Target() + " from byte 0: the checkpoint " +
                                         CheckpointFile() +
                                         " cannot be used: the checkpoint is damaged: "))
        << log.text();
    test::Sh("rm -f " + Target());
  }
}

TEST_F(ResumeTest, APartialFileShorterThanItsCheckpointClaimsStartsOver) {
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\""}})");
  LeaveKilledImport(server, "\"v1\"");
  test::WriteFile(Partial(), image_.substr(0, 1 << 20));
  test::LogCapture log;
  Result<ImportResult> result = Import(Spec(server));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->resumed_from, 0u);
  ExpectImported();
  EXPECT_TRUE(Contains(log.text(), Partial() + " holds 1048576 bytes, fewer than the 2097152 its "
                                               "checkpoint claims"))
      << log.text();
}

TEST_F(ResumeTest, ACheckpointForAnotherSizeOrSourceStartsOver) {
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\""}})");
  LeaveKilledImport(server, "\"v1\"");
  ImportSpec spec = Spec(server);
  spec.targets.front().requested_size = 8 * kMiB;
  test::LogCapture log;
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->resumed_from, 0u);
  EXPECT_TRUE(Contains(log.text(),
                       "does not match this import: the requested size changed "
                       "(none then, 8388608 bytes now)"))
      << log.text();
  EXPECT_EQ(test::Sha256File(Target(), kImageSize), test::Sha256Bytes(image_));
}

TEST_F(ResumeTest, WithoutResumeALeftoverCheckpointIsRemoved) {
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": "\"v1\""}})");
  LeaveKilledImport(server, "\"v1\"");
  ImportSpec spec = Spec(server);
  spec.resume.mode = ResumeMode::kOff;
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->resumed_from, 0u);
  ExpectImported();
}

TEST_F(ResumeTest, ACancelledImportKeepsItsCheckpointAndTheNextOneContinues) {
  test::TempDir gate_dir;
  const std::string gate = gate_dir.File("gate");
  // The first response holds at 2.5 MiB until the gate file exists.
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "gate":
      {"after": 2621440, "file": ")" + gate +
                                            R"("}}})");
  ImportSpec spec = Spec(server);
  spec.checksum = "sha256:" + test::Sha256Bytes(image_);
  CancelToken cancel;
  std::future<Result<ImportResult>> first = std::async(std::launch::async, [&] {
    ImportHooks hooks;
    hooks.cancel = &cancel;
    return Import(spec, hooks);
  });
  // Checkpoints every MiB: the one at 2 MiB is the last before the gate.
  bool claimed = false;
  for (int i = 0; i < 1000 && !claimed; ++i) {
    Result<std::optional<Checkpoint>> read = ReadCheckpoint(CheckpointFile());
    claimed = read.ok() && read->has_value() && (*read)->source_offset == kClaimed;
    if (!claimed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(claimed);
  cancel.Cancel();
  Result<ImportResult> cancelled = first.get();
  ASSERT_EQ(cancelled.status().code(), ErrorCode::kCancelled);
  EXPECT_TRUE(test::FileExists(Partial()));
  EXPECT_TRUE(test::FileExists(CheckpointFile()));

  test::WriteFile(gate, "");
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->resumed_from, kClaimed);
  ExpectImported();
  std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("range"), "bytes=2097152-");
  // The second import fetched only what follows the checkpoint.
  EXPECT_EQ(result->bytes_read, kImageSize - kClaimed);
  bool rest_sent = false;
  for (const test::SentResponse& response : server.WaitForResponses(2)) {
    if (response.first == kClaimed) {
      rest_sent = true;
      EXPECT_EQ(response.bytes, kImageSize - kClaimed);
      EXPECT_EQ(response.ending, "complete");
    }
  }
  EXPECT_TRUE(rest_sent);
}

TEST_F(ResumeTest, NoCheckpointsWithoutAValidatorOrForOtherFormats) {
  test::Sh("gzip -1 -k " + www_.File("disk.raw"));
  test::FaultServer server(www_.path(), R"({"/disk.raw": {"file": "disk.raw", "etag": false,
                                           "last_modified": false}})");
  {
    test::LogCapture log;
    ASSERT_TRUE(Import(Spec(server)).ok());
    EXPECT_TRUE(Contains(log.text(),
                         "No checkpoints: the server names the image by neither a "
                         "strong ETag nor a Last-Modified date"))
        << log.text();
  }
  test::Sh("rm " + Target());
  {
    ImportSpec spec = Spec(server);
    spec.source.url = server.Url("/disk.raw.gz");
    test::LogCapture log;
    ASSERT_TRUE(Import(spec).ok());
    EXPECT_TRUE(Contains(log.text(),
                         "No checkpoints: only raw images are continued, and this one is gzip+raw"))
        << log.text();
  }
  ExpectImported();
}

}  // namespace
}  // namespace cdi::importer
