// Import() with checkpoints: an import continues where an earlier one
// stopped (its partial file and checkpoint on disk) with one range request,
// and starts over at byte 0, saying why, whenever that could mix two images.
// The project's fault server serves the image (test/server/fault_server.py).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cdi/import.h"
#include "formats/pipeline.h"
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

  // Runs Import(spec) on another thread, cancelled by `cancel`.
  static std::future<Result<ImportResult>> ImportInBackground(const ImportSpec& spec,
                                                              const CancelToken& cancel) {
    return std::async(std::launch::async, [&spec, &cancel] {
      ImportHooks hooks;
      hooks.cancel = &cancel;
      return Import(spec, hooks);
    });
  }

  // Waits (10 s at most) until the checkpoint claims `source_offset`.
  bool WaitForCheckpointAt(uint64_t source_offset, int milliseconds = 10000) const {
    for (int i = 0; i < milliseconds / 10; ++i) {
      Result<std::optional<Checkpoint>> read = ReadCheckpoint(CheckpointFile());
      if (read.ok() && read->has_value() && (*read)->source_offset == source_offset) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
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
  std::future<Result<ImportResult>> first = ImportInBackground(spec, cancel);
  // Checkpoints every MiB: the one at 2 MiB is the last before the gate.
  ASSERT_TRUE(WaitForCheckpointAt(kClaimed));
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
                         "No checkpoints: only raw images (bare or compressed with zstd or "
                         "xz) and qcow2 images are continued, and this one is gzip+raw"))
        << log.text();
  }
  ExpectImported();
}

// A raw image compressed in several zstd frames (pzstd writes such files;
// `cat a.zst b.zst` is one too): a checkpoint is taken between two frames,
// and the next import fetches from the start of a frame.
class ZstdResumeTest : public ResumeTest {
 protected:
  // Where the frames of the image end: raw offsets, the last is the end.
  static constexpr size_t kFrameEnds[] = {700000, 1500000, 2600000, 3300000, kImageSize};

  void SetUp() override {
    image_ = test::RandomBytes(kImageSize, 29);
    // Zero runs, left as holes: one inside a frame, one across a frame's end
    // (the target's file is shorter than a checkpoint at 2600000 claims
    // until it is extended).
    std::fill(image_.begin() + (1 << 20), image_.begin() + (1 << 20) + 300000, '\0');
    std::fill(image_.begin() + 2400000, image_.begin() + 3200000, '\0');
    size_t start = 0;
    for (size_t end : kFrameEnds) {
      test::WriteFile(work_.File("piece"), image_.substr(start, end - start));
      test::Sh("zstd -q -1 -f " + work_.File("piece") + " -o " + work_.File("piece.zst"));
      compressed_ += test::ReadFile(work_.File("piece.zst"));
      frames_.push_back({.compressed = compressed_.size(), .decompressed = end});
      start = end;
    }
    test::WriteFile(www_.File("disk.raw.zst"), compressed_);
  }

  std::string Gate() const { return work_.File("gate"); }

  // The first response holds at compressed byte `after` until the gate exists.
  std::string GatedScript(uint64_t after) const {
    return R"({"/disk.raw.zst": {"file": "disk.raw.zst", "etag": "\"v1\"", "gate": {"after": )" +
           std::to_string(after) + R"(, "file": ")" + Gate() + R"("}}})";
  }

  ImportSpec Spec(const test::FaultServer& server) const {
    ImportSpec spec = ResumeTest::Spec(server);
    spec.source.url = server.Url("/disk.raw.zst");
    spec.resume.checkpoint_bytes = 64 * kKiB;  // at every frame's end
    return spec;
  }

  test::TempDir work_;
  std::string compressed_;
  std::vector<formats::FrameBoundary> frames_;
};

