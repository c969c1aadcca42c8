#include "manifests/objects.h"

#include <algorithm>
#include <map>
#include <optional>

#include "manifests/field_reader.h"

namespace cdi::apply {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

std::string ApiGroup(std::string_view api_version) {
  const size_t slash = api_version.find('/');
  return slash == std::string_view::npos ? std::string()
                                         : std::string(api_version.substr(0, slash));
}

// Equal values, wherever they are written.
bool SameContent(const Node& a, const Node& b) {
  if (a.kind != b.kind || a.scalar != b.scalar || a.style != b.style ||
      a.items.size() != b.items.size() || a.fields.size() != b.fields.size()) {
    return false;
  }
  for (size_t i = 0; i < a.items.size(); ++i) {
    if (!SameContent(a.items[i], b.items[i])) return false;
  }
  for (size_t i = 0; i < a.fields.size(); ++i) {
    if (a.fields[i].first != b.fields[i].first ||
        !SameContent(a.fields[i].second, b.fields[i].second)) {
      return false;
    }
  }
  return true;
}

struct KindInfo {
  ObjectKind kind;
  std::string_view name;
  std::vector<std::string_view> groups;  // accepted API groups ("" is the core group)
  std::string_view expected;             // for messages
};

const std::vector<KindInfo>& KnownKinds() {
  static const std::vector<KindInfo> kinds = {
      {ObjectKind::kVirtualMachine, "VirtualMachine", {"kubevirt.io"}, "kubevirt.io/v1"},
      // The user documentation writes kubevirt.io/v1alpha1; KubeVirt serves
      // pools as pool.kubevirt.io/v1alpha1. Both mean the same object.
      {ObjectKind::kVirtualMachinePool,
       "VirtualMachinePool",
       {"kubevirt.io", "pool.kubevirt.io"},
       "kubevirt.io/v1alpha1 or pool.kubevirt.io/v1alpha1"},
      {ObjectKind::kDataSource, "DataSource", {kCdiGroup}, "cdi.kubevirt.io/v1beta1"},
      {ObjectKind::kDataVolume, "DataVolume", {kCdiGroup}, "cdi.kubevirt.io/v1beta1"},
      {ObjectKind::kSecret, "Secret", {""}, "v1"},
      {ObjectKind::kConfigMap, "ConfigMap", {""}, "v1"},
  };
  return kinds;
}

}  // namespace

bool IsDnsName(std::string_view name, DnsName form) {
  const size_t max_length = form == DnsName::kSubdomain ? 253 : 63;
  if (name.empty() || name.size() > max_length) return false;
  if (!IsLowerAlnum(name.front()) || !IsLowerAlnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return IsLowerAlnum(c) || c == '-' || (form == DnsName::kSubdomain && c == '.');
  });
}

