// The upload's read-ahead: the bytes in order whatever the reads' sizes, the
// source's error after the bytes before it, and a reader that stops early
// stopping the thread that waits on the source.
#include "uploadserver/read_ahead.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace cdi::uploadserver {
namespace {

std::vector<uint8_t> Pattern(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>((i * 7919) >> 3);
  return bytes;
}

// Hands out `bytes` in reads of varying sizes, then `end` (ok: the end).
class ScriptedSource final : public importer::ByteSource {
 public:
  ScriptedSource(std::vector<uint8_t> bytes, Status end)
      : bytes_(std::move(bytes)), end_(std::move(end)) {}
  Result<size_t> Read(std::span<uint8_t> buffer) override {
    if (pos_ == bytes_.size()) {
      if (!end_.ok()) return end_;
      return size_t{0};
    }
    const size_t n = std::min({buffer.size(), bytes_.size() - pos_, 1 + (reads_++ * 4099) % 70000});
    std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(pos_), n, buffer.begin());
    pos_ += n;
    return n;
  }
  std::optional<uint64_t> size() const override { return bytes_.size(); }
  std::string Describe() const override { return "the scripted upload"; }

 private:
  std::vector<uint8_t> bytes_;
  Status end_;
  size_t pos_ = 0;
  size_t reads_ = 0;
};

TEST(ReadAheadTest, BytesInOrderThroughViewsAndReads) {
  const std::vector<uint8_t> bytes = Pattern(3 * 1024 * 1024 + 17);
  ReadAheadSource views(std::make_unique<ScriptedSource>(bytes, Status::Ok()), 256 * 1024,
                        64 * 1024, nullptr);
  EXPECT_EQ(views.size(), bytes.size());
  EXPECT_EQ(views.Describe(), "the scripted upload");
  std::vector<uint8_t> out;
  while (true) {
    Result<std::span<const uint8_t>> view = views.ReadView(100 * 1000);
    ASSERT_TRUE(view.ok()) << view.status().message();
    if (view->empty()) break;
    ASSERT_LE(view->size(), 100u * 1000);
    out.insert(out.end(), view->begin(), view->end());
  }
  EXPECT_EQ(out, bytes);

  ReadAheadSource reads(std::make_unique<ScriptedSource>(bytes, Status::Ok()), 100 * 1000,
                        32 * 1024, nullptr);
  out.clear();
  std::vector<uint8_t> buffer(12345);
  while (true) {
    Result<size_t> n = reads.Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status().message();
    if (*n == 0) break;
    out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  EXPECT_EQ(out, bytes);
}

TEST(ReadAheadTest, ErrorComesAfterTheBytesBeforeIt) {
  const std::vector<uint8_t> bytes = Pattern(500 * 1000);
  ReadAheadSource source(
      std::make_unique<ScriptedSource>(bytes, NetworkError("the upload ended after 500000 bytes")),
      64 * 1024, 16 * 1024, nullptr);
  uint64_t received = 0;
  while (true) {
    Result<std::span<const uint8_t>> view = source.ReadView(1 << 20);
    if (!view.ok()) {
      EXPECT_EQ(view.status().code(), ErrorCode::kNetwork);
      EXPECT_EQ(view.status().message(), "the upload ended after 500000 bytes");
      break;
    }
    ASSERT_FALSE(view->empty()) << "an error is not an end";
    received += view->size();
  }
  EXPECT_EQ(received, bytes.size());
}

// Sends a little, then waits (as a silent client's connection does) until
// `stop` is called.
class StalledSource final : public importer::ByteSource {
 public:
  Result<size_t> Read(std::span<uint8_t> buffer) override {
    if (!sent_) {
      sent_ = true;
      std::fill_n(buffer.begin(), 1000, uint8_t{7});
      return size_t{1000};
    }
    std::unique_lock<std::mutex> lock(mutex_);
    stopped_.wait(lock, [&] { return stop_; });
    return CancelledError("the upload's reading stopped");
  }
  std::optional<uint64_t> size() const override { return std::nullopt; }
  std::string Describe() const override { return "the stalled upload"; }
  void Stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    stopped_.notify_all();
  }

 private:
  bool sent_ = false;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stop_ = false;
};

TEST(ReadAheadTest, ReaderThatStopsEarlyStopsTheWaitingThread) {
  auto stalled = std::make_unique<StalledSource>();
  StalledSource* raw = stalled.get();
  std::atomic<int> stops{0};
  {
    ReadAheadSource source(std::move(stalled), 64 * 1024, 16 * 1024, [&] {
      ++stops;
      raw->Stop();
    });
    Result<std::span<const uint8_t>> view = source.ReadView(4096);
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(view->size(), 1000u);
  }  // the pipeline gives up here: the destructor returns only once the thread is gone
  EXPECT_EQ(stops.load(), 1);
}

}  // namespace
}  // namespace cdi::uploadserver
