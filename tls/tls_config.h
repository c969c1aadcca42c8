// TLS for libcurl transfers: which servers are trusted (the system store plus
// extra CAs), the client certificate for mutual TLS, and what each handshake
// reveals, so that a TLS failure is explained (tls/tls_errors.h) with what is
// wrong and what to do.
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

#include "cdi/source.h"
#include "cdi/status.h"
#include "tls/tls_errors.h"

namespace cdi::tls {

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

  // The failure of a transfer on the handle, explained with what its last
  // handshake revealed and the client certificate configured: see
  // ExplainTlsFailure. `curl_message` is curl's error buffer; `url` must
  // already be redacted (for a proxy: "the proxy URL"); `host` is the host
  // connected to.
  Status TranslateFailure(CURLcode code, std::string_view curl_message, std::string_view url,
                          std::string_view host, TlsPeer peer = TlsPeer::kServer) const;

  // An HTTP answer that is a client certificate refused or missing, in
  // disguise (see tls/tls_errors.h); nullopt when it is an ordinary HTTP
  // error. `status_line` is "HTTP 400 Bad Request"; `body` the first bytes of
  // the response's body; `url` the redacted https:// URL.
  std::optional<Status> ExplainClientCertificateRefusal(int status, std::string_view status_line,
                                                        std::string_view body,
                                                        std::string_view url) const;

 private:
  struct Material;
  explicit CurlTls(std::unique_ptr<Material> material);

  // curl's and OpenSSL's callbacks (tls_config.cc); they reach this object
  // through CURLOPT_SSL_CTX_DATA and SSL_CTX ex_data.
  friend class TlsCallbacks;

  std::unique_ptr<Material> material_;
  HandshakeFacts facts_;
};

}  // namespace cdi::tls

#endif  // CDI_TLS_TLS_CONFIG_H_
