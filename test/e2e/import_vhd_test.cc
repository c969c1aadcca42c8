// VHD through cdi-image, end to end: dynamic and fixed images made by
// qemu-img and qemu-io, imported from a file and from standard input, and
// compared with qemu-img's reading (sized by the footer's current size);
// `cdi-image info` shows their details.
#include <gtest/gtest.h>

#include <string>

#include "test/e2e/e2e_util.h"
#include "test/support/http_server.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

class ImportVhdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveProgram("qemu-img") || !HaveProgram("qemu-io")) GTEST_SKIP() << "needs qemu-img";
    std::string raw = MakeRawImage(100, 3, 5) + RandomBytes(12345, 6);
    WriteFile(dir_.File("guest.raw"), raw);
    Sh("cd " + dir_.path() +
       " && qemu-img convert -q -f raw -O vpc -o subformat=dynamic,force_size=on guest.raw "
       "dynamic.vhd && qemu-io -f vpc -c 'write -P 0x5a 5M 100k' -c 'write -P 0x11 512 4k' "
       "dynamic.vhd >/dev/null"
       " && qemu-img convert -q -f raw -O vpc -o subformat=fixed,force_size=on guest.raw "
       "fixed.vhd");
  }

  std::string Reference(const std::string& name) {
    std::string out = dir_.File(name + ".expected");
    Sh("qemu-img convert --image-opts driver=vpc,force_size_calc=current_size,file.filename=" +
       dir_.File(name) + " -O raw " + out);
    return ReadFile(out);
  }

  TempDir dir_;
};

TEST_F(ImportVhdTest, DynamicImportsLikeQemuImg) {
  std::string target = dir_.File("dynamic.img");
  RunResult r = CdiImage({"import", dir_.File("dynamic.vhd"), target, "--progress", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Sha256File(target), Sha256Bytes(Reference("dynamic.vhd")));

  r = CdiImage({"info", dir_.File("dynamic.vhd")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "vhd")) << r.out;
  EXPECT_TRUE(Contains(r.out, "dynamic")) << r.out;
  EXPECT_TRUE(Contains(r.out, "2097152")) << r.out;
}

// From standard input the length is not known before the end: the footer is
// left out and the guest is its current size.
TEST_F(ImportVhdTest, FixedFromStandardInputHasTheFootersSize) {
  std::string target = dir_.File("fixed.img");
  RunOptions options;
  options.stdin_data = ReadFile(dir_.File("fixed.vhd"));
  RunResult r = CdiImage({"import", "-", target, "--progress", "none"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected = Reference("fixed.vhd");
  EXPECT_EQ(FileSize(target), expected.size());
  EXPECT_EQ(Sha256File(target), Sha256Bytes(expected));

  r = CdiImage({"info", "--full", dir_.File("fixed.vhd")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "fixed")) << r.out;
  EXPECT_TRUE(Contains(r.out, std::to_string(expected.size()))) << r.out;
}

// From a file, and over HTTP with a Content-Length, the length is known
// before the footer shows: the announced size is lowered to the footer's
// current size, so the disk is exactly qemu-img's virtual size.
TEST_F(ImportVhdTest, FixedWithAKnownLengthHasTheFootersSize) {
  const std::string expected = Reference("fixed.vhd");
  ASSERT_EQ(FileSize(dir_.File("fixed.vhd")), expected.size() + 512);
  NginxServer server(NginxOptions{.root = dir_.path()});
  for (const std::string& source : {dir_.File("fixed.vhd"), server.Url("/fixed.vhd")}) {
    SCOPED_TRACE(source);
    std::string target = dir_.File("fixed-known.img");
    RunResult r = CdiImage({"import", source, target, "--progress", "none", "--force"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(FileSize(target), expected.size());
    EXPECT_EQ(Sha256File(target), Sha256Bytes(expected));
  }
  RunResult r = CdiImage({"info", "--full", "--json", dir_.File("fixed.vhd")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "\"virtual_size\":" + std::to_string(expected.size()))) << r.out;
}

TEST_F(ImportVhdTest, DifferencingIsRefusedByName) {
  Sh("cd " + dir_.path() + " && qemu-img convert -q -f raw -O vpc guest.raw parent.vhd");
  std::string child = ReadFile(dir_.File("parent.vhd"));
  // Disk type 4 in both footers, checksums made right again.
  for (size_t footer : {size_t{0}, child.size() - 512}) {
    child[footer + 63] = 4;
    uint32_t sum = 0;
    for (size_t i = 0; i < 512; ++i) {
      if (i < 64 || i >= 68) sum += static_cast<uint8_t>(child[footer + i]);
    }
    sum = ~sum;
    for (int i = 0; i < 4; ++i) child[footer + 64 + i] = static_cast<char>(sum >> (24 - 8 * i));
  }
  WriteFile(dir_.File("child.vhd"), child);
  RunResult r =
      CdiImage({"import", dir_.File("child.vhd"), dir_.File("child.img"), "--progress", "none"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(Contains(r.err, "differencing VHD images need their parent")) << r.err;
  EXPECT_FALSE(FileExists(dir_.File("child.img")));
}

}  // namespace
}  // namespace cdi::test
