// CDI's upload server: HTTPS with client certificates, the endpoints CDI's
// upload proxy forwards to, and one upload written onto the volume, decoded
// while it arrives (the request body is a ByteSource fed to the same
// pipeline as an import: every wrapper and format, sparse, resized, flushed).
//
// Endpoints (CDI's pkg/uploadserver), under /v1beta1/ and /v1alpha1/:
//   upload, upload-form            answer once the image is written and flushed
//   upload-async, upload-form-async answer 200 once the body is in and decoded
//                                   (checked, resized), then flush; HEAD: 200
//   upload-archive                 a tar (also gz/xz/zstd) extracted into the data dir
//   the -form paths take the multipart part named "file"; GET /healthz: OK.
// Every upload path takes POST only (other methods 404), a client
// certificate that verifies against CLIENT_CERT_FILE and carries the CN
// CLIENT_NAME (else 401), and one upload at a time: 503 while one is in
// progress, 409 once one completed. A failed upload answers 400 ("Saving
// stream failed: effective image size is larger than the reported available
// storage: ...") when the image does not fit, 400 for a body that breaks its
// framing, 500 ("Saving stream failed: ...") otherwise; what it wrote is
// removed and the server waits for the next try.
//
// Resumable uploads (beyond CDI; uploadserver/upload_session.h): HEAD on an
// upload path with the client certificate answers Upload-Offset; an upload
// whose connection dropped waits (UploadConfig::resume_wait) for a PATCH
// with "Content-Range: bytes FIRST-LAST/TOTAL" that continues it (416 when
// FIRST is not the offset). A new POST replaces an upload that waits.
#ifndef CDI_UPLOADSERVER_UPLOAD_SERVER_H_
#define CDI_UPLOADSERVER_UPLOAD_SERVER_H_

#include <cstdint>
#include <memory>

#include "cdi/import.h"
#include "cdi/status.h"
#include "uploadserver/upload_config.h"

namespace cdi::uploadserver {

// How the server's run ended.
struct RunOutcome {
  bool deadline_passed = false;  // DEADLINE went by with no upload done
  bool clone_target = false;     // the upload was a clone stream
  bool preallocation_applied = false;
};

class UploadServer {
 public:
  // Loads the TLS identity and client CAs and binds the address. Errors:
  // kInvalidArgument or kTls for the TLS files, kIo when the address cannot
  // be bound.
  static Result<std::unique_ptr<UploadServer>> Start(const UploadConfig& config);
  ~UploadServer();
  UploadServer(const UploadServer&) = delete;
  UploadServer& operator=(const UploadServer&) = delete;

  uint16_t port() const;

  // Serves until an upload completed (its answer sent), the deadline passed
  // with no upload in flight (an upload in flight is waited for), or `stop`
  // is cancelled (kCancelled; an upload in flight is cancelled and cleaned
  // up). An asynchronous upload that fails after its 200 answer ends the run
  // with its error. Connections still open are closed on return.
  Result<RunOutcome> Run(const CancelToken* stop);

 private:
  struct State;
  explicit UploadServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_UPLOAD_SERVER_H_
