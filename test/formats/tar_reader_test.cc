// The streaming tar reader (formats/tar/): what it reports for archives
// written by GNU tar and by hand, fed in chunks of every size, and what it
// refuses, by name.
#include "formats/tar/tar_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/tar_builder.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

using formats::tar::Entry;
using formats::tar::EntryType;

struct Recorded {
  std::string path;
  EntryType type;
  uint64_t size;
  uint32_t mode;
  std::optional<int64_t> mtime;
  std::string data;
};

class RecordingWriter : public formats::tar::EntryWriter {
 public:
  Status Begin(const Entry& entry) override {
    if (open_) return InternalError("Begin inside an entry");
    open_ = true;
    entries.push_back({entry.path, entry.type, entry.size, entry.mode, entry.mtime, ""});
    return fail_on_ == entry.path ? IoError("disk on fire") : Status::Ok();
  }
  Status Data(std::span<const uint8_t> data) override {
    if (!open_) return InternalError("Data outside an entry");
    entries.back().data.append(reinterpret_cast<const char*>(data.data()), data.size());
    return Status::Ok();
  }
  Status End() override {
    if (!open_) return InternalError("End outside an entry");
    open_ = false;
    if (entries.back().data.size() != entries.back().size) return InternalError("short entry");
    return Status::Ok();
  }

  std::vector<Recorded> entries;
  std::string fail_on_;

 private:
  bool open_ = false;
};

// Feeds `archive` in chunks of `chunk` bytes, then finishes.
Status Read(const std::string& archive, size_t chunk, RecordingWriter& writer) {
  auto reader = formats::tar::MakeTarReader(&writer);
  const auto* bytes = reinterpret_cast<const uint8_t*>(archive.data());
  for (size_t pos = 0; pos < archive.size(); pos += chunk) {
    Status status = reader->Feed(std::span(bytes + pos, std::min(chunk, archive.size() - pos)));
    if (!status.ok()) return status;
  }
  return reader->Finish();
}

Status ReadAll(const std::string& archive, RecordingWriter& writer) {
  return Read(archive, archive.size() + 1, writer);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> Paths(const RecordingWriter& writer) {
  std::vector<std::string> paths;
  for (const auto& e : writer.entries) paths.push_back(e.path);
  return paths;
}

// A tree with subdirectories, an empty file, a file of zeros, a name longer
// than ustar's 100 bytes and one longer than its 255: what real archives hold.
class GnuTarArchives : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    Sh("mkdir -p " + tree_.File("vm/images/nested") + " " + tree_.File("vm/empty-dir"));
    WriteFile(tree_.File("vm/images/disk.img"), RandomBytes(300000, 5));
    WriteFile(tree_.File("vm/images/nested/zeros.bin"), std::string(70000, '\0'));
    WriteFile(tree_.File("vm/empty.txt"), "");
    long_name_ = "vm/" + std::string(120, 'a') + "/" + std::string(150, 'b') + ".txt";
    Sh("mkdir -p " + tree_.File("vm/" + std::string(120, 'a')));
    WriteFile(tree_.File(long_name_), "long");
    Sh("chmod 0600 " + tree_.File("vm/images/disk.img"));
  }
  TempDir tree_;
  std::string long_name_;
};

