// RAII owners for the OpenSSL objects the tls module holds, and the one place
// where OpenSSL's error queue becomes a Status or text. Internal to the
// library: nothing here may appear in a public header.
#ifndef CDI_TLS_OPENSSL_UTIL_H_
#define CDI_TLS_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::tls {

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free_all(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// Converts OpenSSL's error queue into a Status: "<context>: <reason of the
// most recent error>". Empties the queue, so that a later failure is not
// explained by a stale error. The one conversion of OpenSSL errors.
Status OpenSslError(ErrorCode code, std::string_view context);

// Empties OpenSSL's per-thread error queue.
void ClearOpenSslErrors();

// "CN=Example CA,O=Example" (RFC 2253 order), or "(no name)".
std::string NameText(const X509_NAME* name);
// The certificate's subject and issuer names, as NameText.
std::string SubjectText(const X509* cert);
std::string IssuerText(const X509* cert);
// "Jan  2 03:04:05 2026 GMT", as OpenSSL prints ASN.1 times.
std::string TimeText(const ASN1_TIME* time);
// The DNS names and IP addresses a certificate is valid for, as
// "DNS:localhost, IP:127.0.0.1"; its subject's CN when it has no SAN.
std::string SubjectAltNamesText(const X509* cert);

}  // namespace cdi::tls

#endif  // CDI_TLS_OPENSSL_UTIL_H_
