// TargetSink: the exact operations a target receives, as nbdcopy's sparse test
// asserts them. The recording target stands in for a file or a device; the
// real targets are exercised in test/pvc and end to end in test/e2e.
#include "importer/target_sink.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cdi::importer {
namespace {

struct Op {
  char kind;  // 'W' write, 'Z' zero, 'S' set size
  uint64_t offset;
  uint64_t length;
  bool operator==(const Op&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Op& op) {
  return os << op.kind << "(" << op.offset << "," << op.length << ")";
}

class RecordingTarget : public pvc::Target {
 public:
  RecordingTarget(pvc::TargetKind kind, uint64_t capacity) : kind_(kind), capacity_(capacity) {
    size_ = kind == pvc::TargetKind::kBlockDevice ? capacity : 0;
  }
  pvc::TargetKind kind() const override { return kind_; }
  const std::string& path() const override { return path_; }
  uint64_t capacity() const override { return capacity_; }
  uint64_t size() const override { return size_; }
  Status SetSize(uint64_t size) override {
    ops.push_back({'S', size, 0});
    size_ = size;
    return Status::Ok();
  }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (offset >= fail_writes_from) return IoError("writing recording at offset " + std::to_string(offset) + ": Input/output error");
    ops.push_back({'W', offset, data.size()});
    return Status::Ok();
  }
  Status Zero(uint64_t offset, uint64_t length) override {
    ops.push_back({'Z', offset, length});
    return Status::Ok();
  }
  Status Commit() override { return Status::Ok(); }
  void Abort() override {}
  pvc::TargetStats stats() const override { return {}; }

  std::vector<Op> ops;
  uint64_t fail_writes_from = UINT64_MAX;  // writes at or past this offset fail with EIO

 private:
  pvc::TargetKind kind_;
  uint64_t capacity_;
  uint64_t size_;
  std::string path_ = "recording";
};

formats::ImageDescription Raw(std::optional<uint64_t> size) { return {.format = "raw", .virtual_size = size}; }

std::vector<uint8_t> Data(size_t length, uint8_t fill) { return std::vector<uint8_t>(length, fill); }

TEST(TargetSinkTest, ZeroBlocksAreNotWrittenAndZeroRangesCoalesce) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(5 * 4096)).ok());
  std::vector<uint8_t> image = Data(5 * 4096, 0);
  std::fill(image.begin(), image.begin() + 4096, 0xAB);          // block 0: data
  image[4 * 4096 + 10] = 1;                                      // block 4: data
  ASSERT_TRUE(sink.Write(0, image).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_EQ(target.ops, (std::vector<Op>{{'S', 5 * 4096, 0},
                                         {'W', 0, 4096},
                                         {'Z', 4096, 3 * 4096},
                                         {'W', 4 * 4096, 4096}}));
  EXPECT_EQ(sink.bytes_written(), 2u * 4096);
  EXPECT_EQ(sink.bytes_zero(), 3u * 4096);
}

TEST(TargetSinkTest, BlocksFollowGuestAlignmentNotTheChunk) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(3 * 4096)).ok());
  // A chunk starting mid-block: [100, 4096) zero, [4096, 8192) data, [8192, 12288) zero.
  std::vector<uint8_t> head = Data(100, 7);
  std::vector<uint8_t> rest = Data(3 * 4096 - 100, 0);
  std::fill(rest.begin() + (4096 - 100), rest.begin() + (8192 - 100), 0xCD);
  ASSERT_TRUE(sink.Write(0, head).ok());
  ASSERT_TRUE(sink.Write(100, rest).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_EQ(target.ops, (std::vector<Op>{{'S', 3 * 4096, 0},
                                         {'W', 0, 100},
                                         {'Z', 100, 4096 - 100},
                                         {'W', 4096, 4096},
                                         {'Z', 8192, 4096}}));
}

