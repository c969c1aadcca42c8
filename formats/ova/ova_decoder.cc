#include "formats/ova/ova_decoder.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "formats/pipeline.h"
#include "formats/tar/tar_reader.h"

namespace cdi::formats {
namespace {

bool EndsWithNoCase(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         std::equal(suffix.begin(), suffix.end(), text.end() - static_cast<ptrdiff_t>(suffix.size()),
                    [](char a, char b) {
                      return std::tolower(static_cast<unsigned char>(a)) ==
                             std::tolower(static_cast<unsigned char>(b));
                    });
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// One XML start tag: its local name (without a namespace prefix) and its
// attributes by local name.
struct Tag {
  std::string name;
  std::map<std::string, std::string> attributes;
};

std::string LocalName(std::string_view name) {
  size_t colon = name.rfind(':');
  return std::string(colon == std::string_view::npos ? name : name.substr(colon + 1));
}

// The start tags of `xml`, in order. Enough XML for an OVF descriptor's
// References and DiskSection: comments, declarations and end tags are skipped;
// entities in values are left as they are.
std::vector<Tag> StartTags(std::string_view xml) {
  std::vector<Tag> tags;
  size_t i = 0;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while ((i = xml.find('<', i)) != std::string_view::npos) {
    ++i;
    if (i >= xml.size()) break;
    if (xml.compare(i, 3, "!--") == 0) {
      size_t end = xml.find("-->", i);
      if (end == std::string_view::npos) break;
      i = end + 3;
      continue;
    }
    if (xml[i] == '/' || xml[i] == '?' || xml[i] == '!') continue;
    size_t name_end = i;
    while (name_end < xml.size() && !is_space(xml[name_end]) && xml[name_end] != '>' &&
           xml[name_end] != '/') {
      ++name_end;
    }
    Tag tag{LocalName(xml.substr(i, name_end - i)), {}};
    i = name_end;
    while (i < xml.size() && xml[i] != '>') {
      if (is_space(xml[i]) || xml[i] == '/') {
        ++i;
        continue;
      }
      size_t eq = xml.find('=', i);
      if (eq == std::string_view::npos) return tags;
      std::string_view key = xml.substr(i, eq - i);
      while (!key.empty() && is_space(key.back())) key.remove_suffix(1);
      size_t quote = eq + 1;
      while (quote < xml.size() && is_space(xml[quote])) ++quote;
      if (quote >= xml.size() || (xml[quote] != '"' && xml[quote] != '\'')) return tags;
      size_t close = xml.find(xml[quote], quote + 1);
      if (close == std::string_view::npos) return tags;
      tag.attributes[LocalName(key)] = std::string(xml.substr(quote + 1, close - quote - 1));
      i = close + 1;
    }
    tags.push_back(std::move(tag));
  }
  return tags;
}

// Passes the disk on to the decoder's writer, its description led by the
// entry it comes from.
class DiskWriter final : public GuestWriter {
 public:
  DiskWriter(GuestWriter* writer, const std::string* name) : writer_(writer), name_(name) {}
  Status Begin(const ImageDescription& image) override {
    ImageDescription described = image;
    described.details.insert(described.details.begin(), {"ova disk", *name_});
    return writer_->Begin(described);
  }
  Status Write(uint64_t guest_offset, std::span<const uint8_t> data) override {
    return writer_->Write(guest_offset, data);
  }
  Status Zero(uint64_t guest_offset, uint64_t length) override {
    return writer_->Zero(guest_offset, length);
  }
  bool CanShrink() const override { return writer_->CanShrink(); }
  Status Shrink(uint64_t virtual_size) override { return writer_->Shrink(virtual_size); }

 private:
  GuestWriter* writer_;
  const std::string* name_;
};

class OvaDecoder final : public Decoder, private tar::EntryWriter {
 public:
  OvaDecoder(GuestWriter* writer, const PipelineOptions& options)
      : disk_writer_(writer, &disk_name_), options_(options), tar_(tar::MakeTarReader(this)) {}

  Status Feed(std::span<const uint8_t> bytes) override {
    if (!status_.ok()) return status_;
    status_ = tar_->Feed(bytes);
    return status_;
  }

  Status Finish() override {
    if (!status_.ok()) return status_;
    status_ = tar_->Finish();
    if (status_.ok()) status_ = CheckFound();
    return status_;
  }

  ImageDescription Describe() const override {
    if (disk_ == nullptr || !disk_->Describe()) {
      ImageDescription description;
      description.format = "ova";
      return description;
    }
    ImageDescription description = *disk_->Describe();
    description.details.insert(description.details.begin(), {"ova disk", disk_name_});
    return description;
  }

 private:
  enum class Reading { kNothing, kOvf, kDisk };

  Status Begin(const tar::Entry& entry) override {
    reading_ = Reading::kNothing;
    if (entry.type != tar::EntryType::kFile) return Status::Ok();
    ++files_;
    if (!ovf_disks_ && files_ == 1 && EndsWithNoCase(entry.path, ".ovf")) {
      if (entry.size > kMaxOvfBytes) {
        return UnsupportedError("the OVA's descriptor " + entry.path + " is " +
                                std::to_string(entry.size) + " bytes, more than the " +
                                std::to_string(kMaxOvfBytes) +
                                " read here; extract its disk with 'tar -xf' and import that");
      }
      ovf_name_ = entry.path;
      reading_ = Reading::kOvf;
      return Status::Ok();
    }
    const bool declared = ovf_disks_ && std::find(ovf_disks_->begin(), ovf_disks_->end(),
                                                  entry.path) != ovf_disks_->end();
    const bool is_vmdk = !ovf_disks_ && EndsWithNoCase(entry.path, ".vmdk");
    if (!declared && !is_vmdk) return Status::Ok();
    if (disk_ != nullptr) {
      return UnsupportedError("the OVA holds several disks (" + disk_name_ + ", " + entry.path +
                              "); one disk is imported at a time: extract the one you want with "
                              "'tar -xf' and import it");
    }
    PipelineOptions disk_options = options_;
    disk_options.decoder.container_size = entry.size;
    disk_options.inside_ova = true;
    disk_ = std::make_unique<ImagePipeline>(&disk_writer_, disk_options);
    disk_name_ = entry.path;
    reading_ = Reading::kDisk;
    return Status::Ok();
  }

  Status Data(std::span<const uint8_t> data) override {
    switch (reading_) {
      case Reading::kOvf:
        ovf_.append(reinterpret_cast<const char*>(data.data()), data.size());
        return Status::Ok();
      case Reading::kDisk:
        return disk_->Feed(data);
      case Reading::kNothing:
        break;
    }
    return Status::Ok();
  }

  Status End() override {
    const Reading was = reading_;
    reading_ = Reading::kNothing;
    if (was == Reading::kDisk) {
      CDI_RETURN_IF_ERROR(disk_->Finish());
      disk_done_ = true;
      return Status::Ok();
    }
    if (was != Reading::kOvf) return Status::Ok();
    CDI_ASSIGN_OR_RETURN(std::vector<std::string> disks, OvfDisks(ovf_));
    ovf_.clear();
    if (disks.size() > 1) {
      return UnsupportedError("the OVA's descriptor " + ovf_name_ + " declares " +
                              std::to_string(disks.size()) + " disks (" + JoinNames(disks) +
                              "); one disk is imported at a time: extract the one you want with "
                              "'tar -xf' and import it");
    }
    if (!disks.empty()) ovf_disks_ = std::move(disks);
    return Status::Ok();
  }

  Status CheckFound() {
    if (disk_done_) return Status::Ok();
    if (ovf_disks_) {
      return CorruptImageError("the OVA's descriptor " + ovf_name_ + " declares the disk " +
                               ovf_disks_->front() +
                               ", which the archive does not hold; the package is incomplete: "
                               "export it again");
    }
    return UnsupportedError(
        "the image is a tar archive with no VM disk (no .ovf declaring one, no .vmdk entry); "
        "import a disk image, or import the archive's files with archive content type");
  }

  std::string disk_name_;
  DiskWriter disk_writer_;
  PipelineOptions options_;
  std::unique_ptr<ByteSink> tar_;
  Status status_;
  Reading reading_ = Reading::kNothing;
  size_t files_ = 0;
  std::string ovf_name_;
  std::string ovf_;
  std::optional<std::vector<std::string>> ovf_disks_;
  std::unique_ptr<ImagePipeline> disk_;
  bool disk_done_ = false;
};

}  // namespace

bool LooksLikeTar(std::span<const uint8_t> head) {
  if (head.size() < tar::kBlockSize) return false;
  if (!std::equal(head.begin() + 257, head.begin() + 262, "ustar")) return false;
  uint64_t stored = 0;
  size_t i = 148;
  while (i < 156 && head[i] == ' ') ++i;
  for (; i < 156 && head[i] >= '0' && head[i] <= '7'; ++i) stored = stored * 8 + (head[i] - '0');
  uint64_t sum = 0;
  for (size_t k = 0; k < tar::kBlockSize; ++k) sum += (k >= 148 && k < 156) ? ' ' : head[k];
  return sum == stored;
}

Result<std::vector<std::string>> OvfDisks(std::string_view ovf) {
  std::map<std::string, std::string> file_by_id;
  std::vector<std::string> disk_refs;
  for (const Tag& tag : StartTags(ovf)) {
    if (tag.name == "File") {
      auto id = tag.attributes.find("id");
      auto href = tag.attributes.find("href");
      if (id != tag.attributes.end() && href != tag.attributes.end()) {
        file_by_id[id->second] = href->second;
      }
    } else if (tag.name == "Disk") {
      auto ref = tag.attributes.find("fileRef");
      if (ref != tag.attributes.end()) disk_refs.push_back(ref->second);
    }
  }
  std::vector<std::string> disks;
  for (const std::string& ref : disk_refs) {
    auto file = file_by_id.find(ref);
    if (file == file_by_id.end()) {
      return CorruptImageError("the OVA's descriptor declares a disk in file \"" + ref +
                               "\", which its References section does not list; the package is "
                               "damaged: export it again");
    }
    Result<std::string> path = tar::NormalizeEntryPath(file->second);
    if (!path.ok()) return path.status();
    disks.push_back(path.value());
  }
  return disks;
}

std::unique_ptr<Decoder> MakeOvaDecoder(GuestWriter* writer, const PipelineOptions& options) {
  return std::make_unique<OvaDecoder>(writer, options);
}

}  // namespace cdi::formats
