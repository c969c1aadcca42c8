// The objects of a set of manifests: every document named (kind
// namespace/name), its kind, apiVersion, name and namespace checked as
// Kubernetes checks them, and objects defined twice found. Secrets and
// ConfigMaps are filed in the SecretStore as they are found.
//
// Contract: IndexObjects reads the documents and touches nothing on disk.
// Every problem names the file, line and object; documents of kinds that
// `cdi-image apply` does not use are skipped with a note. The objects
// returned point into the documents, which must outlive them.
#ifndef CDI_MANIFESTS_OBJECTS_H_
#define CDI_MANIFESTS_OBJECTS_H_

#include <string>
#include <string_view>
#include <vector>

#include "manifests/manifest.h"
#include "manifests/problems.h"
#include "manifests/secret_store.h"

namespace cdi::apply {

// The API group of DataSources and DataVolumes.
inline constexpr char kCdiGroup[] = "cdi.kubevirt.io";

enum class ObjectKind {
  kVirtualMachine,
  kVirtualMachinePool,
  kDataSource,
  kDataVolume,
  kSecret,
  kConfigMap,
  kOther,
};

// One valid object of a kind that `cdi-image apply` uses.
struct ManifestObject {
  const Document* document = nullptr;
  ObjectKind kind = ObjectKind::kOther;
  ObjectRef ref;
};

// Kubernetes names these objects with DNS-1123 subdomains (at most 253
// characters of [a-z0-9.-], starting and ending alphanumeric); namespaces with
// DNS-1123 labels (at most 63, no dots). Both become directory names, so this
// also keeps "..", "/" and the empty name out of paths.
enum class DnsName { kSubdomain, kLabel };
bool IsDnsName(std::string_view name, DnsName form);

// The valid objects of `documents` in document order, each once (an object
// defined twice identically is noted and used once; defined twice
// differently, it is a problem). A missing namespace is `default_namespace`.
// Secrets and ConfigMaps also go to *store. Problems go to *problems, notes
// (skipped kinds, identical definitions) to *notes.
std::vector<ManifestObject> IndexObjects(const std::vector<Document>& documents,
                                         const std::string& default_namespace, SecretStore* store,
                                         Problems* problems, std::vector<std::string>* notes);

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_OBJECTS_H_
