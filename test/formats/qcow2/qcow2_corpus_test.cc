// Decodes images made by qemu-img and qemu-io in many layouts and compares
// the result with qemu-img's own conversion (and with libqcow, where it reads
// the image correctly): same bytes, and every range the image leaves
// unallocated or marks as zero is a Zero. Data is written as it is, zeros and
// all: finding zero blocks in data is the writer's job, not the decoder's.
#include <gtest/gtest.h>
#ifdef CDI_HAVE_LIBQCOW
#include <libqcow.h>
#endif

#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "formats/qcow2/resume_point.h"
#include "test/formats/qcow2/qcow2_test_support.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test::qcow2 {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;

// Images fed 7 bytes at a time. Under AddressSanitizer (CI runs every unit
// suite so), an image of tens of MiB takes most of a minute that way; the
// smaller cases take the same paths, so there the big ones skip that pass.
#if defined(__SANITIZE_ADDRESS__)
#define CDI_CORPUS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CDI_CORPUS_UNDER_ASAN 1
#endif
#endif
#ifdef CDI_CORPUS_UNDER_ASAN
constexpr uint64_t kSevenByteChunksUpTo = 8 * kMiB;
#else
constexpr uint64_t kSevenByteChunksUpTo = UINT64_MAX;
#endif
// Virtual size of most corpus images: small enough for a quick suite, large
// enough for several L2 tables at small cluster sizes.
constexpr uint64_t kDiskSize = 24 * kMiB;

// Text-like bytes that compress well but not to nothing.
std::string CompressibleBytes(size_t length, uint32_t seed) {
  std::string text;
  std::mt19937 rng(seed);
  while (text.size() < length) {
    text += "line " + std::to_string(text.size()) + " of block " + std::to_string(seed) +
            ": the quick brown fox " + std::to_string(rng() % 1000) + "\n";
  }
  text.resize(length);
  return text;
}

// A raw disk with random, compressible and zero-filled stretches, some of them
// not aligned to anything, and holes between them.
void MakeMixedRaw(const std::string& path, uint64_t size) {
  std::string disk(size, '\0');
  auto put = [&](uint64_t offset, const std::string& bytes) {
    disk.replace(offset, bytes.size(), bytes);
  };
  put(0, RandomBytes(1 * kMiB, 1));
  put(2 * kMiB, CompressibleBytes(1 * kMiB, 2));
  put(5 * kMiB + 4 * kKiB, RandomBytes(100 * kKiB, 3));
  put(8 * kMiB, CompressibleBytes(64 * kKiB, 4));
  put(16 * kMiB - 512, RandomBytes(4 * kKiB + 512, 5));
  put(20 * kMiB + 12345, CompressibleBytes(300 * kKiB, 6));
  put(size - 4 * kKiB, CompressibleBytes(4 * kKiB, 7));
  WriteFile(path, disk);
}

std::string Q(const std::string& path) { return "'" + path + "'"; }
std::string N(uint64_t value) { return std::to_string(value); }

// Guest offsets 0, step, 2*step... below `limit`, in a fixed shuffled order.
std::vector<uint64_t> Shuffled(uint64_t limit, uint64_t step, uint32_t seed) {
  std::vector<uint64_t> offsets;
  for (uint64_t o = 0; o < limit; o += step) offsets.push_back(o);
  std::mt19937 rng(seed);
  std::shuffle(offsets.begin(), offsets.end(), rng);
  return offsets;
}

