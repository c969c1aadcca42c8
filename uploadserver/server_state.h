// The upload server's state, shared by its two halves: the connections
// (upload_server.cc: accepting, reading a request's header, answering,
// /metrics, /healthz, HEAD, the client's certificate) and the uploads
// (upload_request.cc: admitting one upload at a time, POST and PATCH
// bodies, the import they feed).
//
// Internal to the upload server. Thread-safety: the accepting thread owns
// `workers`; everything under `mutex` and the atomics is shared with the
// connections' threads.
#ifndef CDI_UPLOADSERVER_SERVER_STATE_H_
#define CDI_UPLOADSERVER_SERVER_STATE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cdi/import.h"
#include "common/unique_fd.h"
#include "pod/progress_metric.h"
#include "tls/server_context.h"
#include "uploadserver/http_request.h"
#include "uploadserver/upload_config.h"
#include "uploadserver/upload_server.h"
#include "uploadserver/upload_session.h"

namespace cdi::uploadserver {

using Clock = std::chrono::steady_clock;

// A connection has this long to send its request header (Go's
// ReadHeaderTimeout of CDI's server is 10 s), and an answer this long to be
// written.
inline constexpr auto kHeaderBudget = std::chrono::seconds(10);

// The upload endpoints.
enum class Endpoint { kSync, kAsync, kFormSync, kFormAsync, kArchive };

inline bool IsAsync(Endpoint endpoint) {
  return endpoint == Endpoint::kAsync || endpoint == Endpoint::kFormAsync;
}
inline bool IsForm(Endpoint endpoint) {
  return endpoint == Endpoint::kFormSync || endpoint == Endpoint::kFormAsync;
}

struct UploadServer::State {
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  UploadConfig config;
  std::optional<tls::ServerContext> tls;
  UniqueFd listen_fd;
  UniqueFd wake_read;
  UniqueFd wake_write;
  uint16_t port = 0;
  std::list<Worker> workers;  // the accepting thread's only
  CancelToken import_cancel;

  std::mutex mutex;
  bool busy = false;            // an upload is received or processed
  bool done = false;            // an upload completed
  std::optional<Status> fatal;  // an asynchronous upload failed after its answer
  // The upload in flight, or the last one (for HEAD's Upload-Offset).
  std::shared_ptr<UploadSession> session;
  // GET /metrics: the importer pod's progress metric, and bytes received
  // and written (decoded) of the upload in flight or the last one.
  std::unique_ptr<pod::ProgressMetric> metric;
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bytes_decoded{0};
  // Set when the pipeline stops reading the upload in flight (it failed):
  // the reads of its connections give up instead of waiting for the client.
  std::atomic<bool> stop_reads{false};
  RunOutcome outcome;

  void Reap();
  void Accept();

  // Stops accepting and gives the connections already open a while to end
  // on their own (a request that arrived before the end is answered, as Go's
  // Shutdown answers it: 409 once an upload is done), then ends them.
  void Drain();
  void StopAll();

  // Reads and drops what the client still sends, for a little while, after
  // an answer that did not read the whole body.
  static void Linger(tls::ServerConnection& connection);
  static void Answer(tls::ServerConnection& connection, int code, std::string_view body = {},
                     bool linger = false, std::string_view headers = {});
  void Handle(int fd);
  std::string Metrics() const;

  // Upload-Offset (bytes received of the upload in flight or the last one;
  // 0 when there is none) and Upload-Length when known.
  std::string OffsetHeaders();

  // The client's certificate verifies and carries CLIENT_NAME. Otherwise
  // logs why and, when `answer`, answers 401.
  bool Authorized(tls::ServerConnection& connection, const HttpRequest& request, bool answer);

  // CDI's checks before an upload: the method, the client's certificate,
  // then one upload at a time. True when this request is the upload now.
  bool Admit(tls::ServerConnection& connection, const HttpRequest& request);
  ImportSpec SpecFor(Endpoint endpoint) const;

  // Ends an upload that did not complete: the answer, and the server free
  // for the next try.
  void Fail(tls::ServerConnection& connection, int code, const std::string& message);

  // The part a request's body is of the upload, answering on `connection`.
  std::shared_ptr<UploadPart> MakePart(tls::ServerConnection& connection, int fd,
                                       const HttpRequest& request, std::string leftover);

  // PATCH with Content-Range: the rest of an upload whose connection dropped.
  void Resume(tls::ServerConnection& connection, int fd, const HttpRequest& request,
              std::string leftover);
  void Upload(tls::ServerConnection& connection, int fd, const HttpRequest& request,
              Endpoint endpoint, std::string leftover);
};

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_SERVER_STATE_H_
