#include "uploadserver/upload_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/unique_fd.h"
#include "common/resources.h"
#include "importer/import_from.h"
#include "importer/memory_plan.h"
#include "pod/metrics_server.h"
#include "pod/progress_metric.h"
#include "pvc/target.h"
#include "sources/upload/request_body.h"
#include "sources/upload/snappy_stream.h"
#include "tls/server_context.h"
#include "uploadserver/digest_header.h"
#include "uploadserver/http_request.h"
#include "uploadserver/read_ahead.h"
#include "uploadserver/upload_session.h"

namespace cdi::uploadserver {
namespace {

using Clock = std::chrono::steady_clock;

// A connection has this long for its TLS handshake and then for its request
// header (Go's ReadHeaderTimeout of CDI's server is 10 s).
constexpr auto kHandshakeBudget = std::chrono::seconds(10);
constexpr auto kHeaderBudget = std::chrono::seconds(10);
// A body that sends nothing for this long is given up.
constexpr auto kIdleBudget = std::chrono::minutes(10);
// How often a read that waits for the client looks whether it should stop.
constexpr auto kStopPoll = std::chrono::milliseconds(200);
constexpr auto kSliceSlack = std::chrono::milliseconds(10);
// After an error answer, the rest of a body is read and dropped for at most
// this long, so that the client reads the answer instead of a reset.
constexpr auto kLingerBudget = std::chrono::seconds(5);
constexpr size_t kMaxHeaderBytes = 64 * 1024;
// How often an upload's progress is logged.
constexpr auto kReportEvery = std::chrono::seconds(5);
constexpr size_t kMaxConnections = 64;
// The largest read of the upload's body: TLS hands out 16 KiB records, and
// the body source gathers up to 256 KiB of them in one read.
constexpr size_t kReadChunk = 256 * 1024;
constexpr int kPollMilliseconds = 200;

constexpr std::string_view kFilesystemClone = "filesystem-clone";
constexpr std::string_view kBlockdeviceClone = "blockdevice-clone";

enum class Endpoint { kSync, kAsync, kFormSync, kFormAsync, kArchive };

std::optional<Endpoint> EndpointOf(std::string_view path) {
  for (std::string_view version : {"/v1beta1/", "/v1alpha1/"}) {
    if (path.substr(0, version.size()) != version) continue;
    std::string_view name = path.substr(version.size());
    if (name == "upload") return Endpoint::kSync;
    if (name == "upload-async") return Endpoint::kAsync;
    if (name == "upload-form") return Endpoint::kFormSync;
    if (name == "upload-form-async") return Endpoint::kFormAsync;
    if (name == "upload-archive") return Endpoint::kArchive;
  }
  return std::nullopt;
}

bool IsAsync(Endpoint endpoint) {
  return endpoint == Endpoint::kAsync || endpoint == Endpoint::kFormAsync;
}
bool IsForm(Endpoint endpoint) {
  return endpoint == Endpoint::kFormSync || endpoint == Endpoint::kFormAsync;
}

// The bytes an upload is received ahead of the pipeline: an eighth of the
// import's memory budget (8 MiB of the default 64 MiB), from the quarter an
// import from HTTP gives its connections.
size_t ReadAheadBytes() {
  return static_cast<size_t>(importer::PlanMemory(0, ThisProcessResources()).budget / 8);
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The connection after the request's header: what was read past the header
// first, then the TLS connection, each read within the idle budget. A read
// that waits looks at `stop` every kStopPoll: once it is set (the pipeline
// no longer reads the upload), the read gives up (kCancelled) and the
// connection stays as it is, for the answer.
class ConnectionStream final : public importer::RequestStream {
 public:
  ConnectionStream(tls::ServerConnection& connection, std::string leftover,
                   const std::atomic<bool>* stop)
      : connection_(connection), leftover_(std::move(leftover)), stop_(stop) {}

  Result<size_t> Read(std::span<uint8_t> buffer) override {
    if (pos_ < leftover_.size()) {
      const size_t n = std::min(buffer.size(), leftover_.size() - pos_);
      std::memcpy(buffer.data(), leftover_.data() + pos_, n);
      pos_ += n;
      return n;
    }
    const Clock::time_point idle_until = Clock::now() + kIdleBudget;
    while (true) {
      if (stop_->load(std::memory_order_acquire)) {
        return CancelledError("the upload's reading stopped");
      }
      const Clock::time_point slice_end = std::min(idle_until, Clock::now() + kStopPoll);
      connection_.set_deadline(slice_end);
      const size_t n = connection_.Read(reinterpret_cast<char*>(buffer.data()), buffer.size());
      // Nothing well before the slice's end: the client closed the
      // connection (or it failed); at its end (the wait is counted in whole
      // milliseconds, so it may end a little early): silence, for up to the
      // idle budget.
      if (n > 0 || Clock::now() + kSliceSlack < slice_end || slice_end == idle_until) return n;
    }
  }

 private:
  tls::ServerConnection& connection_;
  std::string leftover_;
  size_t pos_ = 0;
  const std::atomic<bool>* stop_;
};

// CDI's answer to a failed upload.
std::pair<int, std::string> FailureAnswer(const Status& status) {
  if (status.code() == ErrorCode::kChecksumMismatch) {
    return {400, "Saving stream failed: " + status.message() +
                     "; what was written is removed, send the image again"};
  }
  if (status.code() == ErrorCode::kTooSmall) {
    return {400,
            "Saving stream failed: effective image size is larger than the reported available "
            "storage: " + status.message()};
  }
  return {500, "Saving stream failed: " + status.message()};
}

}  // namespace

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
  bool busy = false;     // an upload is received or processed
  bool done = false;     // an upload completed
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