TEST(TargetSinkTest, VirtualSizeLargerThanTargetFailsBeforeAnyWrite) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  Status status = sink.Begin(Raw((1 << 20) + 1));
  EXPECT_EQ(status.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(status.message(),
            "virtual image size 1048577 is larger than the reported available storage 1048576. "
            "A larger PVC is required");
  EXPECT_TRUE(target.ops.empty());
}

TEST(TargetSinkTest, StreamOfUnknownSizeStopsWhereItWouldPassTheTarget) {
  RecordingTarget target(pvc::TargetKind::kFile, 8192);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(std::nullopt)).ok());
  ASSERT_TRUE(sink.Write(0, Data(8192, 1)).ok());
  Status status = sink.Write(8192, Data(1, 1));
  EXPECT_EQ(status.code(), ErrorCode::kTooSmall);
  EXPECT_NE(status.message().find("larger than the reported available storage 8192"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(target.ops, (std::vector<Op>{{'W', 0, 8192}}));
}

TEST(TargetSinkTest, UnknownSizeFileEndsAtTheLastByte) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(std::nullopt)).ok());
  ASSERT_TRUE(sink.Write(0, Data(5000, 1)).ok());
  auto size = sink.Finalize();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 5000u);
  EXPECT_EQ(target.ops.back(), (Op{'S', 5000, 0}));
}

// A decoder that learns at the end that the tail it held back is not part of
// the disk (a fixed VHD's footer) lowers the size it announced: the file ends
// there, and nothing may lie past it.
TEST(TargetSinkTest, ShrunkImageSizesTheFileToTheNewSize) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.CanShrink());
  ASSERT_TRUE(sink.Begin(Raw(8192 + 512)).ok());
  ASSERT_TRUE(sink.Write(0, Data(8192, 1)).ok());
  ASSERT_TRUE(sink.Shrink(8192).ok());
  EXPECT_FALSE(sink.Write(8192, Data(512, 2)).ok());
  auto size = sink.Finalize();
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, 8192u);
  EXPECT_EQ(target.ops.back(), (Op{'S', 8192, 0}));
}

TEST(TargetSinkTest, ShrinkingBelowWhatWasWrittenIsRefused) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(8192)).ok());
  ASSERT_TRUE(sink.Write(0, Data(8192, 1)).ok());
  EXPECT_EQ(sink.Shrink(4096).code(), ErrorCode::kInternal);
}

TEST(TargetSinkTest, RequestedSizeGrowsTheFileToCapacity) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToCapacity}});
  ASSERT_TRUE(sink.Begin(Raw(4096)).ok());
  ASSERT_TRUE(sink.Write(0, Data(4096, 1)).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_EQ(target.ops, (std::vector<Op>{{'S', 1 << 20, 0}, {'W', 0, 4096}}));
}

