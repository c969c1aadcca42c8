#include "sources/file/file_source.h"
#include "sources/http/http_source.h"
#include "sources/s3/s3_source.h"
#include "sources/source.h"
#include "sources/url.h"

namespace cdi::importer {

Result<std::span<const uint8_t>> ByteSource::ReadView(size_t max) {
  if (view_buffer_.size() < max) view_buffer_.resize(max);
  CDI_ASSIGN_OR_RETURN(size_t n, Read(std::span<uint8_t>(view_buffer_.data(), max)));
  return std::span<const uint8_t>(view_buffer_.data(), n);
}

Result<std::unique_ptr<ByteSource>> OpenSource(const SourceSpec& spec, const CancelToken* cancel) {
  if (spec.url.empty()) return InvalidArgumentError("no source given: expected a URL, a path or -");
  if (spec.url == "-") return OpenStdinSource(cancel);
  std::string scheme = UrlScheme(spec.url);
  if (IsHttpScheme(scheme)) return OpenHttpSource(spec, cancel);
  if (scheme == "s3") return OpenS3Source(spec, cancel);
  // "name:rest" without "//" is a local file whose name holds a colon.
  bool is_url = !scheme.empty() && spec.url.compare(scheme.size(), 3, "://") == 0;
  if (!is_url) return OpenFileSource(spec.url, cancel);
  return UnsupportedError(scheme + ":// sources are not supported: only http, https and s3 are (" +
                          RedactUrl(spec.url) + ")");
}

}  // namespace cdi::importer
