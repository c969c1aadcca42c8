// One upload's body across the requests that carry it: a resumable upload.
//
// The upload's first request (a POST) starts the session; the pipeline
// reads the session's Source(), the parts' bytes in order. When a part's
// connection drops before the body is whole, the pipeline's state stays as
// it is (the import waits inside its read) for up to `resume_wait`, for a
// request that continues the body: PATCH with "Content-Range: bytes
// FIRST-LAST/TOTAL", FIRST the offset received (what HEAD answers as
// Upload-Offset). A part that starts elsewhere is refused (416) and the
// upload goes on waiting; a part that ends before the whole body is answered
// 204 with the new Upload-Offset. When nothing continues it in time, the
// upload fails as a dropped upload always did.
//
// Each part answers on its own connection; the session hands the answer of
// the upload (200, or the failure) to the part current when it comes, and
// "releases" a part once it is done with it (its handler may then close the
// connection).
//
// Thread-safety: every member may be called from any thread; Source() is
// read by one thread (the pipeline's).
#ifndef CDI_UPLOADSERVER_UPLOAD_SESSION_H_
#define CDI_UPLOADSERVER_UPLOAD_SESSION_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "cdi/status.h"
#include "sources/source.h"
#include "sources/upload/request_body.h"

namespace cdi::uploadserver {

// One request's share of an upload.
struct UploadPart {
  // The connection after the request's header, and the request's body on it
  // (declared in this order: the body reads the stream).
  std::unique_ptr<importer::RequestStream> stream;
  std::unique_ptr<importer::ByteSource> body;
  uint64_t first = 0;                  // the upload's offset of its first byte
  std::optional<uint64_t> total;       // the whole upload's length, when the request says it
  bool whole = false;                  // its clean end is the upload's end (a POST)
  // Writes an answer on the part's connection (lingering on a failure).
  std::function<void(int code, const std::string& headers, const std::string& body,
                     bool linger)>
      answer;
  // Makes a read of its connection that waits return (the connection is shut
  // down), when a newer request continues the upload.
  std::function<void()> interrupt;
  // Called once the part is accepted, before its body is read (the answer
  // "100 Continue" to a client that expects it).
  std::function<void()> accepted;

  bool released = false;  // the session is done with it (under the session's lock)
};

class UploadSession {
 public:
  // `resumable`: a dropped part waits for a continuation (a multipart form
  // is not resumable: its framing is not the image's bytes). `cancel` may be
  // null.
  UploadSession(std::shared_ptr<UploadPart> first, bool resumable,
                std::chrono::milliseconds resume_wait, const CancelToken* cancel);
  ~UploadSession();
  UploadSession(const UploadSession&) = delete;
  UploadSession& operator=(const UploadSession&) = delete;

  // The upload's bytes, part after part, for the pipeline (one per session;
  // it must not outlive the session). size() is the total when known.
  std::unique_ptr<importer::ByteSource> Source();

  // Bytes received so far (the Upload-Offset), and the upload's length when
  // known.
  uint64_t offset() const;
  std::optional<uint64_t> total() const;

  // Whether the session waits for a continuation: its last part dropped.
  bool waiting() const;

  // A refused continuation: the answer the request gets.
  struct Refusal {
    int code = 0;
    std::string message;
  };
  // Continues the upload with `part`. A part still being read is ended first
  // (a client that continues knows its older connection is gone). Returns a
  // refusal without taking the part when the upload has all its bytes, ended,
  // or continues at another offset (416) or length (400); otherwise waits
  // until the session released the part (answered, or dropped) and returns
  // nullopt.
  std::optional<Refusal> Continue(const std::shared_ptr<UploadPart>& part);

  // Answers the upload on the part current now and releases it; false when
  // no part is current (the last one dropped).
  bool Answer(int code, const std::string& body, bool linger);

  // Gives up a session that waits for a continuation (a new upload takes
  // its place): its read fails with kCancelled.
  void Abandon();

  // Ends the session: the current part is released without an answer, no
  // continuation is taken any more.
  void Close();

 private:
  class BodySource;
  Result<size_t> Read(std::span<uint8_t> out);
  void ReleaseLocked(int code, const std::string& headers, const std::string& body, bool linger);

  const bool resumable_;
  const std::chrono::milliseconds resume_wait_;
  const CancelToken* const cancel_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::shared_ptr<UploadPart> current_;
  uint64_t offset_ = 0;
  std::optional<uint64_t> total_;
  std::optional<Status> dropped_;  // why the last part ended early, while waiting
  bool ended_ = false;             // the body is whole: the source answered its end
  bool abandoned_ = false;
  bool closed_ = false;
};

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_UPLOAD_SESSION_H_
