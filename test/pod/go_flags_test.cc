// Go's flag syntax, as CDI's helpers are started with it.
#include "pod/go_flags.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cdi::test {
namespace {

using pod::GoFlagSet;

struct Flags {
  int64_t port = 8100;
  std::string dir = ".";
  bool version = false;
  GoFlagSet set{"server"};
  Flags() {
    set.Int("p", &port, "server port");
    set.String("image-dir", &dir, "directory to serve");
    set.Bool("version", &version, "print the version");
  }
};

TEST(GoFlagsTest, TakesGoSyntax) {
  Flags f;
  ASSERT_EQ(f.set.Parse({"-p", "8200", "--image-dir=/disk", "-version"}),
            GoFlagSet::Outcome::kParsed);
  EXPECT_EQ(f.port, 8200);
  EXPECT_EQ(f.dir, "/disk");
  EXPECT_TRUE(f.version);

  Flags g;
  ASSERT_EQ(g.set.Parse({"--p=0x10", "-version=false", "--", "-p", "x"}),
            GoFlagSet::Outcome::kParsed);
  EXPECT_EQ(g.port, 16);
  EXPECT_FALSE(g.version);
  EXPECT_EQ(g.set.positional(), (std::vector<std::string>{"-p", "x"}));

  Flags h;
  ASSERT_EQ(h.set.Parse({"word", "-p", "1"}), GoFlagSet::Outcome::kParsed);
  EXPECT_EQ(h.port, 8100);  // flags end at the first word
}

TEST(GoFlagsTest, RefusesAsGoDoes) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{"-x"}, "flag provided but not defined: -x"},
           {{"-p"}, "flag needs an argument: -p"},
           {{"-p", "eighty"}, "invalid value \"eighty\" for flag -p: parse error"},
           {{"-version=maybe"}, "invalid boolean value \"maybe\" for -version: parse error"},
           {{"---p", "1"}, "bad flag syntax: ---p"},
       }) {
    Flags f;
    EXPECT_EQ(f.set.Parse(c.args), GoFlagSet::Outcome::kError) << c.args.front();
    EXPECT_EQ(f.set.error(), c.error);
  }
  for (const char* help : {"-h", "--help", "-help"}) {
    Flags f;
    EXPECT_EQ(f.set.Parse({help}), GoFlagSet::Outcome::kHelp) << help;
  }
}

TEST(GoFlagsTest, UsageListsFlagsByNameWithDefaults) {
  Flags f;
  EXPECT_EQ(f.set.Usage(),
            "Usage of server:\n"
            "  -image-dir string\n    \tdirectory to serve (default \".\")\n"
            "  -p int\n    \tserver port (default 8100)\n"
            "  -version\n    \tprint the version\n");
}

}  // namespace
}  // namespace cdi::test
