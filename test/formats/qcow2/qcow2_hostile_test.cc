// Images with one header field or table entry patched, in the manner of
// qemu-iotests 060 and 080: each is refused with its own message and code,
// without a crash, and nothing is written once the error is returned.
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/formats/qcow2/qcow2_test_support.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test::qcow2 {
namespace {

using formats::DecoderOptions;

constexpr uint64_t kMiB = 1024 * 1024;

std::string Q(const std::string& path) { return "'" + path + "'"; }

struct Outcome {
  Status status;
  size_t ops_at_error = 0;
  bool begun = false;
  std::string problems;
};

// Feeds `image` in `chunk`-byte pieces until the decoder fails, then keeps
// calling it to make sure it stays failed and silent.
Outcome Decode(const std::string& image, DecoderOptions options = {}, size_t chunk = 4096,
               bool with_container_size = true) {
  if (with_container_size) options.container_size = image.size();
  CheckingWriter writer;
  auto decoder = formats::MakeQcow2Decoder(&writer, options);
  Outcome outcome;
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(image.data()), image.size());
  size_t fed = 0;
  while (fed < bytes.size() && outcome.status.ok()) {
    size_t n = std::min(chunk, bytes.size() - fed);
    outcome.status = decoder->Feed(bytes.subspan(fed, n));
    fed += n;
  }
  if (outcome.status.ok()) outcome.status = decoder->Finish();
  outcome.ops_at_error = writer.op_count();
  outcome.begun = writer.description().has_value();
  if (!outcome.status.ok()) {
    // A failed decoder repeats its error and calls the writer no more.
    Status again = fed < bytes.size() ? decoder->Feed(bytes.subspan(fed)) : decoder->Feed({});
    EXPECT_EQ(again.ToString(), outcome.status.ToString());
    EXPECT_EQ(decoder->Finish().ToString(), outcome.status.ToString());
    EXPECT_EQ(writer.op_count(), outcome.ops_at_error) << "the writer was called after the error";
  }
  outcome.problems = writer.Problems(false);
  return outcome;
}

// Refused with `code` and a message containing `text`, before Begin when `before_begin`.
void ExpectRefused(const std::string& image, ErrorCode code, const std::string& text,
                   bool before_begin, DecoderOptions options = {}) {
  for (size_t chunk : {size_t{4096}, size_t{1} << 20, size_t{7}}) {
    if (chunk == 7 && image.size() > 4 * kMiB) continue;
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    Outcome outcome = Decode(image, options, chunk);
    ASSERT_FALSE(outcome.status.ok()) << "accepted";
    EXPECT_EQ(outcome.status.code(), code) << outcome.status.ToString();
    EXPECT_NE(outcome.status.message().find(text), std::string::npos)
        << outcome.status.ToString() << "\n  expected to contain: " << text;
    EXPECT_EQ(outcome.problems, "");
    if (before_begin) {
      EXPECT_FALSE(outcome.begun) << "Begin was called before the refusal";
      EXPECT_EQ(outcome.ops_at_error, 0u);
    }
  }
}

// Every refusal tells the user what to do next.
bool SaysWhatToDo(const std::string& message) {
  for (const char* advice : {"qemu-img", "raise the memory budget", "fetch the complete image"}) {
    if (message.find(advice) != std::string::npos) return true;
  }
  return false;
}

class HostileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // Layout (64 KiB clusters): header 0, refcount table 0x10000, refcount
    // block 0x20000, L1 0x30000, L2 0x40000, data 0x50000 (guest 0),
    // 0x60000 (guest 64 KiB), 0x70000 (guest 32 MiB).
    std::string good = dir_->File("good.qcow2");
    Sh("qemu-img create -q -f qcow2 " + Q(good) + " 64M");
    Sh("qemu-io -f qcow2 -c 'write -P 0x11 0 128k' -c 'write -P 0x22 32M 64k' " + Q(good) +
       " >/dev/null");
    good_ = new std::string(ReadFile(good));

    std::string raw = dir_->File("text.raw");
    std::string text;
    while (text.size() < 256 * 1024)
      text += "compressible line " + std::to_string(text.size()) + "\n";
    text.resize(256 * 1024);
    WriteFile(raw, text);
    std::string compressed = dir_->File("compressed.qcow2");
    Sh("qemu-img convert -c -O qcow2 " + Q(raw) + " " + Q(compressed));
    compressed_ = new std::string(ReadFile(compressed));

    std::string v2 = dir_->File("v2.qcow2");
    Sh("qemu-img convert -O qcow2 -o compat=0.10 " + Q(good) + " " + Q(v2));
    v2_ = new std::string(ReadFile(v2));

    std::string extended = dir_->File("extended.qcow2");
    Sh("qemu-img create -q -f qcow2 -o extended_l2=on " + Q(extended) + " 64M");
    Sh("qemu-io -f qcow2 -c 'write -P 0x33 0 8k' " + Q(extended) + " >/dev/null");
    extended_ = new std::string(ReadFile(extended));
  }
  static void TearDownTestSuite() {
    delete good_;
    delete compressed_;
    delete v2_;
    delete extended_;
    delete dir_;
  }

  static std::string Good() { return *good_; }
  static uint64_t L2(const std::string& image) { return Layout(image).L2Offset(image, 0); }

  static TempDir* dir_;
  static std::string* good_;
  static std::string* compressed_;
  static std::string* v2_;
  static std::string* extended_;
};

