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

// A file target whose checkpoint syncs wait for `gate` to open.
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
    ++started_;
    return pvc::PendingSync{std::move(sync.fd), [gate = gate_, written = sync.written] {
                              gate.wait();
                              return written();
                            }};
  }
  void Keep() override { inner_->Keep(); }
  void Abort() override { inner_->Abort(); }
  pvc::TargetStats stats() const override { return inner_->stats(); }

  int started() const { return started_; }

 private:
  std::unique_ptr<pvc::Target> inner_;
  std::shared_future<void> gate_;
  int started_ = 0;
};

TEST(CheckpointQueueTest, ACheckpointDueWhileTheLastSyncsQueuesAndTheImportNeverWaits) {
  test::TempDir out;
  const std::string path = out.File("disk.img");
  ImportSpec spec;
  spec.source.url = "http://127.0.0.1:9/disk.raw";
  spec.targets.push_back({.path = path});
  spec.resume.mode = ResumeMode::kCheckpoints;
  spec.resume.checkpoint_bytes = kMiB;
  spec.resume.checkpoint_interval = std::chrono::milliseconds(0);

  std::promise<void> open;
  pvc::FileTargetOptions options;
  options.stale_partial = pvc::StalePartial::kKeep;
  Result<std::unique_ptr<pvc::Target>> inner = pvc::OpenFileTarget(path, options);
  ASSERT_TRUE(inner.ok()) << inner.status().message();
  HeldSyncTarget target(std::move(*inner), open.get_future().share());

  Resumer resumer(spec);
  Result<std::optional<Checkpoint>> from = resumer.Prepare(target);
  ASSERT_TRUE(from.ok()) << from.status().message();
  EXPECT_FALSE(from->has_value());
  HttpResumePoint served;
  served.length = kImageSize;
  served.etag = "\"v1\"";
  ASSERT_TRUE(resumer.SourceOpened(served, target).ok());

  // Were an AfterFeed to wait for a sync, only this would end the wait.
  std::atomic<bool> opened_by_watchdog{false};
  std::promise<void> done;
  std::thread watchdog([&, finished = done.get_future()] {
    if (finished.wait_for(std::chrono::seconds(20)) == std::future_status::timeout) {
      opened_by_watchdog = true;
      open.set_value();
    }
  });

  const std::string image = test::RandomBytes(kImageSize, 23);
  auto feed_to = [&](uint64_t mib) {
    const uint64_t end = mib * kMiB;
    const uint64_t from_byte = target.size();
    ASSERT_TRUE(target
                    .Write(from_byte, std::span(reinterpret_cast<const uint8_t*>(image.data()) +
                                                    from_byte,
                                                end - from_byte))
                    .ok());
    Reached reached;
    reached.chain = {"raw"};
    reached.source_offset = reached.covered = end;
    ASSERT_TRUE(resumer.AfterFeed(reached, target).ok());
  };
  feed_to(1);  // syncing, held
  feed_to(2);  // queued behind it
  feed_to(3);  // two on their way: not started
  EXPECT_EQ(target.started(), 2);
  EXPECT_FALSE(test::FileExists(CheckpointPath(path)));

  done.set_value();
  watchdog.join();
  if (!opened_by_watchdog) open.set_value();
  EXPECT_FALSE(opened_by_watchdog) << "an AfterFeed waited for a held sync";
  ASSERT_TRUE(resumer.Drain().ok());
  EXPECT_EQ(resumer.checkpoints_written(), 2u);
  Result<std::optional<Checkpoint>> written = ReadCheckpoint(CheckpointPath(path));
  ASSERT_TRUE(written.ok() && written->has_value());
  EXPECT_EQ((*written)->source_offset, 2 * kMiB);  // the later one, written last

  // With the syncs done, the next one due starts at once.
  feed_to(4);
  EXPECT_EQ(target.started(), 3);
  ASSERT_TRUE(resumer.Drain().ok());
  written = ReadCheckpoint(CheckpointPath(path));
  ASSERT_TRUE(written.ok() && written->has_value());
  EXPECT_EQ((*written)->source_offset, 4 * kMiB);
  target.Abort();
}

}  // namespace
}  // namespace cdi::importer
