// VDI, VMDK and VHDX through cdi-image, end to end: images made by qemu-img,
// imported from a file and, inside xz, from standard input, compared with
// qemu-img's own conversion to raw; `cdi-image info` on a VHDX.
#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "test/e2e/e2e_util.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

struct Case {
  std::string name;     // the image file
  std::string options;  // qemu-img convert's -O and -o
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ImportVdiVmdkTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!HaveProgram("qemu-img")) GTEST_SKIP() << "needs qemu-img";
    // 3 MiB + 12345 bytes: data, zero runs, and a size that is no multiple
    // of a block or a grain.
    WriteFile(dir_.File("guest.raw"), MakeRawImage(100, 3, 5) + RandomBytes(12345, 6));
    Sh("cd " + dir_.path() + " && qemu-img convert -q -f raw " + GetParam().options +
       " guest.raw " + GetParam().name + " && qemu-img convert -q -O raw " + GetParam().name +
       " expected.raw");
  }
  TempDir dir_;
};

TEST_P(ImportVdiVmdkTest, ImportsLikeQemuImgFromAFileAndFromAPipe) {
  const std::string image = dir_.File(GetParam().name);
  const std::string expected = Sha256File(dir_.File("expected.raw"));

  RunResult r = CdiImage({"import", image, dir_.File("file.img"), "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir_.File("file.img")), expected);
  EXPECT_EQ(FileSize(dir_.File("file.img")), FileSize(dir_.File("expected.raw")));

  Sh("xz -0 -k " + image);
  RunOptions options;
  options.stdin_data = ReadFile(image + ".xz");
  r = CdiImage({"import", "-", dir_.File("pipe.img"), "--progress", "none"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir_.File("pipe.img")), expected);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, ImportVdiVmdkTest,
    ::testing::Values(Case{"dynamic.vdi", "-O vdi"}, Case{"static.vdi", "-O vdi -o static=on"},
                      Case{"stream.vmdk", "-O vmdk -o subformat=streamOptimized"},
                      Case{"sparse.vmdk", "-O vmdk -o subformat=monolithicSparse"},
                      Case{"dynamic.vhdx", "-O vhdx -o subformat=dynamic,block_size=1M"},
                      Case{"fixed.vhdx", "-O vhdx -o subformat=fixed,block_size=8M"}),
    [](const auto& test_info) {
      std::string name = test_info.param.name;
      name[name.find('.')] = '_';
      return name;
    });

// An OVA (tar of an .ovf and a streamOptimized .vmdk) imports its disk, from
// a file and, gzip-compressed, from standard input.
TEST(ImportOvaTest, ImportsItsDiskLikeQemuImgConvertsTheVmdk) {
  if (!HaveProgram("qemu-img") || !HaveProgram("tar")) GTEST_SKIP() << "needs qemu-img and tar";
  TempDir dir;
  WriteFile(dir.File("guest.raw"), MakeRawImage(100, 3, 7) + RandomBytes(4096, 8));
  WriteFile(dir.File("vm.ovf"),
            "<?xml version=\"1.0\"?>\n<Envelope xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\">"
            "<References><File ovf:id=\"file1\" ovf:href=\"vm-disk1.vmdk\"/></References>"
            "<DiskSection><Disk ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\"/></DiskSection>"
            "</Envelope>\n");
  Sh("cd " + dir.path() +
     " && qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized guest.raw vm-disk1.vmdk"
     " && qemu-img convert -q -O raw vm-disk1.vmdk expected.raw"
     " && tar --format=ustar -cf vm.ova vm.ovf vm-disk1.vmdk && gzip -k vm.ova");
  const std::string expected = Sha256File(dir.File("expected.raw"));

  RunResult r = CdiImage({"import", dir.File("vm.ova"), dir.File("file.img"), "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir.File("file.img")), expected);
  EXPECT_EQ(FileSize(dir.File("file.img")), FileSize(dir.File("expected.raw")));

  RunOptions options;
  options.stdin_data = ReadFile(dir.File("vm.ova.gz"));
  r = CdiImage({"import", "-", dir.File("pipe.img"), "--progress", "none"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(dir.File("pipe.img")), expected);

  r = CdiImage({"info", dir.File("vm.ova")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("vm-disk1.vmdk"), std::string::npos) << r.out;
}

TEST(ImageInfoTest, VhdxShowsItsLayout) {
  if (!HaveProgram("qemu-img")) GTEST_SKIP() << "needs qemu-img";
  TempDir dir;
  const std::string image = dir.File("disk.vhdx");
  Sh("qemu-img create -q -f vhdx -o subformat=dynamic,block_size=2M " + image + " 10M");
  RunResult r = CdiImage({"info", image, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string part : {"\"vhdx\"", "\"dynamic\"", "\"2097152\"", "10485760",
                                 "logical sector size"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " in " << r.out;
  }
}

}  // namespace
}  // namespace cdi::test