std::string Hex(uint64_t value) {
  char text[32];
  snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

// Guest ranges that qemu-img map reports with "data": false: unallocated, or
// marked as reading as zero. The decoder must give each of them to Zero.
std::vector<std::pair<uint64_t, uint64_t>> QemuZeroRanges(const std::string& image) {
  const std::string map = Sh("qemu-img map --output=json " + Q(image));
  const std::regex entry(R"re("start": (\d+), "length": (\d+),[^}]*"data": (true|false))re");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  size_t entries = 0;
  for (auto it = std::sregex_iterator(map.begin(), map.end(), entry); it != std::sregex_iterator();
       ++it) {
    ++entries;
    if ((*it)[3] != "false") continue;
    const uint64_t start = std::stoull((*it)[1]);
    ranges.emplace_back(start, start + std::stoull((*it)[2]));
  }
  EXPECT_GT(entries, 0u) << "cannot read qemu-img map's output: " << map;
  return ranges;
}

// qemu-io with one -c per command.
void QemuIo(const std::string& image, const std::vector<std::string>& commands) {
  std::string command = "qemu-io -f qcow2";
  for (const auto& c : commands) command += " -c '" + c + "'";
  Sh(command + " " + Q(image) + " > /dev/null");
}

struct CorpusCase {
  std::string name;
  // Builds the image in `dir` (which holds "mixed.raw") and returns its path.
  std::function<std::string(const std::string& dir)> make;
  // libqcow 20201213 reads it correctly. It refuses zstd (incompatible bit 3)
  // and extended L2 (bit 4), and reads a v3 zero-flagged L2 entry as data at
  // file offset 0 (the header); cases with those are not given to it.
  bool libqcow = true;
  // Also fed in 7-byte and 4 KiB chunks (1 MiB + 1 for everything).
  bool odd_chunks = false;
};

// Failure messages and --gtest_list_tests name the case, not its bytes.
void PrintTo(const CorpusCase& c, std::ostream* os) { *os << c.name; }

std::string Convert(const std::string& dir, const std::string& name, const std::string& flags) {
  std::string image = dir + "/" + name + ".qcow2";
  Sh("qemu-img convert -O qcow2 " + flags + " " + Q(dir + "/mixed.raw") + " " + Q(image));
  return image;
}

std::string Create(const std::string& dir, const std::string& name, const std::string& options,
                   uint64_t size = kDiskSize) {
  std::string image = dir + "/" + name + ".qcow2";
  Sh("qemu-img create -q -f qcow2 " + (options.empty() ? "" : "-o " + options + " ") + Q(image) +
     " " + std::to_string(size));
  return image;
}

// Source files for qemu-io 'write -s'.
std::string Source(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string path = dir + "/" + name;
  WriteFile(path, bytes);
  return path;
}

std::vector<CorpusCase> Cases() {
  std::vector<CorpusCase> cases;
  cases.push_back({"v2_compat010",
                   [](const std::string& d) { return Convert(d, "v2", "-o compat=0.10"); }, true,
                   true});
  for (uint64_t size : {512 * 1, 4 * 1024, 8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024, 128 * 1024,
                        256 * 1024, 512 * 1024, 1024 * 1024, 2048 * 1024}) {
    std::string name = "v3_cluster_" + std::to_string(size);
    cases.push_back({name,
                     [name, size](const std::string& d) {
                       return Convert(d, name, "-o cluster_size=" + std::to_string(size));
                     },
                     true, size == 512 || size == 2048 * 1024});
  }
  cases.push_back({"v2_cluster_4096", [](const std::string& d) {
                     return Convert(d, "v2_4k", "-o compat=0.10,cluster_size=4096");
                   }});
  for (uint64_t size : {4 * 1024, 64 * 1024, 2048 * 1024}) {
    std::string name = "zlib_cluster_" + std::to_string(size);
    cases.push_back({name,
                     [name, size](const std::string& d) {
                       return Convert(d, name, "-c -o cluster_size=" + std::to_string(size));
                     },
                     true, size == 64 * 1024});
    std::string zstd = "zstd_cluster_" + std::to_string(size);
    cases.push_back({zstd,
                     [zstd, size](const std::string& d) {
                       return Convert(
                           d, zstd,
                           "-c -o compression_type=zstd,cluster_size=" + std::to_string(size));
                     },
                     /*libqcow: refuses zstd*/ false, size == 64 * 1024});
  }
  cases.push_back(
      {"v2_zlib", [](const std::string& d) { return Convert(d, "v2_zlib", "-c -o compat=0.10"); }});
  cases.push_back({"extended_l2_converted",
                   [](const std::string& d) { return Convert(d, "extl2", "-o extended_l2=on"); },
                   /*libqcow: refuses extended L2*/ false});
  cases.push_back({"extended_l2_compressed_zstd",
                   [](const std::string& d) {
                     return Convert(d, "extl2c",
                                    "-c -o extended_l2=on,compression_type=zstd,cluster_size=128k");
                   },
                   /*libqcow: refuses extended L2 and zstd*/ false});
  cases.push_back({"extended_l2_subclusters",
                   [](const std::string& d) {
                     // 64 KiB clusters of 32 subclusters of 2 KiB: partial writes
                     // leave allocated, zero and unallocated subclusters side by side.
                     std::string image = Create(d, "extl2sub", "extended_l2=on");
                     std::string src = Source(d, "sub.bin", RandomBytes(256 * kKiB, 11));
                     QemuIo(image, {"write -s " + src + " 4k 6k", "write -s " + src + " 1m 64k",
                                    "write -z " + N(kMiB + 8 * kKiB) + " 4k",
                                    "write -s " + src + " " + N(2 * kMiB + 62 * kKiB) + " 4k",
                                    "write -z 3m 2k",
                                    "write -s " + src + " " + N(3 * kMiB + 2 * kKiB) + " 2k",
                                    "write -s " + src + " " + N(kDiskSize - 2 * kKiB) + " 2k"});
                     return image;
                   },
                   /*libqcow: refuses extended L2*/ false, true});
  cases.push_back({"preallocation_metadata",
                   [](const std::string& d) {
                     std::string image = Create(d, "prealloc", "preallocation=metadata");
                     std::string src = Source(d, "p.bin", RandomBytes(512 * kKiB, 12));
                     QemuIo(image, {"write -s " + src + " 1m 512k", "write -P 0x5a 10m 64k"});
                     return image;
                   },
                   true, true});
  cases.push_back({"preallocation_metadata_v2", [](const std::string& d) {
                     std::string image =
                         Create(d, "prealloc2", "compat=0.10,preallocation=metadata");
                     QemuIo(image, {"write -P 0x33 3m 200k"});
                     return image;
                   }});
  cases.push_back({"random_order_writes",
                   [](const std::string& d) {
                     // Clusters land in the file in write order, not guest order;
                     // L2 tables are allocated as the first write in their range comes.
                     std::string image = Create(d, "random", "cluster_size=4096");
                     std::vector<std::string> commands;
                     int pattern = 1;
                     for (uint64_t offset : Shuffled(kDiskSize, 96 * kKiB, 21)) {
                       commands.push_back("write -P " + std::to_string(pattern++ % 250 + 1) + " " +
                                          std::to_string(offset) + " 20k");
                     }
                     QemuIo(image, commands);
                     return image;
                   },
                   true, true});
  cases.push_back({"discard_then_rewrite",
                   [](const std::string& d) {
                     std::string image = Create(d, "discard", "");
                     std::string src = Source(d, "d.bin", RandomBytes(2 * kMiB, 13));
                     QemuIo(image, {"write -s " + src + " 0 2m", "write -P 0x44 4m 1m",
                                    "discard 256k 512k", "discard 4m 1m", "write -P 0x45 20m 640k",
                                    "write -P 0x46 300k 64k"});
                     return image;
                   },
                   /*libqcow: discarding sets the v3 zero flag*/ false, true});
  cases.push_back({"internal_snapshot_then_writes",
                   [](const std::string& d) {
                     std::string image = Create(d, "snap", "");
                     std::string src = Source(d, "s.bin", RandomBytes(3 * kMiB, 14));
                     QemuIo(image, {"write -s " + src + " 0 3m", "write -P 0x11 8m 1m"});
                     Sh("qemu-img snapshot -c first " + Q(image));
                     QemuIo(image, {"write -P 0x22 1m 256k",
                                    "write -P 0x23 " + N(8 * kMiB + 64 * kKiB) + " 64k",
                                    "write -P 0x24 16m 1m", "discard 2m 128k"});
                     return image;
                   },
                   /*libqcow: discarding sets the v3 zero flag*/ false, true});
  cases.push_back({"resized_l1_moved",
                   [](const std::string& d) {
                     // Growing the disk reallocates the L1 table at the end of
                     // the file: every data cluster passes before its mapping.
                     std::string image = Create(d, "resized", "cluster_size=4096", 8 * kMiB);
                     std::string src = Source(d, "r.bin", RandomBytes(kMiB, 15));
                     QemuIo(image, {"write -s " + src + " 64k 1m", "write -P 0x77 5m 300k"});
                     Sh("qemu-img resize -q -f qcow2 " + Q(image) + " 40M");
                     return image;
                   },
                   true, true});
  cases.push_back({"resized_then_written",
                   [](const std::string& d) {
                     // As above, then written past the old size: the L1 table
                     // lies between the first data (and its L2 tables) and the
                     // rest, whose tables follow it.
                     std::string image = Create(d, "grown", "cluster_size=4096", 4 * kMiB);
                     std::string src = Source(d, "g.bin", RandomBytes(kMiB, 25));
                     QemuIo(image, {"write -s " + src + " 0 1m"});
                     Sh("qemu-img resize -q -f qcow2 " + Q(image) + " 40M");
                     QemuIo(image, {"write -s " + src + " 20m 1m", "write -P 0x5a 30m 2m"});
                     return image;
                   },
                   true, true});
  cases.push_back({"zero_clusters",
                   [](const std::string& d) {
                     std::string image = Create(d, "zero", "");
                     std::string src = Source(d, "z.bin", RandomBytes(2 * kMiB, 16));
                     QemuIo(image, {"write -s " + src + " 0 2m", "write -z 256k 128k",
                                    "write -z -u 1m 256k", "write -z 6m 1m",
                                    "write -P 0x99 " + N(6 * kMiB + 64 * kKiB) + " 4k"});
                     return image;
                   },
                   /*libqcow: reads zero-flagged clusters from file offset 0*/ false, true});
  cases.push_back({"compressed_writes_shuffled",
                   [](const std::string& d) {
                     std::string image = Create(d, "cwrites", "");
                     std::string src = Source(d, "c.bin", CompressibleBytes(64 * kKiB, 17));
                     std::vector<std::string> commands;
                     int i = 0;
                     for (uint64_t offset : Shuffled(8 * kMiB, 64 * kKiB, 22)) {
                       commands.push_back(
                           (i++ % 3 == 0 ? "write -P 0x61 " : "write -c -s " + src + " ") +
                           std::to_string(offset) + " 64k");
                     }
                     QemuIo(image, commands);
                     return image;
                   },
                   true, true});
  cases.push_back({"compressed_512_byte_clusters_interleaved",
                   [](const std::string& d) {
                     // Several compressed clusters share each 512-byte sector, and
                     // each newly touched L2 range gets its table after the
                     // partly filled cluster its data goes into: clusters mapped
                     // later sit between clusters mapped already.
                     std::string image = Create(d, "c512", "cluster_size=512", 4 * kMiB);
                     std::string src = Source(d, "c512.bin", CompressibleBytes(64 * kKiB, 23));
                     std::vector<std::string> commands;
                     int i = 0;
                     for (uint64_t offset : Shuffled(4 * kMiB, 4 * kKiB, 24)) {
                       ++i;
                       commands.push_back(
                           (i % 5 == 0 ? "write -P 0x3c " : "write -c -s " + src + " ") +
                           std::to_string(offset + (i % 7) * 512) + " 512");
                     }
                     QemuIo(image, commands);
                     return image;
                   },
                   true, true});
  cases.push_back({"odd_virtual_size",
                   [](const std::string& d) {
                     uint64_t size = kDiskSize + 1536;
                     std::string image = Create(d, "odd", "", size);
                     QemuIo(image, {"write -P 0x12 " + std::to_string(size - 1024) + " 1024",
                                    "write -P 0x13 0 4k"});
                     return image;
                   },
                   true, true});
  cases.push_back({"lazy_refcounts_dirty",
                   [](const std::string& d) {
                     std::string image = Create(d, "lazy", "lazy_refcounts=on");
                     QemuIo(image, {"write -P 0x21 0 1m", "write -P 0x22 7m 64k"});
                     // Mark it dirty, as a crash with lazy refcounts leaves it.
                     std::string bytes = ReadFile(image);
                     PutBE(bytes, 72, 8, GetBE(bytes, 72, 8) | 1);
                     WriteFile(image, bytes);
                     return image;
                   },
                   true});
  cases.push_back({"vm_state_beyond_disk",
                   [](const std::string& d) {
                     // VM state lives past the virtual disk in the active L1 table.
                     std::string image = Create(d, "vmstate", "cluster_size=4096");
                     QemuIo(image, {"write -P 0x31 0 64k", "write -b -P 0x32 0 256k"});
                     return image;
                   },
                   true});
  cases.push_back({"empty_disk", [](const std::string& d) { return Create(d, "empty", ""); }});
  return cases;
}

class CorpusTest : public ::testing::TestWithParam<CorpusCase> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MakeMixedRaw(dir_->File("mixed.raw"), kDiskSize);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // Decodes `image` with `options` in `chunk`-byte pieces and checks it
  // against qemu-img's raw output `qemu_raw`.
  void ExpectSameAsQemu(const std::string& image, const std::string& qemu_raw, size_t chunk,
                        formats::DecoderOptions options = {}) {
    SCOPED_TRACE("chunk size " + std::to_string(chunk));
    TempDir out;
    std::string ours = out.File("ours.raw");
    Decoded decoded = DecodeToFile(image, ours, chunk, options);
    ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_EQ(decoded.problems, "");
    EXPECT_EQ(decoded.description.format, "qcow2");
    ASSERT_EQ(FileSize(ours), FileSize(qemu_raw));
    EXPECT_EQ(Sha256File(ours), Sha256File(qemu_raw));
    for (const auto& [start, end] : QemuZeroRanges(image)) {
      EXPECT_TRUE(decoded.zero_ranges.Contains(start, end))
          << "the image reads [" << Hex(start) << ", " << Hex(end)
          << ") as zero without data, but it was not given to Zero";
    }
    last_description_ = decoded.description;
  }

  static TempDir* dir_;
  formats::ImageDescription last_description_;
};

