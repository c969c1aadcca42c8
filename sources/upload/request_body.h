// The body of an HTTP request as a ByteSource: what an upload server hands
// the pipeline, so that an upload is decoded while it arrives, as an import
// is. The server reads the request's header; this source reads the rest.
//
// Framings: a Content-Length, "Transfer-Encoding: chunked" (chunk extensions
// and trailers are read and dropped), or neither (an empty body, as HTTP/1.1
// says of a request). Inside it, optionally multipart/form-data (RFC 7578):
// the first part whose Content-Disposition names it "file" is the image,
// every other part before it is skipped; what follows that part is not read.
//
// Errors: kNetwork when the connection ends or fails before the body does
// ("the upload ended after N of M bytes ..."); kInvalidArgument for a body
// that breaks its framing (a bad chunk size, a multipart body with no part
// named "file", a part that never ends). The source never reads past its
// body.
//
// Thread-safety: none; one thread reads (ByteSource's contract).
#ifndef CDI_SOURCES_UPLOAD_REQUEST_BODY_H_
#define CDI_SOURCES_UPLOAD_REQUEST_BODY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/source.h"

namespace cdi::importer {

// The connection a request arrives on, from the first byte after its header
// (the server gives back what it read past the header first).
class RequestStream {
 public:
  virtual ~RequestStream() = default;
  // Up to buffer.size() bytes (buffer is never empty); 0 when the client
  // closed the connection. An error when it failed or went silent too long.
  virtual Result<size_t> Read(std::span<uint8_t> buffer) = 0;
};

struct RequestBodySpec {
  std::optional<uint64_t> content_length;  // Content-Length, when given
  bool chunked = false;                    // Transfer-Encoding: chunked (wins over a length)
  // multipart/form-data's boundary parameter; empty: the body is the image.
  std::string multipart_boundary;
  // For messages: "the upload".
  std::string description = "the upload";
};

// The multipart boundary of a Content-Type header value, when it is
// multipart/form-data with a valid boundary parameter (quoted or not);
// nullopt for any other type; kInvalidArgument for multipart/form-data
// without a usable boundary.
Result<std::optional<std::string>> FormDataBoundary(std::string_view content_type);

// Opens the body. With a multipart boundary, reads up to the start of the
// part named "file" before returning, so that a form without one fails here
// (kInvalidArgument), before any target is touched. size() is the
// Content-Length of a plain body, unknown for a chunked or multipart one.
// `stream` must outlive the source. `cancel` may be null.
Result<std::unique_ptr<ByteSource>> OpenRequestBody(const RequestBodySpec& spec,
                                                    RequestStream& stream,
                                                    const CancelToken* cancel);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_UPLOAD_REQUEST_BODY_H_
