#include "formats/containerdisk/layer_reader.h"

#include <utility>

namespace cdi::formats::containerdisk {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";

PipelineOptions LayerOptions(PipelineOptions options) {
  options.container_layer = true;
  return options;
}

}  // namespace

LayerReader::LayerReader(ByteSink* disk, PipelineOptions options)
    : finder_(disk), pipeline_(&finder_, LayerOptions(std::move(options))) {}

LayerReader::~LayerReader() = default;

Status LayerReader::Feed(std::span<const uint8_t> bytes) { return pipeline_.Feed(bytes); }

Status LayerReader::Finish() { return pipeline_.Finish(); }

Status LayerReader::Finder::Begin(const tar::Entry& entry) {
  if (done || decided) return Status::Ok();
  const std::string& name = entry.path;
  if (!name.starts_with(kDiskDirectory)) return Status::Ok();
  const size_t slash = name.rfind('/');
  const std::string_view base = slash == std::string::npos
                                    ? std::string_view(name)
                                    : std::string_view(name).substr(slash + 1);
  if (base.starts_with(kWhiteoutPrefix)) return Status::Ok();
  if (entry.type == tar::EntryType::kDirectory) return Status::Ok();

  // CDI's choice: this entry is the disk image, or nothing is.
  decided = true;
  const std::string quoted = "'" + name + "'";
  if (entry.type == tar::EntryType::kOther) {
    return InvalidArgumentError(
        "the container image's disk entry " + quoted +
        " is not a regular file (a link, a device or a FIFO): the disk image must be a regular "
        "file in the image's /disk directory");
  }
  const std::string prefix = std::string(kDiskDirectory) + "/";
  if (!name.starts_with(prefix)) {
    return InvalidArgumentError(
        "the container image's first entry named like the disk directory is " + quoted +
        ", which is not in /disk: the disk image must be the one file in the image's /disk "
        "directory (the containerDisk convention)");
  }
  if (name.find('/', prefix.size()) != std::string::npos) {
    return InvalidArgumentError(
        "the container image's disk entry " + quoted +
        " is in a subdirectory of /disk: the disk image must be the one file directly in the "
        "image's /disk directory (the containerDisk convention)");
  }
  in_disk = true;
  path = name;
  size = entry.size;
  if (entry.size == 0) {
    in_disk = false;
    done = true;
  }
  return Status::Ok();
}

Status LayerReader::Finder::Data(std::span<const uint8_t> data) {
  if (!in_disk) return Status::Ok();
  return disk->Feed(data);
}

Status LayerReader::Finder::End() {
  if (in_disk) {
    in_disk = false;
    done = true;
  }
  return Status::Ok();
}

}  // namespace cdi::formats::containerdisk
