// Layouts whose data passes before its mapping: decoded the same whatever the
// memory budget, spilling to an unlinked scratch file that leaves nothing
// behind; and the spool itself.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/spool.h"
#include "test/formats/qcow2/qcow2_test_support.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test::qcow2 {
namespace {

using formats::DecoderOptions;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

std::string Q(const std::string& path) { return "'" + path + "'"; }

class SpoolLayoutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    WriteFile(dir_->File("random.bin"), RandomBytes(2 * kMiB, 41));
    std::string text;
    while (text.size() < 2 * kMiB) text += "spooled line " + std::to_string(text.size()) + "\n";
    WriteFile(dir_->File("text.bin"), text.substr(0, 2 * kMiB));

    // A resize moves the L1 table to the end of the file: every cluster
    // passes before the table that maps it.
    resized_ = dir_->File("resized.qcow2");
    Sh("qemu-img create -q -f qcow2 -o cluster_size=4096 " + Q(resized_) + " 8M");
    Sh("qemu-io -f qcow2 -c 'write -s " + dir_->File("random.bin") +
       " 0 1536k' -c 'write -P 0x5c " + std::to_string(6 * kMiB) + " 64k' " + Q(resized_) +
       " >/dev/null");
    Sh("qemu-img resize -q -f qcow2 " + Q(resized_) + " 48M");

    // The same with compressed clusters.
    compressed_resized_ = dir_->File("compressed_resized.qcow2");
    Sh("qemu-img convert -c -O qcow2 -o cluster_size=4096 -f raw " + Q(dir_->File("text.bin")) +
       " " + Q(compressed_resized_));
    Sh("qemu-img resize -q -f qcow2 " + Q(compressed_resized_) + " 48M");

    // After an internal snapshot, rewrites copy L2 tables to the end of the
    // file; the data they still map lies before them.
    snapshot_ = dir_->File("snapshot.qcow2");
    Sh("qemu-img create -q -f qcow2 " + Q(snapshot_) + " 32M");
    Sh("qemu-io -f qcow2 -c 'write -s " + dir_->File("random.bin") + " 0 2m' " + Q(snapshot_) +
       " >/dev/null");
    Sh("qemu-img snapshot -c one " + Q(snapshot_));
    Sh("qemu-io -f qcow2 -c 'write -P 0x71 64k 64k' -c 'write -P 0x72 20m 64k' " + Q(snapshot_) +
       " >/dev/null");

