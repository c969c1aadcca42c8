#include "tls/server_context.h"

#include <openssl/rand.h>
#include <poll.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

namespace cdi::tls {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until `fd` is ready for `events`. False when `stop_fd` turns
// readable first, at the deadline, or on error.
bool WaitFor(int fd, short events, int stop_fd, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return false;
  pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
  int n = poll(fds, 2, static_cast<int>(left.count()));
  return n > 0 && (fds[1].revents & POLLIN) == 0 && (fds[0].revents & (events | POLLHUP)) != 0;
}

}  // namespace

Result<KeyAndCertificate> MakeSelfSignedCertificate(std::string_view common_name,
                                                    std::chrono::seconds validity) {
  KeyAndCertificate made;
  made.key.reset(EVP_EC_gen("P-256"));
  if (!made.key) return OpenSslError(ErrorCode::kTls, "generating a P-256 key");
  made.certificate.reset(X509_new());
  X509* cert = made.certificate.get();
  if (cert == nullptr) return OpenSslError(ErrorCode::kTls, "allocating a certificate");
  uint32_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) {
    return OpenSslError(ErrorCode::kTls, "drawing a serial number");
  }
  const std::string name_text(common_name);
  X509_NAME* name = X509_get_subject_name(cert);
  // OpenSSL's types. A serial number is positive: 31 random bits. The
  // certificate is valid from an hour back, for clients whose clocks are a
  // little behind.
  const long serial_number = static_cast<long>(serial >> 1);   // NOLINT(google-runtime-int)
  const long not_before = -3600;                               // NOLINT(google-runtime-int)
  const long not_after = static_cast<long>(validity.count());  // NOLINT(google-runtime-int)
  if (X509_set_version(cert, 2) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(cert), serial_number) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert), not_before) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert), not_after) == nullptr ||
      X509_set_pubkey(cert, made.key.get()) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(name_text.data()),
                                 static_cast<int>(name_text.size()), -1, 0) != 1 ||
      X509_set_issuer_name(cert, name) != 1 || X509_sign(cert, made.key.get(), EVP_sha256()) == 0) {
    return OpenSslError(ErrorCode::kTls, "building the self-signed certificate");
  }
  return made;
}

Result<ServerContext> ServerContext::Create(const KeyAndCertificate& identity) {
  SslCtxPtr context(SSL_CTX_new(TLS_server_method()));
  if (!context) return OpenSslError(ErrorCode::kTls, "creating the TLS server context");
  if (SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate(context.get(), identity.certificate.get()) != 1 ||
      SSL_CTX_use_PrivateKey(context.get(), identity.key.get()) != 1 ||
      SSL_CTX_check_private_key(context.get()) != 1) {
    return OpenSslError(ErrorCode::kTls, "loading the server's certificate and key");
  }
  return ServerContext(std::move(context));
}

ServerConnection::ServerConnection(const ServerContext& context, int fd, int stop_fd,
                                   Clock::time_point deadline)
    : ssl_(SSL_new(context.get())), fd_(fd), stop_fd_(stop_fd), deadline_(deadline) {
  if (ssl_ && SSL_set_fd(ssl_.get(), fd) != 1) ssl_.reset();
}

ServerConnection::~ServerConnection() {
  ssl_.reset();
  ClearOpenSslErrors();
}

template <typename Operation>
int ServerConnection::Drive(Operation operation) {
  while (true) {
    int result = operation();
    if (result > 0) return result;
    int error = SSL_get_error(ssl_.get(), result);
    short events = error == SSL_ERROR_WANT_READ    ? POLLIN
                   : error == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                   : 0;
    if (events == 0 || !WaitFor(fd_, events, stop_fd_, deadline_)) {
      ClearOpenSslErrors();
      return -1;
    }
  }
}

bool ServerConnection::Handshake() {
  if (!ssl_) {
    ClearOpenSslErrors();
    return false;
  }
  return Drive([&] { return SSL_accept(ssl_.get()); }) > 0;
}

size_t ServerConnection::Read(char* data, size_t size) {
  if (!ssl_ || size == 0) return 0;
  const int chunk = static_cast<int>(std::min<size_t>(size, std::numeric_limits<int>::max()));
  int n = Drive([&] { return SSL_read(ssl_.get(), data, chunk); });
  return n > 0 ? static_cast<size_t>(n) : 0;
}

bool ServerConnection::WriteAll(std::string_view data) {
  if (!ssl_) return false;
  size_t sent = 0;
  while (sent < data.size()) {
    const int chunk =
        static_cast<int>(std::min<size_t>(data.size() - sent, std::numeric_limits<int>::max()));
    int n = Drive([&] { return SSL_write(ssl_.get(), data.data() + sent, chunk); });
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

void ServerConnection::Close() {
  if (ssl_) SSL_shutdown(ssl_.get());
  ClearOpenSslErrors();
}

}  // namespace cdi::tls