TEST_F(ZstdResumeTest, CancelledAtSeveralPointsTheNextImportContinuesAtAFrame) {
  struct Case {
    const char* name;
    uint64_t gate;  // compressed offset
    // The checkpoint the cancelled import leaves: none, or the end of frame i.
    std::optional<size_t> frame;
  };
  // The decompressed bytes reach the target a MiB at a time: a frame's end
  // is claimed once the MiB past it went out.
  const Case cases[] = {
      {"inside the first frame: no checkpoint yet", 200000, std::nullopt},
      {"inside the third frame: the second one's end", frames_[1].compressed + 850000, 1},
      {"inside the last frame: the third one's end, inside a zero run",
       frames_[3].compressed + 200000, 2},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    test::Sh("rm -f " + Gate());
    test::FaultServer server(www_.path(), GatedScript(c.gate));
    ImportSpec spec = Spec(server);
    CancelToken cancel;
    test::LogCapture log;
    std::future<Result<ImportResult>> first = ImportInBackground(spec, cancel);
    if (c.frame) {
      ASSERT_TRUE(WaitForCheckpointAt(frames_[*c.frame].compressed)) << log.text();
    } else {
      for (int i = 0; i < 1000 && server.RequestsFor("/disk.raw.zst").empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_FALSE(server.RequestsFor("/disk.raw.zst").empty()) << log.text();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    cancel.Cancel();
    ASSERT_EQ(first.get().status().code(), ErrorCode::kCancelled);
    uint64_t claimed = 0;
    if (c.frame) {
      Result<std::optional<Checkpoint>> kept = ReadCheckpoint(CheckpointFile());
      ASSERT_TRUE(kept.ok() && kept->has_value());
      EXPECT_EQ((*kept)->format, "zstd+raw");
      EXPECT_EQ((*kept)->target_bytes, frames_[*c.frame].decompressed);
      claimed = frames_[*c.frame].compressed;
      EXPECT_TRUE(KeptForResume(Target()));
      EXPECT_TRUE(Contains(log.text(), "Kept the partial image and its checkpoint at byte " +
                                           std::to_string(claimed) + " of the source (byte " +
                                           std::to_string(frames_[*c.frame].decompressed) +
                                           " of the image)"))
          << log.text();
    } else {
      EXPECT_FALSE(KeptForResume(Target()));
      EXPECT_EQ(test::ListDir(out_.path()), std::vector<std::string>{});
    }

    test::WriteFile(Gate(), "");
    Result<ImportResult> result = Import(spec);
    ASSERT_TRUE(result.ok()) << result.status().ToString() << "\n" << log.text();
    EXPECT_EQ(result->resumed_from, claimed);
    EXPECT_EQ(result->bytes_read, compressed_.size() - claimed);
    EXPECT_EQ(result->format_chain, (std::vector<std::string>{"zstd", "raw"}));
    ExpectImported();
    std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw.zst");
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[1].Header("range"), c.frame ? "bytes=" + std::to_string(claimed) + "-" : "");
    // The second import fetched only what follows the checkpoint: with the
    // first one's part up to the gate, close to one image.
    bool rest_sent = false;
    for (const test::SentResponse& response : server.WaitForResponses(2)) {
      if (response.first != claimed || response.status == 0) continue;
      if (claimed == 0 && response.ending != "complete") continue;  // the first import's
      rest_sent = true;
      EXPECT_EQ(response.bytes, compressed_.size() - claimed);
    }
    EXPECT_TRUE(rest_sent);
    test::Sh("rm -f " + Target());
  }
}

TEST_F(ZstdResumeTest, ContinuesFromACheckpointAndAChangedImageStartsOver) {
  for (bool changed : {false, true}) {
    SCOPED_TRACE(changed ? "changed" : "same image");
    test::FaultServer server(
        www_.path(), changed ? R"({"/disk.raw.zst": {"file": "disk.raw.zst", "etag": "\"v2\""}})"
                             : R"({"/disk.raw.zst": {"file": "disk.raw.zst", "etag": "\"v1\""}})");
    // What a killed import leaves: the image up to the end of the third
    // frame and some bytes of the fourth, and a checkpoint at the third's end.
    test::WriteFile(Partial(), image_.substr(0, frames_[2].decompressed + 100000));
    if (changed) {
      // Another image under the same name, in one frame.
      image_ = test::RandomBytes(kImageSize, 30);
      test::WriteFile(work_.File("whole"), image_);
      test::Sh("zstd -q -1 -f " + work_.File("whole") + " -o " + www_.File("disk.raw.zst"));
    }
    Checkpoint checkpoint;
    checkpoint.url = server.Url("/disk.raw.zst");
    checkpoint.length = compressed_.size();
    checkpoint.etag = "\"v1\"";
    checkpoint.format = "zstd+raw";
    checkpoint.target = Target();
    checkpoint.source_offset = frames_[2].compressed;
    checkpoint.target_bytes = frames_[2].decompressed;
    ASSERT_TRUE(WriteCheckpoint(CheckpointFile(), checkpoint).ok());
    test::LogCapture log;
    Result<ImportResult> result = Import(Spec(server));
    ASSERT_TRUE(result.ok()) << result.status().ToString() << "\n" << log.text();
    ExpectImported();
    if (changed) {
      EXPECT_EQ(result->resumed_from, 0u);
      EXPECT_TRUE(Contains(log.text(), "(it changed since the earlier download): starting over "
                                       "from byte 0"))
          << log.text();
    } else {
      EXPECT_EQ(result->resumed_from, frames_[2].compressed);
      EXPECT_EQ(server.BytesSent("/disk.raw.zst", 1), compressed_.size() - frames_[2].compressed);
      EXPECT_TRUE(Contains(log.text(),
                           "its first " + std::to_string(frames_[2].compressed) + " of " +
                               std::to_string(compressed_.size()) +
                               " bytes (2600000 bytes of the zstd+raw image) are on the target"))
          << log.text();
    }
    test::Sh("rm -f " + Target());
  }
}

