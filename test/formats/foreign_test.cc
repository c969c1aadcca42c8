// Formats that are not decoded are refused by name, with the qemu-img command
// that makes them importable, instead of being imported as raw bytes.
#include "formats/foreign.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "formats/pipeline.h"
#include "test/formats/formats_testing.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::formats {
namespace {

using testing::Bytes;
using testing::Compress;
using testing::FeedInChunks;
using testing::RecordingWriter;

// Feeds `image` (and its gzip) through the pipeline; expects a refusal whose
// message names `name` and gives qemu-img's `-f driver`, and nothing written.
void ExpectRefused(const std::string& image, const std::string& name, const std::string& driver) {
  for (bool wrapped : {false, true}) {
    RecordingWriter writer;
    ImagePipeline pipeline(&writer, {});
    Status status = FeedInChunks(pipeline, wrapped ? Compress(Format::kGzip, image) : image, 4099);
    EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << name << ": " << status.ToString();
    EXPECT_NE(status.message().find("the image is a " + name + ", which is not imported directly"),
              std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("'qemu-img convert -f " + driver +
                                    " -O qcow2 IMAGE disk.qcow2' and import disk.qcow2"),
              std::string::npos)
        << status.message();
    EXPECT_EQ(writer.begin_calls(), 0) << name;
    EXPECT_TRUE(writer.ops().empty()) << name;
  }
}

TEST(ForeignFormatTest, ImagesMadeByQemuImgAreRefusedByName) {
  test::TempDir dir;
  // A 64 GiB Parallels image is a few MiB of metadata: imported as raw, it
  // would be a broken disk of that metadata.
  test::Sh("qemu-img create -q -f parallels " + dir.File("disk.parallels") + " 64G");
  test::Sh("qemu-img create -q -f qed " + dir.File("disk.qed") + " 1G");
  ExpectRefused(test::ReadFile(dir.File("disk.parallels")), "Parallels disk image", "parallels");
  ExpectRefused(test::ReadFile(dir.File("disk.qed")), "QED image", "qed");
}

TEST(ForeignFormatTest, HeadersOfReadOnlyFormatsAreRefusedByName) {
  struct Case {
    std::string magic;
    std::string name;
    std::string driver;
  };
  for (const Case& c : std::vector<Case>{
           {"WithouFreSpacExt", "Parallels disk image", "parallels"},
           {"Bochs Virtual HD Image", "Bochs disk image", "bochs"},
           {"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop "
            "$1\n",
            "cloop compressed image", "cloop"},
           {std::string("LUKS\xBA\xBE\0\x01", 8), "LUKS-encrypted volume", "luks"},
           {"COWD\x01\0\0\0", "VMDK vmfsSparse (COWD) disk", "vmdk"},
           {std::string("\xBE\xBA\xFE\xCA\0\0\0\0", 8), "VMDK seSparse extent", "vmdk"},
           {"# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n",
            "VMDK descriptor, text that names the files holding the disk's data", "vmdk"},
       }) {
    std::string image = c.magic + std::string(70000, '\0');
    ExpectRefused(image, c.name, c.driver);
  }
}

// A UDIF trailer: "koly", version 4, header size 512, big-endian; the data
// fork (here some bytes standing for compressed blocks) comes before it.
std::string KolyTrailer(uint32_t version = 4) {
  std::string koly(512, '\0');
  koly.replace(0, 4, "koly");
  koly[7] = static_cast<char>(version);
  koly[10] = 2;  // 512 = 0x200
  return koly;
}

TEST(ForeignFormatTest, AppleDiskImagesAreRefusedByTheirTrailer) {
  // Nothing at a DMG's start tells it from a raw disk: the refusal comes at
  // the end of the stream, plain or inside a wrapper, in any chunking.
  const std::string image = testing::MakeData(300000, testing::Pattern::kRandom, 7) + KolyTrailer();
  for (bool wrapped : {false, true}) {
    for (size_t chunk : {size_t{1} << 20, size_t{4099}, size_t{511}}) {
      RecordingWriter writer;
      ImagePipeline pipeline(&writer, {});
      Status status =
          FeedInChunks(pipeline, wrapped ? Compress(Format::kXz, image) : image, chunk);
      EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << status.ToString();
      EXPECT_EQ(status.message(),
                "the image is a DMG disk image (Apple's UDIF), which is not imported directly; convert "
                "it with 'qemu-img convert -f dmg -O qcow2 IMAGE disk.qcow2' and import "
                "disk.qcow2");
    }
  }
  // Other versions, another header size, or the trailer not at the very end
  // are raw data.
  std::string v3 = KolyTrailer(3);
  std::string other_size = KolyTrailer();
  other_size[10] = 1;
  for (const std::string& raw : {std::string(4096, 'x') + v3, std::string(4096, 'x') + other_size,
                                 KolyTrailer() + std::string(512, '\0')}) {
    RecordingWriter writer;
    ImagePipeline pipeline(&writer, {});
    Status status = FeedInChunks(pipeline, raw, 1000);
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(writer.image(), raw);
  }
}

TEST(ForeignFormatTest, TheLuksAndDescriptorMessagesSayWhatElseIsNeeded) {
  auto luks = DetectForeign(Bytes(std::string("LUKS\xBA\xBE\0\x02", 8)));
  ASSERT_TRUE(luks.has_value());
  EXPECT_NE(ForeignFormatMessage(*luks).find("passphrase"), std::string::npos);
  auto descriptor = DetectForeign(Bytes("# Disk DescriptorFile\n"));
  ASSERT_TRUE(descriptor.has_value());
  EXPECT_NE(ForeignFormatMessage(*descriptor).find("never followed"), std::string::npos);
}

TEST(ForeignFormatTest, RawDisksAreNotMistakenForThem) {
  // An MBR disk, zeros, text that is not a descriptor, and magics cut short.
  for (const std::string& head :
       {std::string(512, '\0'), std::string("\xEB\x63\x90", 3) + std::string(509, 'x'),
        std::string("# Disk Descriptor"), std::string("QED"), std::string("LUKS\xBA", 5),
        std::string("WithoutFreeSpac")}) {
    EXPECT_FALSE(DetectForeign(Bytes(head)).has_value()) << head;
  }
}

}  // namespace
}  // namespace cdi::formats
