#include "uploadserver/upload_server.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "common/log.h"
#include "pod/metrics_server.h"
#include "uploadserver/server_state.h"

namespace cdi::uploadserver {
namespace {

// A connection has this long for its TLS handshake.
constexpr auto kHandshakeBudget = std::chrono::seconds(10);
// After an error answer, the rest of a body is read and dropped for at most
// this long, so that the client reads the answer instead of a reset.
constexpr auto kLingerBudget = std::chrono::seconds(5);
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxConnections = 64;
constexpr int kPollMilliseconds = 200;

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

}  // namespace

void UploadServer::State::Reap() {
  for (auto it = workers.begin(); it != workers.end();) {
    if (it->done.load(std::memory_order_acquire)) {
      it->thread.join();
      it = workers.erase(it);
    } else {
      ++it;
    }
  }
}

void UploadServer::State::Accept() {
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

void UploadServer::State::Drain() {
  listen_fd.reset();
  const auto until = Clock::now() + kHeaderBudget + std::chrono::seconds(1);
  while (Clock::now() < until) {
    Reap();
    if (workers.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  StopAll();
}

void UploadServer::State::StopAll() {
  char byte = 1;
  ssize_t ignored = write(wake_write.get(), &byte, 1);
  (void)ignored;
  for (Worker& worker : workers) worker.thread.join();
  workers.clear();
}

void UploadServer::State::Linger(tls::ServerConnection& connection) {
  connection.set_deadline(Clock::now() + kLingerBudget);
  char scratch[16384];
  while (connection.Read(scratch, sizeof scratch) > 0) {
  }
}

void UploadServer::State::Answer(tls::ServerConnection& connection, int code, std::string_view body,
                                 bool linger, std::string_view headers) {
  connection.set_deadline(Clock::now() + kHeaderBudget);
  connection.WriteAll(HttpResponse(code, body, headers));
  connection.Close();
  if (linger) Linger(connection);
}

void UploadServer::State::Handle(int fd) {
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

std::string UploadServer::State::Metrics() const {
  return metric->Exposition() +
         "# HELP kubevirt_cdi_upload_bytes_received_total Bytes of the upload received\n"
         "# TYPE kubevirt_cdi_upload_bytes_received_total counter\n"
         "kubevirt_cdi_upload_bytes_received_total{ownerUID=\"" +
         config.owner_uid + "\"} " + std::to_string(bytes_received.load()) +
         "\n# HELP kubevirt_cdi_upload_bytes_decoded_total Bytes of the image decoded and "
         "written (zero ranges included)\n"
         "# TYPE kubevirt_cdi_upload_bytes_decoded_total counter\n"
         "kubevirt_cdi_upload_bytes_decoded_total{ownerUID=\"" +
         config.owner_uid + "\"} " + std::to_string(bytes_decoded.load()) + "\n";
}

std::string UploadServer::State::OffsetHeaders() {
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

bool UploadServer::State::Authorized(tls::ServerConnection& connection, const HttpRequest& request,
                                     bool answer) {
  const tls::ServerConnection::PeerCertificate peer = connection.Peer();
  if (!peer.presented || !peer.verified ||
      std::find(peer.common_names.begin(), peer.common_names.end(), config.client_name) ==
          peer.common_names.end()) {
    if (!answer) return false;
    Logger()->warn("Refusing {} {}: {}", request.method, request.path,
                   !peer.presented ? std::string("no client certificate")
                   : !peer.verified
                       ? "the client certificate does not verify against " + config.client_ca_file +
                             ": " + peer.problem
                       : "the client certificate's common name '" + peer.common_names.front() +
                             "' is not '" + config.client_name + "'");
    Answer(connection, 401, {}, true);
    return false;
  }
  return true;
}

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
    Logger()->warn(
        "CLIENT_CERT_FILE is not set: no client certificate can verify, every upload "
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
