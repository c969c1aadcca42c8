// One part of an image read with a ranged request, on the calling thread:
// for a reader that needs a few pieces of an image it knows (a qcow2
// import continued at a checkpoint fetches the image's tables again).
//
// The request asks "Range: bytes=FIRST-(END-1)" with If-Range (the strong
// ETag, else Last-Modified, from `identity`), and only a 206 carrying
// exactly that part of the same image (Content-Range, length and
// validators) is taken (HttpTransfer::FetchPart); a dropped request resumes
// within the spec's retry budget. A server that answers with another image
// (a 200, a 416, another validator or length) is an error that says so.
//
// Errors: those of OpenHttpSource (http_source.h).
#ifndef CDI_SOURCES_HTTP_RANGE_READ_H_
#define CDI_SOURCES_HTTP_RANGE_READ_H_

#include <cstdint>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/http/http_source.h"

namespace cdi::importer {

// Bytes [first, end) of the image `identity` names at spec.url (end > first,
// end <= the image's length).
Result<std::vector<uint8_t>> ReadImageRange(const SourceSpec& spec, const HttpResumePoint& identity,
                                            uint64_t first, uint64_t end,
                                            const CancelToken* cancel);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_RANGE_READ_H_