TempDir* CorpusTest::dir_ = nullptr;

#ifdef CDI_HAVE_LIBQCOW
// libqcow's reading of the whole virtual disk, as a sha256.
std::string LibqcowSha256(const std::string& image, uint64_t* media_size) {
  libqcow_file_t* file = nullptr;
  libqcow_error_t* error = nullptr;
  std::string digest;
  if (libqcow_file_initialize(&file, &error) != 1) return "libqcow: initialize failed";
  if (libqcow_file_open(file, image.c_str(), LIBQCOW_OPEN_READ, &error) != 1) {
    libqcow_error_free(&error);
    libqcow_file_free(&file, nullptr);
    return "libqcow: open failed";
  }
  size64_t size = 0;
  libqcow_file_get_media_size(file, &size, &error);
  *media_size = size;
  TempDir tmp;
  std::string raw = tmp.File("libqcow.raw");
  {
    int fd = open(raw.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    std::vector<char> buffer(kMiB);
    for (uint64_t offset = 0; offset < size; offset += buffer.size()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
      ssize_t got = libqcow_file_read_buffer_at_offset(file, buffer.data(), n,
                                                       static_cast<off64_t>(offset), &error);
      if (got != static_cast<ssize_t>(n)) {
        digest = "libqcow: read failed at " + std::to_string(offset);
        libqcow_error_free(&error);
        break;
      }
      if (pwrite(fd, buffer.data(), n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n)) {
        digest = "write failed";
        break;
      }
    }
    close(fd);
  }
  libqcow_file_close(file, nullptr);
  libqcow_file_free(&file, nullptr);
  return digest.empty() ? Sha256File(raw) : digest;
}
#endif  // CDI_HAVE_LIBQCOW

TEST_P(CorpusTest, DecodesLikeQemuImg) {
  const CorpusCase& c = GetParam();
  TempDir work;
  std::string image;
  {
    // Cases build in their own directory next to the shared raw source.
    std::string dir = work.path();
    Sh("ln -s " + Q(dir_->File("mixed.raw")) + " " + Q(dir + "/mixed.raw"));
    image = c.make(dir);
  }
  std::string qemu_raw = work.File("qemu.raw");
  QemuConvertToRaw(image, qemu_raw);

  ExpectSameAsQemu(image, qemu_raw, kMiB + 1);
  if (c.odd_chunks) {
    if (FileSize(image) <= kSevenByteChunksUpTo) ExpectSameAsQemu(image, qemu_raw, 7);
    ExpectSameAsQemu(image, qemu_raw, 4096);
  }
  // Every image also decodes inline (one thread) and with a few workers.
  ExpectSameAsQemu(image, qemu_raw, 65536, {.threads = 1});
  ExpectSameAsQemu(image, qemu_raw, 65536 * 3 + 5, {.threads = 3});

  RecordProperty("spooled_bytes", Detail(last_description_, "spooled bytes"));
  std::cout << "[ layout   ] " << c.name << ": spooling " << Detail(last_description_, "spooling")
            << ", spooled bytes " << Detail(last_description_, "spooled bytes") << ", image bytes "
            << FileSize(image) << "\n";
}

// libqcow is a second, independent reader: where it reads a case at all, it
// must read what qemu-img reads. Skipped alone where libqcow is not installed.
TEST_P(CorpusTest, LibqcowReadsLikeQemuImg) {
  const CorpusCase& c = GetParam();
  if (!c.libqcow) GTEST_SKIP() << "libqcow does not read this case";
#ifdef CDI_HAVE_LIBQCOW
  TempDir work;
  std::string dir = work.path();
  Sh("ln -s " + Q(dir_->File("mixed.raw")) + " " + Q(dir + "/mixed.raw"));
  std::string image = c.make(dir);
  std::string qemu_raw = work.File("qemu.raw");
  QemuConvertToRaw(image, qemu_raw);
  uint64_t media_size = 0;
  EXPECT_EQ(LibqcowSha256(image, &media_size), Sha256File(qemu_raw)) << "libqcow disagrees";
  EXPECT_EQ(media_size, FileSize(qemu_raw));
#else
  GTEST_SKIP() << "libqcow is not installed (libqcow-dev)";
#endif
}

std::span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Records a decoder's guest calls in order and builds the image in memory.
// Kept ranges (a continued image) take their bytes from `kept_from`: what
// the earlier run wrote there, as the target holds it.
class MemoryWriter : public formats::GuestWriter {
 public:
  MemoryWriter(uint64_t size, const std::string* kept_from)
      : image_(size, '\0'), kept_from_(kept_from) {}
  Status Begin(const formats::ImageDescription&) override { return Status::Ok(); }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (offset + data.size() > image_.size()) return InternalError("write past the end");
    std::memcpy(image_.data() + offset, data.data(), data.size());
    writes_.push_back({offset, offset + data.size()});
    covered_ += data.size();
    return Status::Ok();
  }
  Status Zero(uint64_t offset, uint64_t length) override {
    if (offset + length > image_.size()) return InternalError("zero past the end");
    std::memset(image_.data() + offset, 0, length);
    covered_ += length;
    return Status::Ok();
  }
  Status Kept(uint64_t offset, uint64_t length) override {
    if (kept_from_ == nullptr) return InternalError("Kept in a fresh import");
    if (offset + length > image_.size()) return InternalError("kept past the end");
    std::memcpy(image_.data() + offset, kept_from_->data() + offset, length);
    kept_.push_back({offset, offset + length});
    covered_ += length;
    return Status::Ok();
  }
  const std::string& image() const { return image_; }
  const std::vector<std::pair<uint64_t, uint64_t>>& writes() const { return writes_; }
  const std::vector<std::pair<uint64_t, uint64_t>>& kept() const { return kept_; }
  uint64_t covered() const { return covered_; }

 private:
  std::string image_;
  const std::string* kept_from_;
  std::vector<std::pair<uint64_t, uint64_t>> writes_;
  std::vector<std::pair<uint64_t, uint64_t>> kept_;
  uint64_t covered_ = 0;
};

