// Problems found in manifests: each names the file and line, the object
// (kind namespace/name) and the field path, so the user can go straight to it.
#ifndef CDI_MANIFESTS_PROBLEMS_H_
#define CDI_MANIFESTS_PROBLEMS_H_

#include <string>
#include <vector>

#include "cdi/status.h"

namespace cdi::apply {

// An object of a manifest as messages name it.
struct ObjectRef {
  std::string kind;
  std::string ns;
  std::string name;
  std::string file;
  int line = 0;  // where its document starts

  // "VirtualMachine default/my-vm"; the name is "(unnamed)" when missing.
  std::string ToString() const;
};

struct Problem {
  std::string file;
  int line = 0;        // 1-based; 0 when unknown
  std::string object;  // "VirtualMachine default/my-vm", or "" for command-line problems
  std::string field;   // "spec.dataVolumeTemplates[0].spec.pvc.resources.requests.storage", or ""
  std::string message;

  // "vm.yaml:57: VirtualMachine default/my-vm: spec.x.y: message"; parts
  // that are empty are left out.
  std::string ToString() const;
};

// Problems in the order found, without repeats (a DataSource used by three
// DataVolumes is reported once).
class Problems {
 public:
  void Add(Problem problem);
  // A problem with an object's field at `line`.
  void Add(const ObjectRef& object, int line, std::string field, std::string message);
  void Append(const Problems& other);

  bool empty() const { return list_.empty(); }
  size_t size() const { return list_.size(); }
  const std::vector<Problem>& list() const { return list_; }

  // kInvalidArgument whose message lists every problem, one per line; Ok when empty.
  Status ToStatus() const;

 private:
  std::vector<Problem> list_;
};

}  // namespace cdi::apply

#endif  // CDI_MANIFESTS_PROBLEMS_H_
