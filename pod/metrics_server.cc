#include "pod/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/unique_fd.h"
#include "tls/server_context.h"

namespace cdi::pod {
namespace {

using cdi::UniqueFd;
using Clock = std::chrono::steady_clock;

// Each connection has this long for its TLS handshake, then this long for
// its request and the response: a client that stays silent holds only its
// own connection, and only so long.
constexpr auto kHandshakeBudget = std::chrono::seconds(3);
constexpr auto kRequestBudget = std::chrono::seconds(5);
constexpr size_t kMaxRequestBytes = 8192;

// The certificate's subject and how long it is valid: CDI's controller
// scrapes the endpoint without verifying it.
constexpr std::string_view kCertificateName = "cdi-importer";
constexpr std::chrono::seconds kCertificateValidity = std::chrono::hours(24 * 365);

// A fresh key and a self-signed certificate for it, in a server context.
Result<tls::ServerContext> MakeServerContext() {
  Result<tls::KeyAndCertificate> identity =
      tls::MakeSelfSignedCertificate(kCertificateName, kCertificateValidity);
  if (!identity.ok()) {
    return identity.status().Annotate("cannot make the metrics endpoint's certificate");
  }
  Result<tls::ServerContext> context = tls::ServerContext::Create(*identity);
  if (!context.ok()) {
    return context.status().Annotate("cannot make the metrics endpoint's certificate");
  }
  return context;
}

}  // namespace

Result<UniqueFd> Listen(const ListenAddress& address, std::string_view purpose) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  // For every address, IPv6 first: a dual-stack socket also takes IPv4, and
  // a pod may have only an IPv6 address.
  const char* host = address.host.empty() ? nullptr : address.host.c_str();
  if (host == nullptr) hints.ai_family = AF_INET6;
  int error = getaddrinfo(host, port.c_str(), &hints, &found);
  if (error != 0 && host == nullptr) {
    hints.ai_family = AF_INET;
    error = getaddrinfo(host, port.c_str(), &hints, &found);
  }
  if (error != 0) {
    return InvalidArgumentError("cannot resolve the " + std::string(purpose) + " address " +
                                address.host + ":" + port + ": " + gai_strerror(error));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  int last_errno = 0;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last_errno = errno;
      continue;
    }
    int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ai->ai_family == AF_INET6 && host == nullptr) {
      int off = 0;
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd.get(), 128) == 0) {
      return fd;
    }
    last_errno = errno;
  }
  return IoError("cannot listen on " + (address.host.empty() ? std::string("*") : address.host) +
                 ":" + port + " for " + std::string(purpose) + ": " + std::strerror(last_errno));
}

uint16_t BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) return 0;
  return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

Result<WakePipe> MakeWakePipe(std::string_view purpose) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return IoError("cannot start the " + std::string(purpose) + ": pipe: " +
                   std::strerror(errno));
  }
  return WakePipe{UniqueFd(pipe_fds[0]), UniqueFd(pipe_fds[1])};
}

namespace {

std::string Response(std::string_view status, std::string_view content_type,
                     const std::string& body, bool with_body) {
  std::string response =
      "HTTP/1.1 " + std::string(status) + "\r\nContent-Type: " + std::string(content_type) +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (with_body) response += body;
  return response;
}

}  // namespace

Result<ListenAddress> ParseListenAddress(std::string_view address) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("invalid metrics address '" + std::string(address) +
                                "': " + std::string(why) +
                                "; expected host:port, :port or [v6 address]:port, e.g. :8443 or "
                                "127.0.0.1:8443");
  };
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = address.substr(0, colon);
  std::string_view port_text = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 address must be in brackets");
  }
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return bad("the port is not a number from 0 to 65535");
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

struct MetricsServer::State {
  // One connection being served, on a thread of its own.
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  std::optional<tls::ServerContext> tls;
  UniqueFd listen_fd;
  UniqueFd wake_read;
  UniqueFd wake_write;
  uint16_t port = 0;
  std::function<std::string()> render;
  std::thread thread;
  // Used by the accepting thread only.
  std::list<Worker> workers;
  bool warned_full = false;

