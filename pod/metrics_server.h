// The importer pod's metrics endpoint: HTTPS on :8443, /metrics, with a
// self-signed certificate made at start, as CDI's importer pod serves it.
// CDI's controller scrapes it without verifying the certificate.
#ifndef CDI_POD_METRICS_SERVER_H_
#define CDI_POD_METRICS_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cdi/status.h"
#include "common/unique_fd.h"

namespace cdi::pod {

// Where to listen: "host:port", ":port" (every address, IPv6 and IPv4),
// "[v6 address]:port". Port 0 picks a free port.
struct ListenAddress {
  std::string host;  // empty: every address
  uint16_t port = 0;
};
// kInvalidArgument with the expected form for anything else.
Result<ListenAddress> ParseListenAddress(std::string_view address);

// A listening TCP socket (close-on-exec, backlog 128, SO_REUSEADDR) on
// `address`: an empty host listens on every address, IPv6 and IPv4 alike.
// `purpose` names it in messages ("metrics"). Errors: kInvalidArgument when
// the host does not resolve, kIo when nothing can be bound.
Result<UniqueFd> Listen(const ListenAddress& address, std::string_view purpose);

// The local port a bound socket listens on (0 when it cannot be read).
uint16_t BoundPort(int fd);

// A close-on-exec pipe whose read end wakes a server's waits once a byte is
// written to the write end. kIo naming `purpose` when it cannot be made.
struct WakePipe {
  UniqueFd read;
  UniqueFd write;
};
Result<WakePipe> MakeWakePipe(std::string_view purpose);

// Serves GET and HEAD of /metrics, each connection on a thread of its own, at
// most kMaxConnections at once (one more is closed as soon as it is
// accepted). Each connection has 3 seconds for its TLS handshake, then 5 for
// its request and the response, so idle connections never hold a scrape
// back. The body is `render()`, called for each scrape on that connection's
// thread (so from several threads at once), with Content-Type
// "text/plain; version=0.0.4; charset=utf-8". Other paths get 404, other
// methods 405.
//
// The certificate: a new ECDSA P-256 key and a self-signed certificate
// (CN=cdi-importer, valid one year), made in memory at Start by
// tls::MakeSelfSignedCertificate; nothing is written to disk.
//
// Ignores SIGPIPE for the process: a scraper that goes away mid-response must
// not end the import.
class MetricsServer {
 public:
  // Connections served at once.
  static constexpr size_t kMaxConnections = 64;

  // Binds and starts serving. Errors: kInvalidArgument for a bad address,
  // kIo when the address cannot be bound, kTls when the certificate cannot
  // be made.
  static Result<std::unique_ptr<MetricsServer>> Start(std::string_view address,
                                                      std::function<std::string()> render);
  // Stops serving, ends every connection and joins the threads.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const;

 private:
  struct State;
  explicit MetricsServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace cdi::pod

#endif  // CDI_POD_METRICS_SERVER_H_