TEST_F(ZstdResumeTest, OneFrameGetsNoCheckpointBeforeItsEndAndAChecksumTurnsThemOff) {
  test::WriteFile(work_.File("whole"), image_);
  test::Sh("zstd -q -1 -f " + work_.File("whole") + " -o " + www_.File("one.zst"));
  test::FaultServer server(
      www_.path(), R"({"/one.zst": {"file": "one.zst", "etag": "\"v1\"", "gate": {"after": 3000000,
                      "file": ")" + Gate() + R"("}}})");
  ImportSpec spec = Spec(server);
  spec.source.url = server.Url("/one.zst");
  CancelToken cancel;
  test::LogCapture log;
  std::future<Result<ImportResult>> first = ImportInBackground(spec, cancel);
  const std::string waiting = "No checkpoint yet: no zstd frame ended since byte 0 of the source";
  bool said = false;
  for (int i = 0; i < 1000 && !said; ++i) {
    said = Contains(log.text(), waiting);
    if (!said) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(said) << log.text();
  cancel.Cancel();
  ASSERT_EQ(first.get().status().code(), ErrorCode::kCancelled);
  EXPECT_EQ(test::ListDir(out_.path()), std::vector<std::string>{});
  const std::string text = log.text();
  EXPECT_EQ(text.find(waiting), text.rfind(waiting)) << "said once: " << text;

  // With a checksum (of the compressed bytes as served) a zstd image gets
  // no checkpoints: the target does not hold what the digest needs.
  test::WriteFile(Gate(), "");
  spec.checksum = "sha256:" + test::Sha256File(www_.File("one.zst"));
  test::LogCapture second_log;
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ExpectImported();
  EXPECT_TRUE(Contains(second_log.text(),
                       "No checkpoints: the checksum covers the zstd image's compressed bytes as "
                       "served"))
      << second_log.text();
}

// A raw image in an xz stream of several blocks (`xz -T0` and `xz
// --block-size` write them): a checkpoint is taken between two blocks, and
// the next import fetches from the start of a block and decodes block by
// block from there, checking the stream's Index against the point.
class XzResumeTest : public ResumeTest {
 protected:
  struct Compressed {
    std::string name;
    std::string file;  // under www_
    std::vector<formats::FrameBoundary> blocks;  // where each block ends
  };

  void SetUp() override {
    image_ = test::RandomBytes(kImageSize, 31);
    // A zero run, left as a hole on the target, across a block's end.
    std::fill(image_.begin() + 2000000, image_.begin() + 2300000, '\0');
    test::WriteFile(work_.File("image"), image_);
    // Blocks of 1 MiB: the image reaches the target a MiB at a time, so a
    // block's end is claimed once the image bytes past it arrived.
    variants_ = {Make("sizes in the block headers (xz -T2)", "disk.sized.xz", "-T2"),
                 Make("no sizes in the block headers (xz -T1 --block-size)", "disk.unsized.xz",
                      "-T1")};
  }

  Compressed Make(const std::string& name, const std::string& file, const std::string& threads) {
    test::Sh("xz -0 " + threads + " --block-size=1MiB -c " + work_.File("image") + " > " +
             www_.File(file));
    Compressed compressed{name, file, {}};
    // xz --robot --list: "block STREAM N N COMPOFFSET UNCOMPOFFSET TOTALSIZE UNCOMPSIZE ...".
    std::istringstream lines(test::Sh("xz --robot -lvv " + www_.File(file) +
                                      " | awk '$1 == \"block\" {print $5 + $7, $6 + $8}'"));
    uint64_t end = 0;
    uint64_t decompressed = 0;
    while (lines >> end >> decompressed) {
      compressed.blocks.push_back({.compressed = end, .decompressed = decompressed});
    }
    return compressed;
  }

  std::string Gate() const { return work_.File("gate"); }

