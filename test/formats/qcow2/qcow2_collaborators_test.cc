// The decoder's collaborators on their own, on hand-built tables and bytes:
// the table reader, the claim queue, the snapshot table reader, the guest
// output and the gap keeper.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/qcow2/claim.h"
#include "formats/qcow2/claim_queue.h"
#include "formats/qcow2/gap_keeper.h"
#include "formats/qcow2/guest_output.h"
#include "formats/qcow2/memory_budget.h"
#include "formats/qcow2/qcow2_header.h"
#include "formats/qcow2/snapshot_table.h"
#include "formats/qcow2/spool.h"
#include "formats/qcow2/table_reader.h"
#include "test/formats/qcow2/qcow2_test_support.h"
#include "test/support/files.h"
#include "test/support/temp_dir.h"

namespace cdi::test::qcow2 {
namespace {

using formats::qcow2::Claim;
using formats::qcow2::ClaimKind;
using formats::qcow2::ClaimQueue;
using formats::qcow2::Extent;
using formats::qcow2::GapKeeper;
using formats::qcow2::GuestOutput;
using formats::qcow2::Header;
using formats::qcow2::L1Mapping;
using formats::qcow2::MappingSink;
using formats::qcow2::MemoryBudget;
using formats::qcow2::Run;
using formats::qcow2::SnapshotTableReader;
using formats::qcow2::Spool;
using formats::qcow2::TableReader;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;
constexpr char kCheck[] = "; the image is corrupt: check it with 'qemu-img check'";

// A version 3 header with 64 KiB clusters (each L1 entry maps 512 MiB), the
// refcount table at 64 KiB and the L1 table at 192 KiB.
Header MakeHeader(uint64_t virtual_size, uint32_t cluster_bits = 16, bool extended_l2 = false) {
  Header header;
  header.version = 3;
  header.geometry.cluster_bits = cluster_bits;
  header.geometry.extended_l2 = extended_l2;
  header.virtual_size = virtual_size;
  header.l1_size = static_cast<uint32_t>(header.geometry.size_to_l1(virtual_size));
  header.l1_table_offset = uint64_t{3} << cluster_bits;
  header.refcount_table_offset = uint64_t{1} << cluster_bits;
  header.refcount_table_clusters = 1;
  header.refcount_order = 4;
  return header;
}

void Put64(std::vector<uint8_t>& bytes, size_t offset, uint64_t value) {
  for (int i = 7; i >= 0; --i) {
    bytes[offset + i] = static_cast<uint8_t>(value & 0xff);
    value >>= 8;
  }
}

// What an L2 table mapped, in call order; touching zero ranges are merged.
struct Mapped {
  bool zero = false;
  uint64_t guest_offset = 0;
  uint64_t length = 0;
  uint64_t host_offset = 0;  // runs
  bool compressed = false;
  bool operator==(const Mapped&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Mapped& m) {
  return out << (m.zero         ? "zero"
                 : m.compressed ? "compressed"
                                : "run")
             << " guest " << m.guest_offset << "+" << m.length << " host " << m.host_offset;
}

class RecordingSink : public MappingSink {
 public:
  Status MapRun(const Run& run) override {
    mapped.push_back({false, run.guest_offset, run.compressed ? run.guest_length : run.length,
                      run.host_offset, run.compressed});
    if (run.compressed) compressed_lengths.push_back(run.length);
    return Status::Ok();
  }
  Status MapZero(uint64_t guest_offset, uint64_t length) override {
    if (!mapped.empty() && mapped.back().zero &&
        mapped.back().guest_offset + mapped.back().length == guest_offset) {
      mapped.back().length += length;
    } else {
      mapped.push_back({true, guest_offset, length, 0, false});
    }
    return Status::Ok();
  }
  std::vector<Mapped> mapped;
  std::vector<uint64_t> compressed_lengths;
};

// --- Table reader -----------------------------------------------------------------------

TEST(TableReaderTest, L1EntriesMapL2TablesZerosOrNothing) {
  TableReader reader(MakeHeader(1024 * kMiB + 64 * kKiB), 1 * kMiB);
  Result<L1Mapping> zero = reader.ReadL1Entry(0, 0);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->kind, L1Mapping::Kind::kZero);
  EXPECT_EQ(zero->guest_length, 512 * kMiB);
  Result<L1Mapping> last = reader.ReadL1Entry(2, 0);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->guest_offset, 1024 * kMiB);
  EXPECT_EQ(last->guest_length, 64 * kKiB) << "the last entry maps only what the disk has";
  Result<L1Mapping> past = reader.ReadL1Entry(3, 0xdeadbeef);
  ASSERT_TRUE(past.ok()) << "entries past the disk (VM state) are not checked";
  EXPECT_EQ(past->kind, L1Mapping::Kind::kPastDisk);
  // Bit 63 ("refcount is one") is not a reserved bit.
  Result<L1Mapping> table = reader.ReadL1Entry(1, 0x80000000000a0000u);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->kind, L1Mapping::Kind::kL2Table);
  EXPECT_EQ(table->l2_offset, 0xa0000u);
  EXPECT_EQ(table->guest_offset, 512 * kMiB);
}

