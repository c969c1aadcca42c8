#include "manifests/secret_store.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/text.h"

namespace cdi::apply {
namespace {

std::string StoreKey(StoreKind kind, const std::string& ns, const std::string& name) {
  return std::string(kind == StoreKind::kSecret ? "Secret/" : "ConfigMap/") + ns + "/" + name;
}

enum class Encoding { kText, kBase64 };

// Reads one map of key -> value (data, stringData, binaryData) into *out.
void ReadData(const Node& root, const char* field, Encoding encoding, const ObjectRef& object,
              Problems* problems, std::map<std::string, std::string>* out) {
  const Node* map = root.Find(field);
  if (map == nullptr) return;
  if (!map->IsMap()) {
    problems->Add(object, map->line, field,
                  "must be a map of keys to values, not " + std::string(map->KindName()));
    return;
  }
  for (const auto& [key, value] : map->fields) {
    const std::string path = std::string(field) + "." + key;
    if (value.IsNull()) {
      (*out)[key] = "";
      continue;
    }
    if (!value.IsScalar()) {
      problems->Add(object, value.line, path, "must be text, not " + std::string(value.KindName()));
      continue;
    }
    if (encoding == Encoding::kText) {
      (*out)[key] = value.scalar;
      continue;
    }
    std::string decoded;
    if (!DecodeBase64(value.scalar, &decoded)) {
      // Never echo the value: it is a secret.
      problems->Add(object, value.line, path,
                    "is not valid base64 (values under data are base64; put plain text under "
                    "stringData instead)");
      continue;
    }
    (*out)[key] = std::move(decoded);
  }
}

}  // namespace

void SecretStore::AddDocument(StoreKind kind, const Document& document, const ObjectRef& object,
                              Problems* problems) {
  KeyValues values;
  values.origin = object.ToString() + " (" + document.file + ")";
  if (kind == StoreKind::kSecret) {
    ReadData(document.root, "data", Encoding::kBase64, object, problems, &values.data);
    ReadData(document.root, "stringData", Encoding::kText, object, problems, &values.data);
  } else {
    ReadData(document.root, "data", Encoding::kText, object, problems, &values.data);
    ReadData(document.root, "binaryData", Encoding::kBase64, object, problems, &values.data);
  }
  documents_[StoreKey(kind, object.ns, object.name)] = std::move(values);
}

const KeyValues* SecretStore::Find(StoreKind kind, const std::string& ns, const std::string& name,
                                   std::string* error) {
  const std::string key = StoreKey(kind, ns, name);
  if (auto it = documents_.find(key); it != documents_.end()) return &it->second;
  if (kind != StoreKind::kSecret || secrets_dir_.empty()) return nullptr;
  if (auto it = mounted_.find(key); it != mounted_.end()) return &it->second;

  const std::filesystem::path dir = std::filesystem::path(secrets_dir_) / ns / name;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return nullptr;
  KeyValues values;
  values.origin = "Secret " + ns + "/" + name + " (--secrets-dir " + dir.string() + ")";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    // Kubernetes mounts keys as symlinks into a "..data" directory: follow
    // them, and skip the dot entries that hold the versions.
    if (file.empty() || file[0] == '.') continue;
    struct stat st {};
    if (stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    if (!in.is_open()) {
      *error = "cannot read " + entry.path().string();
      return nullptr;
    }
    std::ostringstream content;
    content << in.rdbuf();
    values.data[file] = std::move(content).str();
  }
  if (ec) {
    *error = "cannot list " + dir.string() + ": " + ec.message();
    return nullptr;
  }
  return &(mounted_[key] = std::move(values));
}

}  // namespace cdi::apply