  // Serves `c` with a strong ETag; with gate_ set, the first response holds
  // at that compressed byte until the gate exists.
  std::string Script(const Compressed& c) const {
    std::string gate;
    if (gate_ > 0) {
      gate = R"(, "gate": {"after": )" + std::to_string(gate_) + R"(, "file": ")" + Gate() +
             R"("})";
    }
    return R"({"/)" + c.file + R"(": {"file": ")" + c.file + R"(", "etag": "\"v1\"")" + gate +
           "}}";
  }

  ImportSpec Spec(const test::FaultServer& server, const Compressed& c) const {
    ImportSpec spec = ResumeTest::Spec(server);
    spec.source.url = server.Url("/" + c.file);
    spec.resume.checkpoint_bytes = 64 * kKiB;  // at every block's end
    return spec;
  }

  uint64_t Size(const Compressed& c) const { return test::ReadFile(www_.File(c.file)).size(); }

  test::TempDir work_;
  std::vector<Compressed> variants_;
  uint64_t gate_ = 0;
};

TEST_F(XzResumeTest, CancelledMidStreamTheNextImportContinuesAtABlock) {
  for (const Compressed& c : variants_) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.blocks.size(), 4u);
    // Inside the fourth block. Decoded block by block, the second block's end
    // is claimed (the raw decoder holds a stream's last 512 bytes back, so
    // the target is short of the third block's end); the threaded decoder
    // hands its output on later than it takes its input, so there it may be
    // a block before.
    gate_ = c.blocks[2].compressed + 1000;
    test::Sh("rm -f " + Gate());
    test::FaultServer server(www_.path(), Script(c));
    ImportSpec spec = Spec(server, c);
    CancelToken cancel;
    test::LogCapture log;
    std::future<Result<ImportResult>> first = ImportInBackground(spec, cancel);
    // The checkpoint as it stays while the server holds the response.
    bool checkpointed = false;
    std::optional<Checkpoint> last;
    for (int i = 0; i < 100 && !checkpointed; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      Result<std::optional<Checkpoint>> read = ReadCheckpoint(CheckpointFile());
      if (!read.ok() || !read->has_value()) continue;
      checkpointed = last && last->source_offset == (*read)->source_offset && i >= 5;
      last = **read;
    }
    cancel.Cancel();
    ASSERT_EQ(first.get().status().code(), ErrorCode::kCancelled);
    ASSERT_TRUE(checkpointed) << log.text();
    Result<std::optional<Checkpoint>> kept = ReadCheckpoint(CheckpointFile());
    ASSERT_TRUE(kept.ok() && kept->has_value());
    EXPECT_EQ((*kept)->format, "xz+raw");
    const uint64_t claimed = (*kept)->source_offset;
    size_t block = 0;
    while (block < 2 && c.blocks[block].compressed != claimed) ++block;
    if (c.name.find("-T1") != std::string::npos) {
      EXPECT_EQ(block, 1u);
    }
    EXPECT_EQ(claimed, c.blocks[block].compressed);
    EXPECT_EQ((*kept)->target_bytes, c.blocks[block].decompressed);
    EXPECT_EQ((*kept)->format_state, "xz-check 4 stream-offset 0 stream-image-offset 0");
    EXPECT_TRUE(Contains(log.text(), "Kept the partial image and its checkpoint at byte " +
                                         std::to_string(claimed) + " of the source (byte " +
                                         std::to_string(c.blocks[block].decompressed) +
                                         " of the image)"))
        << log.text();

    test::WriteFile(Gate(), "");
    Result<ImportResult> result = Import(spec);
    ASSERT_TRUE(result.ok()) << result.status().ToString() << "\n" << log.text();
    EXPECT_EQ(result->resumed_from, claimed);
    EXPECT_EQ(result->bytes_read, Size(c) - claimed);
    EXPECT_EQ(result->format_chain, (std::vector<std::string>{"xz", "raw"}));
    ExpectImported();
    std::vector<test::RecordedRequest> requests = server.RequestsFor("/" + c.file);
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[1].Header("range"), "bytes=" + std::to_string(claimed) + "-");
    // The second import fetched only what follows the checkpoint.
    bool rest_sent = false;
    for (const test::SentResponse& response : server.WaitForResponses(2)) {
      if (response.first != claimed || response.status == 0) continue;
      rest_sent = true;
      EXPECT_EQ(response.bytes, Size(c) - claimed);
    }
    EXPECT_TRUE(rest_sent);
    EXPECT_TRUE(Contains(log.text(), "bytes (" + std::to_string(c.blocks[block].decompressed) +
                                         " bytes of the xz+raw image) are on the target; asking "
                                         "the server for the rest, from the start of an xz block"))
        << log.text();
    test::Sh("rm -f " + Target());
  }
}

