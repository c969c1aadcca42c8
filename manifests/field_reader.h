// Reading the fields of one manifest object, with a message for every field
// that is of the wrong kind or missing. Field paths are written as messages
// show them: "spec.dataVolumeTemplates[0].spec.pvc.resources".
#ifndef CDI_MANIFESTS_FIELD_READER_H_
#define CDI_MANIFESTS_FIELD_READER_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifests/manifest.h"
#include "manifests/problems.h"

namespace cdi::apply {

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string JoinPath(const std::string& path, std::string_view key);
// "a.list" + 2 -> "a.list[2]".
std::string IndexPath(const std::string& path, size_t index);
// "text" -> "\"text\"".
std::string Quoted(std::string_view text);
// {"a", "b"} -> "a, b".
std::string JoinList(const std::vector<std::string>& items);

// Reads fields of `object`; problems go to *problems, which must outlive the
// reader. Every accessor takes the parent node and the parent's path, and
// treats a field that is absent or null as absent (nullptr / nullopt, no
// problem). A field of the wrong kind is reported and also read as absent.
class FieldReader {
 public:
  FieldReader(ObjectRef object, Problems* problems);

  const ObjectRef& object() const { return object_; }
  Problems* problems() const { return problems_; }

  // Reports a problem with `field` (a full path) of the object at `line`.
  void Error(int line, const std::string& field, std::string message) const;

  const Node* Map(const Node& parent, std::string_view key, const std::string& parent_path) const;
  const Node* List(const Node& parent, std::string_view key, const std::string& parent_path) const;
  std::optional<std::string> String(const Node& parent, std::string_view key,
                                    const std::string& parent_path) const;
  // Also reports a field that is absent or empty, with `what` it should hold.
  std::optional<std::string> RequiredString(const Node& parent, std::string_view key,
                                            const std::string& parent_path,
                                            std::string_view what) const;
  // Unquoted true or false.
  std::optional<bool> Bool(const Node& parent, std::string_view key,
                           const std::string& parent_path) const;
  // An unquoted whole number from 0 to 2^31-1, as Kubernetes reads an int32.
  std::optional<int64_t> Integer(const Node& parent, std::string_view key,
                                 const std::string& parent_path) const;
  // Reports every field of `map` whose name is not in `known`.
  void OnlyKnownFields(const Node& map, const std::string& path,
                       std::initializer_list<std::string_view> known) const;

 private:
  const Node* OfKind(const Node& parent, std::string_view key, const std::string& parent_path,
                     Node::Kind kind, std::string_view kind_name) const;

  ObjectRef object_;
  Problems* problems_;
};

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_FIELD_READER_H_