TEST(TableReaderTest, BadL1EntriesAreRefusedByName) {
  TableReader reader(MakeHeader(1024 * kMiB), 1 * kMiB);
  EXPECT_EQ(reader.ReadL1Entry(1, 0xa0001).status().ToString(),
            std::string("[corrupt-image] qcow2: L1 entry 1 (0xa0001, guest offset 0x20000000) "
                        "has reserved bits set") +
                kCheck);
  EXPECT_EQ(reader.ReadL1Entry(0, 0xa8000).status().message(),
            std::string("qcow2: L1 entry 0 (0xa8000, guest offset 0x0) points to an L2 table at "
                        "0xa8000, not aligned to a cluster") +
                kCheck);
  EXPECT_EQ(reader.ReadL1Entry(0, 0x100000).status().message(),
            "qcow2: L1 entry 0 (0x100000, guest offset 0x0) points to an L2 table at 0x100000, "
            "past the end of the image (1048576 bytes); the image is truncated or corrupt: fetch "
            "it again, or check it with 'qemu-img check'");
}

TEST(TableReaderTest, L2TableMapsCoalescedRunsZerosAndCompressedClusters) {
  const uint64_t cluster = 64 * kKiB;
  TableReader reader(MakeHeader(16 * cluster), std::nullopt);
  std::vector<uint8_t> table(cluster, 0);
  Put64(table, 0 * 8, 0x8000000000050000u);  // copied flag: does not matter
  Put64(table, 1 * 8, 0x60000);              // contiguous with entry 0
  Put64(table, 3 * 8, 0x70000 | 1);          // zero flag with a preallocation
  // Compressed: offset 0x80100, one more sector (bits 54-61 with 64 KiB clusters).
  Put64(table, 4 * 8, (uint64_t{1} << 62) | (uint64_t{1} << 54) | 0x80100);
  Put64(table, 5 * 8, 0x90000);
  Put64(table, 16 * 8, 0xffffffffffffffffu);  // past the disk: not read
  RecordingSink sink;
  Status status = reader.ReadL2Table(0x30000, 0, table, sink);
  ASSERT_TRUE(status.ok()) << status.ToString();
  // A run goes to the sink when the next entry does not continue it, so the
  // zeros found meanwhile come first.
  std::vector<Mapped> expected = {
      {true, 2 * cluster, 2 * cluster, 0, false},    {false, 0, 2 * cluster, 0x50000, false},
      {false, 4 * cluster, cluster, 0x80100, true},  {true, 6 * cluster, 10 * cluster, 0, false},
      {false, 5 * cluster, cluster, 0x90000, false},
  };
  EXPECT_EQ(sink.mapped, expected);
  // Two sectors from 0x80100: the range ends at the second sector's end.
  EXPECT_EQ(sink.compressed_lengths, std::vector<uint64_t>{768});
}

