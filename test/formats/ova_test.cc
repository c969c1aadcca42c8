// OVA packages in disk mode: a tar made by `tar` from an OVF descriptor and
// streamOptimized VMDKs made by qemu-img; the disk is decoded like qemu-img
// converts the .vmdk alone.
#include "formats/ova/ova_decoder.h"

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

using testing::FeedInChunks;
using testing::MakeData;
using testing::Pattern;
using testing::RecordingWriter;
using Chain = std::vector<std::string>;

constexpr size_t kMiB = 1 << 20;

// An OVF descriptor declaring `disks` (file names), each in its own File.
std::string Ovf(const std::vector<std::string>& disks) {
  std::string references;
  std::string disk_section;
  for (size_t i = 0; i < disks.size(); ++i) {
    const std::string id = std::to_string(i + 1);
    references += "    <File ovf:id=\"file" + id + "\" ovf:href=\"" + disks[i] + "\"/>\n";
    disk_section += "    <Disk ovf:capacity=\"4\" ovf:capacityAllocationUnits=\"byte * 2^20\" "
                    "ovf:diskId=\"vmdisk" + id + "\" ovf:fileRef=\"file" + id + "\" "
                    "ovf:format=\"http://www.vmware.com/interfaces/specifications/"
                    "vmdk.html#streamOptimized\"/>\n";
  }
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "
         "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\">\n"
         "  <References>\n" + references + "  </References>\n"
         "  <!-- <Disk ovf:fileRef=\"commented-out\"/> -->\n"
         "  <DiskSection>\n    <Info>Virtual disk information</Info>\n" + disk_section +
         "  </DiskSection>\n</Envelope>\n";
}

class OvaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cdi::test::HaveProgram("qemu-img") || !cdi::test::HaveProgram("tar")) {
      GTEST_SKIP() << "qemu-img and tar are needed";
    }
  }

  // A streamOptimized VMDK of `data` in the package directory; returns
  // qemu-img's conversion of it.
  std::string MakeDisk(const std::string& name, const std::string& data) {
    cdi::test::WriteFile(dir_.File("source.raw"), data);
    cdi::test::Sh("cd " + dir_.path() +
                  " && qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized source.raw " +
                  name + " && qemu-img convert -q -f vmdk -O raw " + name + " expected.raw");
    return cdi::test::ReadFile(dir_.File("expected.raw"));
  }

  // tar -cf of `members`, in that order.
  std::string Tar(const std::string& members) {
    cdi::test::Sh("cd " + dir_.path() + " && tar --format=ustar -cf package.ova " + members);
    return cdi::test::ReadFile(dir_.File("package.ova"));
  }

  cdi::test::TempDir dir_;
};

TEST_F(OvaTest, TheDiskTheOvfDeclaresIsImported) {
  const std::string expected = MakeDisk("disk1.vmdk", MakeData(3 * kMiB + 512, Pattern::kZeroRuns, 3));
  cdi::test::WriteFile(dir_.File("vm.ovf"), Ovf({"disk1.vmdk"}));
  cdi::test::WriteFile(dir_.File("vm.mf"), "SHA256(disk1.vmdk)= 00\n");
  const std::string ova = Tar("vm.ovf vm.mf disk1.vmdk");
  for (size_t chunk : {size_t{4099}, kMiB + 1}) {
    for (bool wrapped : {false, true}) {
      SCOPED_TRACE(std::to_string(chunk) + (wrapped ? " gzip" : ""));
      RecordingWriter writer;
      PipelineOptions options;
      if (!wrapped) options.decoder.container_size = ova.size();
      ImagePipeline pipeline(&writer, options);
      Status status =
          FeedInChunks(pipeline, wrapped ? testing::Compress(Format::kGzip, ova) : ova, chunk);
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_EQ(pipeline.format_chain(),
                wrapped ? (Chain{"gzip", "ova", "vmdk"}) : (Chain{"ova", "vmdk"}));
      EXPECT_TRUE(writer.CoverageOk());
      EXPECT_EQ(cdi::test::FirstDifference(writer.image(), expected), "equal");
      ASSERT_TRUE(pipeline.Describe().has_value());
      EXPECT_EQ(pipeline.Describe()->details.front(),
                (std::pair<std::string, std::string>{"ova disk", "disk1.vmdk"}));
    }
  }
}

