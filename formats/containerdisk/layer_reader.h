// One layer of a container image, read as CDI reads a containerDisk's layers
// to find its disk image (the containerDisk convention: the image file in
// the image's disk/ directory).
//
// A layer is a tar stream, plain, gzip or zstd compressed (detected by its
// bytes, as the image pipeline detects wrappers). CDI's rule, followed here:
//  - layers are read in the manifest's order, base first; the first layer
//    that has the disk wins, and no later layer is read;
//  - in a layer, the disk is the first entry whose name starts with "disk"
//    (or "./disk") that is not a directory and not a whiteout (a base name
//    starting with ".wh.": whiteouts delete files of earlier layers, and are
//    never the disk);
//  - that entry must be a regular file directly in disk/: CDI extracts it
//    and then requires disk/ to hold exactly one file, so a file in a
//    subdirectory ("disk/sub/x.img"), a name that only starts with "disk"
//    ("diskette/x.img", "disk" itself) and a link or device are refused
//    (kInvalidArgument, naming the entry).
// The chosen entry's bytes are fed to `disk` as they pass, in order, without
// a copy; `disk` is never finished here (the caller finishes it once the
// layer is verified). Other entries are skipped without being stored;
// links, devices and odd names elsewhere in a layer are allowed
// (tar::OtherEntries::kReport).
//
// Errors: those of the tar reader and unwrappers for a damaged layer; the
// refusals above; a non-ok Status from `disk`, unchanged. decided() tells
// whether an error came before or after the disk entry was chosen: CDI skips
// a layer it cannot read before that point.
//
// Thread-safety: none; one thread feeds a reader.
#ifndef CDI_FORMATS_CONTAINERDISK_LAYER_READER_H_
#define CDI_FORMATS_CONTAINERDISK_LAYER_READER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/pipeline.h"
#include "formats/tar/tar_reader.h"

namespace cdi::formats::containerdisk {

// The directory of a containerDisk that holds its image.
inline constexpr std::string_view kDiskDirectory = "disk";

class LayerReader final : public ByteSink {
 public:
  // `disk` must outlive the reader. options: for the layer's unwrappers
  // (memory limits); container_layer is set here.
  LayerReader(ByteSink* disk, PipelineOptions options);
  ~LayerReader() override;

  Status Feed(std::span<const uint8_t> bytes) override;
  Status Finish() override;

  // An entry was chosen as the disk image (or refused as one).
  bool decided() const { return finder_.decided; }
  // The disk entry's bytes were all fed to `disk`.
  bool found() const { return finder_.done; }
  const std::string& disk_path() const { return finder_.path; }
  uint64_t disk_size() const { return finder_.size; }
  // The layer's wrapper ({"gzip", "tar"}, {"tar"}).
  std::vector<std::string> format_chain() const { return pipeline_.format_chain(); }

 private:
  struct Finder final : tar::EntryWriter {
    explicit Finder(ByteSink* sink) : disk(sink) {}
    Status Begin(const tar::Entry& entry) override;
    Status Data(std::span<const uint8_t> data) override;
    Status End() override;

    ByteSink* disk;
    bool decided = false;
    bool in_disk = false;
    bool done = false;
    std::string path;
    uint64_t size = 0;
  };

  Finder finder_;
  ImagePipeline pipeline_;
};

}  // namespace cdi::formats::containerdisk

#endif  // CDI_FORMATS_CONTAINERDISK_LAYER_READER_H_
