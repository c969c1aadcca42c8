// Helpers for the source suites: reading a source to its end and capturing
// the library's log lines.
#ifndef CDI_TEST_IMPORTER_SOURCES_SOURCE_TEST_UTIL_H_
#define CDI_TEST_IMPORTER_SOURCES_SOURCE_TEST_UTIL_H_

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "sources/source.h"
#include "test/support/log_capture.h"

namespace cdi::importer::testing {

using cdi::test::LogCapture;

// Reads to the end, cycling through odd buffer sizes.
inline Result<std::string> ReadAll(ByteSource& source,
                                   std::vector<size_t> sizes = {1, 7, 4093, 65537, 1048579}) {
  std::string out;
  std::vector<uint8_t> buffer(*std::max_element(sizes.begin(), sizes.end()));
  for (size_t i = 0;; ++i) {
    std::span<uint8_t> span(buffer.data(), sizes[i % sizes.size()]);
    CDI_ASSIGN_OR_RETURN(size_t n, source.Read(span));
    if (n == 0) return out;
    out.append(reinterpret_cast<const char*>(buffer.data()), n);
  }
}

// Opens and reads; the Status of whichever step failed.
inline Status Fetch(const SourceSpec& spec, std::string* body = nullptr,
                    const CancelToken* cancel = nullptr) {
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> source, OpenSource(spec, cancel));
  CDI_ASSIGN_OR_RETURN(std::string data, ReadAll(*source));
  if (body != nullptr) *body = std::move(data);
  return Status::Ok();
}

inline size_t CountOccurrences(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace cdi::importer::testing

#endif  // CDI_TEST_IMPORTER_SOURCES_SOURCE_TEST_UTIL_H_
