#include "manifests/data_volume_spec.h"

#include <utility>

#include "cdi/import.h"
#include "manifests/field_reader.h"

namespace cdi::apply {

DataVolumeSpec ReadDataVolumeSpec(const ObjectRef& object, const Node& spec,
                                  const std::string& path, const std::string& ns,
                                  SourceResolver* sources, Problems* problems) {
  DataVolumeSpec result;
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
    resolved =
        sources->FromSourceRef(reader, *source_ref, JoinPath(path, "sourceRef"), ns, problems);
  } else if (source != nullptr && source_ref == nullptr) {
    for (const auto& [kind, value] : source->fields) {
      if (kind == "http") continue;
      reader.Error(value.line, JoinPath(JoinPath(path, "source"), kind),
                   "cdi-image apply imports only http sources (source.http)");
    }
    if (const Node* http = reader.Map(*source, "http", JoinPath(path, "source"))) {
      resolved = sources->FromHttp(reader, *http, JoinPath(path, "source.http"), ns);
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
    ReadVolumeRequest(reader, *volume, volume_path,
                      pvc != nullptr ? VolumeSection::kPvc : VolumeSection::kStorage,
                      source_ref != nullptr ? SourceKind::kSourceRef : SourceKind::kSource, &plan,
                      &result.mode);
  }
  if (problems->size() != problems_before) return result;
  result.plan = std::move(plan);
  if (resolved) {
    result.source_key = sources->Keep(std::move(*resolved));
  }
  return result;
}

}  // namespace cdi::apply