TEST(TableReaderTest, BadL2EntriesAreRefusedByName) {
  const uint64_t cluster = 64 * kKiB;
  std::vector<uint8_t> table(cluster, 0);
  Put64(table, 2 * 8, 0x50002);
  RecordingSink sink;
  TableReader reader(MakeHeader(16 * cluster), std::nullopt);
  EXPECT_EQ(reader.ReadL2Table(0x30000, 0, table, sink).message(),
            std::string("qcow2: L2 entry 2 (0x50002) of the L2 table at 0x30000 (guest offset "
                        "0x20000) has reserved bits set") +
                kCheck);

  Header v2 = MakeHeader(16 * cluster);
  v2.version = 2;
  Put64(table, 2 * 8, 0x50001);
  EXPECT_NE(TableReader(v2, std::nullopt)
                .ReadL2Table(0x30000, 0, table, sink)
                .message()
                .find("has the zero flag, which version 2 images lack"),
            std::string::npos);

  Put64(table, 2 * 8, 0xf0000);
  EXPECT_NE(TableReader(MakeHeader(16 * cluster), 0xf0000 + 4096)
                .ReadL2Table(0x30000, 0, table, sink)
                .message()
                .find("points to host offset 0xf0000, past the end of the image (987136 bytes)"),
            std::string::npos);
}

TEST(TableReaderTest, ExtendedL2EntriesMapSubclusters) {
  const uint64_t cluster = 16 * kKiB;  // 512-byte subclusters
  TableReader reader(MakeHeader(4 * cluster, 14, true), std::nullopt);
  std::vector<uint8_t> table(cluster, 0);
  Put64(table, 0, 0x8000);
  Put64(table, 8, 0x3 | (uint64_t{1} << 34));  // subclusters 0-1 allocated, 2 zero
  Put64(table, 16, 0xc000);
  Put64(table, 24, 0xffffffffu);  // every subcluster of cluster 1 allocated
  RecordingSink sink;
  ASSERT_TRUE(reader.ReadL2Table(0x4000, 0, table, sink).ok());
  std::vector<Mapped> expected = {
      {true, 1024, cluster - 1024, 0, false},
      {false, 0, 1024, 0x8000, false},
      {true, 2 * cluster, 2 * cluster, 0, false},
      {false, cluster, cluster, 0xc000, false},
  };
  EXPECT_EQ(sink.mapped, expected);

  Put64(table, 8, 0x1 | (uint64_t{1} << 32));
  EXPECT_NE(reader.ReadL2Table(0x4000, 0, table, sink)
                .message()
                .find("marks subclusters both allocated and zero (bitmap 0x100000001)"),
            std::string::npos);
}

TEST(TableReaderTest, RefcountBlocksNameFreeClusters) {
  Header header = MakeHeader(64 * kMiB);  // 16-bit refcounts: 32768 per block
  TableReader reader(header, std::nullopt);
  std::vector<uint8_t> block(64 * kKiB, 0);
  block[1] = 1;      // cluster 0: refcount 1
  block[7] = 2;      // cluster 3: refcount 2
  block[10] = 0x80;  // cluster 5: refcount 0x8000
  std::vector<std::pair<uint64_t, uint64_t>> free;
  auto record = [&free](uint64_t first, uint64_t count) { free.emplace_back(first, count); };
  reader.ReadRefcountBlock(1, block, record);
  EXPECT_EQ(free, (std::vector<std::pair<uint64_t, uint64_t>>{
                      {32768 + 1, 2}, {32768 + 4, 1}, {32768 + 6, 32768 - 6}}));

  header.refcount_order = 0;  // 1-bit refcounts, eight to a byte
  block.assign(64 * kKiB, 0xff);
  block[0] = 0b10011111;  // clusters 5 and 6 are free
  free.clear();
  TableReader(header, std::nullopt).ReadRefcountBlock(0, block, record);
  EXPECT_EQ(free, (std::vector<std::pair<uint64_t, uint64_t>>{{5, 2}}));
}

