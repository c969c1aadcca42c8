#include "manifests/resolve.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>

#include "cdi/quantity.h"
#include "manifests/field_reader.h"
#include "manifests/http_source.h"
#include "manifests/secret_store.h"

namespace cdi::apply {
namespace {

// KubeVirt refuses disks smaller than 1 MiB, and CDI's webhook refuses such
// DataVolumes for consistency.
constexpr uint64_t kMinimumRequest = kMiB;
constexpr char kCdiGroup[] = "cdi.kubevirt.io";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Kubernetes names these objects with DNS-1123 subdomains (at most 253
// characters of [a-z0-9.-], starting and ending alphanumeric); namespaces with
// DNS-1123 labels (at most 63, no dots). Both become directory names, so this
// also keeps "..", "/" and the empty name out of paths.
enum class DnsName { kSubdomain, kLabel };
bool IsDnsName(std::string_view name, DnsName form) {
  const size_t max_length = form == DnsName::kSubdomain ? 253 : 63;
  if (name.empty() || name.size() > max_length) return false;
  if (!IsLowerAlnum(name.front()) || !IsLowerAlnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return IsLowerAlnum(c) || c == '-' || (form == DnsName::kSubdomain && c == '.');
  });
}

// Which of a DataVolume's two volume sections is used, and where its image
// comes from: together they decide the sizing rules.
enum class VolumeSection { kPvc, kStorage };
enum class SourceKind { kSourceRef, kSource };

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

// ---------------------------------------------------------------------------
// Documents

enum class Kind {
  kVirtualMachine,
  kVirtualMachinePool,
  kDataSource,
  kDataVolume,
  kSecret,
  kConfigMap,
  kOther,
};

struct KindInfo {
  Kind kind;
  std::string_view name;
  std::vector<std::string_view> groups;  // accepted API groups ("" is the core group)
  std::string_view expected;             // for messages
};

const std::vector<KindInfo>& KnownKinds() {
  static const std::vector<KindInfo> kinds = {
      {Kind::kVirtualMachine, "VirtualMachine", {"kubevirt.io"}, "kubevirt.io/v1"},
      // The user documentation writes kubevirt.io/v1alpha1; KubeVirt serves
      // pools as pool.kubevirt.io/v1alpha1. Both mean the same object.
      {Kind::kVirtualMachinePool,
       "VirtualMachinePool",
       {"kubevirt.io", "pool.kubevirt.io"},
       "kubevirt.io/v1alpha1 or pool.kubevirt.io/v1alpha1"},
      {Kind::kDataSource, "DataSource", {kCdiGroup}, "cdi.kubevirt.io/v1beta1"},
      {Kind::kDataVolume, "DataVolume", {kCdiGroup}, "cdi.kubevirt.io/v1beta1"},
      {Kind::kSecret, "Secret", {""}, "v1"},
      {Kind::kConfigMap, "ConfigMap", {""}, "v1"},
  };
  return kinds;
}

struct Object {
  const Document* document = nullptr;
  Kind kind = Kind::kOther;
  ObjectRef ref;
};

// A DataVolume found in the manifests, before selection.
struct Draft {
  DataVolumePlan plan;
  std::optional<std::string> source_key;  // set when its source resolved
  bool block_explicit = false;            // volumeMode: Block written
  bool filesystem_explicit = false;       // volumeMode: Filesystem written, or pvc without one
  std::string volume_mode_field;
  Problems problems;
};

// A DataVolume spec as written (once per template, before pool replicas).
struct Template {
  std::optional<DataVolumePlan> plan;  // nullopt when it could not be read
  std::optional<std::string> source_key;
  bool block_explicit = false;
  bool filesystem_explicit = false;
  std::string volume_mode_field;
};

class Resolver {
 public:
  Resolver(const std::vector<Document>& documents, const ResolveOptions& options)
      : documents_(documents), options_(options), store_(options.secrets_dir) {}

  Resolution Run() {
    IndexDocuments();
    for (const Object& object : objects_) {
      switch (object.kind) {
        case Kind::kVirtualMachine:
          VirtualMachine(object);
          break;
        case Kind::kVirtualMachinePool:
          Pool(object);
          break;
        case Kind::kDataVolume:
          DataVolumeDocument(object);
          break;
        default:
          break;
      }
    }
    CheckDuplicateDataVolumes();
    std::vector<bool> selected = Select();
    ApplyBlockDevices(selected);
    Build(selected);
    return std::move(resolution_);
  }