// The metadata a continued decoder needs, read from the image as a server
// would send the ranges asked for.
// What the importer fetches again to continue at `at`: the metadata, and
// the ranges the decoder held there.
formats::Qcow2Resume PlanFrom(const std::string& image, uint64_t at,
                              const std::vector<std::pair<uint64_t, uint64_t>>& held) {
  formats::Qcow2MetadataPlan plan(at, image.size());
  while (auto wanted = plan.Wanted()) {
    Status given =
        plan.Give(wanted->start, Bytes(image.substr(wanted->start, wanted->end - wanted->start)));
    if (!given.ok()) ADD_FAILURE() << given.ToString();
    if (!given.ok()) break;
  }
  formats::Qcow2Resume resume = plan.Take();
  for (auto [start, end] : held) {
    const std::string bytes = image.substr(start, end - start);
    resume.metadata.push_back({start, std::vector<uint8_t>(bytes.begin(), bytes.end())});
  }
  std::sort(resume.metadata.begin(), resume.metadata.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < resume.metadata.size(); ++i) {
    EXPECT_LE(resume.metadata[i - 1].offset + resume.metadata[i - 1].bytes.size(),
              resume.metadata[i].offset)
        << "a held range overlaps the metadata";
  }
  return resume;
}

// An import that dies after any of its resume points and is continued from
// there by a fresh decoder produces qemu-img's bytes; what the continued
// decoder reports as kept was written by the first run before that point.
TEST_P(CorpusTest, ContinuesFromItsResumePoints) {
  const CorpusCase& c = GetParam();
  TempDir work;
  Sh("ln -s " + Q(dir_->File("mixed.raw")) + " " + Q(work.path() + "/mixed.raw"));
  const std::string path = c.make(work.path());
  const std::string image = ReadFile(path);
  QemuConvertToRaw(path, work.File("qemu.raw"));
  const std::string expected = ReadFile(work.File("qemu.raw"));
  constexpr size_t kChunk = 96 * 1024 + 7;
  formats::DecoderOptions options;
  options.container_size = image.size();
  options.threads = 2;

  // The first run: every resume point, with how many writes preceded it.
  MemoryWriter first(expected.size(), nullptr);
  struct Point {
    uint64_t at;
    size_t writes;
    std::vector<std::pair<uint64_t, uint64_t>> held;
  };
  std::vector<Point> points;
  {
    auto decoder = formats::MakeQcow2Decoder(&first, options);
    for (size_t fed = 0; fed < image.size(); fed += kChunk) {
      ASSERT_TRUE(decoder->Feed(Bytes(image.substr(fed, kChunk))).ok());
      Result<std::optional<formats::ResumeAt>> point = decoder->ResumePoint();
      ASSERT_TRUE(point.ok()) << point.status().ToString();
      if (*point && (points.empty() || points.back().at != (*point)->offset)) {
        ASSERT_LE((*point)->offset, fed + std::min(kChunk, image.size() - fed));
        points.push_back({(*point)->offset, first.writes().size(), (*point)->held});
      }
    }
    ASSERT_TRUE(decoder->Finish().ok());
    ASSERT_EQ(first.image(), expected);
  }
  // Continued from two points before the end (a point at the end is none
  // to continue from: the importer takes no checkpoint there).
  std::erase_if(points, [&](const Point& p) { return p.at >= image.size(); });
  if (points.empty()) {
    std::cout << "[ resume   ] " << c.name << ": no resume point before the end\n";
    return;
  }
  std::vector<Point> chosen = {points[points.size() / 3], points[points.size() * 2 / 3]};
  // And the last point that carries held ranges, if one does.
  size_t with_held = 0;
  for (const Point& point : points) {
    if (point.held.empty()) continue;
    ++with_held;
    if (chosen.size() == 2) chosen.push_back(point);
    else chosen.back() = point;
  }
  for (const Point& point : chosen) {
    SCOPED_TRACE("continued at byte " + std::to_string(point.at));
    RangeSet written;
    for (size_t i = 0; i < point.writes; ++i) {
      written.Add(first.writes()[i].first, first.writes()[i].second);
    }
    MemoryWriter second(expected.size(), &expected);
    auto decoder =
        formats::MakeResumedQcow2Decoder(&second, options, PlanFrom(image, point.at, point.held));
    const std::string rest = image.substr(point.at);
    for (size_t fed = 0; fed < rest.size(); fed += kChunk) {
      Status status = decoder->Feed(Bytes(rest.substr(fed, kChunk)));
      ASSERT_TRUE(status.ok()) << status.ToString();
    }
    Status finished = decoder->Finish();
    ASSERT_TRUE(finished.ok()) << finished.ToString();
    EXPECT_EQ(second.covered(), expected.size());
    EXPECT_TRUE(second.image() == expected) << FirstDifference(second.image(), expected);
    for (const auto& [start, end] : second.kept()) {
      EXPECT_TRUE(written.Contains(start, end))
          << "kept [" << Hex(start) << ", " << Hex(end) << ") was not written before the point";
    }
  }
  std::cout << "[ resume   ] " << c.name << ": " << points.size() << " resume points ("
            << with_held << " carrying held ranges), first " << points.front().at << ", last "
            << points.back().at << " of " << image.size() << "\n";
}

