// Sources: where container bytes come from. Sequential reads, front to back.
#ifndef CDI_SOURCES_SOURCE_H_
#define CDI_SOURCES_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"

namespace cdi::importer {

// A sequential byte stream. Not thread-safe: one thread reads.
class ByteSource {
 public:
  virtual ~ByteSource() = default;

  // Reads up to buffer.size() bytes into `buffer`; returns how many were read,
  // 0 only at the end of the stream. A stream that ends before its declared
  // size is an error, never an end.
  virtual Result<size_t> Read(std::span<uint8_t> buffer) = 0;

  // As Read, but returns a view of the next bytes (at most `max`, which must
  // be > 0), valid until the next call on the source; empty only at the end
  // of the stream. A source that holds the bytes in memory already lends them
  // without a copy; the default reads into a buffer of the source's own.
  // Do not mix with Read() on one source.
  virtual Result<std::span<const uint8_t>> ReadView(size_t max);

  // Total bytes the source will deliver, when it declares it (Content-Length,
  // a regular file's size). Known once the source is open.
  virtual std::optional<uint64_t> size() const = 0;

  // A redacted description for messages: the URL without userinfo or query,
  // the file path, or "standard input".
  virtual std::string Describe() const = 0;

 private:
  std::vector<uint8_t> view_buffer_;  // for the default ReadView
};

// Opens the source named by spec.url: http(s) URLs, "-" for standard input, or a
// local path. The HTTP source connects and checks the response status before
// returning, so that size() is known. `cancel` may be null; when set, reads stop
// with kCancelled within a second of cancellation.
Result<std::unique_ptr<ByteSource>> OpenSource(const SourceSpec& spec, const CancelToken* cancel);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_SOURCE_H_
