#include "sources/http/range_read.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "sources/http/curl_handles.h"
#include "sources/http/http_transfer.h"
#include "sources/http/proxy.h"
#include "sources/http/resume.h"
#include "sources/transfer_buffer.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {

Result<std::vector<uint8_t>> ReadImageRange(const SourceSpec& spec, const HttpResumePoint& identity,
                                            uint64_t first, uint64_t end,
                                            const CancelToken* cancel) {
  if (end <= first || !identity.length || end > *identity.length) {
    return InternalError("reading bytes " + std::to_string(first) + "-" + std::to_string(end) +
                         " of an image of unknown or smaller length");
  }
  InitCurlOnce();
  CDI_ASSIGN_OR_RETURN(HttpUrl url, ParseHttpUrl(spec.url));
  CDI_ASSIGN_OR_RETURN(ProxyConfig proxies, ResolveProxyConfig(spec.network.proxy));
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(spec.tls));
  const auto size = static_cast<size_t>(end - first);
  TransferBuffer idle(1);
  TransferBuffer part(size);  // the whole part fits: the transfer never waits
  HttpTransfer transfer(spec, url, std::move(tls), std::move(proxies), cancel, idle,
                        [](std::optional<uint64_t>) {});
  CDI_RETURN_IF_ERROR(transfer.Configure());
  ImageIdentity image;
  image.length = identity.length;
  image.etag = identity.etag;
  image.last_modified = identity.last_modified;
  image.accept_ranges = "bytes";
  transfer.FetchPart(part, first, end, image, url);
  Status status = transfer.Download();
  part.Finish(status);
  CDI_RETURN_IF_ERROR(status);
  std::vector<uint8_t> bytes(size);
  size_t got = 0;
  while (got < size) {
    std::optional<Result<size_t>> taken =
        part.Take(std::span(bytes).subspan(got), std::chrono::milliseconds(0));
    if (!taken) break;
    CDI_RETURN_IF_ERROR(taken->status());
    if (**taken == 0) break;
    got += **taken;
  }
  if (got != size) {
    return NetworkError("the server sent " + std::to_string(got) + " of the " +
                        std::to_string(size) + " bytes asked for at byte " + std::to_string(first) +
                        " of " + url.redacted);
  }
  return bytes;
}

}  // namespace cdi::importer
