#include "formats/unwrapper.h"

#include <string>
#include <utility>

namespace cdi::formats {
namespace {

std::string FileSuffix(Format wrapper) {
  switch (wrapper) {
    case Format::kGzip:
      return ".gz";
    case Format::kXz:
      return ".xz";
    case Format::kZstd:
      return ".zst";
    default:
      return "." + std::string(FormatName(wrapper));
  }
}

}  // namespace

Unwrapper::Unwrapper(Format wrapper, ByteSink* downstream, uint64_t max_output_bytes)
    : wrapper_(wrapper),
      downstream_(downstream),
      max_output_bytes_(max_output_bytes),
      output_(kUnwrapChunkBytes) {}

Unwrapper::~Unwrapper() = default;

Status Unwrapper::Produced(size_t length) {
  if (length == 0) return Status::Ok();
  // Checked on every decompressor step, not only when the buffer is pushed, so
  // that a bomb is stopped within one buffer of the limit and nothing past the
  // limit ever reaches the downstream sink.
  if (length > max_output_bytes_ - output_total_) {
    return TooSmallError("the decompressed image is larger than the reported available storage (" +
                         std::to_string(max_output_bytes_) + " bytes): the " + std::string(name()) +
                         " stream decompresses to more than that; a larger volume is required");
  }
  output_total_ += length;
  buffered_ += length;
  if (buffered_ == output_.size()) return Push();
  return Status::Ok();
}

Status Unwrapper::Push() {
  if (buffered_ == 0) return Status::Ok();
  size_t length = buffered_;
  // Reset first: the buffer is reusable as soon as the downstream call returns.
  buffered_ = 0;
  return downstream_->Feed(std::span<const uint8_t>(output_.data(), length));
}

Status Unwrapper::FinishOutput() {
  CDI_RETURN_IF_ERROR(Push());
  return downstream_->Finish();
}

Status Unwrapper::CorruptError(std::string_view what) const {
  return CorruptErrorAt(input_offset_, what);
}

Status Unwrapper::CorruptErrorAt(uint64_t offset, std::string_view what) const {
  std::string tool(name());
  return CorruptImageError("the " + tool + " stream is corrupt at compressed offset " +
                           std::to_string(offset) + " (" + std::string(what) +
                           "); the file is damaged: check it at its source ('" + tool +
                           " -t FILE') and import an intact copy");
}

Status Unwrapper::EndsEarlyError() const {
  std::string tool(name());
  return CorruptImageError("the " + tool + " stream ends early, at compressed offset " +
                           std::to_string(input_offset_) +
                           ", before its end marker; the download was cut short or the file is "
                           "truncated: retry the import, and check the file at its source ('" +
                           tool + " -t FILE')");
}

Status Unwrapper::TrailingDataError(uint64_t offset) const {
  std::string tool(name());
  return CorruptImageError("unexpected data after the end of the " + tool +
                           " stream, at compressed offset " + std::to_string(offset) +
                           "; the file has something appended or is damaged: recompress the "
                           "image into a clean " +
                           FileSuffix(wrapper_) + " file and import that");
}

Result<std::unique_ptr<ByteSink>> MakeUnwrapper(Format wrapper, ByteSink* downstream,
                                                const UnwrapOptions& options) {
  switch (wrapper) {
    case Format::kGzip:
      return MakeGzipUnwrapper(downstream, options);
    case Format::kXz:
      return MakeXzUnwrapper(downstream, options);
    case Format::kZstd:
      return MakeZstdUnwrapper(downstream, options);
    default:
      break;
  }
  return InternalError("no unwrapper for " + std::string(FormatName(wrapper)) +
                       ", which is not a compression wrapper");
}

}  // namespace cdi::formats