INSTANTIATE_TEST_SUITE_P(Qcow2, CorpusTest, ::testing::ValuesIn(Cases()),
                         [](const auto& test_info) { return test_info.param.name; });

// One byte at a time: the decoder must not depend on chunk boundaries at all.
TEST(CorpusOneByteTest, SmallImageFedByteByByte) {
  TempDir work;
  std::string raw = work.File("small.raw");
  std::string disk(2 * kMiB, '\0');
  disk.replace(0, 70000, RandomBytes(70000, 31));
  disk.replace(kMiB + 512, 5000, CompressibleBytes(5000, 32));
  WriteFile(raw, disk);
  for (const std::string flags : {"-o cluster_size=512", "-c -o cluster_size=4096",
                                  "-c -o compression_type=zstd,cluster_size=16k,extended_l2=on"}) {
    SCOPED_TRACE(flags);
    std::string image = work.File("small.qcow2");
    Sh("qemu-img convert -O qcow2 " + flags + " " + Q(raw) + " " + Q(image));
    TempDir out;
    Decoded decoded = DecodeToFile(image, out.File("ours.raw"), 1, {.threads = 2});
    ASSERT_TRUE(decoded.status.ok()) << decoded.status.ToString();
    EXPECT_EQ(decoded.problems, "");
    EXPECT_EQ(Sha256File(out.File("ours.raw")), Sha256Bytes(disk));
  }
}

