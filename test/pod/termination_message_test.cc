// The termination message, byte for byte as CDI's importer writes it.
#include "pod/termination_message.h"

#include <gtest/gtest.h>

#include <string>

#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

using pod::kMaxTerminationMessageBytes;
using pod::PlainTerminationText;
using pod::TerminationMessage;
using pod::ToJson;

TEST(TerminationMessage, SuccessIsCdisJsonInCdisFieldOrder) {
  EXPECT_EQ(
      ToJson({.scratch_space_required = false,
              .preallocation_applied = true,
              .message = "Import Complete"}),
      R"({"scratchSpaceRequired":false,"preallocationApplied":true,"message":"Import Complete"})");
  // A blank disk sets no scratch field; unset fields are left out.
  EXPECT_EQ(ToJson({.preallocation_applied = false, .message = "Import Complete"}),
            R"({"preallocationApplied":false,"message":"Import Complete"})");
  EXPECT_EQ(ToJson({}), "{}");
}

TEST(TerminationMessage, StringsAreEscapedAsGoEscapesThem) {
  EXPECT_EQ(ToJson({.message = "a \"quoted\" <b> & c\\d\ne\tf"}),
            R"({"message":"a \"quoted\" \u003cb\u003e \u0026 c\\d\ne\tf"})");
  // Invalid UTF-8 becomes U+FFFD; valid multi-byte characters pass through.
  EXPECT_EQ(ToJson({.message = std::string("caf\xC3\xA9 \xFF\xC3", 8)}),
            "{\"message\":\"caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD\"}");
  EXPECT_EQ(ToJson({.message = "line\xE2\x80\xA8sep"}), R"({"message":"line\u2028sep"})");
}

TEST(TerminationMessage, LongMessagesAreCutToFitAsValidJson) {
  // Each '<' takes six bytes once escaped; a multi-byte character sits at the cut.
  std::string message = std::string(3000, '<') + std::string(2000, 'x') + "\xC3\xA9";
  std::string json = ToJson({.message = message});
  EXPECT_LE(json.size(), kMaxTerminationMessageBytes);
  EXPECT_GT(json.size(), kMaxTerminationMessageBytes - 16);
  EXPECT_TRUE(json.starts_with(R"({"message":"\u003c\u003c)"));
  EXPECT_TRUE(json.ends_with(R"(...")"
                             "}"))
      << json.substr(json.size() - 20);
  // The text python reads back is a prefix of the message.
  TempDir dir;
  WriteFile(dir.File("m.json"), json);
  EXPECT_EQ(Sh("python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))[\"message\"]; "
               "print(m.endswith(\"...\"), m.startswith(\"<\" * 600))' " +
               dir.File("m.json")),
            "True True\n");
}

TEST(TerminationMessage, PlainTextIsOneLineOfAtMost4096Bytes) {
  EXPECT_EQ(PlainTerminationText("Unable to process data: a\nb\nc"),
            "Unable to process data: a b c");
  std::string long_text(4095, 'x');
  long_text += "\xC3\xA9tail";
  std::string text = PlainTerminationText(long_text);
  EXPECT_EQ(text, std::string(4095, 'x'));  // never half a character
}

TEST(TerminationMessage, WrittenReplacingTheFileWithMode0600) {
  TempDir dir;
  std::string path = dir.File("termination-log");
  WriteFile(path, "an older, longer message");
  ASSERT_TRUE(pod::WriteTerminationLog(path, "Import Complete").ok());
  EXPECT_EQ(ReadFile(path), "Import Complete");
  ASSERT_TRUE(pod::WriteTerminationLog(dir.File("new"), "x").ok());
  EXPECT_EQ(Sh("stat -c %a " + dir.File("new")), "600\n");
  Status status = pod::WriteTerminationLog(dir.File("missing/dir/log"), "x");
  EXPECT_EQ(status.code(), ErrorCode::kIo);
  EXPECT_EQ(status.message(), "cannot write the termination message to " +
                                  dir.File("missing/dir/log") + ": No such file or directory");
}

}  // namespace
}  // namespace cdi::test

namespace cdi::pod {
namespace {

TEST(TerminationMessageLabels, RegistryEnvBecomesCdisLabelsSorted) {
  const std::map<std::string, std::string> labels =
      EnvToLabels({"PATH=/usr/bin", "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora",
                   "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small",
                   "KUBEVIRT_IO_OS=linux", "NOEQUALS_KUBEVIRT_IO_X"});
  EXPECT_EQ(labels, (std::map<std::string, std::string>{
                        {"instancetype.kubevirt.io/default-instancetype", "u1.small"},
                        {"instancetype.kubevirt.io/default-preference", "fedora"},
                        {"kubevirt.io/os", "linux"}}));
  EXPECT_EQ(ToJson({.scratch_space_required = false,
                    .preallocation_applied = false,
                    .labels = labels,
                    .message = "Import Complete"}),
            "{\"scratchSpaceRequired\":false,\"preallocationApplied\":false,\"labels\":{"
            "\"instancetype.kubevirt.io/default-instancetype\":\"u1.small\","
            "\"instancetype.kubevirt.io/default-preference\":\"fedora\","
            "\"kubevirt.io/os\":\"linux\"},\"message\":\"Import Complete\"}");
}

}  // namespace
}  // namespace cdi::pod