TEST(TableReaderTest, RefcountTableEntriesNameBlocks) {
  TableReader reader(MakeHeader(64 * kMiB), 1 * kMiB);
  EXPECT_EQ(reader.ReadRefcountTableEntry(0, 0).value(), 0u);
  EXPECT_EQ(reader.ReadRefcountTableEntry(1, 0x70000).value(), 0x70000u);
  EXPECT_EQ(reader.ReadRefcountTableEntry(2, 0x70001).status().message(),
            std::string("qcow2: refcount table entry 2 (0x70001) has reserved bits set") + kCheck);
  EXPECT_EQ(
      reader.ReadRefcountTableEntry(3, 0x70200).status().message(),
      std::string("qcow2: refcount table entry 3 (0x70200) is not aligned to a cluster") + kCheck);
  EXPECT_NE(reader.ReadRefcountTableEntry(4, 0x100000)
                .status()
                .message()
                .find("points past the end of the image; the image is truncated or corrupt"),
            std::string::npos);
}

// --- Claim queue ------------------------------------------------------------------------------

TEST(ClaimQueueTest, HeaderTablesThenWhatTheyNameInHostOrder) {
  MemoryBudget budget(1 * kMiB);
  ClaimQueue queue(MakeHeader(1024 * kMiB), &budget);
  Claim next = queue.Peek();
  EXPECT_EQ(next.kind, ClaimKind::kRefcountTable);
  EXPECT_EQ(next.start, 0x10000u);
  EXPECT_EQ(next.end, 0x20000u);
  queue.Reach(ClaimKind::kRefcountTable);
  ASSERT_TRUE(queue.PushRefcountBlock({0x20000, 0}).ok());
  EXPECT_EQ(queue.Peek().kind, ClaimKind::kL1) << "blocks wait until the table has been read";
  ASSERT_TRUE(queue.FinishTable(ClaimKind::kRefcountTable).ok());
  EXPECT_EQ(queue.Peek().kind, ClaimKind::kRefcountBlock);
  EXPECT_EQ(queue.PopTable(ClaimKind::kRefcountBlock).host_offset, 0x20000u);

  EXPECT_EQ(queue.Peek().kind, ClaimKind::kL1);
  queue.Reach(ClaimKind::kL1);
  EXPECT_TRUE(queue.ReferencesPossible());
  ASSERT_TRUE(queue.PushL2Table({0x90000, 1}).ok());
  ASSERT_TRUE(queue.PushL2Table({0x80000, 0}).ok());
  ASSERT_TRUE(queue.PushRun({0x100000, 0, 4096, 0, false}).ok());
  EXPECT_EQ(queue.Peek().kind, ClaimKind::kData) << "runs wait in the heap at once";
  ASSERT_TRUE(queue.FinishTable(ClaimKind::kL1).ok());
  next = queue.Peek();
  EXPECT_EQ(next.kind, ClaimKind::kL2);
  EXPECT_EQ(next.start, 0x80000u);
  EXPECT_EQ(next.guest_offset, 0u);
  EXPECT_EQ(queue.PopTable(ClaimKind::kL2).index, 0u);
  EXPECT_EQ(queue.Peek().guest_offset, 512 * kMiB);
  EXPECT_TRUE(queue.ReferencesPossible());
  queue.PopTable(ClaimKind::kL2);
  EXPECT_FALSE(queue.ReferencesPossible()) << "every L2 table has been reached";
}

TEST(ClaimQueueTest, TiesGoToTheHeaderTablesFirst) {
  MemoryBudget budget(1 * kMiB);
  Header header = MakeHeader(1024 * kMiB);
  header.refcount_table_offset = header.l1_table_offset;
  ClaimQueue queue(header, &budget);
  EXPECT_EQ(queue.Peek().kind, ClaimKind::kL1);
}

