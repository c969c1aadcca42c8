#include "sources/transfer_buffer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test/support/files.h"

namespace cdi::importer {
namespace {

constexpr auto kLongWait = std::chrono::milliseconds(30000);

std::span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Takes everything until the end or an error; returns the bytes and the final status.
std::pair<std::string, Status> Drain(TransferBuffer& buffer, size_t chunk) {
  std::string out;
  std::vector<uint8_t> scratch(chunk);
  while (true) {
    std::optional<Result<size_t>> taken = buffer.Take(scratch, kLongWait);
    if (!taken.has_value()) return {out, InternalError("timed out")};
    if (!taken->ok()) return {out, taken->status()};
    if (**taken == 0) return {out, Status::Ok()};
    out.append(reinterpret_cast<const char*>(scratch.data()), **taken);
  }
}

TEST(TransferBufferTest, CarriesAStreamManyTimesItsCapacityInOrder) {
  // A small ring and odd piece sizes, so that writes and reads wrap around.
  TransferBuffer buffer(1000);
  std::string data = test::RandomBytes(1'000'003, 7);
  std::thread producer([&] {
    size_t offset = 0;
    size_t piece = 1;
    while (offset < data.size()) {
      size_t n = std::min(piece, data.size() - offset);
      ASSERT_TRUE(buffer.Put(Bytes(data.substr(offset, n))));
      offset += n;
      piece = piece * 7 % 3001 + 1;
    }
    buffer.Finish(Status::Ok());
  });
  auto [out, status] = Drain(buffer, 333);
  producer.join();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(out.size(), data.size());
  EXPECT_TRUE(out == data);
}

TEST(TransferBufferTest, ReportsTheErrorAfterTheBytesBeforeIt) {
  TransferBuffer buffer(64);
  ASSERT_TRUE(buffer.Put(Bytes("hello")));
  buffer.Finish(NetworkError("connection closed early", Retryable::kYes));
  buffer.Finish(Status::Ok());  // only the first end counts
  auto [out, status] = Drain(buffer, 2);
  EXPECT_EQ(out, "hello");
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(), "connection closed early");
  EXPECT_TRUE(status.retryable());
}

TEST(TransferBufferTest, TakeReturnsNothingWhileEmpty) {
  TransferBuffer buffer(64);
  std::vector<uint8_t> out(8);
  EXPECT_FALSE(buffer.Take(out, std::chrono::milliseconds(1)).has_value());
}

TEST(TransferBufferTest, FewerBytesThanABatchAreTakenWhenTheWaitEnds) {
  // A slow stream must still flow: what is there is taken once the wait ends.
  TransferBuffer buffer(4096);
  ASSERT_TRUE(buffer.Put(Bytes("abcde")));
  std::vector<uint8_t> out(1000);
  std::optional<Result<size_t>> taken = buffer.Take(out, std::chrono::milliseconds(1));
  ASSERT_TRUE(taken.has_value());
  ASSERT_TRUE(taken->ok());
  EXPECT_EQ(**taken, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), 5), "abcde");
}

TEST(TransferBufferTest, CloseReleasesAProducerWaitingForRoom) {
  TransferBuffer buffer(16);
  std::string data(100, 'x');
  bool accepted = true;
  std::thread producer([&] { accepted = buffer.Put(Bytes(data)); });
  // The producer fills the ring and waits; closing must let it go.
  std::vector<uint8_t> out(4);
  std::optional<Result<size_t>> first = buffer.Take(out, kLongWait);
  ASSERT_TRUE(first.has_value() && first->ok());
  buffer.Close();
  producer.join();
  EXPECT_FALSE(accepted);
  EXPECT_FALSE(buffer.Put(Bytes("more")));
}

// Lent views: a producer running flat out never overwrites bytes that were
// lent and not yet given back, and the stream arrives whole and in order.
TEST(TransferBufferTest, LentViewsStayIntactUntilReleased) {
  TransferBuffer buffer(1000);
  std::string data = test::RandomBytes(1'000'003, 8);
  std::thread producer([&] {
    for (size_t offset = 0; offset < data.size(); offset += 777) {
      ASSERT_TRUE(buffer.Put(Bytes(data.substr(offset, 777))));
    }
    buffer.Finish(Status::Ok());
  });
  std::string out;
  while (true) {
    auto view = buffer.Peek(400, kLongWait);
    ASSERT_TRUE(view.has_value());
    ASSERT_TRUE(view->ok()) << view->status().ToString();
    if ((*view)->empty()) break;
    ASSERT_LE((*view)->size(), 400u);
    const std::string copy(reinterpret_cast<const char*>((*view)->data()), (*view)->size());
    // Give the producer time to try to fill the ring behind the view.
    std::this_thread::yield();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>((*view)->data()), (*view)->size()), copy);
    out += copy;
    buffer.Release((*view)->size());
  }
  producer.join();
  EXPECT_TRUE(out == data);
}