// Clusters allocated with zero bytes in them are data: the decoder writes them
// as they are, and the zero flag and unallocated clusters are Zero.
TEST(CorpusZeroTest, ZeroDataIsWrittenAndZeroClustersAreZero) {
  TempDir work;
  std::string image = work.File("z.qcow2");
  Sh("qemu-img create -q -f qcow2 -o cluster_size=65536 " + Q(image) + " 1M");
  QemuIo(image, {"write -P 0 0 128k", "write -P 0x5a 128k 64k", "write -z 256k 64k"});
  std::string bytes = ReadFile(image);
  for (size_t chunk : {size_t{7}, size_t{65536}, bytes.size()}) {
    SCOPED_TRACE("chunk size " + std::to_string(chunk));
    CheckingWriter writer;
    auto decoder = formats::MakeQcow2Decoder(&writer, {.container_size = bytes.size()});
    ASSERT_TRUE(FeedAll(*decoder, bytes, chunk).ok());
    EXPECT_EQ(writer.Problems(true), "");
    EXPECT_EQ(writer.written_bytes(), 192 * kKiB) << "the zero-filled clusters and the 0x5a one";
    EXPECT_TRUE(writer.zero_ranges().Contains(192 * kKiB, 1 * kMiB));
    EXPECT_EQ(writer.zero_ranges().Total(), 1 * kMiB - 192 * kKiB);
  }
}