TEST(TargetSinkTest, BlockDeviceTailPastTheImageIsZeroed) {
  RecordingTarget device(pvc::TargetKind::kBlockDevice, 1 << 20);
  TargetSink sink({{&device, Sizing::kToCapacity}});
  ASSERT_TRUE(sink.Begin(Raw(8192)).ok());
  ASSERT_TRUE(sink.Write(0, Data(8192, 9)).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_EQ(device.ops, (std::vector<Op>{{'W', 0, 8192}, {'Z', 8192, (1 << 20) - 8192}}));
}

TEST(TargetSinkTest, EveryTargetReceivesTheSameOperations) {
  RecordingTarget a(pvc::TargetKind::kFile, 1 << 20), b(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&a, Sizing::kToVirtualSize}, {&b, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(3 * 4096)).ok());
  ASSERT_TRUE(sink.Zero(0, 4096).ok());
  ASSERT_TRUE(sink.Write(4096, Data(8192, 3)).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_EQ(a.ops, b.ops);
  EXPECT_EQ(a.ops.size(), 3u);
}

TEST(TargetSinkTest, ATargetTooSmallDropsOutAloneBeforeAnyWrite) {
  RecordingTarget big(pvc::TargetKind::kFile, 1 << 20), small(pvc::TargetKind::kFile, 4096);
  TargetSink sink({{&big, Sizing::kToVirtualSize}, {&small, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(8192)).ok());
  ASSERT_TRUE(sink.Write(0, Data(8192, 5)).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_TRUE(sink.failure(0).ok());
  EXPECT_EQ(sink.failure(1).code(), ErrorCode::kTooSmall);
  EXPECT_EQ(sink.failure(1).message(),
            "virtual image size 8192 is larger than the reported available storage 4096. A larger "
            "PVC is required");
  EXPECT_EQ(big.ops, (std::vector<Op>{{'S', 8192, 0}, {'W', 0, 8192}}));
  EXPECT_TRUE(small.ops.empty());
}

TEST(TargetSinkTest, WhenNoTargetCanTakeTheImageTheSinkFails) {
  RecordingTarget a(pvc::TargetKind::kFile, 4096), b(pvc::TargetKind::kFile, 2048);
  TargetSink sink({{&a, Sizing::kToVirtualSize}, {&b, Sizing::kToVirtualSize}});
  Status status = sink.Begin(Raw(8192));
  EXPECT_EQ(status.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(status.message(),
            "virtual image size 8192 is larger than the reported available storage 4096. A larger "
            "PVC is required");
}

TEST(TargetSinkTest, AStreamOfUnknownSizeDropsEachTargetWhereItPassesIt) {
  RecordingTarget big(pvc::TargetKind::kFile, 1 << 20), small(pvc::TargetKind::kFile, 8192);
  TargetSink sink({{&big, Sizing::kToVirtualSize}, {&small, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(std::nullopt)).ok());
  ASSERT_TRUE(sink.Write(0, Data(8192, 1)).ok());
  ASSERT_TRUE(sink.Write(8192, Data(4096, 2)).ok());
  auto size = sink.Finalize();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 12288u);
  EXPECT_TRUE(sink.failure(0).ok());
  EXPECT_EQ(sink.failure(1).code(), ErrorCode::kTooSmall);
  EXPECT_EQ(small.ops, (std::vector<Op>{{'W', 0, 8192}}));
  EXPECT_EQ(big.ops.back(), (Op{'S', 12288, 0}));
}

TEST(TargetSinkTest, AFailingTargetDropsOutAndTheOthersGoOn) {
  RecordingTarget good(pvc::TargetKind::kFile, 1 << 20), bad(pvc::TargetKind::kFile, 1 << 20);
  bad.fail_writes_from = 4096;
  TargetSink sink({{&good, Sizing::kToVirtualSize}, {&bad, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(8192)).ok());
  ASSERT_TRUE(sink.Write(0, Data(4096, 1)).ok());
  ASSERT_TRUE(sink.Write(4096, Data(4096, 2)).ok());
  ASSERT_TRUE(sink.Finalize().ok());
  EXPECT_TRUE(sink.failure(0).ok());
  EXPECT_EQ(sink.failure(1).code(), ErrorCode::kIo);
  EXPECT_EQ(good.ops.size(), 3u);
}

TEST(TargetSinkTest, AnImageNotFullyCoveredIsRefused) {
  RecordingTarget target(pvc::TargetKind::kBlockDevice, 1 << 20);
  TargetSink sink({{&target, Sizing::kToCapacity}});
  ASSERT_TRUE(sink.Begin(Raw(8192)).ok());
  ASSERT_TRUE(sink.Write(0, Data(4096, 1)).ok());
  auto result = sink.Finalize();
  EXPECT_EQ(result.status().code(), ErrorCode::kInternal);
  EXPECT_NE(result.status().message().find("covered 4096 of 8192"), std::string::npos);
}

TEST(TargetSinkTest, DataPastTheVirtualSizeIsCorrupt) {
  RecordingTarget target(pvc::TargetKind::kFile, 1 << 20);
  TargetSink sink({{&target, Sizing::kToVirtualSize}});
  ASSERT_TRUE(sink.Begin(Raw(4096)).ok());
  Status status = sink.Write(4000, Data(200, 1));
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(status.message().find("past its virtual size 4096"), std::string::npos);
}

}  // namespace
}  // namespace cdi::importer
