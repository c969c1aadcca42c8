#include "sources/http/resume.h"

#include <utility>

#include "common/text.h"

namespace cdi::importer {

std::string ReceivedText(const Progress& progress) {
  if (progress.expected.has_value()) {
    return "after " + std::to_string(progress.received) + " of " +
           std::to_string(*progress.expected) + " bytes";
  }
  return "after " + std::to_string(progress.received) + " bytes";
}

void ImageResume::Remember(const ResponseHeaders& response, std::optional<uint64_t> length) {
  identity_ = {length, response.etag, response.last_modified, response.accept_ranges};
}

RequestKind ImageResume::NextRequest(uint64_t received) const {
  if (received == 0) return RequestKind::kWhole;
  if (AsciiLower(identity_.accept_ranges) == "none") return RequestKind::kWholeAndSkip;
  return RequestKind::kRange;
}

bool ImageResume::HasValidator() const {
  return !identity_.etag.empty() || !identity_.last_modified.empty();
}

std::string ImageResume::IfRangeValidator() const {
  return !identity_.etag.empty() && !IsWeakEtag(identity_.etag) ? identity_.etag
                                                                : identity_.last_modified;
}

std::string ImageResume::Changed(const std::string& what, uint64_t received) const {
  return "the image at " + image_url_ + " changed while it was being downloaded (" + what +
         ") after " + std::to_string(received) + " bytes; import it again";
}

std::string ImageResume::CompareWithImage(const ResponseHeaders& response,
                                          std::optional<uint64_t> length, uint64_t received,
                                          bool* unknown) const {
  *unknown = false;
  if (identity_.length && length && *identity_.length != *length) {
    return Changed("its length was " + std::to_string(*identity_.length) + " bytes, now " +
                       std::to_string(*length),
                   received);
  }
  if (!identity_.etag.empty() && !response.etag.empty()) {
    if (identity_.etag != response.etag) {
      return Changed("its ETag was " + identity_.etag + ", now " + response.etag, received);
    }
    if (!IsWeakEtag(identity_.etag)) return "";
  }
  if (!identity_.last_modified.empty() && !response.last_modified.empty()) {
    if (identity_.last_modified != response.last_modified) {
      return Changed(
          "it was last modified " + identity_.last_modified + ", now " + response.last_modified,
          received);
    }
    return "";
  }
  *unknown = true;
  return "";
}

Status ImageResume::CheckWholeAgain(std::optional<uint64_t> length, uint64_t received) const {
  if (length == identity_.length) return Status::Ok();
  return NetworkError(
      Changed("its length was " +
                  (identity_.length ? std::to_string(*identity_.length) + " bytes" : "unknown") +
                  ", now " + (length.has_value() ? std::to_string(*length) + " bytes" : "unknown"),
              received));
}

Result<ContentRange> ImageResume::CheckRest(const ResponseHeaders& response,
                                            const Result<std::optional<uint64_t>>& length,
                                            const Progress& progress,
                                            std::string_view request_url) const {
  const uint64_t received = progress.received;
  const std::string asked = "bytes " + std::to_string(received) + "-";
  const std::string request(request_url);
  std::optional<ContentRange> range = ParseContentRange(response.content_range);
  if (!range) {
    return NetworkError(
        "the server answered the request for " + asked + " of " + request + " with " +
        (response.content_range.empty()
             ? std::string("no Content-Range")
             : "an invalid Content-Range '" + response.content_range.substr(0, 80) + "'") +
        "; cannot resume");
  }
  std::optional<uint64_t> total = identity_.length;
  const std::optional<uint64_t> end = part_end_ ? part_end_ : total;
  bool wrong = range->first != received ||
               (total && range->complete && *range->complete != *total) ||
               (end && range->last + 1 != *end) ||
               (!total && range->complete && range->last + 1 != *range->complete);
  if (wrong) {
    if (total && range->complete && *range->complete != *total) {
      return NetworkError(Changed("its length was " + std::to_string(*total) + " bytes, now " +
                                      std::to_string(*range->complete),
                                  received));
    }
    return NetworkError("the server answered the request for " + asked + " of " + request +
                        " with Content-Range '" + response.content_range.substr(0, 80) +
                        "', not the rest of the image; cannot resume");
  }
  if (!length.ok()) return length.status();
  if (length->has_value() && **length != range->last - range->first + 1) {
    return NetworkError("the server's Content-Length " + std::to_string(**length) +
                        " does not match its Content-Range '" +
                        response.content_range.substr(0, 80) + "' from " + request +
                        "; cannot resume");
  }
  // If-Range made the server decide; a server that ignores If-Range still
  // names the image it sends.
  if (!identity_.etag.empty() && !response.etag.empty() && identity_.etag != response.etag) {
    return NetworkError(
        Changed("its ETag was " + identity_.etag + ", now " + response.etag, received));
  }
  if (!identity_.last_modified.empty() && !response.last_modified.empty() &&
      identity_.last_modified != response.last_modified) {
    return NetworkError(Changed(
        "it was last modified " + identity_.last_modified + ", now " + response.last_modified,
        received));
  }
  return *range;
}

Status ImageResume::CheckWholeAndSkip(const ResponseHeaders& response,
                                      std::optional<uint64_t> length, const Progress& progress,
                                      std::string_view request_url) const {
  bool unknown = false;
  std::string changed = CompareWithImage(response, length, progress.received, &unknown);
  if (!changed.empty()) return NetworkError(std::move(changed));
  if (unknown) {
    return NetworkError(
        "cannot resume " + ReceivedText(progress) + " from " + std::string(request_url) +
        ": the server sends the whole image again (HTTP " + std::to_string(response.status) +
        ", it does not serve ranges) and gives no ETag or Last-Modified to show that it is the "
        "same image; import it again");
  }
  return Status::Ok();
}

Status ImageResume::RangeNotSatisfiable(const Progress& progress,
                                        std::string_view request_url) const {
  return NetworkError("cannot resume " + ReceivedText(progress) + " from " +
                      std::string(request_url) + ": the server " +
                      "answered HTTP 416 Range Not Satisfiable, so the image on the server is "
                      "shorter than it was; import it again");
}

}  // namespace cdi::importer
