#include "manifests/plan_builder.h"

#include <map>
#include <string>
#include <utility>

#include "cdi/import.h"
#include "manifests/field_reader.h"
#include "manifests/volume_request.h"

namespace cdi::apply {
namespace {

class Builder {
 public:
  Builder(std::vector<DeclaredDataVolume> drafts, const ResolveOptions& options,
          const SourceResolver& sources, Resolution* resolution)
      : drafts_(std::move(drafts)),
        options_(options),
        sources_(sources),
        resolution_(*resolution) {}

  void Run() {
    CheckDuplicateDataVolumes();
    std::vector<bool> selected = Select();
    ApplyBlockDevices(selected);
    Build(selected);
  }

 private:
  Problems& problems() { return resolution_.problems; }

  void CheckDuplicateDataVolumes() {
    std::map<std::string, const DeclaredDataVolume*> seen;
    for (DeclaredDataVolume& draft : drafts_) {
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
    for (const DeclaredDataVolume& draft : drafts_) names.push_back(draft.plan.QualifiedName());
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
      DeclaredDataVolume& draft = drafts_[i];
      auto it = assigned.find(i);
      if (it != assigned.end()) {
        if (draft.mode.filesystem_explicit) {
          draft.problems.Add(draft.plan.declared_in, draft.plan.line, draft.mode.field,
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
            draft.plan.declared_in, draft.plan.line, draft.mode.field,
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
      DeclaredDataVolume& draft = drafts_[i];
      problems().Append(draft.problems);
      if (!draft.problems.empty() || !draft.source_key) continue;
      DataVolumePlan dv = draft.plan;
      SizeAsCdi(options_.filesystem_overhead, &dv);
      // The DataVolume's own directory: its file, or a Block volume's checkpoints.
      const std::string own_dir = options_.pvc_dir + "/" + dv.ns + "/" + dv.name;
      if (dv.volume_mode != VolumeMode::kBlock) {
        need_pvc_dir = true;
        dv.target = own_dir + "/disk.img";
      } else if (!options_.pvc_dir.empty()) {
        dv.checkpoint_dir = own_dir;
      }
      auto [it, inserted] = download_index.emplace(*draft.source_key, plan.downloads.size());
      if (inserted) {
        const ResolvedSource& source = sources_.Kept(*draft.source_key);
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

  std::vector<DeclaredDataVolume> drafts_;
  const ResolveOptions& options_;
  const SourceResolver& sources_;
  Resolution& resolution_;
};

}  // namespace

void BuildPlan(std::vector<DeclaredDataVolume> data_volumes, const ResolveOptions& options,
               const SourceResolver& sources, Resolution* resolution) {
  Builder(std::move(data_volumes), options, sources, resolution).Run();
}

}  // namespace cdi::apply
