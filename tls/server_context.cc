#include "tls/server_context.h"

#include <openssl/rand.h>
#include <poll.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "common/log.h"
#include "tls/pem.h"

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

// Accepts every client certificate during the handshake: its verification
// result stays recorded (SSL_get_verify_result) for the server to judge.
int AcceptAndRecord(int /*preverify_ok*/, X509_STORE_CTX* /*store*/) { return 1; }

// The OpenSSL names of the TLS 1.2 suites among `iana_names`.
std::string OpenSslCipherList(SSL_CTX* context, const std::vector<std::string>& iana_names) {
  std::string list;
  STACK_OF(SSL_CIPHER)* known = SSL_CTX_get_ciphers(context);
  for (const std::string& name : iana_names) {
    bool found = false;
    for (int i = 0; known != nullptr && i < sk_SSL_CIPHER_num(known); ++i) {
      const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(known, i);
      const char* standard = SSL_CIPHER_standard_name(cipher);
      if (standard != nullptr && name == standard) {
        if (SSL_CIPHER_get_kx_nid(cipher) != NID_kx_any) {  // TLS 1.3 suites have no key exchange of their own
          list += (list.empty() ? "" : ":") + std::string(SSL_CIPHER_get_name(cipher));
        }
        found = true;
        break;
      }
    }
    if (!found && !name.empty()) {
      Logger()->warn("TLS cipher suite {} is not known to OpenSSL here: skipped", name);
    }
  }
  return list;
}

std::string CommonName(X509* certificate) {
  X509_NAME* name = X509_get_subject_name(certificate);
  int index = name == nullptr ? -1 : X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return "";
  std::string text(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return text;
}

}  // namespace

Result<KeyAndCertificate> LoadKeyAndCertificate(const std::string& cert_file,
                                                const std::string& key_file) {
  CDI_ASSIGN_OR_RETURN(std::string cert_pem, ReadPemFile(cert_file, "server certificate"));
  CDI_ASSIGN_OR_RETURN(std::string key_pem, ReadPemFile(key_file, "server key"));
  CDI_ASSIGN_OR_RETURN(std::vector<X509Ptr> certificates,
                       ParseCertificates(cert_pem, "server certificate " + cert_file));
  KeyAndCertificate loaded;
  CDI_ASSIGN_OR_RETURN(loaded.key, ParsePrivateKey(key_pem, "server key " + key_file));
  loaded.certificate = std::move(certificates.front());
  for (size_t i = 1; i < certificates.size(); ++i) loaded.chain.push_back(std::move(certificates[i]));
  return loaded;
}

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

Result<ServerContext> ServerContext::Create(const KeyAndCertificate& identity,
                                            const ServerOptions& options) {
  SslCtxPtr context(SSL_CTX_new(TLS_server_method()));
  if (!context) return OpenSslError(ErrorCode::kTls, "creating the TLS server context");
  if (SSL_CTX_set_min_proto_version(context.get(),
                                    std::max(options.min_version, TLS1_2_VERSION)) != 1 ||
      SSL_CTX_use_certificate(context.get(), identity.certificate.get()) != 1 ||
      SSL_CTX_use_PrivateKey(context.get(), identity.key.get()) != 1 ||
      SSL_CTX_check_private_key(context.get()) != 1) {
    return OpenSslError(ErrorCode::kTls, "loading the server's certificate and key");
  }
  for (const X509Ptr& link : identity.chain) {
    if (SSL_CTX_add1_chain_cert(context.get(), link.get()) != 1) {
      return OpenSslError(ErrorCode::kTls, "adding the server's certificate chain");
    }
  }
  if (!options.cipher_suites.empty()) {
    const std::string list = OpenSslCipherList(context.get(), options.cipher_suites);
    if (!list.empty() && SSL_CTX_set_cipher_list(context.get(), list.c_str()) != 1) {
      return OpenSslError(ErrorCode::kTls, "setting the TLS cipher suites " + list);
    }
  }
  if (!options.client_ca_file.empty()) {
    CDI_ASSIGN_OR_RETURN(std::string pem, ReadPemFile(options.client_ca_file, "client CA file"));
    CDI_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                         ParseCertificates(pem, "client CA file " + options.client_ca_file));
    X509_STORE* store = SSL_CTX_get_cert_store(context.get());
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (const X509Ptr& ca : cas) {
      X509_STORE_add_cert(store, ca.get());
      if (names != nullptr) {
        X509_NAME* copy = X509_NAME_dup(X509_get_subject_name(ca.get()));
        if (copy != nullptr && sk_X509_NAME_push(names, copy) <= 0) X509_NAME_free(copy);
      }
    }
    if (names != nullptr) SSL_CTX_set_client_CA_list(context.get(), names);
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, AcceptAndRecord);
    ClearOpenSslErrors();
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

ServerConnection::PeerCertificate ServerConnection::Peer() const {
  PeerCertificate peer;
  if (!ssl_) return peer;
  X509* leaf = SSL_get0_peer_certificate(ssl_.get());
  if (leaf == nullptr) return peer;
  peer.presented = true;
  const long result = SSL_get_verify_result(ssl_.get());  // NOLINT(google-runtime-int)
  peer.verified = result == X509_V_OK;
  if (!peer.verified) peer.problem = X509_verify_cert_error_string(result);
  peer.common_names.push_back(CommonName(leaf));
  // On a server the peer's chain leaves out its certificate.
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl_.get());
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    peer.common_names.push_back(CommonName(sk_X509_value(chain, i)));
  }
  return peer;
}

void ServerConnection::Close() {
  if (ssl_) SSL_shutdown(ssl_.get());
  ClearOpenSslErrors();
}

}  // namespace cdi::tls