// Without a descriptor first, the first .vmdk is the disk.
TEST_F(OvaTest, WithoutAnOvfTheVmdkIsImported) {
  const std::string expected = MakeDisk("disk.vmdk", MakeData(kMiB, Pattern::kRandom, 4));
  cdi::test::WriteFile(dir_.File("README"), "a note\n");
  const std::string ova = Tar("README disk.vmdk");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, ova, 65537);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(writer.image(), expected);
}

TEST_F(OvaTest, SeveralDisksAreRefusedByName) {
  MakeDisk("disk1.vmdk", MakeData(kMiB, Pattern::kRandom, 5));
  MakeDisk("disk2.vmdk", MakeData(kMiB, Pattern::kRandom, 6));
  cdi::test::WriteFile(dir_.File("vm.ovf"), Ovf({"disk1.vmdk", "disk2.vmdk"}));
  for (const std::string members : {"vm.ovf disk1.vmdk disk2.vmdk", "disk1.vmdk disk2.vmdk"}) {
    SCOPED_TRACE(members);
    const std::string ova = Tar(members);
    RecordingWriter writer;
    ImagePipeline pipeline(&writer, {});
    Status status = FeedInChunks(pipeline, ova, 65537);
    EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << status.ToString();
    EXPECT_NE(status.message().find("disk1.vmdk, disk2.vmdk"), std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("tar -xf"), std::string::npos) << status.message();
  }
}

TEST_F(OvaTest, AnArchiveWithoutADiskIsRefused) {
  cdi::test::WriteFile(dir_.File("notes.txt"), "nothing here\n");
  const std::string tar = Tar("notes.txt");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, tar, 4096);
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << status.ToString();
  EXPECT_NE(status.message().find("no VM disk"), std::string::npos) << status.message();
  EXPECT_EQ(writer.begin_calls(), 0);
}

TEST_F(OvaTest, TheDeclaredDiskMissingIsCorrupt) {
  MakeDisk("other.vmdk", MakeData(kMiB, Pattern::kRandom, 7));
  cdi::test::WriteFile(dir_.File("vm.ovf"), Ovf({"disk1.vmdk"}));
  const std::string ova = Tar("vm.ovf other.vmdk");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, ova, 4096);
  EXPECT_EQ(status.code(), ErrorCode::kCorruptImage) << status.ToString();
  EXPECT_NE(status.message().find("disk1.vmdk"), std::string::npos) << status.message();
}

// An OVA whose disk entry is another OVA is refused, not opened again: the
// nesting stays one level deep whatever the input.
TEST_F(OvaTest, AnOvaInsideAnOvaIsRefused) {
  MakeDisk("disk.vmdk", MakeData(kMiB, Pattern::kRandom, 8));
  Tar("disk.vmdk");
  cdi::test::Sh("cd " + dir_.path() + " && mv package.ova inner.vmdk");
  const std::string ova = Tar("inner.vmdk");
  RecordingWriter writer;
  ImagePipeline pipeline(&writer, {});
  Status status = FeedInChunks(pipeline, ova, 4096);
  EXPECT_EQ(status.code(), ErrorCode::kUnsupported) << status.ToString();
  EXPECT_NE(status.message().find("itself a tar archive"), std::string::npos) << status.message();
  EXPECT_EQ(writer.begin_calls(), 0);
}

TEST(OvfDisksTest, DisksInDiskSectionOrderThroughTheirFiles) {
  auto disks = OvfDisks(Ovf({"b.vmdk", "a.vmdk"}));
  ASSERT_TRUE(disks.ok()) << disks.status().ToString();
  EXPECT_EQ(disks.value(), (std::vector<std::string>{"b.vmdk", "a.vmdk"}));
  EXPECT_EQ(OvfDisks("<Disk ovf:fileRef='nowhere'/>").status().code(), ErrorCode::kCorruptImage);
  EXPECT_EQ(OvfDisks("<References><File ovf:id='f' ovf:href='../etc/passwd'/></References>"
                     "<Disk ovf:fileRef='f'/>")
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace cdi::formats