TempDir* HostileTest::dir_ = nullptr;
std::string* HostileTest::good_ = nullptr;
std::string* HostileTest::compressed_ = nullptr;
std::string* HostileTest::v2_ = nullptr;
std::string* HostileTest::extended_ = nullptr;

TEST_F(HostileTest, TheUnpatchedImagesDecode) {
  for (const std::string* image : {good_, compressed_, v2_, extended_}) {
    Outcome outcome = Decode(*image);
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
    EXPECT_EQ(outcome.problems, "");
  }
  // The layout the patches below rely on.
  Layout layout(Good());
  EXPECT_EQ(layout.l1_offset, 0x30000u);
  EXPECT_EQ(L2(Good()), 0x40000u);
  EXPECT_EQ(GetBE(Good(), 0x40000, 8), 0x8000000000050000u);
}

// --- Header ------------------------------------------------------------------------------

TEST_F(HostileTest, BadMagic) {
  std::string image = Good();
  image[3] = 'x';
  ExpectRefused(image, ErrorCode::kCorruptImage, "not a qcow2 image", true);
}

TEST_F(HostileTest, UnknownVersions) {
  std::string image = Good();
  PutBE(image, 4, 4, 1);
  ExpectRefused(image, ErrorCode::kUnsupported, "qcow2 version 1 is not supported", true);
  PutBE(image, 4, 4, 4);
  ExpectRefused(image, ErrorCode::kUnsupported, "qcow2 version 4 is not supported", true);
}

TEST_F(HostileTest, BackingFileMadeByQemuImg) {
  TempDir work;
  Sh("qemu-img create -q -f qcow2 " + Q(work.File("base.qcow2")) + " 64M");
  Sh("qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 " + Q(work.File("overlay.qcow2")));
  ExpectRefused(ReadFile(work.File("overlay.qcow2")), ErrorCode::kUnsupported,
                "qcow2 backing files are not supported; flatten the image with qemu-img convert",
                true);
}

TEST_F(HostileTest, ExternalDataFileMadeByQemuImg) {
  TempDir work;
  Sh("qemu-img create -q -f qcow2 -o data_file=" + Q(work.File("data.raw")) + " " +
     Q(work.File("ext.qcow2")) + " 64M");
  ExpectRefused(ReadFile(work.File("ext.qcow2")), ErrorCode::kUnsupported,
                "external data file are not supported", true);
}

TEST_F(HostileTest, LuksEncryptionMadeByQemuImg) {
  TempDir work;
  // qemu-img times its key derivation by the thread's CPU clock; where that
  // clock ticks coarsely a short measurement reads zero and qemu-img gives up
  // ("Unable to get accurate CPU usage"). Each try is an independent draw.
  RunResult created;
  for (int attempt = 0; attempt < 20 && created.exit_code != 0; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
    created = cdi::test::Run({"qemu-img", "create", "-q", "-f", "qcow2", "--object",
                              "secret,id=sec0,data=secret", "-o",
                              "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50",
                              work.File("luks.qcow2"), "16M"});
  }
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ExpectRefused(ReadFile(work.File("luks.qcow2")), ErrorCode::kUnsupported,
                "encrypted qcow2 images (LUKS) are not supported", true);
}

TEST_F(HostileTest, AesEncryption) {
  std::string image = Good();
  PutBE(image, 32, 4, 1);  // crypt_method
  ExpectRefused(image, ErrorCode::kUnsupported, "encrypted qcow2 images (AES) are not supported",
                true);
  PutBE(image, 32, 4, 7);
  ExpectRefused(image, ErrorCode::kCorruptImage, "unknown encryption method 7", true);
}

