// The checkpoint file: what it holds, that it is written atomically, and
// that a truncated, edited or foreign file is refused with a reason.
#include "importer/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "cdi/quantity.h"
#include "importer/qcow2_resume.h"
#include "importer/resume_xz.h"
#include "test/support/files.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

Checkpoint Sample() {
  Checkpoint c;
  c.url = "https://images.example.com/disk.img";
  c.length = 10737418240;
  c.etag = "\"5f3e-6c1a\"";
  c.last_modified = "Tue, 01 Dec 2026 10:00:00 GMT";
  c.target = "/data/disk.img";
  c.requested_size = 21474836480;
  c.source_offset = c.target_bytes = 5368709120;
  return c;
}

void ExpectSame(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.url, b.url);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.etag, b.etag);
  EXPECT_EQ(a.last_modified, b.last_modified);
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.requested_size, b.requested_size);
  EXPECT_EQ(a.source_offset, b.source_offset);
  EXPECT_EQ(a.target_bytes, b.target_bytes);
  EXPECT_EQ(a.format_state, b.format_state);
}

TEST(CheckpointTest, LivesBesideThePartialFile) {
  EXPECT_EQ(CheckpointPath("/data/disk.img"), "/data/.disk.img.checkpoint");
  EXPECT_EQ(PartialPath("/data/disk.img"), "/data/.disk.img.partial");
  EXPECT_EQ(CheckpointPath("disk.img"), "./.disk.img.checkpoint");
  EXPECT_EQ(CheckpointPath("/disk.img"), "/.disk.img.checkpoint");
}

TEST(CheckpointTest, ABlockDeviceKeepsItsCheckpointInTheDirectoryGiven) {
  EXPECT_EQ(CheckpointPath("/dev/cdi-block-volume", "/scratch"),
            "/scratch/.cdi-block-volume.checkpoint");
  EXPECT_EQ(CheckpointPath("/dev/loop3", "/scratch/"), "/scratch/.loop3.checkpoint");
  EXPECT_EQ(CheckpointPath("/dev/loop3", "/"), "/.loop3.checkpoint");
  EXPECT_EQ(CheckpointPath("/dev/loop3", "ckpt"), "ckpt/.loop3.checkpoint");
}

TEST(CheckpointTest, Qcow2HeldRangesRoundTrip) {
  const std::vector<std::pair<uint64_t, uint64_t>> held = {{65536, 70000}, {131072, 196608}};
  EXPECT_EQ(EncodeQcow2Held(held), "held 65536-70000 131072-196608");
  EXPECT_EQ(EncodeQcow2Held({}), "");
  Result<std::vector<std::pair<uint64_t, uint64_t>>> back =
      DecodeQcow2Held(EncodeQcow2Held(held), 196608);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, held);
  back = DecodeQcow2Held("", 4096);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

TEST(CheckpointTest, DamagedQcow2HeldRangesAreRefusedByName) {
  struct Case {
    std::string state;
    std::string message;
  };
  const std::string prefix = "the checkpoint's held ranges are damaged: ";
  for (const Case& c : std::vector<Case>{
           {"kept 1-2", "it does not begin with 'held'"},
           {"held 1-2,3-4", "'2,3-4' is not a number"},
           {"held 12", "'12' is no range"},
           {"held 1-x", "'x' is not a number"},
           {"held  1-2", "'' is no range"},
           {"held 5-5", "the range 5-5 is empty, out of order, or not before the point 100"},
           {"held 10-20 5-8", "the range 5-8 is empty, out of order, or not before the point 100"},
           {"held 90-120", "the range 90-120 is empty, out of order, or not before the point 100"},
       }) {
    SCOPED_TRACE(c.state);
    Result<std::vector<std::pair<uint64_t, uint64_t>>> held = DecodeQcow2Held(c.state, 100);
    ASSERT_FALSE(held.ok());
    EXPECT_EQ(held.status().code(), ErrorCode::kCorruptImage);
    EXPECT_EQ(held.status().message(), prefix + c.message);
  }
}