TEST_P(GnuTarArchives, EveryEntryArrivesWhateverTheChunkSize) {
  std::string archive_path = tree_.File("out.tar");
  Sh(std::string("tar --format=") + GetParam() + " -C " + tree_.path() + " -cf " + archive_path +
     " vm");
  const std::string archive = ReadFile(archive_path);
  for (size_t chunk :
       {size_t{1}, size_t{511}, size_t{512}, size_t{513}, size_t{65536}, archive.size()}) {
    RecordingWriter writer;
    ASSERT_TRUE(Read(archive, chunk, writer).ok()) << GetParam() << " chunk " << chunk;
    std::vector<std::string> paths = Paths(writer);
    std::sort(paths.begin(), paths.end());
    std::vector<std::string> expected = {"vm",
                                         "vm/" + std::string(120, 'a'),
                                         long_name_,
                                         "vm/empty-dir",
                                         "vm/empty.txt",
                                         "vm/images",
                                         "vm/images/disk.img",
                                         "vm/images/nested",
                                         "vm/images/nested/zeros.bin"};
    std::sort(expected.begin(), expected.end());
    ASSERT_EQ(paths, expected) << GetParam() << " chunk " << chunk;
    for (const auto& e : writer.entries) {
      if (e.type == EntryType::kDirectory) continue;
      EXPECT_EQ(e.data, ReadFile(tree_.File(e.path))) << e.path;
      EXPECT_EQ(e.size, e.data.size());
      if (e.path == "vm/images/disk.img") {
        EXPECT_EQ(e.mode, 0600u);
      }
      EXPECT_TRUE(e.mtime.has_value()) << e.path;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GnuTarArchives, ::testing::Values("gnu", "pax", "posix"));

TEST(TarReader, UstarPrefixAndV7DirectoriesAndTheRootEntry) {
  TarBuilder tar;
  tar.Header({.name = "./", .typeflag = '5'});
  tar.Header({.name = "old-style-dir/", .typeflag = '0', .magic = TarMagic::kNone});
  tar.Header({.name = "file.txt", .typeflag = '0', .size = 3, .prefix = "deep/er"}).Data("abc");
  tar.Header({.name = "./a//b/./c", .typeflag = '\0', .size = 1, .magic = TarMagic::kNone})
      .Data("x");
  tar.End();
  RecordingWriter writer;
  ASSERT_TRUE(ReadAll(tar.bytes, writer).ok());
  ASSERT_EQ(Paths(writer),
            (std::vector<std::string>{"old-style-dir", "deep/er/file.txt", "a/b/c"}));
  EXPECT_EQ(writer.entries[0].type, EntryType::kDirectory);
  EXPECT_EQ(writer.entries[1].data, "abc");
}

TEST(TarReader, PaxRecordsOverrideTheHeaderAndGlobalHeadersAreIgnored) {
  TarBuilder tar;
  // git archive starts with a global header holding the commit id.
  tar.Pax(PaxRecord("comment", "5d55a48cafe"), 'g');
  std::string long_path = std::string(300, 'p') + "/name";
  tar.Pax(PaxRecord("path", long_path) + PaxRecord("mtime", "1234567890.5") +
          PaxRecord("SCHILY.xattr.user.x", "ignored"));
  tar.File("truncated-name", "pax data");
  tar.GnuLongName("gnu/" + std::string(200, 'g'));
  tar.File("short", "gnu data");
  tar.End();
  RecordingWriter writer;
  ASSERT_TRUE(ReadAll(tar.bytes, writer).ok());
  ASSERT_EQ(Paths(writer), (std::vector<std::string>{long_path, "gnu/" + std::string(200, 'g')}));
  EXPECT_EQ(writer.entries[0].mtime, 1234567890);
  EXPECT_EQ(writer.entries[0].data, "pax data");
  EXPECT_EQ(writer.entries[1].data, "gnu data");
}

TEST(TarReader, BaseTwoFiftySixSizesAreRead) {
  TarBuilder tar;
  tar.Header({.name = "big-endian.bin", .size = 5, .base256_size = true}).Data("12345");
  tar.End();
  RecordingWriter writer;
  ASSERT_TRUE(ReadAll(tar.bytes, writer).ok());
  ASSERT_EQ(writer.entries.size(), 1u);
  EXPECT_EQ(writer.entries[0].data, "12345");
}

struct Refusal {
  const char* what;
  std::string archive;
  std::vector<std::string> expected_parts;
  ErrorCode code;
};

std::string GoodFirst() {
  TarBuilder tar;
  tar.File("good.txt", "fine");
  return tar.bytes;
}

std::vector<Refusal> Refusals() {
  std::vector<Refusal> cases;
  auto add = [&](const char* what, TarBuilder tar, std::vector<std::string> parts, ErrorCode code) {
    cases.push_back({what, GoodFirst() + tar.End().bytes, std::move(parts), code});
  };
  add("absolute path", std::move(TarBuilder().File("/etc/cron.d/evil", "x")),
      {"'/etc/cron.d/evil'", "absolute path"}, ErrorCode::kInvalidArgument);
  add("dot-dot", std::move(TarBuilder().File("sub/../../escape", "x")),
      {"'sub/../../escape'", "'..'"}, ErrorCode::kInvalidArgument);
  add("symbolic link",
      std::move(TarBuilder().Header({.name = "link", .typeflag = '2', .linkname = "/etc/passwd"})),
      {"'link' is a symbolic link (to '/etc/passwd')", "refused"}, ErrorCode::kUnsupported);
  add("hard link",
      std::move(TarBuilder().Header({.name = "hard", .typeflag = '1', .linkname = "good.txt"})),
      {"'hard' is a hard link (to 'good.txt')", "refused"}, ErrorCode::kUnsupported);
  add("character device", std::move(TarBuilder().Header({.name = "null", .typeflag = '3'})),
      {"'null' is a character device"}, ErrorCode::kUnsupported);
  add("block device", std::move(TarBuilder().Header({.name = "sda", .typeflag = '4'})),
      {"'sda' is a block device"}, ErrorCode::kUnsupported);
  add("fifo", std::move(TarBuilder().Header({.name = "pipe", .typeflag = '6'})),
      {"'pipe' is a FIFO"}, ErrorCode::kUnsupported);
  add("pax sparse", std::move(TarBuilder().Pax(PaxRecord("GNU.sparse.major", "1")).File("s", "x")),
      {"GNU sparse file", "GNU.sparse.major"}, ErrorCode::kUnsupported);
  add("unknown type", std::move(TarBuilder().Header({.name = "odd", .typeflag = 'Z'})),
      {"'odd' is of unknown type 'Z'"}, ErrorCode::kUnsupported);
  add("NUL in a pax path",
      std::move(TarBuilder().Pax(PaxRecord("path", std::string("a\0b", 3))).File("x", "x")),
      {"'a\\x00b'", "NUL"}, ErrorCode::kInvalidArgument);
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += "d/";
  add("too deep", std::move(TarBuilder().Pax(PaxRecord("path", deep + "f")).File("x", "x")),
      {"301 directories deep"}, ErrorCode::kInvalidArgument);
  add("damaged header", std::move(TarBuilder().Header({.name = "x", .size = 0}, true)),
      {"tar header (archive offset 1024) has a wrong checksum"}, ErrorCode::kCorruptImage);
  add("huge pax header",
      std::move(TarBuilder().Header({.name = "pax", .typeflag = 'x', .size = 2 << 20})),
      {"announces 2097152 bytes of extended header", "refused"}, ErrorCode::kCorruptImage);
  add("malformed pax record", std::move(TarBuilder().Pax("12 path=x\n").File("x", "x")),
      {"pax extended header (archive offset 1024) is malformed"}, ErrorCode::kCorruptImage);
  return cases;
}


// What `tar -S` writes (GNU format, as CDI's cloner runs it): old GNU sparse
// entries, their maps continued in extension blocks past four regions.
class HoleRecordingWriter : public RecordingWriter {
 public:
  Status Skip(uint64_t bytes) override {
    skipped += bytes;
    entries.back().data.append(bytes, '\0');
    return Status::Ok();
  }
  uint64_t skipped = 0;
};

TEST(TarReader, GnuSparseFilesArriveWithTheirHoles) {
  TempDir tree;
  Sh("mkdir -p " + tree.File("vol/sub"));
  // 30 data regions of 4 KiB, 64 KiB apart, and a hole to the end.
  std::string image(4 << 20, '\0');
  for (uint32_t i = 0; i < 30; ++i) {
    const std::string data = RandomBytes(4096, i + 1);
    std::copy(data.begin(), data.end(), image.begin() + static_cast<long>(i) * 65536);
  }
  WriteFile(tree.File("dense.img"), image);
  Sh("cp --sparse=always " + tree.File("dense.img") + " " + tree.File("vol/disk.img") +
     " && printf hello > " + tree.File("vol/sub/a.txt") + " && truncate -s 1M " +
     tree.File("vol/hole-only.img") + " && tar -S -C " + tree.File("vol") + " -cf " +
     tree.File("out.tar") + " .");
  const std::string archive = ReadFile(tree.File("out.tar"));
  ASSERT_NE(archive.find("disk.img"), std::string::npos);
  for (size_t chunk : {size_t{1}, size_t{511}, size_t{4097}, archive.size()}) {
    HoleRecordingWriter writer;
    ASSERT_TRUE(Read(archive, chunk, writer).ok()) << "chunk " << chunk;
    bool seen_disk = false;
    for (const auto& e : writer.entries) {
      if (e.path == "disk.img") {
        seen_disk = true;
        EXPECT_EQ(e.size, image.size());
        EXPECT_TRUE(e.data == image) << "chunk " << chunk;
      } else if (e.path == "hole-only.img") {
        EXPECT_EQ(e.data, std::string(1 << 20, '\0'));
      } else if (e.path == "sub/a.txt") {
        EXPECT_EQ(e.data, "hello");
      }
    }
    EXPECT_TRUE(seen_disk);
    // The holes came as holes, not as stored zeros.
    EXPECT_GE(writer.skipped, image.size() - 30 * 4096 + (1 << 20)) << "chunk " << chunk;
  }
  // A damaged map: its region past the file's real size.
  std::string damaged = archive;
  const size_t header = archive.find("./disk.img") / 512 * 512;
  ASSERT_EQ(damaged[header + 156], 'S');
  // The real size field (483, 12 octal digits): shrink it to 1 byte, fix
  // the header checksum.
  std::string field = "00000000001";
  std::copy(field.begin(), field.end(), damaged.begin() + static_cast<long>(header) + 483);
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(damaged[header + i]);
  }
  char checksum[8];
  std::snprintf(checksum, sizeof checksum, "%06o", sum);
  std::copy(checksum, checksum + 7, damaged.begin() + static_cast<long>(header) + 148);
  HoleRecordingWriter writer;
  Status status = ReadAll(damaged, writer);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage) << status.ToString();
  EXPECT_TRUE(Contains(status.message(), "sparse map of './disk.img'")) << status.message();
}