TEST_F(HostileTest, CorruptBit) {
  std::string image = Good();
  PutBE(image, 72, 8, 2);
  ExpectRefused(
      image, ErrorCode::kCorruptImage,
      "marked corrupt (incompatible feature bit 1); repair it with 'qemu-img check -r all'", true);
}

TEST_F(HostileTest, UnknownIncompatibleFeaturesAreNamed) {
  std::string image = Good();
  PutBE(image, 72, 8, (uint64_t{1} << 5) | (uint64_t{1} << 40));
  ExpectRefused(image, ErrorCode::kUnsupported,
                "incompatible features this importer does not know: bit 5, bit 40", true);
  // A name from the image's own feature name table is shown with the bit.
  size_t entry = image.find("extended L2 entries");
  ASSERT_NE(entry, std::string::npos);
  image[entry - 1] = 5;  // the entry's bit number
  ExpectRefused(image, ErrorCode::kUnsupported, "bit 5 (extended L2 entries), bit 40", true);
}

TEST_F(HostileTest, UnknownCompressionType) {
  std::string image = Good();
  ASSERT_GE(GetBE(image, 100, 4), 112u);  // header_length covers compression_type
  PutBE(image, 72, 8, 8);                 // compression type bit
  image[104] = 2;
  ExpectRefused(image, ErrorCode::kUnsupported, "qcow2 compression type 2 is unknown", true);
  image[104] = 0;
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "the compression type bit is set but the compression type is zlib", true);
  PutBE(image, 72, 8, 0);
  image[104] = 1;
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "compression type 1 is set without the compression type bit", true);
}

TEST_F(HostileTest, ClusterBitsOutsideQemuLimits) {
  std::string image = Good();
  PutBE(image, 20, 4, 8);
  ExpectRefused(image, ErrorCode::kCorruptImage, "cluster_bits is 8", true);
  PutBE(image, 20, 4, 22);
  ExpectRefused(image, ErrorCode::kUnsupported, "larger than the 2 MiB that qemu supports", true);
  image = *extended_;
  PutBE(image, 20, 4, 13);
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "extended L2 entries need clusters of at least 16 KiB", true);
}

TEST_F(HostileTest, HeaderLength) {
  std::string image = Good();
  PutBE(image, 100, 4, 96);
  ExpectRefused(image, ErrorCode::kCorruptImage, "header_length 96 is not a multiple of 8", true);
  PutBE(image, 100, 4, 108);
  ExpectRefused(image, ErrorCode::kCorruptImage, "header_length 108", true);
  PutBE(image, 100, 4, 131072);
  ExpectRefused(image, ErrorCode::kCorruptImage, "exceeds the cluster size", true);
}

TEST_F(HostileTest, HeaderExtensionOutsideTheFirstCluster) {
  std::string image = Good();
  uint64_t extension = GetBE(image, 100, 4);
  ASSERT_EQ(GetBE(image, extension, 4), 0x6803f857u);  // the feature name table
  PutBE(image, extension + 4, 4, 0x10000);
  ExpectRefused(image, ErrorCode::kCorruptImage, "past the end of the first cluster", true);
}

TEST_F(HostileTest, RefcountOrder) {
  std::string image = Good();
  PutBE(image, 96, 4, 7);
  ExpectRefused(image, ErrorCode::kCorruptImage, "refcount_order 7 exceeds 6", true);
}

TEST_F(HostileTest, L1TableLimits) {
  std::string image = Good();
  PutBE(image, 36, 4, (32 * kMiB / 8) + 1);
  ExpectRefused(image, ErrorCode::kUnsupported, "exceeds qemu's limit of 32 MiB", true);
  image = Good();
  PutBE(image, 24, 8, uint64_t{1} << 40);  // 1 TiB needs 2048 entries, the table has 1
  ExpectRefused(image, ErrorCode::kCorruptImage, "the L1 table has 1 entries, too few", true);
  image = Good();
  PutBE(image, 40, 8, 0x30200);
  ExpectRefused(image, ErrorCode::kCorruptImage, "L1 table offset 0x30200 is not aligned", true);
  PutBE(image, 40, 8, 0);
  ExpectRefused(image, ErrorCode::kCorruptImage, "L1 table at 0x0 overlaps the header cluster",
                true);
  PutBE(image, 40, 8, 0x100000);
  ExpectRefused(image, ErrorCode::kCorruptImage, "extends past the end of the image", true);
}