std::vector<ManifestObject> IndexObjects(const std::vector<Document>& documents,
                                         const std::string& default_namespace, SecretStore* store,
                                         Problems* problems, std::vector<std::string>* notes) {
  std::vector<ManifestObject> objects;
  struct Seen {
    ObjectRef ref;
    const Document* document;
  };
  std::map<std::string, Seen> seen;
  for (const Document& document : documents) {
    const Node& root = document.root;
    if (!root.IsMap()) {
      problems->Add(Problem{.file = document.file,
                            .line = document.line,
                            .message = "a manifest document must be a map with apiVersion, "
                                       "kind and metadata, not " +
                                       std::string(root.KindName())});
      continue;
    }
    // Name the object first, so that every message about it says which it is.
    auto text = [](const Node* node) {
      return node != nullptr && node->IsScalar() ? node->scalar : std::string();
    };
    const Node* metadata_node = root.Find("metadata");
    ObjectRef ref{.kind = text(root.Find("kind")),
                  .ns = default_namespace,
                  .name = metadata_node ? text(metadata_node->Find("name")) : "",
                  .file = document.file,
                  .line = document.line};
    if (metadata_node != nullptr && metadata_node->Find("namespace") != nullptr &&
        metadata_node->Find("namespace")->IsScalar()) {
      ref.ns = metadata_node->Find("namespace")->scalar;
    }
    if (ref.kind.empty()) ref.kind = "(no kind)";
    FieldReader reader(ref, problems);
    std::optional<std::string> kind = reader.String(root, "kind", "");
    std::optional<std::string> api_version = reader.String(root, "apiVersion", "");
    const Node* metadata = reader.Map(root, "metadata", "");
    std::optional<std::string> name;
    std::optional<std::string> ns;
    if (metadata != nullptr) {
      name = reader.String(*metadata, "name", "metadata");
      ns = reader.String(*metadata, "namespace", "metadata");
    }
    if (!kind || kind->empty()) {
      if (root.Find("kind") == nullptr) reader.Error(root.line, "kind", "is required");
      continue;
    }
    const KindInfo* info = nullptr;
    for (const KindInfo& known : KnownKinds()) {
      if (known.name == *kind) info = &known;
    }
    if (info == nullptr) {
      notes->push_back(document.file + ":" + std::to_string(document.line) + ": skipped " +
                       ref.ToString() + " (cdi-image apply does not use this kind)");
      continue;
    }
    bool valid = true;
    if (!api_version || api_version->empty()) {
      if (root.Find("apiVersion") == nullptr) {
        reader.Error(root.line, "apiVersion", "is required (" + std::string(info->expected) + ")");
      }
      valid = false;
    } else if (std::find(info->groups.begin(), info->groups.end(), ApiGroup(*api_version)) ==
               info->groups.end()) {
      reader.Error(root.Find("apiVersion")->line, "apiVersion",
                   Quoted(*api_version) + " is not an API version of " + *kind + " (expected " +
                       std::string(info->expected) + ")");
      valid = false;
    }
    if (metadata == nullptr || !name || name->empty()) {
      if (metadata == nullptr || metadata->Find("name") == nullptr) {
        reader.Error(metadata ? metadata->line : root.line, "metadata.name", "is required");
      }
      continue;
    }
    if (!IsDnsName(*name, DnsName::kSubdomain)) {
      reader.Error(metadata->Find("name")->line, "metadata.name",
                   Quoted(*name) +
                       " is not a valid name: lower-case letters, digits, '-' and '.', "
                       "starting and ending with a letter or digit, at most 253 characters");
      valid = false;
    }
    if (ns && !IsDnsName(*ns, DnsName::kLabel)) {
      reader.Error(metadata->Find("namespace")->line, "metadata.namespace",
                   Quoted(*ns) +
                       " is not a valid namespace: lower-case letters, digits and '-', "
                       "starting and ending with a letter or digit, at most 63 characters");
      valid = false;
    }
    const std::string key = std::string(info->name) + "/" + ref.ns + "/" + ref.name;
    if (auto it = seen.find(key); it != seen.end()) {
      // The same object in two files (both of the user documentation's
      // examples declare the DataSource) is what kubectl would apply twice
      // without change: fine. Two different definitions are a mistake.
      if (SameContent(root, it->second.document->root)) {
        notes->push_back(document.file + ":" + std::to_string(document.line) + ": " +
                         ref.ToString() + " is also defined, identically, at " +
                         it->second.ref.file + ":" + std::to_string(it->second.ref.line) +
                         "; using it once");
      } else {
        reader.Error(document.line, "",
                     "is defined twice, differently: also at " + it->second.ref.file + ":" +
                         std::to_string(it->second.ref.line));
      }
      continue;
    }
    seen.emplace(key, Seen{ref, &document});
    if (!valid) continue;
    objects.push_back(ManifestObject{.document = &document, .kind = info->kind, .ref = ref});
    if (info->kind == ObjectKind::kSecret) {
      store->AddDocument(StoreKind::kSecret, document, ref, problems);
    } else if (info->kind == ObjectKind::kConfigMap) {
      store->AddDocument(StoreKind::kConfigMap, document, ref, problems);
    }
  }
  return objects;
}

}  // namespace cdi::apply
