// Placeholder until detection and unwrapping land.
#include "formats/pipeline.h"

namespace cdi::formats {
class ImagePipeline::Impl {};
ImagePipeline::ImagePipeline(GuestWriter*, PipelineOptions) : impl_(std::make_unique<Impl>()) {}
ImagePipeline::~ImagePipeline() = default;
Status ImagePipeline::Feed(std::span<const uint8_t>) { return InternalError("not built yet"); }
Status ImagePipeline::Finish() { return InternalError("not built yet"); }
std::vector<std::string> ImagePipeline::format_chain() const { return {}; }
std::optional<ImageDescription> ImagePipeline::Describe() const { return std::nullopt; }
}  // namespace cdi::formats