  void Serve() {
    while (true) {
      pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {wake_read.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        Logger()->warn("metrics endpoint stopped: poll: {}", std::strerror(errno));
        break;
      }
      if (fds[1].revents != 0) break;
      UniqueFd connection(accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!connection.valid()) continue;
      Reap();
      if (workers.size() >= MetricsServer::kMaxConnections) {
        // Closed at once rather than queued: a queue would make a scrape
        // wait behind every held connection's budget.
        if (!warned_full) {
          warned_full = true;
          Logger()->warn(
              "metrics endpoint: {} connections open, closing further ones until some end",
              MetricsServer::kMaxConnections);
        }
        continue;
      }
      warned_full = false;
      Worker& worker = workers.emplace_back();
      try {
        worker.thread = std::thread([this, &worker, fd = std::move(connection)] {
          Handle(fd.get());
          worker.done.store(true, std::memory_order_release);
        });
      } catch (const std::system_error& error) {
        // No thread for it (the process's limit): this connection is closed.
        Logger()->debug("metrics endpoint: cannot serve a connection: {}", error.what());
        workers.pop_back();
      }
    }
    // The wake pipe is readable now: every connection's wait ends.
    for (Worker& worker : workers) worker.thread.join();
    workers.clear();
  }

  // Joins the threads whose connection ended.
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

  void Handle(int fd) {
    tls::ServerConnection connection(*tls, fd, wake_read.get(), Clock::now() + kHandshakeBudget);
    if (!connection.Handshake()) return;
    connection.set_deadline(Clock::now() + kRequestBudget);
    std::string request;
    char buffer[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
      size_t n = connection.Read(buffer, sizeof buffer);
      if (n == 0) return;
      request.append(buffer, n);
    }
    std::string line = request.substr(0, request.find("\r\n"));
    size_t first_space = line.find(' ');
    std::string method = line.substr(0, first_space);
    std::string target =
        first_space == std::string::npos
            ? ""
            : line.substr(first_space + 1, line.find(' ', first_space + 1) - first_space - 1);
    std::string path = target.substr(0, target.find('?'));
    std::string response;
    const bool with_body = method != "HEAD";
    if (method != "GET" && method != "HEAD") {
      response = Response("405 Method Not Allowed", "text/plain; charset=utf-8",
                          "method not allowed\n", true);
    } else if (path != "/metrics") {
      response = Response("404 Not Found", "text/plain; charset=utf-8", "not found\n", with_body);
    } else {
      response =
          Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(), with_body);
    }
    // A client that goes away mid-response is its own loss.
    connection.WriteAll(response);
    connection.Close();
  }
};

MetricsServer::MetricsServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

MetricsServer::~MetricsServer() {
  char byte = 1;
  ssize_t ignored = write(state_->wake_write.get(), &byte, 1);
  (void)ignored;
  if (state_->thread.joinable()) state_->thread.join();
}

uint16_t MetricsServer::port() const { return state_->port; }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string_view address,
                                                            std::function<std::string()> render) {
  CDI_ASSIGN_OR_RETURN(ListenAddress listen_address, ParseListenAddress(address));
  // A scraper that disconnects mid-response must not kill the process.
  signal(SIGPIPE, SIG_IGN);
  auto state = std::make_unique<State>();
  state->render = std::move(render);
  CDI_ASSIGN_OR_RETURN(state->tls, MakeServerContext());
  CDI_ASSIGN_OR_RETURN(state->listen_fd, Listen(listen_address, "metrics"));
  state->port = BoundPort(state->listen_fd.get());
  CDI_ASSIGN_OR_RETURN(WakePipe wake, MakeWakePipe("metrics endpoint"));
  state->wake_read = std::move(wake.read);
  state->wake_write = std::move(wake.write);
  State* raw = state.get();
  state->thread = std::thread([raw] { raw->Serve(); });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(state)));
}

}  // namespace cdi::pod