 private:
  Problems& problems() { return resolution_.problems; }

  // Names every object, checks kinds and duplicates, and files Secrets and
  // ConfigMaps in the store.
  void IndexDocuments() {
    struct Seen {
      ObjectRef ref;
      const Document* document;
    };
    std::map<std::string, Seen> seen;
    for (const Document& document : documents_) {
      const Node& root = document.root;
      if (!root.IsMap()) {
        problems().Add(Problem{.file = document.file,
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
                    .ns = options_.default_namespace,
                    .name = metadata_node ? text(metadata_node->Find("name")) : "",
                    .file = document.file,
                    .line = document.line};
      if (metadata_node != nullptr && metadata_node->Find("namespace") != nullptr &&
          metadata_node->Find("namespace")->IsScalar()) {
        ref.ns = metadata_node->Find("namespace")->scalar;
      }
      if (ref.kind.empty()) ref.kind = "(no kind)";
      FieldReader reader(ref, &problems());
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
        resolution_.plan.notes.push_back(document.file + ":" + std::to_string(document.line) +
                                         ": skipped " + ref.ToString() +
                                         " (cdi-image apply does not use this kind)");
        continue;
      }
      bool valid = true;
      if (!api_version || api_version->empty()) {
        if (root.Find("apiVersion") == nullptr) {
          reader.Error(root.line, "apiVersion",
                       "is required (" + std::string(info->expected) + ")");
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
          resolution_.plan.notes.push_back(
              document.file + ":" + std::to_string(document.line) + ": " + ref.ToString() +
              " is also defined, identically, at " + it->second.ref.file + ":" +
              std::to_string(it->second.ref.line) + "; using it once");
        } else {
          reader.Error(document.line, "",
                       "is defined twice, differently: also at " + it->second.ref.file + ":" +
                           std::to_string(it->second.ref.line));
        }
        continue;
      }
      seen.emplace(key, Seen{ref, &document});
      if (!valid) continue;
      objects_.push_back(Object{.document = &document, .kind = info->kind, .ref = ref});
      if (info->kind == Kind::kSecret) {
        store_.AddDocument(StoreKind::kSecret, document, ref, &problems());
      } else if (info->kind == Kind::kConfigMap) {
        store_.AddDocument(StoreKind::kConfigMap, document, ref, &problems());
      }
    }
    // Pointers into objects_ only once it has stopped growing.
    for (const Object& object : objects_) {
      if (object.kind == Kind::kDataSource) {
        data_sources_[object.ref.ns + "/" + object.ref.name] = &object;
      }
    }
  }

  // A DataSource's source, resolved once however many DataVolumes use it;
  // its problems are reported with each DataVolume that uses it (so that
  // --only reports them exactly when they matter).
  struct ResolvedDataSource {
    std::optional<ResolvedSource> source;
    Problems problems;
  };
  const ResolvedDataSource& DataSource(const Object& object) {
    const std::string key = object.ref.ns + "/" + object.ref.name;
    if (auto it = resolved_data_sources_.find(key); it != resolved_data_sources_.end()) {
      return it->second;
    }
    ResolvedDataSource& resolved = resolved_data_sources_[key];
    FieldReader reader(object.ref, &resolved.problems);
    const Node& root = object.document->root;
    const Node* spec = reader.Map(root, "spec", "");
    const Node* source = spec ? reader.Map(*spec, "source", "spec") : nullptr;
    if (source == nullptr) {
      if (spec == nullptr || spec->Find("source") == nullptr) {
        reader.Error(spec ? spec->line : root.line, "spec.source.http",
                     "is required: the URL (and TLS settings) of the disk image");
      }
      return resolved;
    }
    for (const auto& [kind, value] : source->fields) {
      if (kind == "http") continue;
      reader.Error(value.line, "spec.source." + kind,
                   "cdi-image apply imports only spec.source.http (a DataSource pointing at a "
                   "PVC, a snapshot or another DataSource is a clone inside a cluster)");
    }
    const Node* http = reader.Map(*source, "http", "spec.source");
    if (http == nullptr) {
      if (source->Find("http") == nullptr && source->fields.empty()) {
        reader.Error(source->line, "spec.source.http",
                     "is required: the URL (and TLS settings) of the disk image");
      }
      return resolved;
    }
    resolved.source = ReadHttpSource(reader, *http, "spec.source.http", object.ref.ns, &store_);
    return resolved;
  }

  // Reads one DataVolume spec (a DataVolume document's spec, or a
  // dataVolumeTemplates[i].spec) in namespace `ns`. Problems go to *problems.
  Template ReadSpec(const ObjectRef& object, const Node& spec, const std::string& path,
                    const std::string& ns, Problems* problems) {
    Template result;
    FieldReader reader(object, problems);
    const size_t problems_before = problems->size();
    DataVolumePlan plan;
    plan.declared_in = object;

    const Node* pvc = reader.Map(spec, "pvc", path);
    const Node* storage = reader.Map(spec, "storage", path);
    if (pvc != nullptr && storage != nullptr) {
      reader.Error(spec.line, path,
                   "has both pvc and storage: give one (pvc: the PVC exactly as written; "
                   "storage: sized by CDI with the filesystem overhead added)");
    } else if (pvc == nullptr && storage == nullptr) {
      if (spec.Find("pvc") == nullptr && spec.Find("storage") == nullptr) {
        reader.Error(spec.line, JoinPath(path, "pvc"),
                     "is required (or storage): the volume the image is imported into, with "
                     "resources.requests.storage");
      }
    }
    const Node* volume = pvc != nullptr ? pvc : storage;
    const std::string volume_path = JoinPath(path, pvc != nullptr ? "pvc" : "storage");

    // Source: exactly one of sourceRef and source.
    const Node* source_ref = reader.Map(spec, "sourceRef", path);
    const Node* source = reader.Map(spec, "source", path);
    if (source_ref != nullptr && source != nullptr) {
      reader.Error(spec.line, path, "has both source and sourceRef: give one");
    } else if (spec.Find("sourceRef") == nullptr && spec.Find("source") == nullptr) {
      reader.Error(spec.line, JoinPath(path, "sourceRef"),
                   "is required (or source.http): where the image comes from");
    }
    std::optional<ResolvedSource> resolved;
    if (source_ref != nullptr && source == nullptr) {
      resolved = FromSourceRef(reader, *source_ref, JoinPath(path, "sourceRef"), ns, problems);
    } else if (source != nullptr && source_ref == nullptr) {
      for (const auto& [kind, value] : source->fields) {
        if (kind == "http") continue;
        reader.Error(value.line, JoinPath(JoinPath(path, "source"), kind),
                     "cdi-image apply imports only http sources (source.http)");
      }
      if (const Node* http = reader.Map(*source, "http", JoinPath(path, "source"))) {
        resolved = ReadHttpSource(reader, *http, JoinPath(path, "source.http"), ns, &store_);
      } else if (source->fields.empty()) {
        reader.Error(source->line, JoinPath(path, "source.http"), "is required: the image's URL");
      }
    }

    if (std::optional<std::string> content = reader.String(spec, "contentType", path)) {
      if (*content == "archive") {
        reader.Error(spec.Find("contentType")->line, JoinPath(path, "contentType"),
                     "archive content (a tar extracted into the volume) is not supported by "
                     "cdi-image apply; only disk images (kubevirt)");
      } else if (!content->empty() && *content != "kubevirt") {
        reader.Error(spec.Find("contentType")->line, JoinPath(path, "contentType"),
                     "must be \"kubevirt\" or \"archive\", not " + Quoted(*content));
      }
    }
    if (std::optional<bool> preallocate = reader.Bool(spec, "preallocation", path)) {
      plan.preallocation = *preallocate ? Preallocation::kOn : Preallocation::kOff;
    }

    if (volume != nullptr) {
      ReadVolume(reader, *volume, volume_path,
                 pvc != nullptr ? VolumeSection::kPvc : VolumeSection::kStorage,
                 source_ref != nullptr ? SourceKind::kSourceRef : SourceKind::kSource, &plan,
                 &result);
    }
    if (problems->size() != problems_before) return result;
    result.plan = std::move(plan);
    if (resolved) {
      const std::string key = resolved->Key();
      sources_by_key_.emplace(key, std::move(*resolved));
      result.source_key = key;
    }
    return result;
  }

  // volumeMode and resources.requests.storage of spec.pvc or spec.storage.
  void ReadVolume(const FieldReader& reader, const Node& volume, const std::string& path,
                  VolumeSection section, SourceKind source_kind, DataVolumePlan* plan,
                  Template* result) {
    const bool is_pvc = section == VolumeSection::kPvc;
    result->volume_mode_field = JoinPath(path, "volumeMode");
    if (std::optional<std::string> mode = reader.String(volume, "volumeMode", path)) {
      if (*mode == "Block") {
        result->block_explicit = true;
      } else if (*mode == "Filesystem") {
        result->filesystem_explicit = true;
      } else if (*mode == "FromStorageProfile" && !is_pvc) {
        // CDI picks the mode from the StorageProfile: here, --block decides.
      } else {
        reader.Error(volume.Find("volumeMode")->line, JoinPath(path, "volumeMode"),
                     "must be \"Filesystem\" or \"Block\", not " + Quoted(*mode));
      }
    } else if (is_pvc && volume.Find("volumeMode") == nullptr) {
      // Kubernetes makes a claim without volumeMode a Filesystem claim; only
      // spec.storage leaves the choice to CDI's StorageProfile.
      result->filesystem_explicit = true;
    }
    plan->volume_mode = result->block_explicit ? VolumeMode::kBlock : VolumeMode::kFilesystem;
    plan->size_rule = is_pvc ? SizeRule::kPvc : SizeRule::kStorage;

    plan->size_field = JoinPath(path, "resources.requests.storage");
    const Node* resources = reader.Map(volume, "resources", path);
    const Node* requests =
        resources ? reader.Map(*resources, "requests", JoinPath(path, "resources")) : nullptr;
    const bool misshapen =
        (volume.Find("resources") != nullptr && resources == nullptr) ||
        (resources != nullptr && resources->Find("requests") != nullptr && requests == nullptr);
    if (misshapen) return;  // already reported: a field of the wrong kind
    const Node* storage = requests ? requests->Find("storage") : nullptr;
    if (storage == nullptr) {
      if (!is_pvc && source_kind == SourceKind::kSourceRef) {
        // CDI allows this with sourceRef: the size comes from the source.
        plan->size_rule = SizeRule::kStorageImage;
        return;
      }
      reader.Error(requests    ? requests->line
                   : resources ? resources->line
                               : volume.line,
                   plan->size_field,
                   std::string("is required: the size of the ") + (is_pvc ? "PVC" : "volume") +
                       ", e.g. 10Gi");
      return;
    }
    if (!storage->IsScalar()) {
      reader.Error(storage->line, plan->size_field,
                   "must be a quantity such as 10Gi, not " + std::string(storage->KindName()));
      return;
    }
    Result<uint64_t> bytes = ParseQuantity(storage->scalar);
    if (!bytes.ok()) {
      reader.Error(storage->line, plan->size_field, bytes.status().message());
      return;
    }
    if (*bytes == 0) {
      reader.Error(storage->line, plan->size_field, "must be more than zero");
      return;
    }
    if (*bytes < kMinimumRequest) {
      reader.Error(storage->line, plan->size_field,
                   Quoted(storage->scalar) + " is " + std::to_string(*bytes) +
                       " bytes: it must be at least 1Mi (KubeVirt refuses smaller disks)");
      return;
    }
    plan->requested = *bytes;
  }

  std::optional<ResolvedSource> FromSourceRef(const FieldReader& reader, const Node& ref,
                                              const std::string& path, const std::string& ns,
                                              Problems* problems) {
    reader.OnlyKnownFields(ref, path, {"kind", "name", "namespace", "apiGroup"});
    std::optional<std::string> kind =
        reader.RequiredString(ref, "kind", path, "the kind of object referred to (DataSource)");
    std::optional<std::string> name =
        reader.RequiredString(ref, "name", path, "the name of the DataSource");
    if (kind && *kind != "DataSource") {
      reader.Error(ref.Find("kind")->line, JoinPath(path, "kind"),
                   "unsupported sourceRef kind " + Quoted(*kind) +
                       ", currently only DataSource is supported");
      return std::nullopt;
    }
    if (std::optional<std::string> group = reader.String(ref, "apiGroup", path);
        group && *group != kCdiGroup) {
      reader.Error(
          ref.Find("apiGroup")->line, JoinPath(path, "apiGroup"),
          "must be " + std::string(kCdiGroup) + " for a DataSource, not " + Quoted(*group));
      return std::nullopt;
    }
    if (!kind || !name) return std::nullopt;
    std::string source_ns = ns;
    if (std::optional<std::string> other = reader.String(ref, "namespace", path)) {
      source_ns = *other;
    }
    auto it = data_sources_.find(source_ns + "/" + *name);
    if (it == data_sources_.end()) {
      reader.Error(ref.Find("name")->line, JoinPath(path, "name"),
                   "DataSource " + source_ns + "/" + *name +
                       " is not in the manifests given with -f (give its manifest too)");
      return std::nullopt;
    }
    const ResolvedDataSource& data_source = DataSource(*it->second);
    problems->Append(data_source.problems);
    return data_source.source;
  }

  // Files the DataVolumes of one template: one, or with pool_replicas > 0
  // one per replica, named "<name>-<i>".
  void AddDrafts(const ObjectRef& object, const std::string& field, int line, const std::string& ns,
                 const std::string& name, const Template& read, const Problems& problems,
                 int pool_replicas) {
    const int replicas = pool_replicas;
    for (int i = 0; i < std::max(1, replicas); ++i) {
      Draft draft;
      if (read.plan) draft.plan = *read.plan;
      draft.plan.declared_in = object;
      draft.plan.field = field;
      draft.plan.line = line;
      draft.plan.ns = ns;
      draft.plan.name = replicas > 0 ? name + "-" + std::to_string(i) : name;
      draft.plan.replica = replicas > 0 ? i : -1;
      draft.source_key = read.source_key;
      draft.block_explicit = read.block_explicit;
      draft.filesystem_explicit = read.filesystem_explicit;
      draft.volume_mode_field = read.volume_mode_field;
      draft.problems = problems;
      if (!read.plan && problems.empty()) {
        // Nothing readable and nothing said: cannot happen, but never import it.
        draft.problems.Add(object, line, field, "could not be read");
      }
      if (replicas > 0 && !IsDnsName(draft.plan.name, DnsName::kSubdomain)) {
        draft.problems.Add(object, line, JoinPath(field, "metadata.name"),
                           "the replica's DataVolume name " + Quoted(draft.plan.name) +
                               " is longer than 253 characters");
      }
      drafts_.push_back(std::move(draft));
    }
  }

  // dataVolumeTemplates of `owner_spec` (at spec_path), for a VirtualMachine
  // (pool_replicas 0) or a pool's VM template.
  void Templates(const Object& object, const Node& owner_spec, const std::string& spec_path,
                 int pool_replicas) {
    FieldReader reader(object.ref, &problems());
    const Node* templates = reader.List(owner_spec, "dataVolumeTemplates", spec_path);
    if (templates == nullptr) return;
    const std::string list_path = JoinPath(spec_path, "dataVolumeTemplates");
    for (size_t i = 0; i < templates->items.size(); ++i) {
      const Node& item = templates->items[i];
      const std::string path = IndexPath(list_path, i);
      Problems local;
      FieldReader item_reader(object.ref, &local);
      if (!item.IsMap()) {
        problems().Add(object.ref, item.line, path,
                       "must be a map with metadata and spec, not " + std::string(item.KindName()));
        continue;
      }
      const Node* metadata = item_reader.Map(item, "metadata", path);
      std::optional<std::string> name;
      if (metadata != nullptr) {
        name = item_reader.RequiredString(*metadata, "name", JoinPath(path, "metadata"),
                                          "the DataVolume's name");
        if (std::optional<std::string> ns =
                item_reader.String(*metadata, "namespace", JoinPath(path, "metadata"));
            ns && *ns != object.ref.ns) {
          item_reader.Error(metadata->Find("namespace")->line, JoinPath(path, "metadata.namespace"),
                            "is " + Quoted(*ns) + ", but the DataVolume is made in the " +
                                object.ref.kind + "'s namespace " + Quoted(object.ref.ns));
        }
        if (name && !IsDnsName(*name, DnsName::kSubdomain)) {
          item_reader.Error(metadata->Find("name")->line, JoinPath(path, "metadata.name"),
                            Quoted(*name) +
                                " is not a valid name: lower-case letters, digits, '-' and '.', "
                                "starting and ending with a letter or digit");
          name.reset();
        }
      } else if (item.Find("metadata") == nullptr) {
        item_reader.Error(item.line, JoinPath(path, "metadata.name"), "is required");
      }
      const Node* spec = item_reader.Map(item, "spec", path);
      if (spec == nullptr && item.Find("spec") == nullptr) {
        item_reader.Error(item.line, JoinPath(path, "spec"), "is required");
      }
      if (!name) {
        // Without a name there is no DataVolume to select or report: the
        // problem is the document's.
        problems().Append(local);
        continue;
      }
      Template read;
      if (spec != nullptr) {
        read = ReadSpec(object.ref, *spec, JoinPath(path, "spec"), object.ref.ns, &local);
      }
      AddDrafts(object.ref, path, item.line, object.ref.ns, *name, read, local, pool_replicas);
    }
  }

  void VirtualMachine(const Object& object) {
    FieldReader reader(object.ref, &problems());
    const Node* spec = reader.Map(object.document->root, "spec", "");
    if (spec == nullptr) return;
    Templates(object, *spec, "spec", 0);
  }

  void Pool(const Object& object) {
    FieldReader reader(object.ref, &problems());
    const Node& root = object.document->root;
    const Node* spec = reader.Map(root, "spec", "");
    if (spec == nullptr) {
      if (root.Find("spec") == nullptr) reader.Error(root.line, "spec", "is required");
      return;
    }
    // KubeVirt's default when replicas is left out.
    int64_t replicas = 1;
    if (spec->Find("replicas") != nullptr) {
      std::optional<int64_t> given = reader.Integer(*spec, "replicas", "spec");
      if (!given) return;
      replicas = *given;
    }
    const Node* vm_template = reader.Map(*spec, "virtualMachineTemplate", "spec");
    if (vm_template == nullptr) {
      if (spec->Find("virtualMachineTemplate") == nullptr) {
        reader.Error(spec->line, "spec.virtualMachineTemplate", "is required");
      }
      return;
    }
    CheckSelector(reader, *spec, *vm_template);
    if (replicas == 0) {
      resolution_.plan.notes.push_back(object.ref.file + ":" + std::to_string(object.ref.line) +
                                       ": " + object.ref.ToString() +
                                       " has replicas: 0, so no DataVolumes");
      return;
    }
    const Node* vm_spec = reader.Map(*vm_template, "spec", "spec.virtualMachineTemplate");
    if (vm_spec == nullptr) return;
    Templates(object, *vm_spec, "spec.virtualMachineTemplate.spec", static_cast<int>(replicas));
  }

  // spec.selector must select the pool's own VMs: matchLabels and
  // matchExpressions against spec.virtualMachineTemplate.metadata.labels.
  void CheckSelector(const FieldReader& reader, const Node& spec, const Node& vm_template) {
    const std::string labels_path = "spec.virtualMachineTemplate.metadata.labels";
    std::map<std::string, std::string> labels;
    if (const Node* metadata = reader.Map(vm_template, "metadata", "spec.virtualMachineTemplate")) {
      if (const Node* map =
              reader.Map(*metadata, "labels", "spec.virtualMachineTemplate.metadata")) {
        for (const auto& [key, value] : map->fields) {
          if (value.IsScalar()) labels[key] = value.scalar;
        }
      }
    }
    const Node* selector = reader.Map(spec, "selector", "spec");
    if (selector == nullptr) {
      if (spec.Find("selector") == nullptr) {
        reader.Error(spec.line, "spec.selector",
                     "is required: matchLabels that match " + labels_path);
      }
      return;
    }
    const Node* match_labels = reader.Map(*selector, "matchLabels", "spec.selector");
    const Node* expressions = reader.List(*selector, "matchExpressions", "spec.selector");
    if (match_labels == nullptr && expressions == nullptr) {
      if (selector->Find("matchLabels") == nullptr &&
          selector->Find("matchExpressions") == nullptr) {
        reader.Error(selector->line, "spec.selector.matchLabels",
                     "is required: labels that match " + labels_path);
      }
      return;
    }
    auto label_text = [&](const std::string& key) {
      auto it = labels.find(key);
      return it == labels.end() ? "the template has no label " + Quoted(key)
                                : "the template's label is " + key + "=" + it->second;
    };
    if (match_labels != nullptr) {
      for (const auto& [key, value] : match_labels->fields) {
        const std::string want = value.IsScalar() ? value.scalar : "";
        auto it = labels.find(key);
        if (it == labels.end() || it->second != want) {
          reader.Error(value.line, "spec.selector.matchLabels." + key,
                       key + "=" + want + " does not match the VMs the pool makes: " +
                           label_text(key) + " (" + labels_path + ")");
        }
      }
    }
    if (expressions == nullptr) return;
    for (size_t i = 0; i < expressions->items.size(); ++i) {
      const Node& expression = expressions->items[i];
      const std::string path = IndexPath("spec.selector.matchExpressions", i);
      if (!expression.IsMap()) {
        reader.Error(expression.line, path, "must be a map with key, operator and values");
        continue;
      }
      std::optional<std::string> key = reader.RequiredString(expression, "key", path, "a label");
      std::optional<std::string> op =
          reader.RequiredString(expression, "operator", path, "In, NotIn, Exists or DoesNotExist");
      std::vector<std::string> values;
      if (const Node* list = reader.List(expression, "values", path)) {
        for (const Node& value : list->items) {
          if (value.IsScalar()) values.push_back(value.scalar);
        }
      }
      if (!key || !op) continue;
      auto it = labels.find(*key);
      const bool has = it != labels.end();
      const bool in = has && std::find(values.begin(), values.end(), it->second) != values.end();
      bool matches;
      if (*op == "In") {
        matches = in;
      } else if (*op == "NotIn") {
        matches = !in;
      } else if (*op == "Exists") {
        matches = has;
      } else if (*op == "DoesNotExist") {
        matches = !has;
      } else {
        reader.Error(expression.Find("operator")->line, JoinPath(path, "operator"),
                     "must be In, NotIn, Exists or DoesNotExist, not " + Quoted(*op));
        continue;
      }
      if (!matches) {
        reader.Error(expression.line, path,
                     *key + " " + *op + (values.empty() ? "" : " (" + JoinList(values) + ")") +
                         " does not match the VMs the pool makes: " + label_text(*key) + " (" +
                         labels_path + ")");
      }
    }
  }

  void DataVolumeDocument(const Object& object) {
    Problems local;
    FieldReader reader(object.ref, &local);
    const Node& root = object.document->root;
    const Node* spec = reader.Map(root, "spec", "");
    if (spec == nullptr && root.Find("spec") == nullptr)
      reader.Error(root.line, "spec", "is required");
    Template read;
    if (spec != nullptr) read = ReadSpec(object.ref, *spec, "spec", object.ref.ns, &local);
    AddDrafts(object.ref, "", root.line, object.ref.ns, object.ref.name, read, local, 0);
  }

  void CheckDuplicateDataVolumes() {
    std::map<std::string, const Draft*> seen;
    for (Draft& draft : drafts_) {
      const std::string name = draft.plan.QualifiedName();
      auto [it, inserted] = seen.emplace(name, &draft);
      if (inserted) continue;
      const DataVolumePlan& first = it->second->plan;
      problems().Add(
          draft.plan.declared_in, draft.plan.line, JoinPath(draft.plan.field, "metadata.name"),
          "DataVolume " + name + " is declared twice (its PVC would be shared): first by " +
              first.declared_in.ToString() + (first.field.empty() ? "" : " " + first.field) +
              " at " + first.declared_in.file + ":" + std::to_string(first.line));
    }
  }

  // Which drafts the flags name: "name" matches that name in any namespace.
  std::vector<size_t> Matching(const std::string& name) const {
    std::vector<size_t> found;
    for (size_t i = 0; i < drafts_.size(); ++i) {
      const DataVolumePlan& plan = drafts_[i].plan;
      if (name == plan.name || name == plan.QualifiedName()) found.push_back(i);
    }
    return found;
  }

  std::string AllNames() const {
    std::vector<std::string> names;
    for (const Draft& draft : drafts_) names.push_back(draft.plan.QualifiedName());
    return names.empty() ? "none" : JoinList(names);
  }

  std::vector<bool> Select() {
    std::vector<bool> selected(drafts_.size(), options_.only.empty());
    for (const std::string& name : options_.only) {
      std::vector<size_t> found = Matching(name);
      if (found.empty()) {
        problems().Add(Problem{.message = "--only " + name + ": no DataVolume is named " +
                                          Quoted(name) + " (the manifests declare: " + AllNames() +
                                          ")"});
      }
      for (size_t i : found) selected[i] = true;
    }
    return selected;
  }

  void ApplyBlockDevices(const std::vector<bool>& selected) {
    std::map<size_t, std::string> assigned;      // draft -> device
    std::map<std::string, std::string> devices;  // device -> flag that named it
    for (const auto& [name, device] : options_.block_devices) {
      const std::string flag = "--block " + name + "=" + device;
      std::vector<size_t> found = Matching(name);
      if (found.empty()) {
        problems().Add(Problem{.message = flag + ": no DataVolume is named " + Quoted(name) +
                                          " (the manifests declare: " + AllNames() + ")"});
        continue;
      }
      if (found.size() > 1) {
        problems().Add(Problem{.message = flag + ": " + Quoted(name) +
                                          " names DataVolumes in several namespaces; write "
                                          "namespace/name"});
        continue;
      }
      if (device.empty() || device[0] != '/') {
        problems().Add(Problem{.message = flag + ": the device must be an absolute path such "
                                                 "as /dev/sdb"});
        continue;
      }
      if (auto it = devices.find(device); it != devices.end()) {
        problems().Add(
            Problem{.message = flag + ": " + device + " is already given by " + it->second});
        continue;
      }
      if (assigned.count(found[0]) != 0) {
        problems().Add(Problem{.message = flag + ": DataVolume " +
                                          drafts_[found[0]].plan.QualifiedName() +
                                          " already has a device (" + assigned[found[0]] + ")"});
        continue;
      }
      devices[device] = flag;
      assigned[found[0]] = device;
    }
    for (size_t i = 0; i < drafts_.size(); ++i) {
      Draft& draft = drafts_[i];
      auto it = assigned.find(i);
      if (it != assigned.end()) {
        if (draft.filesystem_explicit) {
          draft.problems.Add(draft.plan.declared_in, draft.plan.line, draft.volume_mode_field,
                             "--block " + draft.plan.name + "=" + it->second +
                                 ": the DataVolume is a Filesystem volume (volumeMode is "
                                 "Filesystem, or unset under pvc); set volumeMode: Block to "
                                 "import it onto a device");
          continue;
        }
        draft.plan.volume_mode = VolumeMode::kBlock;
        draft.plan.target = it->second;
      } else if (draft.plan.volume_mode == VolumeMode::kBlock && selected[i]) {
        draft.problems.Add(
            draft.plan.declared_in, draft.plan.line, draft.volume_mode_field,
            "volumeMode: Block needs a device: pass --block " + draft.plan.name + "=/dev/...");
      }
    }
  }

  void Build(const std::vector<bool>& selected) {
    Plan& plan = resolution_.plan;
    std::map<std::string, size_t> download_index;
    bool need_pvc_dir = false;
    for (size_t i = 0; i < drafts_.size(); ++i) {
      if (!selected[i]) continue;
      Draft& draft = drafts_[i];
      problems().Append(draft.problems);
      if (!draft.problems.empty() || !draft.source_key) continue;
      DataVolumePlan dv = draft.plan;
      const bool block = dv.volume_mode == VolumeMode::kBlock;
      dv.filesystem_overhead = block ? 0.0 : options_.filesystem_overhead;
      switch (dv.size_rule) {
        case SizeRule::kPvc:
          dv.pvc_size = dv.requested;
          break;
        case SizeRule::kStorage:
          // CDI inflates a Filesystem request so that it stays usable after
          // the overhead; a Block request is taken as is.
          dv.pvc_size =
              block ? *dv.requested : RequiredSpace(dv.filesystem_overhead, *dv.requested);
          break;
        case SizeRule::kStorageImage:
          break;
      }
      if (!block) {
        if (dv.pvc_size) dv.usable_size = UsableSpace(dv.filesystem_overhead, *dv.pvc_size);
        need_pvc_dir = true;
        dv.target = options_.pvc_dir + "/" + dv.ns + "/" + dv.name + "/disk.img";
      }
      auto [it, inserted] = download_index.emplace(*draft.source_key, plan.downloads.size());
      if (inserted) {
        const ResolvedSource& source = sources_by_key_.at(*draft.source_key);
        DownloadPlan download;
        download.source = source.spec;
        download.checksum = source.checksum;
        download.display_url = RedactUrl(source.spec.url);
        download.origin = source.origin;
        download.security = source.security;
        plan.downloads.push_back(std::move(download));
      }
      dv.download = it->second;
      plan.downloads[dv.download].data_volumes.push_back(plan.data_volumes.size());
      plan.data_volumes.push_back(std::move(dv));
    }
    if (need_pvc_dir && options_.pvc_dir.empty()) {
      problems().Add(Problem{.message = "--pvc-dir DIR is required: Filesystem DataVolumes are "
                                        "imported into DIR/<namespace>/<name>/disk.img"});
    }
  }

  const std::vector<Document>& documents_;
  const ResolveOptions& options_;
  SecretStore store_;
  Resolution resolution_;
  std::vector<Object> objects_;
  std::map<std::string, const Object*> data_sources_;
  std::map<std::string, ResolvedDataSource> resolved_data_sources_;
  std::map<std::string, ResolvedSource> sources_by_key_;
  std::vector<Draft> drafts_;
};

}  // namespace

Resolution Resolve(const std::vector<Document>& documents, const ResolveOptions& options) {
  return Resolver(documents, options).Run();
}

}  // namespace cdi::apply
