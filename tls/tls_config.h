// TLS for libcurl transfers: which servers are trusted (the system store plus
// extra CAs), the client certificate for mutual TLS, and the translation of
// TLS failures into messages that say what is wrong and what to do.
//
//   CDI_ASSIGN_OR_RETURN(auto tls, cdi::tls::CurlTls::Create(spec.tls));
//   CDI_RETURN_IF_ERROR(tls->Apply(handle));
//   CURLcode code = curl_easy_perform(handle);
//   if (cdi::tls::CurlTls::IsTlsFailure(code)) return tls->TranslateFailure(code, ...);
//
// Internal to the library: curl types may appear here, never in cdi/*.h.
#ifndef CDI_TLS_TLS_CONFIG_H_
#define CDI_TLS_TLS_CONFIG_H_

#include <curl/curl.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdi/import.h"
#include "cdi/status.h"

namespace cdi::tls {

// What the last handshake on a handle revealed; filled in by OpenSSL's
// callbacks, read by TranslateFailure.
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

// TLS setup of one curl easy handle.
//
// Create() loads and checks all TLS material before any connection: CA
// certificates are parsed, the client certificate and key are loaded and
// matched. Apply() then configures a handle; the handle's TLS callbacks point
// at this object, so it must outlive every transfer on the handle.
//
// Thread-safety: not thread-safe. Use one CurlTls per handle, from the thread
// that runs the handle's transfers.
class CurlTls {
 public:
  // Errors: kInvalidArgument for a file or directory that cannot be read or
  // for contradictory settings (a certificate given both as a file and as
  // text, a key without a certificate); kTls for PEM input that holds no valid
  // certificate or key, an encrypted key, or a key that does not match its
  // certificate. Messages name the file (never the content of PEM text).
  static Result<std::unique_ptr<CurlTls>> Create(const TlsSettings& settings);
  ~CurlTls();
  CurlTls(const CurlTls&) = delete;
  CurlTls& operator=(const CurlTls&) = delete;

  // Sets TLS 1.2 as the minimum version, peer and host name verification
  // (unless TlsVerify::kOff, which logs a warning), adds the extra CAs to the
  // system store for every connection, and sets the client certificate. An
  // https:// proxy's connection gets the same minimum version and the same
  // CAs, and is always verified.
  Status Apply(CURL* handle);

  // Number of extra CA certificates loaded from ca_files, ca_pem, ca_dirs,
  // proxy_ca_files and proxy_ca_dirs.
  size_t extra_ca_count() const;

  // Forgets what the previous handshake revealed; call before each transfer.
  void ResetHandshakeFacts();
  const HandshakeFacts& handshake_facts() const;

  // True when `code` is a TLS failure, which TranslateFailure explains.
  static bool IsTlsFailure(CURLcode code);

  // The one translation of curl and OpenSSL TLS failures into kTls Status:
  // unknown issuer (naming it), expired or not yet valid certificate, host
  // name mismatch (naming the names the certificate holds), client certificate
  // required or refused, handshake failure. `curl_message` is curl's error
  // buffer; `url` must already be redacted (for a proxy: "the proxy URL");
  // `host` is the host connected to; `peer` says whose certificate it is, so
  // that the advice names the right CAs.
  Status TranslateFailure(CURLcode code, std::string_view curl_message, std::string_view url,
                          std::string_view host, TlsPeer peer = TlsPeer::kServer) const;

  // The translation of an HTTP answer that is a TLS failure in disguise.
  // nginx with `ssl_verify_client on` completes the handshake whatever the
  // client certificate, then answers HTTP 400 with "No required SSL
  // certificate was sent" (none) or "The SSL certificate error" (untrusted,
  // expired, not for client authentication) in its body. Returns a kTls
  // Status, never retryable, saying whether the certificate is missing or
  // rejected, naming the one presented and what to do, when this handshake
  // asked for a client certificate and the response is such a 400: its body
  // names the reason, or none was configured. Otherwise nullopt: the response
  // stays an HTTP error. `status_line` is "HTTP 400 Bad Request"; `body` the
  // first bytes of the response's body; `url` the redacted https:// URL.
  std::optional<Status> ExplainClientCertificateRefusal(int status, std::string_view status_line,
                                                        std::string_view body,
                                                        std::string_view url) const;

 private:
  struct Material;
  explicit CurlTls(std::unique_ptr<Material> material);

  // The two client-certificate messages: none was sent where one is needed,
  // and the one sent was refused. `evidence` says what showed it.
  Status ClientCertificateMissing(std::string_view url, std::string_view evidence) const;
  Status ClientCertificateRejected(std::string_view url, std::string_view evidence) const;

  // curl's and OpenSSL's callbacks (tls_config.cc); they reach this object
  // through CURLOPT_SSL_CTX_DATA and SSL_CTX ex_data.
  friend class TlsCallbacks;

  std::unique_ptr<Material> material_;
  HandshakeFacts facts_;
};

}  // namespace cdi::tls

#endif  // CDI_TLS_TLS_CONFIG_H_