TEST(TarReader, RefusesByName) {
  for (const Refusal& c : Refusals()) {
    RecordingWriter writer;
    Status status = ReadAll(c.archive, writer);
    ASSERT_FALSE(status.ok()) << c.what << " was accepted";
    EXPECT_EQ(status.code(), c.code) << c.what << ": " << status.ToString();
    for (const std::string& part : c.expected_parts) {
      EXPECT_TRUE(Contains(status.message(), part)) << c.what << ": " << status.message();
    }
    // What came before the refused entry was reported; nothing after it.
    ASSERT_FALSE(writer.entries.empty()) << c.what;
    EXPECT_EQ(writer.entries.front().path, "good.txt") << c.what;
  }
}

TEST(TarReader, DamageAndTruncation) {
  TarBuilder complete;
  complete.File("a.bin", std::string(2000, 'a')).End();
  const std::string& tar = complete.bytes;
  struct Case {
    const char* what;
    std::string archive;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"empty", "", "the archive is empty"},
      {"not a tar", std::string(4096, 'Q'), "is not a tar archive"},
      {"cut inside the data", tar.substr(0, 1000),
       "truncated (archive offset 1000) inside entry 'a.bin'"},
      {"cut inside a header", tar.substr(0, 300), "truncated inside a header"},
      {"no end marker", tar.substr(0, 512 + 2048), "ends without its end-of-archive marker"},
      {"something appended", tar + TarBuilder().File("b", "b").End().bytes,
       "data follows the tar archive's end-of-archive marker (archive offset 3584)"},
  };
  for (const Case& c : cases) {
    RecordingWriter writer;
    Status status = ReadAll(c.archive, writer);
    EXPECT_EQ(status.code(), ErrorCode::kCorruptImage) << c.what << ": " << status.ToString();
    EXPECT_TRUE(Contains(status.message(), c.expected)) << c.what << ": " << status.message();
  }
  // Zeros after the marker are the record padding tar writes: fine.
  RecordingWriter writer;
  EXPECT_TRUE(ReadAll(tar + std::string(8192, '\0'), writer).ok());
}

TEST(TarReader, WriterErrorsComeBackUnchanged) {
  TarBuilder tar;
  tar.File("a", "1").File("b", "2").End();
  RecordingWriter writer;
  writer.fail_on_ = "b";
  Status status = ReadAll(tar.bytes, writer);
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_EQ(status.message(), "disk on fire");
}

TEST(NormalizeEntryPath, CleansAndRefuses) {
  EXPECT_EQ(*formats::tar::NormalizeEntryPath("./a//b/./c/"), "a/b/c");
  EXPECT_EQ(*formats::tar::NormalizeEntryPath("./"), "");
  EXPECT_EQ(*formats::tar::NormalizeEntryPath("a..b/..c"), "a..b/..c");
  for (const char* bad : {"/abs", "..", "a/../b", "a/.."}) {
    EXPECT_EQ(formats::tar::NormalizeEntryPath(bad).status().code(), ErrorCode::kInvalidArgument)
        << bad;
  }
  EXPECT_FALSE(formats::tar::NormalizeEntryPath(std::string(5000, 'x')).ok());
}

}  // namespace
}  // namespace cdi::test
