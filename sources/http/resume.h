// Resuming a download after a dropped connection: which request continues
// it, and whether a response to that request provably continues the same
// image.
//
// The first response names the image: its length and validators (ETag,
// Last-Modified), kept as an ImageIdentity. After a failure with N bytes
// delivered, the next request asks for "Range: bytes=N-" with If-Range
// carrying the strongest validator, or, when the server said
// "Accept-Ranges: none", for the whole image again, whose first N bytes are
// then dropped. A response is accepted only when it is the rest of the same
// image; otherwise kNetwork says what changed and to import it again.
//
//   ImageResume resume(url.redacted);
//   resume.Remember(first_response, length);
//   ... N bytes later, the connection drops ...
//   switch (resume.NextRequest(N)) { case RequestKind::kRange: ... }
//   CDI_ASSIGN_OR_RETURN(ContentRange range, resume.CheckRest(response, length, progress, url));
//
// No function here touches the network or curl. Thread-safety: an
// ImageResume is used by one thread.
#ifndef CDI_SOURCES_HTTP_RESUME_H_
#define CDI_SOURCES_HTTP_RESUME_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "cdi/status.h"
#include "sources/http/http_response.h"

namespace cdi::importer {

// What a request asks for.
enum class RequestKind {
  kWhole,         // the whole image: nothing received yet
  kRange,         // "Range: bytes=N-": resume after N bytes
  kWholeAndSkip,  // the whole image again, dropping the N bytes already received
};

// How far a download got: the bytes of the image delivered, of how many the
// download expects (nullopt when no length was declared).
struct Progress {
  uint64_t received = 0;
  std::optional<uint64_t> expected;
};

// "after 10 of 100 bytes", or "after 10 bytes" when the length is unknown.
std::string ReceivedText(const Progress& progress);

// What the first response said about the image: how long it is and how to
// recognise it again when resuming.
struct ImageIdentity {
  std::optional<uint64_t> length;
  std::string etag;
  std::string last_modified;
  std::string accept_ranges;
};

// The image one download fetches, and the checks of the responses that
// continue it. Messages name the image by `image_url`, the redacted URL as
// given, and the response by the redacted URL that answered.
class ImageResume {
 public:
  explicit ImageResume(std::string image_url) : image_url_(std::move(image_url)) {}

  // Takes the image's identity from a complete response whose body declares
  // `length` (nullopt: not declared).
  void Remember(const ResponseHeaders& response, std::optional<uint64_t> length);
  // Takes the identity another download learned; the responses must then
  // end at `part_end` (the end of the part of the image asked for), not at
  // the image's end.
  void Remember(const ImageIdentity& identity, uint64_t part_end) {
    identity_ = identity;
    part_end_ = part_end;
  }
  const ImageIdentity& identity() const { return identity_; }
  // Takes the image's identity as an earlier process recorded it (a
  // checkpoint), to continue its download; {} forgets it.
  void Assume(ImageIdentity identity) { identity_ = std::move(identity); }

  // The request that continues a download after `received` bytes: the whole
  // image when none arrived, a range unless the server said it serves none.
  RequestKind NextRequest(uint64_t received) const;

  // True when the image has an ETag or a Last-Modified to recognise it by.
  bool HasValidator() const;

  // The If-Range value of a range request (RFC 9110 section 13.1.5): a
  // strong ETag, else Last-Modified, else "" (no If-Range is sent). With it
  // the server sends the rest of this very image, or all of a changed one.
  std::string IfRangeValidator() const;

  // A complete response (200) after an earlier request failed before the
  // first byte of its body was delivered: its declared `length` must be the
  // one published. Ok, or kNetwork saying the image changed.
  Status CheckWholeAgain(std::optional<uint64_t> length, uint64_t received) const;

  // The answer (206) to "Range: bytes=N-", N being progress.received: its
  // Content-Range must start at N and end at the image's end, its
  // Content-Length (`length`, as DeclaredLength returned it) must match, and
  // its validators must be the image's. Returns the range, or kNetwork
  // saying why the download cannot resume.
  Result<ContentRange> CheckRest(const ResponseHeaders& response,
                                 const Result<std::optional<uint64_t>>& length,
                                 const Progress& progress, std::string_view request_url) const;

  // A complete response (200) where the rest was asked for, or where the
  // server serves no ranges: usable, by dropping the bytes already received,
  // only when its length and validators prove it is the same image. Ok, or
  // kNetwork saying the image changed or that nothing shows it did not.
  Status CheckWholeAndSkip(const ResponseHeaders& response, std::optional<uint64_t> length,
                           const Progress& progress, std::string_view request_url) const;

  // The kNetwork error for HTTP 416 to a range request: the image shrank.
  Status RangeNotSatisfiable(const Progress& progress, std::string_view request_url) const;

 private:
  // "the image at URL changed while it was being downloaded (WHAT) after N
  // bytes; import it again".
  std::string Changed(const std::string& what, uint64_t received) const;

  // Whether a complete response describes the image: "" when it provably
  // does, otherwise why not (or, when nothing tells, `*unknown` is set).
  std::string CompareWithImage(const ResponseHeaders& response, std::optional<uint64_t> length,
                               uint64_t received, bool* unknown) const;

  const std::string image_url_;
  ImageIdentity identity_;
  std::optional<uint64_t> part_end_;
};

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_RESUME_H_
