// Reading Kubernetes manifests: multi-document YAML turned into a plain tree
// of values that remember where they were written.
//
// yaml-cpp throws; this module is the only place that calls it. Everything
// after ParseManifest works on Node, which cannot throw, and every error says
// the file and line it is about.
#ifndef CDI_MANIFESTS_MANIFEST_H_
#define CDI_MANIFESTS_MANIFEST_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdi/status.h"

namespace cdi::apply {

// One YAML value. Maps keep their keys in document order.
struct Node {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  // A quoted scalar ("3", '3') is a string to Kubernetes, never a number or a
  // boolean; a plain one (3, true) may be either.
  enum class Style { kPlain, kQuoted };

  Kind kind = Kind::kNull;
  std::string scalar;  // kScalar: the text as written, without quotes
  Style style = Style::kPlain;
  std::vector<Node> items;                           // kSequence
  std::vector<std::pair<std::string, Node>> fields;  // kMap
  // 1-based line where the value is written (for a map entry: its key's line).
  int line = 0;

  bool IsNull() const { return kind == Kind::kNull; }
  bool IsScalar() const { return kind == Kind::kScalar; }
  bool IsSequence() const { return kind == Kind::kSequence; }
  bool IsMap() const { return kind == Kind::kMap; }
  // The value of `key` in a map; nullptr when this is not a map, when the key
  // is absent, or when its value is null (`key:` or `key: null`), which
  // Kubernetes treats as absent.
  const Node* Find(std::string_view key) const;
  // A description of the value's kind for messages: "a map", "a list", ...
  std::string_view KindName() const;
};

// One document of a manifest file: an object with apiVersion, kind and
// metadata (which may be missing or wrong: the resolver says so).
struct Document {
  std::string file;  // as given on the command line; "<stdin>" for "-"
  int index = 0;     // 0-based position among the file's non-empty documents
  int line = 0;      // 1-based line where its content starts
  Node root;
};

// Parses every document of `text` (separated by ---). Empty documents (only
// comments, or nothing between two ---) are dropped. Fails with
// kInvalidArgument naming `file` and the line for YAML syntax errors and for
// keys given twice in one map, which Kubernetes refuses too.
Result<std::vector<Document>> ParseManifest(std::string_view text, const std::string& file);

// Reads and parses each file in order ("-" is standard input, read once; a
// directory stands for its *.yaml, *.yml and *.json files in name order).
// Fails on the first file that cannot be read or parsed.
Result<std::vector<Document>> LoadManifestFiles(const std::vector<std::string>& files);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_MANIFEST_H_
