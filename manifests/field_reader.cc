#include "manifests/field_reader.h"

#include <algorithm>
#include <climits>

namespace cdi::apply {
namespace {

// The value as a message shows it: text in quotes, saying when it was
// quoted in the manifest (a quoted "3" is not a number to Kubernetes).
std::string Describe(const Node& node) {
  if (node.IsScalar()) {
    return (node.style == Node::Style::kQuoted ? "the quoted text " : "") + Quoted(node.scalar);
  }
  return std::string(node.KindName());
}

}  // namespace

std::string JoinPath(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string IndexPath(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string JoinList(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

FieldReader::FieldReader(ObjectRef object, Problems* problems)
    : object_(std::move(object)), problems_(problems) {}

void FieldReader::Error(int line, const std::string& field, std::string message) const {
  problems_->Add(object_, line, field, std::move(message));
}

const Node* FieldReader::OfKind(const Node& parent, std::string_view key,
                                const std::string& parent_path, Node::Kind kind,
                                std::string_view kind_name) const {
  const Node* node = parent.Find(key);
  if (node == nullptr) return nullptr;
  if (node->kind != kind) {
    Error(node->line, JoinPath(parent_path, key),
          "must be " + std::string(kind_name) + ", not " + Describe(*node));
    return nullptr;
  }
  return node;
}

const Node* FieldReader::Map(const Node& parent, std::string_view key,
                             const std::string& parent_path) const {
  return OfKind(parent, key, parent_path, Node::Kind::kMap, "a map");
}

const Node* FieldReader::List(const Node& parent, std::string_view key,
                              const std::string& parent_path) const {
  return OfKind(parent, key, parent_path, Node::Kind::kSequence, "a list");
}

std::optional<std::string> FieldReader::String(const Node& parent, std::string_view key,
                                               const std::string& parent_path) const {
  const Node* node = OfKind(parent, key, parent_path, Node::Kind::kScalar, "text");
  if (node == nullptr) return std::nullopt;
  return node->scalar;
}

std::optional<std::string> FieldReader::RequiredString(const Node& parent, std::string_view key,
                                                       const std::string& parent_path,
                                                       std::string_view what) const {
  const Node* node = parent.Find(key);
  if (node == nullptr) {
    Error(parent.line, JoinPath(parent_path, key), "is required: " + std::string(what));
    return std::nullopt;
  }
  std::optional<std::string> value = String(parent, key, parent_path);
  if (value && value->empty()) {
    Error(node->line, JoinPath(parent_path, key), "must not be empty: " + std::string(what));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> FieldReader::Bool(const Node& parent, std::string_view key,
                                      const std::string& parent_path) const {
  const Node* node = parent.Find(key);
  if (node == nullptr) return std::nullopt;
  if (node->IsScalar() && node->style == Node::Style::kPlain &&
      (node->scalar == "true" || node->scalar == "false")) {
    return node->scalar == "true";
  }
  Error(node->line, JoinPath(parent_path, key),
        "must be true or false (unquoted), not " + Describe(*node));
  return std::nullopt;
}

std::optional<int64_t> FieldReader::Integer(const Node& parent, std::string_view key,
                                            const std::string& parent_path) const {
  const Node* node = parent.Find(key);
  if (node == nullptr) return std::nullopt;
  const bool digits = node->IsScalar() && node->style == Node::Style::kPlain &&
                      !node->scalar.empty() && node->scalar.size() <= 10 &&
                      std::all_of(node->scalar.begin(), node->scalar.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stoll(node->scalar) > INT32_MAX) {
    Error(node->line, JoinPath(parent_path, key),
          "must be a whole number from 0 (unquoted), not " + Describe(*node));
    return std::nullopt;
  }
  return std::stoll(node->scalar);
}

void FieldReader::OnlyKnownFields(const Node& map, const std::string& path,
                                  std::initializer_list<std::string_view> known) const {
  // A misspelt certConfig would otherwise be ignored, and the download fail
  // later for no clear reason; kubectl's strict validation refuses unknown
  // fields too.
  for (const auto& [key, value] : map.fields) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (std::string_view name : known) list += (list.empty() ? "" : ", ") + std::string(name);
    Error(value.line, JoinPath(path, key), "unknown field (known here: " + list + ")");
  }
}

}  // namespace cdi::apply