TEST_F(XzResumeTest, ATamperedCheckpointStartsOverOrFailsAndIsRemoved) {
  const Compressed& c = variants_[1];
  test::FaultServer server(www_.path(), Script(c));
  auto leave = [&](uint64_t claimed_bytes, const std::string& state) {
    test::WriteFile(Partial(), image_.substr(0, c.blocks[2].decompressed + 100000));
    Checkpoint checkpoint;
    checkpoint.url = server.Url("/" + c.file);
    checkpoint.length = Size(c);
    checkpoint.etag = "\"v1\"";
    checkpoint.format = "xz+raw";
    checkpoint.target = Target();
    checkpoint.source_offset = c.blocks[2].compressed;
    checkpoint.target_bytes = claimed_bytes;
    checkpoint.format_state = state;
    ASSERT_TRUE(WriteCheckpoint(CheckpointFile(), checkpoint).ok());
  };
  const std::string state = "xz-check 4 stream-offset 0 stream-image-offset 0";
  {
    SCOPED_TRACE("edited: the seal no longer matches");
    leave(c.blocks[2].decompressed, state);
    std::string text = test::ReadFile(CheckpointFile());
    text.replace(text.find("xz-check 4"), 10, "xz-check 1");
    test::WriteFile(CheckpointFile(), text);
    test::LogCapture log;
    Result<ImportResult> result = Import(Spec(server, c));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->resumed_from, 0u);
    ExpectImported();
    EXPECT_TRUE(Contains(log.text(), "does not match its seal")) << log.text();
    test::Sh("rm -f " + Target());
  }
  {
    SCOPED_TRACE("a format-state that cannot be");
    leave(c.blocks[2].decompressed, "xz-check 4 stream-offset 99999999 stream-image-offset 0");
    test::LogCapture log;
    Result<ImportResult> result = Import(Spec(server, c));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->resumed_from, 0u);
    ExpectImported();
    EXPECT_TRUE(Contains(log.text(), "its xz format-state is damaged")) << log.text();
    test::Sh("rm -f " + Target());
  }
  {
    // Sealed, but its claim is not the stream's: the Index, read at the
    // end, says so; nothing is kept and the next import starts over.
    SCOPED_TRACE("a claim the stream's Index contradicts");
    leave(c.blocks[2].decompressed - kMiB, state);
    test::LogCapture log;
    Result<ImportResult> result = Import(Spec(server, c));
    ASSERT_EQ(result.status().code(), ErrorCode::kCorruptImage) << log.text();
    EXPECT_TRUE(
        Contains(result.status().message(), "the Index lists blocks before compressed offset"))
        << result.status().message();
    EXPECT_EQ(test::ListDir(out_.path()), std::vector<std::string>{});
    Result<ImportResult> again = Import(Spec(server, c));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->resumed_from, 0u);
    ExpectImported();
  }
}

TEST_F(XzResumeTest, OneBlockGetsNoCheckpointBeforeItsEndAndAChecksumTurnsThemOff) {
  test::Sh("xz -0 -T1 -c " + work_.File("image") + " > " + www_.File("one.xz"));
  const Compressed c{"one block", "one.xz", {}};
  gate_ = 3000000;
  test::FaultServer server(www_.path(), Script(c));
  ImportSpec spec = Spec(server, c);
  CancelToken cancel;
  test::LogCapture log;
  std::future<Result<ImportResult>> first = ImportInBackground(spec, cancel);
  const std::string waiting = "No checkpoint yet: no xz block ended since byte 0 of the source";
  bool said = false;
  for (int i = 0; i < 1000 && !said; ++i) {
    said = Contains(log.text(), waiting);
    if (!said) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  cancel.Cancel();
  ASSERT_EQ(first.get().status().code(), ErrorCode::kCancelled);
  ASSERT_TRUE(said) << log.text();
  EXPECT_EQ(test::ListDir(out_.path()), std::vector<std::string>{});
  const std::string text = log.text();
  EXPECT_EQ(text.find(waiting), text.rfind(waiting)) << "said once: " << text;

  // With a checksum (of the compressed bytes as served) an xz image gets
  // no checkpoints: the target does not hold what the digest needs.
  gate_ = 0;
  test::FaultServer whole(www_.path(), Script(variants_[0]));
  ImportSpec with_checksum = Spec(whole, variants_[0]);
  with_checksum.checksum = "sha256:" + test::Sha256File(www_.File(variants_[0].file));
  test::LogCapture second_log;
  Result<ImportResult> result = Import(with_checksum);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ExpectImported();
  EXPECT_TRUE(Contains(second_log.text(),
                       "No checkpoints: the checksum covers the xz image's compressed bytes as "
                       "served"))
      << second_log.text();
}

}  // namespace
}  // namespace cdi::importer