TEST_F(HostileTest, L1TableBeyondAnImageOfUnknownLength) {
  std::string image = Good();
  PutBE(image, 40, 8, 0x100000);
  Outcome outcome = Decode(image, {}, 4096, /*with_container_size=*/false);
  EXPECT_EQ(outcome.status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(outcome.status.message().find("truncated"), std::string::npos)
      << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find("the L1 table at host offset 0x100000"),
            std::string::npos)
      << outcome.status.ToString();
}

TEST_F(HostileTest, RefcountTable) {
  std::string image = Good();
  PutBE(image, 56, 4, 0);
  ExpectRefused(image, ErrorCode::kCorruptImage, "has no refcount table", true);
  image = Good();
  PutBE(image, 56, 4, 200);  // 200 clusters of 64 KiB: more than 8 MiB
  ExpectRefused(image, ErrorCode::kUnsupported, "exceeds qemu's limit of 8 MiB", true);
  image = Good();
  PutBE(image, 48, 8, 0x10008);
  ExpectRefused(image, ErrorCode::kCorruptImage, "refcount table offset 0x10008 is not aligned",
                true);
  image = Good();
  PutBE(image, 0x10000, 8, 0x20001);
  ExpectRefused(image, ErrorCode::kCorruptImage, "refcount table entry 0 (0x20001) has reserved",
                false);
}

TEST_F(HostileTest, SnapshotTable) {
  std::string image = Good();
  PutBE(image, 60, 4, 70000);
  ExpectRefused(image, ErrorCode::kCorruptImage, "70000 internal snapshots", true);
  PutBE(image, 60, 4, 1);
  PutBE(image, 64, 8, 0x12345);
  ExpectRefused(image, ErrorCode::kCorruptImage, "snapshot table offset 0x12345 is not aligned",
                true);
}

TEST_F(HostileTest, SnapshotTableEntries) {
  TempDir work;
  std::string path = work.File("snap.qcow2");
  Sh("cp " + Q(dir_->File("good.qcow2")) + " " + Q(path));
  Sh("qemu-img snapshot -c first " + Q(path));
  const std::string base = ReadFile(path);
  const uint64_t table = GetBE(base, 64, 8);
  ASSERT_EQ(GetBE(base, 60, 4), 1u);
  ASSERT_TRUE(Decode(base).status.ok());

  std::string image = base;
  PutBE(image, table + 36, 4, 2000);  // extra_data_size
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "snapshot table entry 0 has 2000 bytes of extra data, more than qemu's 1024",
                false);
  image = base;
  PutBE(image, table, 8, GetBE(image, table, 8) + 512);  // the snapshot's L1 table offset
  ExpectRefused(image, ErrorCode::kCorruptImage, "not at a cluster boundary", false);
  image = base;
  PutBE(image, table, 8, 0x1000000);
  ExpectRefused(image, ErrorCode::kCorruptImage, "past the end of the image", false);
}

TEST_F(HostileTest, TruncatedHeader) {
  Outcome outcome = Decode(Good().substr(0, 50), {}, 4096, /*with_container_size=*/false);
  EXPECT_EQ(outcome.status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(outcome.status.message().find("inside its header"), std::string::npos);
  EXPECT_FALSE(outcome.begun);
}

// --- L1 entries ----------------------------------------------------------------------------

TEST_F(HostileTest, L1Entries) {
  const uint64_t l1 = Layout(Good()).l1_offset;
  std::string image = Good();
  PutBE(image, l1, 8, 0x8000000000040000u | 0x100);  // reserved bit 8
  ExpectRefused(image, ErrorCode::kCorruptImage, "L1 entry 0 (0x8000000000040100", false);
  ExpectRefused(image, ErrorCode::kCorruptImage, "has reserved bits set", false);
  PutBE(image, l1, 8, 0x8000000000048000u);
  ExpectRefused(image, ErrorCode::kCorruptImage, "not aligned to a cluster", false);
  PutBE(image, l1, 8, 0x8000000001000000u);
  ExpectRefused(image, ErrorCode::kCorruptImage, "past the end of the image", false);
}

TEST_F(HostileTest, L2TableOnTopOfOtherMetadata) {
  const uint64_t l1 = Layout(Good()).l1_offset;
  std::string image = Good();
  PutBE(image, l1, 8, 0x8000000000010000u);  // the refcount table
  ExpectRefused(image, ErrorCode::kCorruptImage, "overlaps other metadata", false);
  PutBE(image, l1, 8, 0x8000000000030000u);  // the L1 table itself
  ExpectRefused(image, ErrorCode::kCorruptImage, "overlaps the L1 table", false);
  // A second L2 table where the first one maps data.
  image = Good();
  PutBE(image, 24, 8, 1024 * kMiB);
  PutBE(image, 36, 4, 2);
  PutBE(image, l1 + 8, 8, 0x8000000000050000u);
  ExpectRefused(image, ErrorCode::kCorruptImage, "host offset 0x50000 overlaps", false);
}

TEST_F(HostileTest, L2TableReferencedTwice) {
  std::string image = Good();
  PutBE(image, 24, 8, 1024 * kMiB);  // two L1 entries
  PutBE(image, 36, 4, 2);
  const uint64_t l1 = Layout(image).l1_offset;
  PutBE(image, l1 + 8, 8, GetBE(image, l1, 8));
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "the L2 table at 0x40000 is referenced by L1 entries 0 and 1", false);
}

