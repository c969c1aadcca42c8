// The uploads' half of the upload server (see server_state.h): admitting one
// upload at a time, its POST or PATCH bodies, and the import they feed.
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/resources.h"
#include "importer/import_from.h"
#include "importer/memory_plan.h"
#include "pvc/target.h"
#include "sources/upload/request_body.h"
#include "sources/upload/snappy_stream.h"
#include "uploadserver/digest_header.h"
#include "uploadserver/read_ahead.h"
#include "uploadserver/server_state.h"

namespace cdi::uploadserver {
namespace {

// A body that sends nothing for this long is given up.
constexpr auto kIdleBudget = std::chrono::minutes(10);
// How often a read that waits for the client looks whether it should stop.
constexpr auto kStopPoll = std::chrono::milliseconds(200);
constexpr auto kSliceSlack = std::chrono::milliseconds(10);
// How often an upload's progress is logged.
constexpr auto kReportEvery = std::chrono::seconds(5);
// The largest read of the upload's body: TLS hands out 16 KiB records, and
// the body source gathers up to 256 KiB of them in one read.
constexpr size_t kReadChunk = 256 * 1024;

constexpr std::string_view kFilesystemClone = "filesystem-clone";
constexpr std::string_view kBlockdeviceClone = "blockdevice-clone";

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
            "storage: " +
                status.message()};
  }
  return {500, "Saving stream failed: " + status.message()};
}

}  // namespace

bool UploadServer::State::Admit(tls::ServerConnection& connection, const HttpRequest& request) {
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

ImportSpec UploadServer::State::SpecFor(Endpoint endpoint) const {
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

void UploadServer::State::Fail(tls::ServerConnection& connection, int code,
                               const std::string& message) {
  Logger()->error("{}", message);
  {
    std::lock_guard<std::mutex> lock(mutex);
    busy = false;
  }
  Answer(connection, code, message, true);
}

std::shared_ptr<UploadPart> UploadServer::State::MakePart(tls::ServerConnection& connection, int fd,
                                                          const HttpRequest& request,
                                                          std::string leftover) {
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

void UploadServer::State::Resume(tls::ServerConnection& connection, int fd,
                                 const HttpRequest& request, std::string leftover) {
  const auto refuse = [&](int code, const std::string& message) {
    Logger()->warn("Refusing to continue the upload: {}", message);
    Answer(connection, code, message, true, OffsetHeaders());
  };
  const std::optional<std::string> range_header = request.Header("content-range");
  if (!range_header) {
    refuse(400,
           "PATCH continues an upload and needs 'Content-Range: bytes FIRST-LAST/TOTAL' "
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

void UploadServer::State::Upload(tls::ServerConnection& connection, int fd,
                                 const HttpRequest& request, Endpoint endpoint,
                                 std::string leftover) {
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
      Fail(connection, 400, "Saving stream failed: request Content-Type isn't multipart/form-data");
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
  auto upload =
      std::make_shared<UploadSession>(part, !IsForm(endpoint), config.resume_wait, &import_cancel);
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
      Logger()->info("Received {} bytes{}, {} bytes of the image decoded", progress.source_bytes,
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
  Result<ImportResult> result = importer::ImportFrom(spec, std::move(source), hooks,
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
  Logger()->info(endpoint == Endpoint::kArchive || filesystem_clone
                     ? "Wrote archive data"
                     : "Wrote data to " + config.destination);
  std::lock_guard<std::mutex> lock(mutex);
  busy = false;
  done = true;
  outcome.clone_target = clone;
  outcome.preallocation_applied =
      endpoint != Endpoint::kArchive && !filesystem_clone && result->preallocated;
}

}  // namespace cdi::uploadserver