TEST(ClaimQueueTest, RunsComeOutInHostOrder) {
  MemoryBudget budget(1 * kMiB);
  ClaimQueue queue(MakeHeader(1024 * kMiB), &budget);
  queue.Reach(ClaimKind::kRefcountTable);
  queue.Reach(ClaimKind::kL1);
  for (uint64_t host : {0xc0000u, 0xa0000u, 0xe0000u, 0xb0000u}) {
    ASSERT_TRUE(queue.PushRun({host, host, 4096, 0, false}).ok());
  }
  std::vector<uint64_t> order;
  while (queue.Peek().kind == ClaimKind::kData) order.push_back(queue.PopRun().host_offset);
  EXPECT_EQ(order, (std::vector<uint64_t>{0xa0000, 0xb0000, 0xc0000, 0xe0000}));
}

TEST(ClaimQueueTest, AnL2TableNamedTwiceIsRefused) {
  MemoryBudget budget(1 * kMiB);
  ClaimQueue queue(MakeHeader(2048 * kMiB), &budget);
  ASSERT_TRUE(queue.PushL2Table({0x80000, 0}).ok());
  ASSERT_TRUE(queue.PushL2Table({0x80000, 3}).ok());
  EXPECT_EQ(
      queue.FinishTable(ClaimKind::kL1).message(),
      std::string("qcow2: the L2 table at 0x80000 is referenced by L1 entries 0 and 3") + kCheck);
}

TEST(ClaimQueueTest, ListsBeyondTheBudgetAreAClearError) {
  MemoryBudget budget(1000);
  ClaimQueue queue(MakeHeader(1024 * kMiB), &budget);
  EXPECT_EQ(queue.PushRun({0x100000, 0, 4096, 0, false}).message(),
            "qcow2 decoding needs 2048 more bytes of memory for the list of data clusters ahead, "
            "beyond the memory budget of 1000 bytes (0 in use); raise the memory budget");
}

// --- Snapshot table reader -------------------------------------------------------------------

std::vector<uint8_t> SnapshotEntry(uint64_t l1_offset, uint32_t l1_entries, uint16_t id_size,
                                   uint16_t name_size, uint32_t extra, bool last) {
  uint64_t variable = uint64_t{extra} + id_size + name_size;
  uint64_t size = 40 + variable;
  if (!last) size = (size + 7) / 8 * 8;
  std::vector<uint8_t> entry(size, 0x5a);
  Put64(entry, 0, l1_offset);
  entry[8] = static_cast<uint8_t>(l1_entries >> 24);
  entry[9] = static_cast<uint8_t>(l1_entries >> 16);
  entry[10] = static_cast<uint8_t>(l1_entries >> 8);
  entry[11] = static_cast<uint8_t>(l1_entries);
  entry[12] = static_cast<uint8_t>(id_size >> 8);
  entry[13] = static_cast<uint8_t>(id_size);
  entry[14] = static_cast<uint8_t>(name_size >> 8);
  entry[15] = static_cast<uint8_t>(name_size);
  entry[36] = static_cast<uint8_t>(extra >> 24);
  entry[37] = static_cast<uint8_t>(extra >> 16);
  entry[38] = static_cast<uint8_t>(extra >> 8);
  entry[39] = static_cast<uint8_t>(extra);
  return entry;
}

Header SnapshotHeader(uint32_t snapshots) {
  Header header = MakeHeader(1024 * kMiB);
  header.nb_snapshots = snapshots;
  header.snapshots_offset = 0x40000;
  return header;
}

