// The containerDisk layer reader: which entry of a layer is the disk image
// (CDI's rule), fed in odd chunk sizes, plain and compressed.
#include "formats/containerdisk/layer_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "test/support/files.h"
#include "test/support/tar_builder.h"

namespace cdi::formats::containerdisk {
namespace {

using test::TarBuilder;

class Collect final : public ByteSink {
 public:
  Status Feed(std::span<const uint8_t> bytes) override {
    data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return Status::Ok();
  }
  Status Finish() override { return Status::Ok(); }
  std::string data;
};

std::string Gzip(const std::string& data) {
  z_stream stream{};
  deflateInit2(&stream, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

struct Outcome {
  Status status;
  bool decided = false;
  bool found = false;
  std::string path;
  std::string disk;
};

Outcome Read(const std::string& layer, size_t chunk) {
  Collect disk;
  LayerReader reader(&disk, {});
  Outcome outcome;
  for (size_t at = 0; at < layer.size() && outcome.status.ok(); at += chunk) {
    outcome.status = reader.Feed(std::span(reinterpret_cast<const uint8_t*>(layer.data()) + at,
                                           std::min(chunk, layer.size() - at)));
  }
  if (outcome.status.ok()) outcome.status = reader.Finish();
  outcome.decided = reader.decided();
  outcome.found = reader.found();
  outcome.path = reader.disk_path();
  outcome.disk = disk.data;
  return outcome;
}

TEST(LayerReaderTest, TheFirstFileInDiskIsTheDiskInAnyChunking) {
  const std::string image = test::RandomBytes(70000, 5);
  const std::string tar = TarBuilder()
                              .Directory("./disk/")
                              .File("./disk/.wh.old.img", "")
                              .File("./disk/fedora.qcow2", image)
                              .File("disk/second.img", "not this one")
                              .End()
                              .bytes;
  for (const std::string& layer : {tar, Gzip(tar)}) {
    for (size_t chunk : {size_t{1}, size_t{511}, size_t{4096}, size_t{1} << 20}) {
      Outcome outcome = Read(layer, chunk);
      ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
      EXPECT_TRUE(outcome.found);
      EXPECT_EQ(outcome.path, "disk/fedora.qcow2");
      EXPECT_EQ(outcome.disk, image) << chunk;
    }
  }
}

TEST(LayerReaderTest, OtherEntriesOfABaseLayerAreSkipped) {
  const std::string tar =
      TarBuilder()
          .File("etc/os-release", "ID=test\n")
          .Header({.name = "bin/sh", .typeflag = '2', .linkname = "/bin/busybox"})
          .Header({.name = "bin/ln", .typeflag = '1', .linkname = "bin/sh"})
          .Header({.name = "dev/console", .typeflag = '3'})
          .Header({.name = "../escape", .typeflag = '0'})
          .End()
          .bytes;
  Outcome outcome = Read(tar, 333);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_FALSE(outcome.decided);
  EXPECT_FALSE(outcome.found);
  EXPECT_TRUE(outcome.disk.empty());
}

TEST(LayerReaderTest, RefusesWhatCdiCannotUseAsTheDisk) {
  struct Case {
    std::string tar;
    std::string message;
  };
  const std::vector<Case> cases = {
      {TarBuilder().File("disk/sub/x.img", "x").End().bytes, "in a subdirectory of /disk"},
      {TarBuilder().File("diskette/x.img", "x").End().bytes, "which is not in /disk"},
      {TarBuilder().File("disk", "x").End().bytes, "which is not in /disk"},
      {TarBuilder().Header({.name = "disk/x.img", .typeflag = '2', .linkname = "/y"}).End().bytes,
       "is not a regular file"},
  };
  for (const Case& c : cases) {
    Outcome outcome = Read(c.tar, 512);
    ASSERT_FALSE(outcome.status.ok()) << c.message;
    EXPECT_TRUE(outcome.decided) << c.message;
    EXPECT_EQ(outcome.status.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(outcome.status.message().find(c.message), std::string::npos)
        << outcome.status.message();
  }
}

TEST(LayerReaderTest, ALayerThatIsNotATarFailsBeforeDeciding) {
  Outcome outcome = Read(std::string(4096, 'x'), 100);
  ASSERT_FALSE(outcome.status.ok());
  EXPECT_FALSE(outcome.decided);
}

}  // namespace
}  // namespace cdi::formats::containerdisk
