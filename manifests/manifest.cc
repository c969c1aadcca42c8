#include "manifests/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace cdi::apply {
namespace {

int LineOf(const YAML::Mark& mark) { return mark.line >= 0 ? mark.line + 1 : 0; }

std::string Where(const std::string& file, int line) {
  return line > 0 ? file + ":" + std::to_string(line) : file;
}

// Copies a yaml-cpp value into a Node. yaml-cpp may throw on any access, so
// the caller wraps this in a try block; the Status return carries our own
// findings (keys given twice, keys that are not text).
Status Convert(const YAML::Node& in, int line, const std::string& file, Node* out) {
  out->line = line;
  switch (in.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out->kind = Node::Kind::kNull;
      return Status::Ok();
    case YAML::NodeType::Scalar:
      out->kind = Node::Kind::kScalar;
      out->scalar = in.Scalar();
      // yaml-cpp tags plain scalars "?" and quoted or block scalars "!".
      out->style = in.Tag() == "?" ? Node::Style::kPlain : Node::Style::kQuoted;
      return Status::Ok();
    case YAML::NodeType::Sequence:
      out->kind = Node::Kind::kSequence;
      for (const YAML::Node& item : in) {
        Node child;
        CDI_RETURN_IF_ERROR(Convert(item, LineOf(item.Mark()), file, &child));
        out->items.push_back(std::move(child));
      }
      return Status::Ok();
    case YAML::NodeType::Map:
      out->kind = Node::Kind::kMap;
      for (auto it = in.begin(); it != in.end(); ++it) {
        const int key_line = LineOf(it->first.Mark());
        if (!it->first.IsScalar()) {
          return InvalidArgumentError(Where(file, key_line) +
                                      ": a map key is not text (a list or map used as a key)");
        }
        const std::string key = it->first.Scalar();
        for (const auto& [existing, value] : out->fields) {
          if (existing == key) {
            return InvalidArgumentError(Where(file, key_line) + ": key \"" + key +
                                        "\" is given twice in the same map (first on line " +
                                        std::to_string(value.line) + ")");
          }
        }
        Node child;
        CDI_RETURN_IF_ERROR(Convert(it->second, key_line, file, &child));
        out->fields.emplace_back(key, std::move(child));
      }
      return Status::Ok();
  }
  return InternalError("unknown YAML node type");
}

}  // namespace

const Node* Node::Find(std::string_view key) const {
  if (kind != Kind::kMap) return nullptr;
  for (const auto& [name, value] : fields) {
    if (name == key) return value.IsNull() ? nullptr : &value;
  }
  return nullptr;
}

std::string_view Node::KindName() const {
  switch (kind) {
    case Kind::kNull:
      return "empty";
    case Kind::kScalar:
      return "a single value";
    case Kind::kSequence:
      return "a list";
    case Kind::kMap:
      return "a map";
  }
  return "unknown";
}

Result<std::vector<Document>> ParseManifest(std::string_view text, const std::string& file) {
  std::vector<Document> documents;
  try {
    std::vector<YAML::Node> roots = YAML::LoadAll(std::string(text));
    for (const YAML::Node& root : roots) {
      if (root.IsNull()) continue;
      Document document;
      document.file = file;
      document.index = static_cast<int>(documents.size());
      document.line = LineOf(root.Mark());
      CDI_RETURN_IF_ERROR(Convert(root, document.line, file, &document.root));
      documents.push_back(std::move(document));
    }
  } catch (const YAML::Exception& e) {
    // e.msg is the bare reason; e.what() repeats the position in yaml-cpp's words.
    return InvalidArgumentError(Where(file, LineOf(e.mark)) + ": not valid YAML: " + e.msg);
  } catch (const std::exception& e) {
    return InvalidArgumentError(file + ": not valid YAML: " + e.what());
  }
  return documents;
}

Result<std::vector<Document>> LoadManifestFiles(const std::vector<std::string>& given) {
  // A directory stands for its *.yaml, *.yml and *.json files, in name order
  // (as kubectl reads it), not its subdirectories.
  std::vector<std::string> files;
  for (const std::string& path : given) {
    std::error_code error;
    if (path == "-" || !std::filesystem::is_directory(path, error)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
      const std::string extension = entry.path().extension().string();
      if (entry.is_regular_file(error) &&
          (extension == ".yaml" || extension == ".yml" || extension == ".json")) {
        found.push_back(entry.path().string());
      }
    }
    if (error) return InvalidArgumentError("cannot list manifest directory " + path);
    if (found.empty()) {
      return InvalidArgumentError("manifest directory " + path +
                                  " holds no .yaml, .yml or .json files");
    }
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }

  std::vector<Document> all;
  bool stdin_read = false;
  for (const std::string& path : files) {
    std::string text;
    std::string name = path;
    if (path == "-") {
      if (stdin_read) return InvalidArgumentError("-f - (standard input) is given twice");
      stdin_read = true;
      name = "<stdin>";
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in) return InvalidArgumentError("cannot read manifest file " + path);
      std::ostringstream buffer;
      buffer << in.rdbuf();
      if (in.bad()) return InvalidArgumentError("cannot read manifest file " + path);
      text = std::move(buffer).str();
    }
    CDI_ASSIGN_OR_RETURN(std::vector<Document> documents, ParseManifest(text, name));
    for (Document& document : documents) all.push_back(std::move(document));
  }
  return all;
}

}  // namespace cdi::apply