TEST(TransferBufferTest, PeekReportsTheErrorAfterTheBytesBeforeIt) {
  TransferBuffer buffer(64);
  ASSERT_TRUE(buffer.Put(Bytes("hello")));
  buffer.Finish(NetworkError("connection closed early", Retryable::kYes));
  auto view = buffer.Peek(100, kLongWait);
  ASSERT_TRUE(view.has_value() && view->ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*view)->data()), (*view)->size()), "hello");
  buffer.Release((*view)->size());
  auto end = buffer.Peek(100, kLongWait);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->status().code(), ErrorCode::kNetwork);
}

// ---------------------------------------------------------------------------
// Buffers sharing a budget (the parts of a ranged download)

TEST(TransferBufferTest, BuffersSharingABudgetHoldNoMoreThanItTogether) {
  BufferBudget budget(1000, 100);
  TransferBuffer first(5000, &budget);
  TransferBuffer second(5000, &budget);
  const std::string data = test::RandomBytes(1200, 11);
  ASSERT_TRUE(first.Put(Bytes(data.substr(0, 600))));
  // The second gets the 400 bytes left, then waits for the first's reader.
  std::atomic<bool> put = false;
  std::thread producer([&] {
    EXPECT_TRUE(second.Put(Bytes(data.substr(600, 600))));
    put = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(put);
  EXPECT_EQ(second.filled(), 400u);
  EXPECT_EQ(budget.held(), 1000u);
  // 300 bytes read from the first let the second's other 200 in.
  std::vector<uint8_t> out(300);
  std::optional<Result<size_t>> taken = first.Take(out, kLongWait);
  ASSERT_TRUE(taken.has_value() && taken->ok() && **taken == 300u);
  producer.join();
  EXPECT_TRUE(put);
  EXPECT_EQ(second.filled(), 600u);
  EXPECT_EQ(budget.held(), 900u);
  EXPECT_EQ(budget.peak(), 1000u);
  second.Finish(Status::Ok());
  auto [rest, status] = Drain(second, 64);
  EXPECT_TRUE(status.ok());
  EXPECT_TRUE(rest == data.substr(600, 600));
  EXPECT_EQ(budget.held(), 300u);
}

TEST(TransferBufferTest, TheLeadMayHoldItsAllowanceWhenTheBudgetIsFull) {
  BufferBudget budget(1000, 100);
  TransferBuffer ahead(5000, &budget);
  TransferBuffer lead(5000, &budget);
  ASSERT_TRUE(ahead.Put(Bytes(std::string(1000, 'a'))));
  lead.SetLead();
  // The reader needs the lead's bytes: up to 100 come whatever the others hold.
  ASSERT_TRUE(lead.Put(Bytes(std::string(100, 'b'))));
  EXPECT_EQ(budget.held(), 1100u);
  // One more waits for the lead's reader, or, as here, ends when it closes.
  std::atomic<bool> returned = false;
  std::thread producer([&] {
    EXPECT_FALSE(lead.Put(Bytes("c")));
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(returned);
  lead.Close();
  producer.join();
  EXPECT_EQ(budget.peak(), 1100u);
}

TEST(TransferBufferTest, ABufferMadeLeadWhileWaitingGoesOn) {
  BufferBudget budget(1000, 100);
  TransferBuffer ahead(5000, &budget);
  TransferBuffer next(5000, &budget);
  ASSERT_TRUE(ahead.Put(Bytes(std::string(1000, 'a'))));
  std::thread producer([&] { EXPECT_TRUE(next.Put(Bytes(std::string(50, 'n')))); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(next.filled(), 0u);
  next.SetLead();  // the reader moved on to it
  producer.join();
  EXPECT_EQ(next.filled(), 50u);
}

TEST(TransferBufferTest, ABudgetsBufferCarriesAStreamOfItsCapacityAndGivesBackWhatIsRead) {
  // Larger than the batch in which pages go back, in odd pieces; reused
  // after Reset, as the parts' buffers are.
  BufferBudget budget(1 << 20, 64 << 10);
  TransferBuffer buffer(3'000'017, &budget);
  buffer.SetLead();
  for (uint32_t round = 0; round < 2; ++round) {
    const std::string data = test::RandomBytes(3'000'017, 20 + round);
    std::thread producer([&] {
      for (size_t at = 0; at < data.size(); at += 70'001) {
        ASSERT_TRUE(buffer.Put(Bytes(data.substr(at, 70'001))));
      }
      buffer.Finish(Status::Ok());
    });
    auto [out, status] = Drain(buffer, 100'003);
    producer.join();
    EXPECT_TRUE(status.ok());
    EXPECT_TRUE(out == data);
    EXPECT_EQ(budget.held(), 0u);
    EXPECT_LE(budget.peak(), (1u << 20) + (64u << 10));
    // Nothing past its capacity: the stream is the part it was made for.
    EXPECT_FALSE(buffer.Put(Bytes("x")));
    buffer.Reset();
    buffer.SetLead();
  }
}

}  // namespace
}  // namespace cdi::importer
