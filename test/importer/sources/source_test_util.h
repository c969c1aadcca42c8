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

#include "importer/sources/source.h"

namespace cdi::importer::testing {

// Sends every log line of the library, at every level, into a string.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() {
    sink_->flush();
    return stream_.str();
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

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
