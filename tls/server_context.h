// The server side of TLS: a self-signed certificate made in memory, a server
// context that presents it, and TLS connections on accepted sockets. The
// importer pod's metrics endpoint serves through them, and so can the servers
// to come.
//
//   CDI_ASSIGN_OR_RETURN(auto identity, tls::MakeSelfSignedCertificate("cdi-importer", kYear));
//   CDI_ASSIGN_OR_RETURN(auto context, tls::ServerContext::Create(identity));
//   tls::ServerConnection connection(context, fd, stop_fd, deadline);
//   if (connection.Handshake()) { ... connection.Read(...), connection.WriteAll(...) ...}
//
// Contract: nothing is written to disk. Every OpenSSL failure while making a
// certificate or a context is a kTls Status naming the step that failed and
// OpenSSL's reason. A connection's failures are not errors to report (a
// client that goes away, a scanner that speaks no TLS): its operations say
// only whether they succeeded, and leave OpenSSL's error queue empty.
//
// Internal to the library: OpenSSL types may appear here, never in cdi/*.h.
#ifndef CDI_TLS_SERVER_CONTEXT_H_
#define CDI_TLS_SERVER_CONTEXT_H_

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdi/status.h"
#include "tls/openssl_util.h"

namespace cdi::tls {

// A private key and the certificate that presents it.
struct KeyAndCertificate {
  PkeyPtr key;
  X509Ptr certificate;
  // Intermediate certificates sent after it, in order (may be empty).
  std::vector<X509Ptr> chain;
};

// Reads a server's identity from PEM files: the first certificate of
// `cert_file` is the server's, the ones after it its chain; the first key of
// `key_file` must be the certificate's. Errors: kInvalidArgument for a file
// that is missing or unreadable, kTls for PEM that does not parse or a key
// that is not the certificate's (checked by ServerContext::Create).
Result<KeyAndCertificate> LoadKeyAndCertificate(const std::string& cert_file,
                                                const std::string& key_file);

// How a server context speaks TLS beyond its identity.
struct ServerOptions {
  // A PEM file of CA certificates. Set: clients are asked for a certificate
  // (and may send none); the handshake goes on whatever its verification
  // says, and ServerConnection::Peer() tells the server what it was, so that
  // the server can answer as it sees fit (401) instead of a handshake
  // failure the client cannot read. Empty: clients are asked for none.
  std::string client_ca_file;
  // The lowest protocol version accepted: TLS1_2_VERSION or TLS1_3_VERSION
  // (TLS 1.0 and 1.1 are refused whatever is asked).
  int min_version = TLS1_2_VERSION;
  // TLS 1.2 cipher suites by their IANA names, as Go's crypto/tls and
  // Kubernetes write them ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"). Names
  // OpenSSL does not know are skipped with a warning; empty, or none known:
  // OpenSSL's defaults. TLS 1.3's suites are not configurable (as in Go).
  std::vector<std::string> cipher_suites;
};

// A fresh ECDSA P-256 key and an X.509 v3 certificate for it, signed by
// itself with SHA-256: subject and issuer CN=`common_name`, a random serial
// number, valid from an hour ago (for clients whose clocks are a little
// behind) until `validity` from now. Made for clients that do not verify it
// (a metrics scraper); nothing is written to disk. Errors: kTls.
Result<KeyAndCertificate> MakeSelfSignedCertificate(std::string_view common_name,
                                                    std::chrono::seconds validity);

// A TLS server context: TLS 1.2 or later, presenting one key and
// certificate, asking clients for no certificate.
//
// Thread-safety: immutable once made; connections on several threads may
// share it.
class ServerContext {
 public:
  // Errors: kTls when OpenSSL refuses the context, the certificate or the
  // key, or when the key is not the certificate's.
  static Result<ServerContext> Create(const KeyAndCertificate& identity,
                                      const ServerOptions& options = {});

  SSL_CTX* get() const { return context_.get(); }

 private:
  explicit ServerContext(SslCtxPtr context) : context_(std::move(context)) {}
  SslCtxPtr context_;
};

// One TLS connection on an accepted socket, served within a deadline. Every
// operation waits for the socket as needed and gives up when `deadline`
// passes or `stop_fd` becomes readable (the server stopping).
//
// A client that goes away while the server writes makes the write raise
// SIGPIPE: a server ignores SIGPIPE before it serves.
//
// Thread-safety: not thread-safe; one thread serves one connection.
class ServerConnection {
 public:
  // `fd` is a connected, non-blocking socket; `stop_fd` any descriptor that
  // turns readable when the server stops. Neither is owned: both must stay
  // open as long as the connection.
  ServerConnection(const ServerContext& context, int fd, int stop_fd,
                   std::chrono::steady_clock::time_point deadline);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // The server's side of the handshake. False when it failed, the client
  // went away, or the deadline or stop came first; the connection is then
  // of no further use.
  bool Handshake();

  // Up to `size` bytes of the client's data into `data`: how many, or 0 when
  // the client closed the connection, it failed, or the deadline or stop
  // came first.
  size_t Read(char* data, size_t size);

  // Sends all of `data`. False when it could not.
  bool WriteAll(std::string_view data);

  // Moves the deadline of what follows (a handshake's budget, then the
  // request's).
  void set_deadline(std::chrono::steady_clock::time_point deadline) { deadline_ = deadline; }

  // The client's certificate, known once the handshake succeeded.
  struct PeerCertificate {
    bool presented = false;  // the client sent one
    bool verified = false;   // its chain verified against the context's client CAs
    std::string problem;     // why it did not verify (OpenSSL's words), when it did not
    // The common names of the client's certificate and of the chain it sent.
    std::vector<std::string> common_names;
  };
  PeerCertificate Peer() const;

  // Tells the client that the server is done (TLS close_notify), without
  // waiting for its answer.
  void Close();

 private:
  // Runs an SSL operation until it completes; its result, or -1.
  template <typename Operation>
  int Drive(Operation operation);

  SslPtr ssl_;
  int fd_;
  int stop_fd_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace cdi::tls

#endif  // CDI_TLS_SERVER_CONTEXT_H_