// --- L2 entries ----------------------------------------------------------------------------

TEST_F(HostileTest, L2EntryReservedBitsAndAlignment) {
  const uint64_t l2 = L2(Good());
  std::string image = Good();
  PutBE(image, l2, 8, 0x8000000000050000u | 0x2);  // reserved bit 1
  ExpectRefused(image, ErrorCode::kCorruptImage, "has reserved bits set", false);
  PutBE(image, l2, 8, 0x8100000000050000u);  // reserved bit 56
  ExpectRefused(image, ErrorCode::kCorruptImage, "has reserved bits set", false);
  PutBE(image, l2, 8, 0x8000000000050200u);
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "L2 entry 0 (0x8000000000050200) of the L2 table at 0x40000 (guest offset 0x0) "
                "points to host offset 0x50200, not aligned to a cluster",
                false);
  PutBE(image, l2, 8, 0x8000000010000000u);
  ExpectRefused(image, ErrorCode::kCorruptImage, "past the end of the image", false);
}

TEST_F(HostileTest, DataClusterOnTopOfMetadata) {
  const uint64_t l2 = L2(Good());
  std::string image = Good();
  PutBE(image, l2, 8, 0x8000000000030000u);  // the L1 table, already passed
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "the data for guest offset 0x0 at host offset 0x30000 overlaps image metadata",
                false);
  PutBE(image, l2, 8, 0x8000000000020000u);  // the refcount block
  ExpectRefused(image, ErrorCode::kCorruptImage, "overlaps image metadata", false);
  PutBE(image, l2, 8, 0x8000000000040000u);  // the L2 table itself
  ExpectRefused(image, ErrorCode::kCorruptImage, "overlaps", false);
}

TEST_F(HostileTest, DataClusterReferencedTwice) {
  const uint64_t l2 = L2(Good());
  std::string image = Good();
  PutBE(image, l2 + 8, 8, GetBE(image, l2, 8));  // guest 64 KiB -> host 0x50000 as well
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "host cluster 0x50000 is referenced twice, for guest offsets 0x0 and 0x10000",
                false);
}

// A data cluster whose refcount is 0 while an L2 table maps it, the L2 table
// coming after the data (as after a resize): the data was let go of as free
// when it passed. qemu-img check reports exactly this, and repairs it.
TEST_F(HostileTest, FreeClusterMappedByALaterL2Table) {
  constexpr uint64_t kRefcountBlock = 0x20000;  // 16-bit refcounts, one per cluster
  std::string image = Good();
  ASSERT_EQ(image.size(), 0x80000u);
  // The L2 table moves behind the data: a copy in cluster 8, the L1 entry
  // naming it, the refcounts following.
  image += image.substr(0x40000, 0x10000);
  PutBE(image, Layout(image).l1_offset, 8, 0x8000000000080000u);
  PutBE(image, kRefcountBlock + 8 * 2, 2, 1);
  PutBE(image, kRefcountBlock + 4 * 2, 2, 0);
  Outcome moved = Decode(image);
  ASSERT_TRUE(moved.status.ok()) << "the moved layout itself must decode: "
                                 << moved.status.ToString();

  PutBE(image, kRefcountBlock + 5 * 2, 2, 0);  // the data of guest offset 0
  std::string path = dir_->File("free-but-mapped.qcow2");
  WriteFile(path, image);
  RunResult check = test::Run({"qemu-img", "check", path});
  EXPECT_NE((check.out + check.err).find("ERROR cluster 5 refcount=0 reference=1"), std::string::npos)
      << check.out << check.err;
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "qcow2: the data for guest offset 0x0 at host offset 0x50000 lies in a cluster "
                "that the refcounts mark free (refcount 0), yet a table maps it: the image's "
                "metadata is inconsistent (qemu-img check reports it as 'refcount=0 "
                "reference=1'); repair the image with 'qemu-img check -r all IMAGE', then "
                "import it again",
                false);

  // What the message suggests works.
  RunResult repair = test::Run({"qemu-img", "check", "-r", "all", path});
  EXPECT_EQ(repair.exit_code, 0) << repair.out << repair.err;
  Outcome repaired = Decode(ReadFile(path));
  EXPECT_TRUE(repaired.status.ok()) << repaired.status.ToString();
  EXPECT_EQ(repaired.problems, "");
}

