// Where DataVolumes' images come from: a sourceRef to a DataSource of the
// manifests, or a spec.source.http of their own; and the sources so found,
// kept by key, so that DataVolumes with equal sources share one download.
//
// Contract: every DataSource is resolved once, however many DataVolumes use
// it, and its problems are reported with each DataVolume that uses it (so
// that --only reports them exactly when they matter). Secrets and ConfigMaps
// come from the SecretStore; nothing else is read.
//
// Not thread-safe: used while resolving, on one thread.
#ifndef CDI_MANIFESTS_SOURCE_RESOLVER_H_
#define CDI_MANIFESTS_SOURCE_RESOLVER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "manifests/field_reader.h"
#include "manifests/http_source.h"
#include "manifests/manifest.h"
#include "manifests/objects.h"
#include "manifests/problems.h"
#include "manifests/secret_store.h"

namespace cdi::apply {

class SourceResolver {
 public:
  // The DataSources among `objects` can be referred to. `objects` and `store`
  // must outlive the resolver.
  SourceResolver(const std::vector<ManifestObject>& objects, SecretStore* store);

  // The DataSource that `ref` (a sourceRef at `path`, of a DataVolume in
  // namespace `ns`) names, resolved. Problems of the reference go to the
  // reader, the DataSource's own to *problems. nullopt when anything is wrong.
  std::optional<ResolvedSource> FromSourceRef(const FieldReader& reader, const Node& ref,
                                              const std::string& path, const std::string& ns,
                                              Problems* problems);

  // A DataVolume's own spec.source.http at `path`, whose Secrets and
  // ConfigMaps are in namespace `ns`; problems go to the reader.
  std::optional<ResolvedSource> FromHttp(const FieldReader& reader, const Node& http,
                                         const std::string& path, const std::string& ns);

  // Keeps `source` under its Key() (of equal sources, the first one kept
  // stays) and returns the key.
  std::string Keep(ResolvedSource source);
  // The source kept under `key`, which Keep returned.
  const ResolvedSource& Kept(const std::string& key) const;

 private:
  struct ResolvedDataSource {
    std::optional<ResolvedSource> source;
    Problems problems;
  };
  const ResolvedDataSource& DataSource(const ManifestObject& object);

  SecretStore* store_;
  std::map<std::string, const ManifestObject*> data_sources_;  // "ns/name"
  std::map<std::string, ResolvedDataSource> resolved_data_sources_;
  std::map<std::string, ResolvedSource> sources_by_key_;
};

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_SOURCE_RESOLVER_H_