TEST(CheckpointTest, TextRoundTrips) {
  Result<std::string> text = EncodeCheckpoint(Sample());
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(text->rfind("cdi-import-checkpoint 1\nurl https://images.example.com/disk.img\n", 0),
            0u)
      << *text;
  Result<Checkpoint> back = DecodeCheckpoint(*text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(*back, Sample());

  Checkpoint unsized = Sample();
  unsized.requested_size.reset();
  unsized.etag.clear();
  Result<Checkpoint> back2 = DecodeCheckpoint(EncodeCheckpoint(unsized).value());
  ASSERT_TRUE(back2.ok()) << back2.status().ToString();
  ExpectSame(*back2, unsized);
}

// An xz checkpoint names the stream its point lies in; the line exists only
// for formats that need it, and is sealed like the others.
TEST(CheckpointTest, AnXzCheckpointCarriesItsStreamAndItIsChecked) {
  Checkpoint xz = Sample();
  xz.format = "xz+raw";
  xz.source_offset = 3000000;
  xz.target_bytes = 4194304;
  xz.format_state = EncodeXzState({.check = 4, .compressed = 0, .decompressed = 0});
  EXPECT_EQ(xz.format_state, "xz-check 4 stream-offset 0 stream-image-offset 0");
  const std::string text = EncodeCheckpoint(xz).value();
  EXPECT_NE(text.find("\nformat-state xz-check 4 stream-offset 0 stream-image-offset 0\nsha256 "),
            std::string::npos)
      << text;
  EXPECT_EQ(EncodeCheckpoint(Sample()).value().find("format-state"), std::string::npos);
  Result<Checkpoint> back = DecodeCheckpoint(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ExpectSame(*back, xz);
  EXPECT_EQ(CheckpointMismatch(*back, Sample()), "");
  std::string edited = text;
  edited.replace(edited.find("xz-check 4"), 10, "xz-check 0");
  EXPECT_FALSE(DecodeCheckpoint(edited).ok());

  Result<formats::XzStreamStart> stream = DecodeXzState(xz.format_state, 3000000, 4194304);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  EXPECT_EQ(stream->check, 4u);
  EXPECT_EQ(DecodeXzState("xz-check 16 stream-offset 0 stream-image-offset 0", 3000000, 4194304)
                .status()
                .message(),
            "its xz format-state is damaged: xz-check 16 is no check");
  EXPECT_EQ(DecodeXzState("xz-check 4 stream-offset 2999990 stream-image-offset 0", 3000000,
                          4194304)
                .status()
                .message(),
            "its xz format-state is damaged: the stream begins at 2999990, too late for a block "
            "at 3000000");
  EXPECT_EQ(DecodeXzState("xz-check 4 stream-offset 0 stream-image-offset 5000000", 3000000,
                          4194304)
                .status()
                .message(),
            "its xz format-state is damaged: the stream's image bytes begin past the 4194304 "
            "bytes claimed");
  EXPECT_EQ(DecodeXzState("xz-check 4", 3000000, 4194304).status().message(),
            "its xz format-state is damaged: 'stream-offset' is missing");
  EXPECT_EQ(DecodeXzState("", 3000000, 4194304).status().code(), ErrorCode::kCorruptImage);
}

TEST(CheckpointTest, EveryTruncationIsRefused) {
  const std::string text = EncodeCheckpoint(Sample()).value();
  for (size_t length = 0; length < text.size(); ++length) {
    Result<Checkpoint> cut = DecodeCheckpoint(text.substr(0, length));
    ASSERT_FALSE(cut.ok()) << "cut at " << length;
    EXPECT_EQ(cut.status().code(), ErrorCode::kCorruptImage);
    EXPECT_EQ(cut.status().message().rfind("the checkpoint is damaged: ", 0), 0u)
        << cut.status().message();
  }
}

TEST(CheckpointTest, AnEditedByteIsRefused) {
  const std::string text = EncodeCheckpoint(Sample()).value();
  // The source offset claims one byte more.
  std::string edited = text;
  const size_t at = edited.find("source-offset 5368709120");
  ASSERT_NE(at, std::string::npos);
  edited[at + std::string("source-offset 536870912").size()] = '1';
  Result<Checkpoint> refused = DecodeCheckpoint(edited);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(),
            "the checkpoint is damaged: its content does not match its seal (edited or partly "
            "written)");
  // Every single flipped bit of the content is caught.
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    std::string flipped = text;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    EXPECT_FALSE(DecodeCheckpoint(flipped).ok()) << "bit flipped at " << i;
  }
}