TEST_F(HostileTest, ZeroFlagInVersion2) {
  std::string image = *v2_;
  const uint64_t l2 = L2(image);
  PutBE(image, l2, 8, GetBE(image, l2, 8) | 1);
  ExpectRefused(image, ErrorCode::kCorruptImage, "the zero flag, which version 2 images lack",
                false);
}

TEST_F(HostileTest, CompressedEntries) {
  const std::string& base = *compressed_;
  const uint64_t l2 = L2(base);
  const uint64_t entry = GetBE(base, l2, 8);
  ASSERT_TRUE(entry & (uint64_t{1} << 62)) << "the first cluster is compressed";
  const uint64_t offset = entry & ((uint64_t{1} << 54) - 1);

  std::string image = base;
  PutBE(image, l2, 8, entry | (uint64_t{1} << 63));
  ExpectRefused(image, ErrorCode::kCorruptImage, "is compressed but has the copied flag set",
                false);
  image = base;
  PutBE(image, l2, 8, (entry & ~((uint64_t{1} << 54) - 1)) | 0x100);
  ExpectRefused(image, ErrorCode::kCorruptImage, "points into the header cluster", false);
  image = base;
  PutBE(image, l2, 8, (entry & ~((uint64_t{1} << 54) - 1)) | (image.size() + 4096));
  ExpectRefused(image, ErrorCode::kCorruptImage, "compressed data extending past the end", false);

  // Garbage where the deflate stream should be.
  image = base;
  for (int i = 0; i < 16; ++i) image[offset + i] = static_cast<char>(0xff);
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "the compressed cluster for guest offset 0x0 at host offset " +
                    std::string(offset == 0 ? "" : "0x"),
                false);
  ExpectRefused(image, ErrorCode::kCorruptImage, "not valid deflate data", false);

  // A stream cut short: one sector where several are needed.
  image = base;
  PutBE(image, l2, 8, (entry & ((uint64_t{1} << 62) | ((uint64_t{1} << 54) - 1))));
  ExpectRefused(image, ErrorCode::kCorruptImage, "ends after", false);
}

// Raw deflate (as qemu writes it) of `length` bytes of 'a'.
std::string Deflate(size_t length) {
  std::string input(length, 'a');
  std::string output(length + 1024, '\0');
  z_stream stream{};
  deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY);
  stream.next_in = reinterpret_cast<Bytef*>(input.data());
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = reinterpret_cast<Bytef*>(output.data());
  stream.avail_out = static_cast<uInt>(output.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  output.resize(stream.total_out);
  deflateEnd(&stream);
  return output;
}