TEST(SnapshotTableReaderTest, FindsEachSnapshotsL1TableInOneByteInputs) {
  std::vector<uint8_t> table = SnapshotEntry(0x50000, 2, 1, 3, 16, false);
  std::vector<uint8_t> last = SnapshotEntry(0x60000, 1, 1, 2, 0, true);
  table.insert(table.end(), last.begin(), last.end());
  ASSERT_EQ(table.size(), 64u + 43u) << "the last entry has no padding";

  SnapshotTableReader reader(SnapshotHeader(2), 1 * kMiB);
  std::vector<std::pair<uint64_t, uint64_t>> l1s;
  uint64_t position = 0x40000;
  std::span<const uint8_t> bytes(table);
  while (!reader.done()) {
    ASSERT_FALSE(bytes.empty()) << "the reader wants more than the table holds";
    Result<uint64_t> used = reader.Read(position, bytes.first(1));
    ASSERT_TRUE(used.ok()) << used.status().ToString();
    ASSERT_EQ(*used, 1u);
    bytes = bytes.subspan(1);
    position += 1;
    if (std::optional<Extent> l1 = reader.TakeL1Table()) l1s.emplace_back(l1->start, l1->end);
  }
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(l1s,
            (std::vector<std::pair<uint64_t, uint64_t>>{{0x50000, 0x50010}, {0x60000, 0x60008}}));
}

TEST(SnapshotTableReaderTest, BadEntriesAreRefusedByName) {
  std::vector<uint8_t> entry = SnapshotEntry(0x50000, 2, 1, 3, 2000, true);
  SnapshotTableReader reader(SnapshotHeader(1), 1 * kMiB);
  EXPECT_EQ(reader.Read(0x40000, entry).status().message(),
            std::string("qcow2: snapshot table entry 0 has 2000 bytes of extra data, more than "
                        "qemu's 1024") +
                kCheck);

  entry = SnapshotEntry(0x50008, 2, 1, 3, 0, true);
  SnapshotTableReader unaligned(SnapshotHeader(1), 1 * kMiB);
  EXPECT_NE(unaligned.Read(0x40000, entry)
                .status()
                .message()
                .find("places its L1 table at 0x50008, not at a cluster boundary past the header"),
            std::string::npos);
}

// --- Guest output -----------------------------------------------------------------------------

TEST(GuestOutputTest, CoalescesZerosAndPassesDataOnAsItIs) {
  CheckingWriter writer;
  GuestOutput output(&writer);
  formats::ImageDescription image;
  image.virtual_size = 64 * kKiB;
  ASSERT_TRUE(output.Begin(image).ok());
  ASSERT_TRUE(output.Zero(0, 4096).ok());
  ASSERT_TRUE(output.Zero(4096, 4096).ok());
  std::vector<uint8_t> zeros(8192, 0);
  ASSERT_TRUE(output.Write(8192, zeros).ok());
  ASSERT_TRUE(output.Write(16384, {}).ok());
  ASSERT_TRUE(output.Zero(16384, 48 * kKiB).ok());
  ASSERT_TRUE(output.Flush().ok());
  EXPECT_EQ(output.covered(), 64 * kKiB);
  EXPECT_EQ(writer.Problems(true), "");
  ASSERT_EQ(writer.ops().size(), 4u);
  // All-zero data is written, not turned into Zero: the writer finds zeros.
  EXPECT_EQ(writer.ops()[1].kind, Op::Kind::kWrite);
  EXPECT_EQ(writer.ops()[1].length, 8192u);
  EXPECT_EQ(writer.ops()[2].kind, Op::Kind::kZero);
  EXPECT_EQ(writer.ops()[2].length, 8192u) << "touching zero ranges are one Zero";
  EXPECT_EQ(writer.ops()[3].offset, 16384u);
}

// --- Gap keeper ---------------------------------------------------------------------------------

