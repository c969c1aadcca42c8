// Checkpoints never make the import wait for a sync. A checkpoint that comes
// due while the last one is still syncing queues behind it and reaches the
// disk after it, in order; one that comes due while two are on their way
// waits for a later chunk. The target is a real file whose syncs are held
// until the test lets them go.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cdi/import.h"
#include "importer/checkpoint.h"
#include "importer/resume.h"
#include "pvc/target.h"
#include "test/support/files.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

constexpr uint64_t kImageSize = 8 * kMiB;

// A file target whose checkpoint syncs wait for `gate` to open; the first
// one then reports `first_failure` instead of the file's outcome, when set.
class HeldSyncTarget final : public pvc::Target {
 public:
  HeldSyncTarget(std::unique_ptr<pvc::Target> inner, std::shared_future<void> gate)
      : inner_(std::move(inner)), gate_(std::move(gate)) {}

  pvc::TargetKind kind() const override { return inner_->kind(); }
  const std::string& path() const override { return inner_->path(); }
  uint64_t capacity() const override { return inner_->capacity(); }
  uint64_t size() const override { return inner_->size(); }
  Status SetSize(uint64_t size) override { return inner_->SetSize(size); }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    return inner_->Write(offset, data);
  }
  Status Zero(uint64_t offset, uint64_t length) override { return inner_->Zero(offset, length); }
  Status Commit() override { return inner_->Commit(); }
  Result<pvc::PendingSync> StartSync() override {
    CDI_ASSIGN_OR_RETURN(pvc::PendingSync sync, inner_->StartSync());
    const Status failure = started_++ == 0 ? first_failure : Status::Ok();
    return pvc::PendingSync{std::move(sync.fd),
                            [gate = gate_, written = sync.written, failure]() -> Status {
                              gate.wait();
                              if (!failure.ok()) return failure;
                              return written();
                            }};
  }
  void Keep() override { inner_->Keep(); }
  void Abort() override { inner_->Abort(); }
  pvc::TargetStats stats() const override { return inner_->stats(); }

  int started() const { return started_; }
  Status first_failure = Status::Ok();

 private:
  std::unique_ptr<pvc::Target> inner_;
  std::shared_future<void> gate_;
  int started_ = 0;
};

class CheckpointQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.source.url = "http://127.0.0.1:9/disk.raw";
    spec_.targets.push_back({.path = path_});
    spec_.resume.mode = ResumeMode::kCheckpoints;
    spec_.resume.checkpoint_bytes = kMiB;
    spec_.resume.checkpoint_interval = std::chrono::milliseconds(0);
    pvc::FileTargetOptions options;
    options.stale_partial = pvc::StalePartial::kKeep;
    Result<std::unique_ptr<pvc::Target>> inner = pvc::OpenFileTarget(path_, options);
    ASSERT_TRUE(inner.ok()) << inner.status().message();
    target_ = std::make_unique<HeldSyncTarget>(std::move(*inner), open_.get_future().share());
    resumer_ = std::make_unique<Resumer>(spec_);
    Result<std::optional<Checkpoint>> from = resumer_->Prepare(*target_);
    ASSERT_TRUE(from.ok()) << from.status().message();
    EXPECT_FALSE(from->has_value());
    HttpResumePoint served;
    served.length = kImageSize;
    served.etag = "\"v1\"";
    ASSERT_TRUE(resumer_->SourceOpened(served, *target_).ok());
    // Were an AfterFeed to wait for a sync, only this would end the wait.
    watchdog_ = std::thread([this, finished = done_.get_future()] {
      if (finished.wait_for(std::chrono::seconds(20)) == std::future_status::timeout) {
        opened_by_watchdog_ = true;
        open_.set_value();
      }
    });
  }

  void TearDown() override {
    if (watchdog_.joinable()) OpenSyncs();
    target_->Abort();
  }

  // Lets the held syncs go on.
  void OpenSyncs() {
    done_.set_value();
    watchdog_.join();
    if (!opened_by_watchdog_) open_.set_value();
    EXPECT_FALSE(opened_by_watchdog_) << "an AfterFeed waited for a held sync";
  }

  // Writes the image up to `mib` MiB and tells the resumer.
  void FeedTo(uint64_t mib) {
    const uint64_t end = mib * kMiB;
    const uint64_t from_byte = target_->size();
    const auto* bytes = reinterpret_cast<const uint8_t*>(image_.data());
    ASSERT_TRUE(target_->Write(from_byte, std::span(bytes + from_byte, end - from_byte)).ok());
    Reached reached;
    reached.chain = {"raw"};
    reached.source_offset = reached.covered = end;
    ASSERT_TRUE(resumer_->AfterFeed(reached, *target_).ok());
  }

  // What the checkpoint on disk claims; 0 when there is none.
  uint64_t Claimed() const {
    Result<std::optional<Checkpoint>> read = ReadCheckpoint(CheckpointPath(path_));
    return read.ok() && read->has_value() ? (*read)->source_offset : 0;
  }

  test::TempDir out_;
  const std::string path_ = out_.File("disk.img");
  const std::string image_ = test::RandomBytes(kImageSize, 23);
  ImportSpec spec_;
  std::promise<void> open_;
  std::promise<void> done_;
  std::atomic<bool> opened_by_watchdog_{false};
  std::thread watchdog_;
  std::unique_ptr<HeldSyncTarget> target_;
  std::unique_ptr<Resumer> resumer_;
};

TEST_F(CheckpointQueueTest, ACheckpointDueWhileTheLastSyncsQueuesAndTheImportNeverWaits) {
  FeedTo(1);  // syncing, held
  FeedTo(2);  // queued behind it
  FeedTo(3);  // two on their way: not started
  EXPECT_EQ(target_->started(), 2);
  EXPECT_FALSE(test::FileExists(CheckpointPath(path_)));

  OpenSyncs();
  ASSERT_TRUE(resumer_->Drain().ok());
  EXPECT_EQ(resumer_->checkpoints_written(), 2u);
  EXPECT_EQ(Claimed(), 2 * kMiB);  // the later one, written last

  // With the syncs done, the next one due starts at once.
  FeedTo(4);
  EXPECT_EQ(target_->started(), 3);
  ASSERT_TRUE(resumer_->Drain().ok());
  EXPECT_EQ(Claimed(), 4 * kMiB);
}

TEST_F(CheckpointQueueTest, NoCheckpointFollowsAFailedSyncAndTheImportFailsWithIt) {
  target_->first_failure = IoError("writing the target failed: the disk is gone");
  FeedTo(1);  // its sync fails, once let go
  FeedTo(2);  // queued behind it: must not claim what the failed sync lost
  OpenSyncs();
  Status drained = resumer_->Drain();
  EXPECT_EQ(drained.code(), ErrorCode::kIo);
  EXPECT_EQ(drained.message(), "writing the target failed: the disk is gone");
  EXPECT_EQ(resumer_->checkpoints_written(), 0u);
  EXPECT_FALSE(test::FileExists(CheckpointPath(path_)));
}

}  // namespace
}  // namespace cdi::importer