TEST_F(HostileTest, CompressedClusterMustInflateToExactlyOneCluster) {
  const std::string& base = *compressed_;
  const uint64_t l2 = L2(base);
  const uint64_t entry = GetBE(base, l2, 8);
  const uint64_t offset = entry & ((uint64_t{1} << 54) - 1);
  const uint64_t sectors = ((entry >> 54) & 0xff) + 1;
  for (const auto& [length, message] : std::vector<std::pair<size_t, std::string>>{
           {128 * 1024, "inflates to more than one cluster of 65536 bytes"},
           {32 * 1024, "inflates to 32768 bytes instead of one cluster of 65536"}}) {
    std::string stream = Deflate(length);
    ASSERT_LE(stream.size(), sectors * 512 - offset % 512) << "fits the descriptor's sectors";
    std::string image = base;
    image.replace(offset, stream.size(), stream);
    ExpectRefused(image, ErrorCode::kCorruptImage, message, false);
  }

  // zstd: a frame whose header announces another size.
  TempDir work;
  WriteFile(work.File("a.raw"), std::string(128 * 1024, 'a'));
  Sh("qemu-img convert -c -O qcow2 -o compression_type=zstd " + Q(work.File("a.raw")) + " " +
     Q(work.File("z.qcow2")));
  std::string image = ReadFile(work.File("z.qcow2"));
  const uint64_t zentry = GetBE(image, L2(image), 8);
  ASSERT_TRUE(zentry & (uint64_t{1} << 62));
  const uint64_t zoffset = zentry & ((uint64_t{1} << 54) - 1);
  // Frame header: magic (4), descriptor (1), window (1, unless single
  // segment), then the content size in 1, 2 (value - 256), 4 or 8 bytes.
  const uint8_t descriptor = static_cast<uint8_t>(image[zoffset + 4]);
  const bool single_segment = (descriptor >> 5) & 1;
  const int size_flag = descriptor >> 6;
  ASSERT_EQ(size_flag, 1) << "qemu's 64 KiB frames carry a 2-byte content size";
  const size_t at = zoffset + 5 + (single_segment ? 0 : 1);
  image[at] = 0;  // little-endian 32768 - 256
  image[at + 1] = 0x7f;
  ExpectRefused(image, ErrorCode::kCorruptImage,
                "compressed zstd frame holds 32768 bytes instead of one cluster of 65536", false);
}

TEST_F(HostileTest, ExtendedL2Bitmaps) {
  const std::string& base = *extended_;
  const uint64_t l2 = L2(base);
  const uint64_t entry = GetBE(base, l2, 8);
  const uint64_t bitmap = GetBE(base, l2 + 8, 8);
  ASSERT_EQ(bitmap, 0xfu) << "8 KiB written: four 2 KiB subclusters allocated";

  std::string image = base;
  PutBE(image, l2 + 8, 8, bitmap | (uint64_t{1} << 32));  // subcluster 0 allocated and zero
  ExpectRefused(image, ErrorCode::kCorruptImage, "both allocated and zero", false);
  image = base;
  PutBE(image, l2 + 16 + 8, 8, 0x3);  // second cluster: allocated subclusters, no offset
  ExpectRefused(image, ErrorCode::kCorruptImage, "has allocated subclusters (bitmap 0x3) but no",
                false);
  image = base;
  PutBE(image, l2, 8, entry | 1);  // bit 0 is reserved with extended L2 entries
  ExpectRefused(image, ErrorCode::kCorruptImage, "reserved with extended L2 entries", false);
  image = base;
  PutBE(image, l2 + 16, 8, (uint64_t{1} << 62) | 0x50000);
  PutBE(image, l2 + 24, 8, 1);
  ExpectRefused(image, ErrorCode::kCorruptImage, "is compressed but has a subcluster bitmap",
                false);
}

// --- Truncation and memory -------------------------------------------------------------------

TEST_F(HostileTest, TruncatedImageIsAnErrorNotZeros) {
  std::string image = Good();
  image.resize(0x58000);  // half of the first data cluster
  // Length unknown: found at the end of the stream.
  Outcome outcome = Decode(image, {}, 4096, /*with_container_size=*/false);
  EXPECT_EQ(outcome.status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(outcome.status.message().find("qcow2 image is truncated: it ends after 360448 bytes"),
            std::string::npos)
      << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find("fetch the complete image again"), std::string::npos);
  // Length known: found as soon as a table points past it.
  outcome = Decode(image, {}, 4096, /*with_container_size=*/true);
  EXPECT_EQ(outcome.status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(outcome.status.message().find("past the end of the image (360448 bytes)"),
            std::string::npos)
      << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find("fetch it again"), std::string::npos);
}