    for (std::string* image : {&resized_, &compressed_resized_, &snapshot_}) {
      QemuConvertToRaw(*image, *image + ".raw");
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  // Decodes with `options`, compares with qemu-img, returns the description.
  static formats::ImageDescription ExpectSameAsQemu(const std::string& image,
                                                    DecoderOptions options, size_t chunk) {
    TempDir out;
    Decoded decoded = DecodeToFile(image, out.File("ours.raw"), chunk, options);
    EXPECT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_EQ(decoded.problems, "");
    EXPECT_EQ(Sha256File(out.File("ours.raw")), Sha256File(image + ".raw"));
    return decoded.description;
  }

  static TempDir* dir_;
  static std::string resized_;
  static std::string compressed_resized_;
  static std::string snapshot_;
};

TempDir* SpoolLayoutTest::dir_ = nullptr;
std::string SpoolLayoutTest::resized_;
std::string SpoolLayoutTest::compressed_resized_;
std::string SpoolLayoutTest::snapshot_;

TEST_F(SpoolLayoutTest, SameOutputWithATinyAndALargeBudget) {
  for (const std::string& image : {resized_, compressed_resized_, snapshot_}) {
    SCOPED_TRACE(image);
    TempDir scratch;
    DecoderOptions tiny;
    tiny.memory_budget = 400 * kKiB;
    tiny.scratch_dir = scratch.path();
    if (image == snapshot_) tiny.memory_budget = 1 * kMiB;  // 64 KiB clusters
    formats::ImageDescription small = ExpectSameAsQemu(image, tiny, 65536 + 3);
    EXPECT_EQ(Detail(small, "spooling"), "needed");
    EXPECT_GT(std::stoull(Detail(small, "spooled bytes on disk")), 0u) << "spilled to scratch";
    EXPECT_LE(std::stoull(Detail(small, "peak memory")), tiny.memory_budget);
    EXPECT_EQ(ListDir(scratch.path()), std::vector<std::string>{}) << "nothing left behind";

    DecoderOptions large;
    large.memory_budget = 256 * kMiB;
    large.scratch_dir = scratch.path();
    formats::ImageDescription big = ExpectSameAsQemu(image, large, 65536 + 3);
    EXPECT_EQ(Detail(big, "spooling"), "needed");
    EXPECT_EQ(Detail(big, "spooled bytes"), Detail(small, "spooled bytes"));
    EXPECT_EQ(Detail(big, "spooled bytes on disk"), "0");
    std::cout << "[ spooled  ] " << image.substr(image.rfind('/') + 1) << ": "
              << Detail(big, "spooled bytes") << " of " << FileSize(image)
              << " image bytes; with a " << tiny.memory_budget << "-byte budget "
              << Detail(small, "spooled bytes on disk") << " on disk\n";
  }
}

TEST_F(SpoolLayoutTest, ResizedImageSpoolsItsDataButNotItsRefcounts) {
  DecoderOptions options;
  options.memory_budget = 256 * kMiB;
  formats::ImageDescription description = ExpectSameAsQemu(resized_, options, kMiB);
  uint64_t spooled = std::stoull(Detail(description, "spooled bytes"));
  // The data (1.5 MiB of random bytes, the 0x5c pattern) and its L2 tables;
  // not the refcount structures, which are claimed as metadata.
  EXPECT_GE(spooled, 1536 * kKiB + 64 * kKiB);
  EXPECT_LT(spooled, FileSize(resized_) - 2 * 4096);
}

TEST_F(SpoolLayoutTest, ScratchFileHasNoNameWhileInUse) {
  TempDir scratch;
  DecoderOptions options;
  options.memory_budget = 400 * kKiB;
  options.scratch_dir = scratch.path();
  options.container_size = FileSize(resized_);
  CheckingWriter writer;
  size_t checks = 0;
  writer.on_write = [&] {
    ++checks;
    EXPECT_EQ(ListDir(scratch.path()), std::vector<std::string>{});
  };
  auto decoder = formats::MakeQcow2Decoder(&writer, options);
  ASSERT_TRUE(FeedAll(*decoder, ReadFile(resized_), 4096).ok());
  EXPECT_GT(checks, 0u);
  EXPECT_GT(std::stoull(Detail(decoder->Describe(), "spooled bytes on disk")), 0u);
}

TEST_F(SpoolLayoutTest, UnusableScratchDirectoryIsAClearError) {
  DecoderOptions options;
  options.memory_budget = 400 * kKiB;
  options.scratch_dir = dir_->File("no-such-directory");
  TempDir out;
  Decoded decoded = DecodeToFile(resized_, out.File("ours.raw"), kMiB, options);
  // The project's errno mapping: a missing directory is a wrong path.
  EXPECT_EQ(decoded.status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(decoded.status.message().find("creating a scratch file in " + options.scratch_dir +
                                          " to spool out-of-order qcow2 data: no such file or "
                                          "directory; check the path"),
            std::string::npos)
      << decoded.status.ToString();
  EXPECT_NE(decoded.status.message().find("raise the memory budget"), std::string::npos);
  // With room in memory the same image needs no scratch file at all.
  options.memory_budget = 64 * kMiB;
  decoded = DecodeToFile(resized_, out.File("ours.raw"), kMiB, options);
  EXPECT_TRUE(decoded.status.ok()) << decoded.status.ToString();
}

TEST_F(SpoolLayoutTest, ClusterReferencedTwiceThroughTheSpool) {
  std::string image = ReadFile(resized_);
  Layout layout(image);
  ASSERT_GT(layout.l1_offset, 1 * kMiB) << "the L1 table is at the end";
  uint64_t l2 = layout.L2Offset(image, 0);
  ASSERT_NE(l2, 0u);
  PutBE(image, l2 + 8, 8, GetBE(image, l2, 8));  // guest 4 KiB reads guest 0's cluster
  CheckingWriter writer;
  auto decoder = formats::MakeQcow2Decoder(&writer, {.container_size = image.size()});
  Status status = FeedAll(*decoder, image, 65536);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(status.message().find("the data for guest offset 0x1000"), std::string::npos)
      << status.ToString();
  EXPECT_NE(status.message().find("referenced twice"), std::string::npos) << status.ToString();
  EXPECT_EQ(writer.Problems(false), "");
}

// --- The spool on its own --------------------------------------------------------------------

class SpoolTest : public ::testing::Test {
 protected:
  formats::qcow2::Spool MakeSpool(uint64_t unit = 4096) {
    formats::qcow2::Spool::Options options;
    options.budget = &budget_;
    options.scratch_dir = scratch_.path();
    options.unit_size = unit;
    options.block_size = 64 * kKiB;
    return formats::qcow2::Spool(options);
  }
  static std::span<const uint8_t> Bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }
  static std::string Read(const formats::qcow2::Spool& spool, uint64_t offset, size_t length) {
    std::string out(length, '\0');
    Status status = spool.Read(offset, {reinterpret_cast<uint8_t*>(out.data()), length});
    EXPECT_TRUE(status.ok()) << status.ToString();
    return out;
  }

  TempDir scratch_;
  formats::qcow2::MemoryBudget budget_{256 * kKiB};
};

TEST_F(SpoolTest, StoresMemoryThenFileAndReadsBackAcrossBoth) {
  auto spool = MakeSpool();
  std::string data = RandomBytes(1 * kMiB, 51);
  // Appended in uneven pieces, with a gap (claimed bytes) in the middle.
  ASSERT_TRUE(spool.Append(4096, Bytes(data.substr(0, 300000))).ok());
  ASSERT_TRUE(spool.Append(4096 + 300000, Bytes(data.substr(300000, 1))).ok());
  ASSERT_TRUE(spool.Append(4096 + 300001, Bytes(data.substr(300001, 200000))).ok());
  ASSERT_TRUE(spool.Append(1 * kMiB, Bytes(data.substr(600000))).ok());
  EXPECT_GT(spool.scratch_bytes(), 0u) << "beyond the budget, bytes go to the file";
  EXPECT_LE(budget_.peak(), budget_.budget());
  EXPECT_EQ(Read(spool, 4096, 500001), data.substr(0, 500001));
  EXPECT_EQ(Read(spool, kMiB + 1000, 5000), data.substr(601000, 5000));
  EXPECT_EQ(spool.AvailableLength(4096, 600000), 500001u) << "stops at the gap";
  EXPECT_EQ(spool.AvailableLength(0, 4096), 0u);
  EXPECT_EQ(ListDir(scratch_.path()), std::vector<std::string>{});
}

TEST_F(SpoolTest, TakenUnitsAreGoneAndTheirMemoryComesBack) {
  auto spool = MakeSpool();
  std::string data = RandomBytes(128 * kKiB, 52);
  ASSERT_TRUE(spool.Append(0, Bytes(data)).ok());
  uint64_t used = budget_.used();
  EXPECT_EQ(spool.AvailableLength(8192, 4096), 4096u);
  spool.Take(8192, 4096);
  EXPECT_EQ(spool.AvailableLength(8192, 4096), 0u) << "a second reference finds nothing";
  EXPECT_EQ(spool.AvailableLength(0, 16384), 8192u);
  spool.Take(0, 8192);
  spool.Take(12288, 128 * kKiB - 12288);
  EXPECT_LT(budget_.used(), used) << "fully taken blocks are freed";
  EXPECT_EQ(spool.used_bytes(), 128 * kKiB);
}

TEST_F(SpoolTest, ZeroStretchesCostNothing) {
  auto spool = MakeSpool();
  std::string zeros(4 * kMiB, '\0');
  zeros[2 * kMiB + 5] = 1;
  ASSERT_TRUE(spool.Append(65536, Bytes(zeros)).ok());
  EXPECT_EQ(spool.stored_bytes(), 4096u) << "only the probe block with a non-zero byte";
  EXPECT_EQ(spool.scratch_bytes(), 0u);
  EXPECT_TRUE(spool.IsZero(65536, 2 * kMiB));
  EXPECT_FALSE(spool.IsZero(65536 + 2 * kMiB, 4096));
  EXPECT_EQ(Read(spool, 65536 + 2 * kMiB, 8), std::string("\0\0\0\0\0\1\0\0", 8));
}

TEST_F(SpoolTest, SpillingMovesMemoryToTheFile) {
  auto spool = MakeSpool();
  std::string data = RandomBytes(100 * kKiB, 53);
  ASSERT_TRUE(spool.Append(0, Bytes(data)).ok());
  ASSERT_EQ(spool.scratch_bytes(), 0u);
  uint64_t freed = spool.SpillMemory(64 * kKiB);
  EXPECT_GE(freed, 64 * kKiB);
  EXPECT_GT(spool.scratch_bytes(), 0u);
  EXPECT_EQ(Read(spool, 0, data.size()), data);
  auto view = spool.View(0, 100);
  EXPECT_FALSE(view.has_value()) << "spilled bytes are no longer in memory";
}

TEST_F(SpoolTest, ClearForgetsEverything) {
  auto spool = MakeSpool();
  ASSERT_TRUE(spool.Append(0, Bytes(RandomBytes(600 * kKiB, 54))).ok());
  spool.Clear();
  EXPECT_EQ(spool.AvailableLength(0, 4096), 0u);
  EXPECT_EQ(budget_.used(), 0u);
}

}  // namespace
}  // namespace cdi::test::qcow2
