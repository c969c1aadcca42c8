// TLS failures explained: what a failed handshake, a certificate that did not
// verify, or a client certificate refused means, in a message that says what
// is wrong and what to do. The one translation of curl's and OpenSSL's TLS
// failures into Status.
//
// Contract: the functions here are pure: they read what the handshake
// revealed (HandshakeFacts, which CurlTls's callbacks fill in) and what was
// configured (ClientCertificate), and return a kTls Status. Messages never
// hold the content of PEM text; `url` must already be redacted.
//
// Internal to the library: curl and OpenSSL types may appear here, never in
// cdi/*.h.
#ifndef CDI_TLS_TLS_ERRORS_H_
#define CDI_TLS_TLS_ERRORS_H_

#include <curl/curl.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/status.h"
#include "tls/openssl_util.h"

namespace cdi::tls {

// What the last handshake on a handle revealed; filled in by OpenSSL's
// callbacks, read by the explanations below.
struct HandshakeFacts {
  // First certificate that failed verification (X509_V_ERR_*), 0 when none did.
  int verify_error = 0;
  int verify_depth = 0;        // 0: the server's own certificate
  std::string failed_subject;  // of the certificate that failed
  std::string failed_issuer;
  std::string failed_not_before;
  std::string failed_not_after;
  std::string server_names;  // SANs of the server's certificate
  std::string server_subject;
  bool client_certificate_requested = false;  // and none was configured
  // The server asked for a client certificate (configured or not), naming
  // these CAs (RFC 2253) as the ones it accepts; none when it named none.
  bool client_certificate_asked = false;
  std::vector<std::string> accepted_client_cas;
};

// Whose certificate a TLS failure is about.
enum class TlsPeer { kServer, kProxy };

// The client certificate configured for mutual TLS, as messages describe it.
struct ClientCertificate {
  X509Ptr leaf;  // its first certificate; null when none is configured
  // Where it came from, as messages append it: " from /certs/tls.crt" or
  // " (PEM text)".
  std::string origin;
  // Given as files (cdi-image's --client-cert and --client-key), rather than
  // as PEM text from a Secret: the advice then names the flags.
  bool from_file = false;
  // The issuers (RFC 2253) of every certificate of its chain.
  std::vector<std::string> chain_issuers;

  bool configured() const { return leaf != nullptr; }
};

// True when `code` is a TLS failure, which ExplainTlsFailure explains.
bool IsTlsFailure(CURLcode code);

// A failed transfer's TLS failure: unknown issuer (naming it), expired or not
// yet valid certificate, host name mismatch (naming the names the certificate
// holds), client certificate required or refused, a peer that does not speak
// TLS or not TLS 1.2, handshake failure. `curl_message` is curl's error
// buffer ("" for curl's text of `code`); `url` is redacted (for a proxy:
// "the proxy URL"); `host` is the host connected to; `peer` says whose
// certificate it is, so that the advice names the right CAs.
Status ExplainTlsFailure(CURLcode code, std::string_view curl_message, std::string_view url,
                         std::string_view host, TlsPeer peer, const HandshakeFacts& facts,
                         const ClientCertificate& client);

// An HTTP answer that is a TLS failure in disguise. nginx with
// `ssl_verify_client on` completes the handshake whatever the client
// certificate, then answers HTTP 400 with "No required SSL certificate was
// sent" (none) or "The SSL certificate error" (untrusted, expired, not for
// client authentication) in its body. When the handshake asked for a client
// certificate and the response is such a 400 (its body names the reason, or
// no certificate was configured), returns a kTls Status, never retryable,
// saying whether the certificate is missing or rejected, naming the one
// presented and what to do. Otherwise nullopt: the response stays an HTTP
// error. `status_line` is "HTTP 400 Bad Request"; `body` the first bytes of
// the response's body; `url` the redacted https:// URL.
std::optional<Status> ExplainClientCertificateRefusal(int status, std::string_view status_line,
                                                      std::string_view body, std::string_view url,
                                                      const HandshakeFacts& facts,
                                                      const ClientCertificate& client);

// The two client-certificate messages: none was sent where the server at
// `url` needs one, and the one sent was refused (`client` must be
// configured; when it is not, the message is the first). `evidence` says
// what showed it ("HTTP 400 \"...\"").
Status ClientCertificateMissing(std::string_view url, std::string_view evidence,
                                const HandshakeFacts& facts);
Status ClientCertificateRejected(std::string_view url, std::string_view evidence,
                                 const HandshakeFacts& facts, const ClientCertificate& client);

}  // namespace cdi::tls

#endif  // CDI_TLS_TLS_ERRORS_H_
