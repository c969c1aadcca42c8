#include "manifests/source_resolver.h"

#include <utility>

namespace cdi::apply {

SourceResolver::SourceResolver(const std::vector<ManifestObject>& objects, SecretStore* store)
    : store_(store) {
  for (const ManifestObject& object : objects) {
    if (object.kind == ObjectKind::kDataSource) {
      data_sources_[object.ref.ns + "/" + object.ref.name] = &object;
    }
  }
}

std::optional<ResolvedSource> SourceResolver::FromSourceRef(const FieldReader& reader,
                                                            const Node& ref,
                                                            const std::string& path,
                                                            const std::string& ns,
                                                            Problems* problems) {
  reader.OnlyKnownFields(ref, path, {"kind", "name", "namespace", "apiGroup"});
  std::optional<std::string> kind =
      reader.RequiredString(ref, "kind", path, "the kind of object referred to (DataSource)");
  std::optional<std::string> name =
      reader.RequiredString(ref, "name", path, "the name of the DataSource");
  if (kind && *kind != "DataSource") {
    reader.Error(
        ref.Find("kind")->line, JoinPath(path, "kind"),
        "unsupported sourceRef kind " + Quoted(*kind) + ", currently only DataSource is supported");
    return std::nullopt;
  }
  if (std::optional<std::string> group = reader.String(ref, "apiGroup", path);
      group && *group != kCdiGroup) {
    reader.Error(ref.Find("apiGroup")->line, JoinPath(path, "apiGroup"),
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

std::optional<ResolvedSource> SourceResolver::FromHttp(const FieldReader& reader, const Node& http,
                                                       const std::string& path,
                                                       const std::string& ns) {
  return ReadHttpSource(reader, http, path, ns, store_);
}

std::string SourceResolver::Keep(ResolvedSource source) {
  std::string key = source.Key();
  sources_by_key_.emplace(key, std::move(source));
  return key;
}

const ResolvedSource& SourceResolver::Kept(const std::string& key) const {
  return sources_by_key_.at(key);
}

const SourceResolver::ResolvedDataSource& SourceResolver::DataSource(const ManifestObject& object) {
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
  resolved.source = ReadHttpSource(reader, *http, "spec.source.http", object.ref.ns, store_);
  return resolved;
}

}  // namespace cdi::apply