TEST(CheckpointTest, AnotherVersionOrAnotherFileIsRefused) {
  std::string text = EncodeCheckpoint(Sample()).value();
  text.replace(0, std::string("cdi-import-checkpoint 1").size(), "cdi-import-checkpoint 2");
  EXPECT_EQ(DecodeCheckpoint(text).status().message(),
            "the checkpoint is damaged: it is not of version 1");
  EXPECT_EQ(DecodeCheckpoint("hello\nsha256 00\n").status().message(),
            "the checkpoint is damaged: it is not a checkpoint");
}

TEST(CheckpointTest, ValuesWithLineBreaksAreNotWritten) {
  Checkpoint c = Sample();
  c.etag = "\"a\"\nsource-offset 1";
  Result<std::string> text = EncodeCheckpoint(c);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "the checkpoint's etag holds a line break");
}

TEST(CheckpointTest, FileIsWrittenAtomicallyAndRemoved) {
  test::TempDir dir;
  const std::string path = dir.File(".disk.img.checkpoint");
  Result<std::optional<Checkpoint>> none = ReadCheckpoint(path);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(WriteCheckpoint(path, Sample()).ok());
  Checkpoint later = Sample();
  later.source_offset = later.target_bytes = 6 * kGiB;
  ASSERT_TRUE(WriteCheckpoint(path, later).ok());
  // No temporary file is left, and the file is the owner's alone.
  EXPECT_EQ(test::ListDir(dir.path()), std::vector<std::string>{".disk.img.checkpoint"});
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Result<std::optional<Checkpoint>> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_TRUE(read->has_value());
  ExpectSame(**read, later);

  test::WriteFile(path, test::ReadFile(path).substr(0, 100));
  Result<std::optional<Checkpoint>> cut = ReadCheckpoint(path);
  EXPECT_EQ(cut.status().code(), ErrorCode::kCorruptImage);

  RemoveCheckpoint(path);
  EXPECT_EQ(test::ListDir(dir.path()), std::vector<std::string>{});
}

TEST(CheckpointTest, MismatchSaysWhatDiffers) {
  const Checkpoint saved = Sample();
  Checkpoint wanted = Sample();
  EXPECT_EQ(CheckpointMismatch(saved, wanted), "");
  wanted.url = "https://images.example.com/other.img";
  EXPECT_EQ(CheckpointMismatch(saved, wanted),
            "it is for another source, https://images.example.com/disk.img");
  wanted = Sample();
  wanted.target = "/data/other.img";
  EXPECT_EQ(CheckpointMismatch(saved, wanted), "it is for another target, /data/disk.img");
  wanted = Sample();
  wanted.requested_size.reset();
  EXPECT_EQ(CheckpointMismatch(saved, wanted),
            "the requested size changed (21474836480 bytes then, none now)");
  Checkpoint vhd = Sample();
  vhd.format = "vhd";
  EXPECT_EQ(CheckpointMismatch(vhd, Sample()),
            "it is for a vhd image, and only raw images (bare or compressed with zstd or xz) "
            "and qcow2 images are continued");
  Checkpoint qcow2 = Sample();
  qcow2.format = "qcow2";
  EXPECT_EQ(CheckpointMismatch(qcow2, Sample()), "");
  Checkpoint zstd = Sample();
  zstd.format = "zstd+raw";
  EXPECT_EQ(CheckpointMismatch(zstd, Sample()), "");
}

}  // namespace
}  // namespace cdi::importer
