// Where Import() and Inspect() read an image from:
//  - a ByteSource (a file, standard input, an http(s) URL) whose bytes are
//    the image, fed as they come;
//  - a container image in a registry (docker://...), whose disk image is a
//    file in disk/ inside one of its layers: the layers are read in order
//    from the registry client (sources/registry/), each through a
//    containerDisk layer reader (formats/containerdisk/), and the disk
//    entry's bytes are fed as they pass, in one pass, nothing stored. Every
//    blob read is verified against its digest before FeedTo returns, so a
//    caller that commits after FeedTo never commits unverified bytes.
//
// Thread-safety: one thread uses an input.
#ifndef CDI_IMPORTER_IMAGE_INPUT_H_
#define CDI_IMPORTER_IMAGE_INPUT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "formats/decoder.h"
#include "formats/pipeline.h"
#include "sources/source.h"

namespace cdi::importer {

class ImageInput {
 public:
  virtual ~ImageInput() = default;

  // Bytes the input reads from its source, when known: the basis of
  // progress (a registry image's layers added up).
  virtual std::optional<uint64_t> size() const = 0;
  // The image's own length when known (the decoder's container_size): a
  // plain source's declared size; for a registry image, the disk entry's
  // size once FeedTo has found it.
  virtual std::optional<uint64_t> image_size() const = 0;
  virtual std::string Describe() const = 0;

  // Feeds the image's bytes in order to `image` (never finished here),
  // calling after_chunk with the bytes read from the source so far. Returns
  // the bytes read. Errors of the source, of `image` unchanged, and for
  // registry images: no disk image in any layer, a blob that is not what its
  // digest says, the disk entry refused (formats/containerdisk/).
  virtual Result<uint64_t> FeedTo(formats::ByteSink& image, const CancelToken* cancel,
                                  const std::function<void(uint64_t)>& after_chunk) = 0;

  // The Env of a registry image's configuration ("NAME=value"); empty for
  // other inputs.
  virtual std::vector<std::string> image_env() const { return {}; }
};

// Opens spec.url: docker:// references through the registry client,
// everything else through OpenSource. `layer_options` bound what a registry
// layer's unwrapper may hold (its memory limits).
Result<std::unique_ptr<ImageInput>> OpenImageInput(const SourceSpec& spec,
                                                   const CancelToken* cancel,
                                                   const formats::PipelineOptions& layer_options);

// A source the caller opened (an upload's request body, a clone stream) as
// an input: its bytes are the image.
std::unique_ptr<ImageInput> InputFromSource(std::unique_ptr<ByteSource> source);

}  // namespace cdi::importer

#endif  // CDI_IMPORTER_IMAGE_INPUT_H_
