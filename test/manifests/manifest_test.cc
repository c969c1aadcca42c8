// Reading manifests: YAML into Node trees, with the file and line of every
// value and of every error.
#include "manifests/manifest.h"

#include <gtest/gtest.h>

#include "test/manifests/apply_test_util.h"
#include "test/support/temp_dir.h"

namespace cdi::apply {
namespace {

using test::Contains;

TEST(ManifestTest, DocumentsKeepTheirLinesAndEmptyOnesAreDropped) {
  auto documents = ParseManifest(
      "---\n# only a comment\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n---\n---\n"
      "kind: ConfigMap\n",
      "m.yaml");
  ASSERT_TRUE(documents.ok()) << documents.status().ToString();
  ASSERT_EQ(documents->size(), 2u);
  EXPECT_EQ((*documents)[0].file, "m.yaml");
  EXPECT_EQ((*documents)[0].line, 4);
  EXPECT_EQ((*documents)[0].index, 0);
  const Node* name = (*documents)[0].root.Find("metadata")->Find("name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->scalar, "a");
  EXPECT_EQ(name->line, 7);
  EXPECT_EQ((*documents)[1].line, 10);
  EXPECT_EQ((*documents)[1].index, 1);
}

TEST(ManifestTest, QuotedScalarsAreTextAndNullsCountAsAbsent) {
  auto documents = ParseManifest("a: 3\nb: \"3\"\nc:\nd: null\ne: [x, 'y']\n", "m.yaml");
  ASSERT_TRUE(documents.ok());
  const Node& root = (*documents)[0].root;
  EXPECT_EQ(root.Find("a")->style, Node::Style::kPlain);
  EXPECT_EQ(root.Find("b")->style, Node::Style::kQuoted);
  EXPECT_EQ(root.Find("b")->scalar, "3");
  EXPECT_EQ(root.Find("c"), nullptr);
  EXPECT_EQ(root.Find("d"), nullptr);
  EXPECT_EQ(root.Find("missing"), nullptr);
  ASSERT_TRUE(root.Find("e")->IsSequence());
  EXPECT_EQ(root.Find("e")->items[1].scalar, "y");
  EXPECT_EQ(root.Find("a")->Find("x"), nullptr);  // not a map: nothing, no throw
}

TEST(ManifestTest, SyntaxErrorNamesFileAndLine) {
  auto documents = ParseManifest("kind: VirtualMachine\nspec:\n  a: [1, 2\n", "vm.yaml");
  ASSERT_FALSE(documents.ok());
  EXPECT_EQ(documents.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(documents.status().message(), "vm.yaml:4: not valid YAML: "))
      << documents.status().message();
}

TEST(ManifestTest, KeyGivenTwiceIsRefused) {
  auto documents = ParseManifest("metadata:\n  name: a\n  name: b\n", "dup.yaml");
  ASSERT_FALSE(documents.ok());
  EXPECT_EQ(documents.status().message(),
            "dup.yaml:3: key \"name\" is given twice in the same map (first on line 2)");
}

TEST(ManifestTest, FilesAndDirectoriesAreReadInOrder) {
  test::TempDir dir;
  test::WriteFile(dir.File("b.yaml"), "kind: B\n");
  test::WriteFile(dir.File("a.yml"), "kind: A\n");
  test::WriteFile(dir.File("notes.txt"), "kind: Ignored\n");
  test::WriteFile(dir.File("c.json"), "{\"kind\": \"C\"}\n");
  auto documents = LoadManifestFiles({dir.path()});
  ASSERT_TRUE(documents.ok()) << documents.status().ToString();
  ASSERT_EQ(documents->size(), 3u);
  EXPECT_EQ((*documents)[0].root.Find("kind")->scalar, "A");
  EXPECT_EQ((*documents)[1].root.Find("kind")->scalar, "B");
  EXPECT_EQ((*documents)[2].root.Find("kind")->scalar, "C");
  EXPECT_EQ((*documents)[2].file, dir.File("c.json"));

  auto missing = LoadManifestFiles({dir.File("nope.yaml")});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "cannot read manifest file " + dir.File("nope.yaml"));
  test::TempDir empty;
  auto none = LoadManifestFiles({empty.path()});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(),
            "manifest directory " + empty.path() + " holds no .yaml, .yml or .json files");
}

TEST(ManifestTest, TheDocumentationsManifestsParse) {
  for (const char* name : {test::kVmManifest, test::kPoolManifest}) {
    auto documents = ParseManifest(test::Manifest(name), name);
    ASSERT_TRUE(documents.ok()) << documents.status().ToString();
    ASSERT_EQ(documents->size(), 2u) << name;
    EXPECT_EQ((*documents)[1].root.Find("kind")->scalar, "DataSource");
  }
}

}  // namespace
}  // namespace cdi::apply