  void Reap() {
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done.load(std::memory_order_acquire)) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }

  void Accept() {
    UniqueFd connection(accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!connection.valid()) return;
    Reap();
    if (workers.size() >= kMaxConnections) {
      Logger()->warn("{} connections open: closing a new one", kMaxConnections);
      return;
    }
    Worker& worker = workers.emplace_back();
    try {
      worker.thread = std::thread([this, &worker, fd = std::move(connection)] {
        Handle(fd.get());
        worker.done.store(true, std::memory_order_release);
      });
    } catch (const std::system_error& error) {
      Logger()->warn("cannot serve a connection: {}", error.what());
      workers.pop_back();
    }
  }

  // Stops accepting and gives the connections already open a while to end
  // on their own (a request that arrived before the end is answered, as Go's
  // Shutdown answers it: 409 once an upload is done), then ends them.
  void Drain() {
    listen_fd.reset();
    const auto until = Clock::now() + kHeaderBudget + std::chrono::seconds(1);
    while (Clock::now() < until) {
      Reap();
      if (workers.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    StopAll();
  }

  void StopAll() {
    char byte = 1;
    ssize_t ignored = write(wake_write.get(), &byte, 1);
    (void)ignored;
    for (Worker& worker : workers) worker.thread.join();
    workers.clear();
  }

  // Reads and drops what the client still sends, for a little while, after
  // an answer that did not read the whole body.
  static void Linger(tls::ServerConnection& connection) {
    connection.set_deadline(Clock::now() + kLingerBudget);
    char scratch[16384];
    while (connection.Read(scratch, sizeof scratch) > 0) {
    }
  }

  static void Answer(tls::ServerConnection& connection, int code, std::string_view body = {},
                     bool linger = false, std::string_view headers = {}) {
    connection.set_deadline(Clock::now() + kHeaderBudget);
    connection.WriteAll(HttpResponse(code, body, headers));
    connection.Close();
    if (linger) Linger(connection);
  }

  void Handle(int fd) {
    tls::ServerConnection connection(*tls, fd, wake_read.get(), Clock::now() + kHandshakeBudget);
    if (!connection.Handshake()) return;
    connection.set_deadline(Clock::now() + kHeaderBudget);
    std::string data;
    size_t header_end = std::string::npos;
    char buffer[4096];
    while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
      if (data.size() > kMaxHeaderBytes) {
        Answer(connection, 431);
        return;
      }
      size_t n = connection.Read(buffer, sizeof buffer);
      if (n == 0) return;
      data.append(buffer, n);
    }
    Result<HttpRequest> request = ParseRequestHeader(std::string_view(data).substr(0, header_end));
    if (!request.ok()) {
      Answer(connection, 400, request.status().message());
      return;
    }
    std::string leftover = data.substr(header_end + 4);
    if (request->path == "/metrics" && (request->method == "GET" || request->method == "HEAD")) {
      Answer(connection, 200, Metrics());
      return;
    }
    if (request->path == "/healthz") {
      if (request->method == "HEAD") {
        connection.WriteAll("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
        connection.Close();
      } else {
        Answer(connection, 200, "OK");
      }
      return;
    }
    std::optional<Endpoint> endpoint = EndpointOf(request->path);
    if (!endpoint) {
      Answer(connection, 404, "404 page not found\n");
      return;
    }
    if (request->method == "HEAD") {
      // CDI's upload proxy asks whether async uploads are supported (200,
      // with or without a certificate); an authorized client also learns
      // how much of the upload in flight arrived.
      if (Authorized(connection, *request, false)) {
        Answer(connection, 200, {}, false, OffsetHeaders());
      } else {
        Answer(connection, IsAsync(*endpoint) ? 200 : 404);
      }
      return;
    }
    if (request->method == "PATCH" && !IsForm(*endpoint)) {
      if (!Authorized(connection, *request, true)) return;
      Resume(connection, fd, *request, std::move(leftover));
      return;
    }
    if (!Admit(connection, *request)) return;
    Upload(connection, fd, *request, *endpoint, std::move(leftover));
  }

  std::string Metrics() const {
    return metric->Exposition() +
           "# HELP kubevirt_cdi_upload_bytes_received_total Bytes of the upload received\n"
           "# TYPE kubevirt_cdi_upload_bytes_received_total counter\n"
           "kubevirt_cdi_upload_bytes_received_total{ownerUID=\"" + config.owner_uid + "\"} " +
           std::to_string(bytes_received.load()) +
           "\n# HELP kubevirt_cdi_upload_bytes_decoded_total Bytes of the image decoded and "
           "written (zero ranges included)\n"
           "# TYPE kubevirt_cdi_upload_bytes_decoded_total counter\n"
           "kubevirt_cdi_upload_bytes_decoded_total{ownerUID=\"" + config.owner_uid + "\"} " +
           std::to_string(bytes_decoded.load()) + "\n";
  }

  // Upload-Offset (bytes received of the upload in flight or the last one;
  // 0 when there is none) and Upload-Length when known.
  std::string OffsetHeaders() {
    std::shared_ptr<UploadSession> current;
    {
      std::lock_guard<std::mutex> lock(mutex);
      current = session;
    }
    std::string headers =
        "Upload-Offset: " + std::to_string(current ? current->offset() : 0) + "\r\n";
    if (current && current->total()) {
      headers += "Upload-Length: " + std::to_string(*current->total()) + "\r\n";
    }
    return headers;
  }

  // The client's certificate verifies and carries CLIENT_NAME. Otherwise
  // logs why and, when `answer`, answers 401.
  bool Authorized(tls::ServerConnection& connection, const HttpRequest& request, bool answer) {
    const tls::ServerConnection::PeerCertificate peer = connection.Peer();
    if (!peer.presented || !peer.verified ||
        std::find(peer.common_names.begin(), peer.common_names.end(), config.client_name) ==
            peer.common_names.end()) {
      if (!answer) return false;
      Logger()->warn(
          "Refusing {} {}: {}", request.method, request.path,
          !peer.presented ? std::string("no client certificate")
          : !peer.verified
              ? "the client certificate does not verify against " + config.client_ca_file + ": " +
                    peer.problem
              : "the client certificate's common name '" + peer.common_names.front() +
                    "' is not '" + config.client_name + "'");
      Answer(connection, 401, {}, true);
      return false;
    }
    return true;
  }

  // CDI's checks before an upload: the method, the client's certificate,
  // then one upload at a time. True when this request is the upload now.
  bool Admit(tls::ServerConnection& connection, const HttpRequest& request) {
    if (request.method != "POST") {
      Answer(connection, 404);
      return false;
    }
    if (!Authorized(connection, request, true)) return false;
    int refusal = 0;  // answered after the lock is let go: an answer lingers
    const Clock::time_point until = Clock::now() + kHeaderBudget;
    bool replacing = false;
    while (true) {
      std::unique_lock<std::mutex> lock(mutex);
      if (busy && session && session->waiting() && Clock::now() < until) {
        // An upload whose connection dropped waits for a continuation; a
        // new upload (a client that starts over) replaces it.
        if (!replacing) Logger()->info("A new upload replaces the one waiting for a continuation");
        replacing = true;
        session->Abandon();
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      if (busy) {
        refusal = 503;
      } else if (done) {
        refusal = 409;
      } else {
        busy = true;
        session.reset();
      }
      break;
    }
    if (refusal == 0) return true;
    Logger()->warn(refusal == 503 ? "Got concurrent upload request"
                                  : "Got upload request after already done");
    Answer(connection, refusal, {}, true);
    return false;
  }

  ImportSpec SpecFor(Endpoint endpoint) const {
    ImportSpec spec;
    const bool block = pvc::IsBlockDevice(config.destination);
    TargetSpec target;
    if (endpoint == Endpoint::kArchive) {
      spec.content_type = ContentType::kArchive;
      target.path = config.data_dir;
    } else {
      target.path = config.destination;
      target.existing = ExistingFile::kReplace;
      target.preallocation = config.preallocation;
    }
    target.requested_size = config.image_size;
    target.filesystem_overhead = block ? 0.0 : config.filesystem_overhead;
    spec.targets.push_back(target);
    if (IsDirectory(config.scratch_dir)) spec.scratch_dir = config.scratch_dir;
    return spec;
  }

  // Ends an upload that did not complete: the answer, and the server free
  // for the next try.
  void Fail(tls::ServerConnection& connection, int code, const std::string& message) {
    Logger()->error("{}", message);
    {
      std::lock_guard<std::mutex> lock(mutex);
      busy = false;
    }
    Answer(connection, code, message, true);
  }

  // The part a request's body is of the upload, answering on `connection`.
  std::shared_ptr<UploadPart> MakePart(tls::ServerConnection& connection, int fd,
                                       const HttpRequest& request, std::string leftover) {
    auto part = std::make_shared<UploadPart>();
    part->stream = std::make_unique<ConnectionStream>(connection, std::move(leftover), &stop_reads);
    part->answer = [&connection](int code, const std::string& headers, const std::string& body,
                                 bool linger) { Answer(connection, code, body, linger, headers); };
    part->interrupt = [fd] { shutdown(fd, SHUT_RDWR); };
    if (request.expects_continue) {
      part->accepted = [&connection] {
        connection.set_deadline(Clock::now() + kHeaderBudget);
        connection.WriteAll("HTTP/1.1 100 Continue\r\n\r\n");
      };
    }
    return part;
  }

  // PATCH with Content-Range: the rest of an upload whose connection dropped.
  void Resume(tls::ServerConnection& connection, int fd, const HttpRequest& request,
              std::string leftover) {
    const auto refuse = [&](int code, const std::string& message) {
      Logger()->warn("Refusing to continue the upload: {}", message);
      Answer(connection, code, message, true, OffsetHeaders());
    };
    const std::optional<std::string> range_header = request.Header("content-range");
    if (!range_header) {
      refuse(400, "PATCH continues an upload and needs 'Content-Range: bytes FIRST-LAST/TOTAL' "
                  "(FIRST the Upload-Offset that HEAD answers)");
      return;
    }
    Result<ContentRange> range = ParseContentRange(*range_header);
    if (!range.ok()) {
      refuse(400, range.status().message());
      return;
    }
    const uint64_t length = range->last - range->first + 1;
    if (!request.chunked && request.content_length.value_or(0) != length) {
      refuse(400, "Content-Range " + *range_header + " is " + std::to_string(length) +
                      " bytes, and Content-Length says " +
                      std::to_string(request.content_length.value_or(0)));
      return;
    }
    std::shared_ptr<UploadSession> current;
    bool complete = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      complete = done;
      current = session;
    }
    if (complete) {
      refuse(409, "the upload is already complete");
      return;
    }
    if (!current) {
      refuse(404, "no upload is waiting to be continued; send the whole image with POST");
      return;
    }
    std::shared_ptr<UploadPart> part = MakePart(connection, fd, request, std::move(leftover));
    importer::RequestBodySpec body;
    body.content_length = length;
    body.chunked = request.chunked;
    // A plain body cannot fail to open.
    part->body = importer::OpenRequestBody(body, *part->stream, &import_cancel).value();
    part->first = range->first;
    part->total = range->total;
    part->whole = range->last + 1 == range->total;
    if (std::optional<UploadSession::Refusal> refusal = current->Continue(part)) {
      refuse(refusal->code, refusal->message);
    }
  }

  void Upload(tls::ServerConnection& connection, int fd, const HttpRequest& request,
              Endpoint endpoint, std::string leftover) {
    const std::string content_type = request.Header("x-cdi-content-type").value_or("");
    Logger()->info("Content type header is \"{}\"", content_type);
    const bool async = IsAsync(endpoint);
    const bool clone = content_type == kFilesystemClone || content_type == kBlockdeviceClone;
    if (clone && async) {
      Fail(connection, 500, "Saving stream failed: async clone not supported");
      return;
    }
    // A filesystem volume's clone: a tar written by tar -S, extracted as an
    // archive is.
    const bool filesystem_clone = content_type == kFilesystemClone;
    if ((endpoint == Endpoint::kArchive || filesystem_clone) &&
        pvc::IsBlockDevice(config.destination)) {
      Fail(connection, 500,
           std::string("Saving stream failed: ") +
               (filesystem_clone ? "a filesystem-clone stream" : "an archive") +
               " is extracted into a filesystem volume, and this pod has a block volume (" +
               config.destination + ")");
      return;
    }
    Result<std::optional<std::string>> checksum = ExpectedChecksum(request);
    if (!checksum.ok()) {
      Fail(connection, 400, "Saving stream failed: " + checksum.status().message());
      return;
    }
    importer::RequestBodySpec body;
    body.content_length = request.content_length;
    body.chunked = request.chunked;
    if (IsForm(endpoint)) {
      Result<std::optional<std::string>> boundary =
          importer::FormDataBoundary(request.Header("content-type").value_or(""));
      if (!boundary.ok()) {
        Fail(connection, 400, "Saving stream failed: " + boundary.status().message());
        return;
      }
      if (!*boundary) {
        Fail(connection, 400,
             "Saving stream failed: request Content-Type isn't multipart/form-data");
        return;
      }
      body.multipart_boundary = **boundary;
    }
    if (request.expects_continue) {
      connection.set_deadline(Clock::now() + kHeaderBudget);
      connection.WriteAll("HTTP/1.1 100 Continue\r\n\r\n");
    }
    stop_reads.store(false, std::memory_order_release);
    std::shared_ptr<UploadPart> part = MakePart(connection, fd, request, std::move(leftover));
    part->accepted = nullptr;
    Result<std::unique_ptr<importer::ByteSource>> opened =
        importer::OpenRequestBody(body, *part->stream, &import_cancel);
    if (!opened.ok()) {
      Fail(connection, 400, "Saving stream failed: " + opened.status().message());
      return;
    }
    part->body = std::move(opened).value();
    part->whole = true;
    if (!request.chunked && !IsForm(endpoint)) part->total = request.content_length.value_or(0);
    // A form's framing is not the image's bytes: it cannot be continued.
    auto upload = std::make_shared<UploadSession>(part, !IsForm(endpoint), config.resume_wait,
                                                  &import_cancel);
    {
      std::lock_guard<std::mutex> lock(mutex);
      session = upload;
    }
    // The upload is received on a thread of its own while the pipeline
    // decodes what came before.
    std::unique_ptr<importer::ByteSource> source = std::make_unique<ReadAheadSource>(
        upload->Source(), ReadAheadBytes(), kReadChunk,
        [this] { stop_reads.store(true, std::memory_order_release); });
    if (clone) source = importer::OpenSnappyFramedSource(std::move(source));

    bool answered = false;
    Clock::time_point last_report = Clock::now();
    ImportHooks hooks;
    hooks.cancel = &import_cancel;
    hooks.on_progress = [&](const Progress& progress) {
      metric->Update(progress.Fraction());
      bytes_received.store(progress.source_bytes);
      bytes_decoded.store(progress.guest_bytes);
      if (progress.phase == Phase::kTransferring && Clock::now() - last_report >= kReportEvery) {
        last_report = Clock::now();
        const std::optional<double> fraction = progress.Fraction();
        Logger()->info("Received {} bytes{}, {} bytes of the image decoded",
                       progress.source_bytes,
                       fraction ? fmt::format(" ({:.2f}%)", *fraction * 100) : std::string(),
                       progress.guest_bytes);
      }
      // The body is in, decoded and checked, the targets resized: what is
      // left is the flush, as CDI's answers after its pause.
      if (!async || answered || progress.phase != Phase::kFlushing) return;
      answered = true;
      Logger()->info("Returning success to caller, continue processing in background");
      upload->Answer(200, "", false);
    };
    ImportSpec spec = SpecFor(filesystem_clone ? Endpoint::kArchive : endpoint);
    // A block device's clone is its bytes as they are, and as long as they
    // are: the volume is not resized to the request.
    if (clone && !filesystem_clone) spec.targets.front().requested_size.reset();
    if (*checksum) {
      spec.checksum = **checksum;
      Logger()->info("Verifying the upload against {}", **checksum);
    }
    Result<ImportResult> result =
        importer::ImportFrom(spec, std::move(source), hooks,
                             {.raw_only = clone && !filesystem_clone});
    if (!result.ok()) {
      if (answered) {
        upload->Close();
        Logger()->error("Error during resumed processing: {}", result.status().message());
        std::lock_guard<std::mutex> lock(mutex);
        busy = false;
        session.reset();
        fatal = result.status();
        return;
      }
      auto [code, message] = FailureAnswer(result.status());
      Logger()->error("{}", message);
      {
        std::lock_guard<std::mutex> lock(mutex);
        busy = false;
        session.reset();
      }
      upload->Answer(code, message, true);
      upload->Close();
      return;
    }
    if (!answered) upload->Answer(200, "", false);
    upload->Close();
    Logger()->info(endpoint == Endpoint::kArchive || filesystem_clone ? "Wrote archive data"
                                                  : "Wrote data to " + config.destination);
    std::lock_guard<std::mutex> lock(mutex);
    busy = false;
    done = true;
    outcome.clone_target = clone;
    outcome.preallocation_applied =
        endpoint != Endpoint::kArchive && !filesystem_clone && result->preallocated;
  }
};

UploadServer::UploadServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

UploadServer::~UploadServer() { state_->StopAll(); }

uint16_t UploadServer::port() const { return state_->port; }

Result<std::unique_ptr<UploadServer>> UploadServer::Start(const UploadConfig& config) {
  // A client that goes away mid-answer must not end the server.
  signal(SIGPIPE, SIG_IGN);
  auto state = std::make_unique<State>();
  state->config = config;
  state->metric = std::make_unique<pod::ProgressMetric>(config.owner_uid);
  CDI_ASSIGN_OR_RETURN(tls::KeyAndCertificate identity,
                       tls::LoadKeyAndCertificate(config.cert_file, config.key_file));
  tls::ServerOptions options;
  options.client_ca_file = config.client_ca_file;
  if (config.min_tls_version != 0) options.min_version = config.min_tls_version;
  options.cipher_suites = config.cipher_suites;
  if (config.client_ca_file.empty()) {
    Logger()->warn("CLIENT_CERT_FILE is not set: no client certificate can verify, every upload "
                   "will be refused (401)");
  }
  CDI_ASSIGN_OR_RETURN(state->tls, tls::ServerContext::Create(identity, options));
  CDI_ASSIGN_OR_RETURN(state->listen_fd,
                       pod::Listen({config.listen_host, config.listen_port}, "uploads"));
  state->port = pod::BoundPort(state->listen_fd.get());
  CDI_ASSIGN_OR_RETURN(pod::WakePipe wake, pod::MakeWakePipe("upload server"));
  state->wake_read = std::move(wake.read);
  state->wake_write = std::move(wake.write);
  return std::unique_ptr<UploadServer>(new UploadServer(std::move(state)));
}

Result<RunOutcome> UploadServer::Run(const CancelToken* stop) {
  State& s = *state_;
  bool deadline_logged = false;
  while (true) {
    // Decided under the lock, done outside it: stopping joins the
    // connections' threads, which take the lock.
    std::optional<Result<RunOutcome>> end;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (s.fatal) {
        end = Result<RunOutcome>(*s.fatal);
      } else if (s.done) {
        Logger()->info("Shutting down http server after successful upload");
        end = Result<RunOutcome>(s.outcome);
      } else if (s.config.deadline && std::chrono::system_clock::now() >= *s.config.deadline) {
        if (!deadline_logged) {
          deadline_logged = true;
          Logger()->info("deadline exceeded, shutting down");
          if (s.busy) Logger()->info("waiting for upload to finish");
        }
        if (!s.busy) {
          Logger()->info("upload not done, process exiting");
          end = Result<RunOutcome>(RunOutcome{.deadline_passed = true});
        }
      }
    }
    if (end) {
      if (end->ok()) {
        s.Drain();
      } else {
        s.StopAll();
      }
      return std::move(*end);
    }
    if (stop != nullptr && stop->cancelled()) {
      s.import_cancel.Cancel();
      s.StopAll();
      return CancelledError("the upload server was stopped by a signal");
    }
    pollfd fds[1] = {{s.listen_fd.get(), POLLIN, 0}};
    int ready = poll(fds, 1, kPollMilliseconds);
    if (ready < 0 && errno != EINTR) {
      const int error = errno;
      s.import_cancel.Cancel();
      s.StopAll();
      return IoError(std::string("the upload server stopped: poll: ") + std::strerror(error));
    }
    if (ready > 0) s.Accept();
  }
}

}  // namespace cdi::uploadserver