TEST_F(HostileTest, ContainerShorterThanAnnounced) {
  std::string image = Good();
  DecoderOptions options;
  options.container_size = image.size() + 65536;
  Outcome outcome = Decode(image, options, 4096, /*with_container_size=*/false);
  EXPECT_EQ(outcome.status.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(outcome.status.message().find("truncated"), std::string::npos)
      << outcome.status.ToString();
}

TEST_F(HostileTest, BudgetTooSmallForTheClusterSize) {
  TempDir work;
  Sh("qemu-img create -q -f qcow2 -o cluster_size=2M " + Q(work.File("big.qcow2")) + " 64M");
  DecoderOptions options;
  options.memory_budget = 4 * kMiB;
  ExpectRefused(ReadFile(work.File("big.qcow2")), ErrorCode::kInvalidArgument,
                "the memory budget of 4194304 bytes is too small to decode a qcow2 image with "
                "2097152-byte clusters",
                true, options);
}

// A header may claim a 32 MiB L1 table; memory must not follow the claim.
class LargeL1Test : public HostileTest {
 protected:
  // An image whose L1 table of 4M entries starts at the end of the good
  // image; `entry(i)` gives the entries.
  static std::string WithLargeL1(const std::function<uint64_t(uint64_t)>& entry) {
    std::string image = Good();
    const uint64_t entries = 32 * kMiB / 8;
    const uint64_t l1 = (image.size() + 0xffff) & ~uint64_t{0xffff};
    image.resize(l1, '\0');
    PutBE(image, 24, 8, entries << 29);  // each entry maps 512 MiB
    PutBE(image, 36, 4, entries);
    PutBE(image, 40, 8, l1);
    image.resize(l1 + entries * 8, '\0');
    for (uint64_t i = 0; i < entries; ++i) {
      uint64_t value = entry(i);
      if (value != 0) PutBE(image, l1 + i * 8, 8, value);
    }
    return image;
  }
};

TEST_F(LargeL1Test, ZeroEntriesDecodeWithinASmallBudget) {
  std::string image = WithLargeL1([](uint64_t) { return 0; });
  DecoderOptions options;
  options.memory_budget = 2 * kMiB;
  options.container_size = image.size();
  CheckingWriter writer;
  auto decoder = formats::MakeQcow2Decoder(&writer, options);
  ASSERT_TRUE(FeedAll(*decoder, image, 1 << 20).ok());
  EXPECT_EQ(writer.Problems(true), "");
  EXPECT_LE(std::stoull(Detail(decoder->Describe(), "peak memory")), options.memory_budget);
}

TEST_F(LargeL1Test, ManyL2TablesExhaustASmallBudgetWithAClearMessage) {
  // Every entry names a distinct L2 table past the L1 table; tracking them
  // all would need 64 MiB. The image's length is not known up front.
  const uint64_t l2_base = 0x4000000;
  std::string image = WithLargeL1([&](uint64_t i) { return l2_base + (i << 16); });
  DecoderOptions options;
  options.memory_budget = 2 * kMiB;
  Outcome outcome = Decode(image, options, 1 << 20, /*with_container_size=*/false);
  EXPECT_EQ(outcome.status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(outcome.status.message().find("beyond the memory budget of 2097152 bytes"),
            std::string::npos)
      << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find("raise the memory budget"), std::string::npos);
}

TEST_F(HostileTest, WriterErrorsStopDecodingAndComeBackUnchanged) {
  CheckingWriter writer;
  writer.FailWriteNumber(1);
  auto decoder = formats::MakeQcow2Decoder(&writer, {});
  Status status = FeedAll(*decoder, Good(), 4096);
  EXPECT_EQ(status.ToString(), "[io] injected write failure");
  size_t ops = writer.op_count();
  EXPECT_EQ(decoder->Finish().ToString(), status.ToString());
  EXPECT_EQ(writer.op_count(), ops);

  CheckingWriter refusing;
  refusing.FailBeginWith(
      TooSmallError("virtual image size 67108864 is larger than the reported "
                    "available storage 1024. A larger PVC is required"));
  decoder = formats::MakeQcow2Decoder(&refusing, {});
  status = FeedAll(*decoder, Good(), 4096);
  EXPECT_EQ(status.code(), ErrorCode::kTooSmall);
  EXPECT_EQ(refusing.op_count(), 1u) << "only Begin";
}

TEST_F(HostileTest, EveryRefusalSaysWhatToDo) {
  // A sample across the families above.
  std::vector<std::string> images;
  std::string image = Good();
  PutBE(image, 8, 8, 0x1000);
  images.push_back(image);
  image = Good();
  PutBE(image, 72, 8, 2);
  images.push_back(image);
  image = Good();
  PutBE(image, L2(image), 8, 0x8000000000050200u);
  images.push_back(image);
  image = Good();
  image.resize(0x58000);
  images.push_back(image);
  for (const std::string& bad : images) {
    Outcome outcome = Decode(bad);
    ASSERT_FALSE(outcome.status.ok());
    EXPECT_TRUE(SaysWhatToDo(outcome.status.message())) << outcome.status.message();
  }
}

}  // namespace
}  // namespace cdi::test::qcow2
