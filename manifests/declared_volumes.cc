#include "manifests/declared_volumes.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "manifests/data_volume_spec.h"
#include "manifests/field_reader.h"

namespace cdi::apply {
namespace {

class Finder {
 public:
  Finder(SourceResolver* sources, Problems* problems, std::vector<std::string>* notes)
      : sources_(sources), problems_(problems), notes_(notes) {}

  std::vector<DeclaredDataVolume> Run(const std::vector<ManifestObject>& objects) {
    for (const ManifestObject& object : objects) {
      switch (object.kind) {
        case ObjectKind::kVirtualMachine:
          VirtualMachine(object);
          break;
        case ObjectKind::kVirtualMachinePool:
          Pool(object);
          break;
        case ObjectKind::kDataVolume:
          DataVolumeDocument(object);
          break;
        default:
          break;
      }
    }
    return std::move(drafts_);
  }

 private:
  Problems& problems() { return *problems_; }

  // Files the DataVolumes of one template: one, or with pool_replicas > 0
  // one per replica, named "<name>-<i>".
  void AddDrafts(const ObjectRef& object, const std::string& field, int line, const std::string& ns,
                 const std::string& name, const DataVolumeSpec& read, const Problems& problems,
                 int pool_replicas) {
    const int replicas = pool_replicas;
    for (int i = 0; i < std::max(1, replicas); ++i) {
      DeclaredDataVolume draft;
      if (read.plan) draft.plan = *read.plan;
      draft.plan.declared_in = object;
      draft.plan.field = field;
      draft.plan.line = line;
      draft.plan.ns = ns;
      draft.plan.name = replicas > 0 ? name + "-" + std::to_string(i) : name;
      draft.plan.replica = replicas > 0 ? i : -1;
      draft.source_key = read.source_key;
      draft.mode = read.mode;
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
  void Templates(const ManifestObject& object, const Node& owner_spec, const std::string& spec_path,
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
      DataVolumeSpec read;
      if (spec != nullptr) {
        read = ReadDataVolumeSpec(object.ref, *spec, JoinPath(path, "spec"), object.ref.ns,
                                  sources_, &local);
      }
      AddDrafts(object.ref, path, item.line, object.ref.ns, *name, read, local, pool_replicas);
    }
  }

  void VirtualMachine(const ManifestObject& object) {
    FieldReader reader(object.ref, &problems());
    const Node* spec = reader.Map(object.document->root, "spec", "");
    if (spec == nullptr) return;
    Templates(object, *spec, "spec", 0);
  }

  void Pool(const ManifestObject& object) {
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
      notes_->push_back(object.ref.file + ":" + std::to_string(object.ref.line) + ": " +
                        object.ref.ToString() + " has replicas: 0, so no DataVolumes");
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

  void DataVolumeDocument(const ManifestObject& object) {
    Problems local;
    FieldReader reader(object.ref, &local);
    const Node& root = object.document->root;
    const Node* spec = reader.Map(root, "spec", "");
    if (spec == nullptr && root.Find("spec") == nullptr)
      reader.Error(root.line, "spec", "is required");
    DataVolumeSpec read;
    if (spec != nullptr) {
      read = ReadDataVolumeSpec(object.ref, *spec, "spec", object.ref.ns, sources_, &local);
    }
    AddDrafts(object.ref, "", root.line, object.ref.ns, object.ref.name, read, local, 0);
  }

  SourceResolver* sources_;
  Problems* problems_;
  std::vector<std::string>* notes_;
  std::vector<DeclaredDataVolume> drafts_;
};

}  // namespace

std::vector<DeclaredDataVolume> FindDataVolumes(const std::vector<ManifestObject>& objects,
                                                SourceResolver* sources, Problems* problems,
                                                std::vector<std::string>* notes) {
  return Finder(sources, problems, notes).Run(objects);
}

}  // namespace cdi::apply