// The details `cdi-image info` shows.
TEST(CorpusDescribeTest, DescribesTheImage) {
  TempDir work;
  std::string image = work.File("d.qcow2");
  Sh("qemu-img create -q -f qcow2 -o compression_type=zstd,extended_l2=on,cluster_size=128k " +
     Q(image) + " 1G");
  std::string bytes = ReadFile(image);
  CheckingWriter writer;
  auto decoder = formats::MakeQcow2Decoder(&writer, {});
  ASSERT_TRUE(FeedAll(*decoder, bytes, bytes.size()).ok());
  formats::ImageDescription d = decoder->Describe();
  EXPECT_EQ(d.format, "qcow2");
  EXPECT_EQ(d.virtual_size, uint64_t{1} << 30);
  EXPECT_EQ(Detail(d, "version"), "3");
  EXPECT_EQ(Detail(d, "cluster size"), "131072");
  EXPECT_EQ(Detail(d, "compression type"), "zstd");
  EXPECT_EQ(Detail(d, "virtual size"), "1073741824");
  EXPECT_EQ(Detail(d, "extended L2"), "yes");
  EXPECT_EQ(Detail(d, "spooling"), "not needed");
  EXPECT_EQ(Detail(d, "spooled bytes"), "0");
  // An empty 1 GiB disk is one Zero.
  ASSERT_EQ(writer.ops().size(), 2u);
  EXPECT_EQ(writer.ops()[1].kind, Op::Kind::kZero);
  EXPECT_EQ(writer.ops()[1].length, uint64_t{1} << 30);
}

}  // namespace
}  // namespace cdi::test::qcow2