class GapKeeperTest : public ::testing::Test {
 protected:
  GapKeeperTest() : queue_(MakeHeader(1024 * kMiB), &budget_) {
    Spool::Options options;
    options.budget = &budget_;
    options.scratch_dir = scratch_.path();
    options.unit_size = 64 * kKiB;
    auto keeper = GapKeeper::Create(options, &queue_, 16, /*refcounts_trusted=*/true);
    EXPECT_TRUE(keeper.ok());
    keeper_ = std::move(*keeper);
    image_.virtual_size = 1 * kMiB;
  }
  static std::span<const uint8_t> Bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }

  TempDir scratch_;
  MemoryBudget budget_{4 * kMiB};
  ClaimQueue queue_;
  std::unique_ptr<GapKeeper> keeper_;
  formats::ImageDescription image_;
};

TEST_F(GapKeeperTest, KeptDataIsReplayedOnceAndZeroStretchesAsZero) {
  std::string data = RandomBytes(64 * kKiB, 61);
  ASSERT_TRUE(keeper_->keeping()) << "the L1 table is still to come";
  EXPECT_EQ(keeper_->Take(0x10000, Bytes(data)).value(), data.size());
  EXPECT_EQ(keeper_->Take(0x20000, Bytes(std::string(64 * kKiB, '\0'))).value(), 64 * kKiB);
  EXPECT_TRUE(keeper_->Holds(0x10000, 128 * kKiB));

  CheckingWriter writer;
  GuestOutput output(&writer);
  ASSERT_TRUE(output.Begin(image_).ok());
  ASSERT_TRUE(keeper_->Replay({0x10000, 0, 128 * kKiB, 0, false}, output).ok());
  ASSERT_TRUE(output.Flush().ok());
  ASSERT_EQ(writer.ops().size(), 3u);
  EXPECT_EQ(writer.ops()[1].kind, Op::Kind::kWrite);
  EXPECT_EQ(writer.written_bytes(), 64 * kKiB);
  EXPECT_EQ(writer.ops()[2].kind, Op::Kind::kZero) << "the spool kept no bytes for the zeros";
  EXPECT_EQ(keeper_->replayed_bytes(), 128 * kKiB);

  EXPECT_FALSE(keeper_->Holds(0x10000, 64 * kKiB));
  Status twice = keeper_->Replay({0x10000, 256 * kKiB, 64 * kKiB, 0, false}, output);
  EXPECT_EQ(twice.code(), ErrorCode::kCorruptImage);
  EXPECT_NE(twice.message().find("the data for guest offset 0x40000 at host offset 0x10000 "
                                 "overlaps image metadata or data already mapped (a cluster "
                                 "referenced twice)"),
            std::string::npos)
      << twice.ToString();
}

TEST_F(GapKeeperTest, FreeClustersAreSkippedAndNothingIsKeptOnceNoTableCanReferToIt) {
  std::string data = RandomBytes(128 * kKiB, 62);
  keeper_->AddFreeClusters(3, 1, 0x20000);  // [0x30000, 0x40000) ahead
  EXPECT_EQ(keeper_->Take(0x20000, Bytes(data)).value(), 64 * kKiB) << "up to the free cluster";
  EXPECT_EQ(keeper_->Take(0x30000, Bytes(data).subspan(64 * kKiB)).value(), 64 * kKiB);
  EXPECT_TRUE(keeper_->Holds(0x20000, 64 * kKiB));
  EXPECT_EQ(keeper_->HeldLength(0x30000, 64 * kKiB), 0u) << "free clusters are not kept";

  keeper_->AddFreeClusters(2, 1, 0x40000);  // behind: what was kept of it goes
  EXPECT_FALSE(keeper_->Holds(0x20000, 64 * kKiB));

  ASSERT_TRUE(queue_.FinishTable(ClaimKind::kL1).ok());  // an L1 table naming no L2 table
  EXPECT_FALSE(keeper_->keeping());
  EXPECT_EQ(keeper_->Take(0x40000, Bytes(data)).value(), data.size());
  EXPECT_EQ(keeper_->HeldLength(0x40000, data.size()), 0u);
}

}  // namespace
}  // namespace cdi::test::qcow2
