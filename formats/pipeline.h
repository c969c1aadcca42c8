// Detection, unwrapping and decoding chained together: the whole format side
// of an import as one ByteSink.
//
//   container bytes -> detect -> [gzip|xz|zstd -> detect]* -> decoder -> GuestWriter
//
// Each wrapper kind is unwrapped at most once. Formats are recognised by their
// bytes, never by a file name.
#ifndef CDI_FORMATS_PIPELINE_H_
#define CDI_FORMATS_PIPELINE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "formats/decoder.h"

namespace cdi::formats {

struct PipelineOptions {
  DecoderOptions decoder;
  // No unwrapper may produce more than this many bytes; passing it is a
  // kTooSmall error raised as soon as it happens.
  uint64_t max_unwrapped_bytes = UINT64_MAX;
  // liblzma's memory limit for an xz stream.
  uint64_t xz_memlimit = 128ull << 20;
  // zstd frames with a larger window are refused.
  int zstd_window_log_max = 27;
};

class ImagePipeline : public ByteSink {
 public:
  // `writer` must outlive the pipeline.
  ImagePipeline(GuestWriter* writer, PipelineOptions options);
  ~ImagePipeline() override;

  Status Feed(std::span<const uint8_t> bytes) override;
  Status Finish() override;

  // Layers detected so far, outermost first: {"gzip", "qcow2"}.
  std::vector<std::string> format_chain() const;
  // The decoder's description once it exists.
  std::optional<ImageDescription> Describe() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cdi::formats

#endif  // CDI_FORMATS_PIPELINE_H_
