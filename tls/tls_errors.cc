#include "tls/tls_errors.h"

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>

namespace cdi::tls {
namespace {

std::string Quote(std::string_view text) { return "'" + std::string(text) + "'"; }

// "'A'", "'A' or 'B'", "'A', 'B' or 'C'"; at most four, then "or N more".
std::string AlternativesText(const std::vector<std::string>& names) {
  constexpr size_t kShown = 4;
  std::string text;
  size_t shown = std::min(names.size(), kShown);
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) text += i + 1 == shown && names.size() <= kShown ? " or " : ", ";
    text += Quote(names[i]);
  }
  if (names.size() > kShown) text += " or " + std::to_string(names.size() - kShown) + " more";
  return text;
}

// What nginx writes into the body of its HTTP 400 when `ssl_verify_client`
// finds no client certificate, or one that does not verify.
constexpr std::string_view kNginxNoCertificate = "No required SSL certificate was sent";
constexpr std::string_view kNginxCertificateError = "The SSL certificate error";

}  // namespace

bool IsTlsFailure(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

Status ExplainTlsFailure(CURLcode code, std::string_view curl_message, std::string_view url,
                         std::string_view host, TlsPeer peer, const HandshakeFacts& facts,
                         const ClientCertificate& client) {
  const HandshakeFacts& f = facts;
  const std::string url_text(url);
  const std::string detail(curl_message.empty() ? curl_easy_strerror(code) : curl_message);
  auto contains = [&](std::string_view needle) { return detail.find(needle) != std::string::npos; };
  const bool proxy = peer == TlsPeer::kProxy;
  // Whose certificate, and which CAs to add: a proxy's CAs are the proxy CA
  // bundle (the pod's /proxycerts/), a server's the CA bundle.
  const std::string own = proxy ? "the proxy's certificate " : "the server certificate ";
  const std::string trusted = proxy ? "the trusted proxy CAs" : "the trusted CAs";
  const std::string peer_name = proxy ? "the proxy" : "the server";
  std::string what_cert = f.verify_depth == 0 ? own + Quote(f.failed_subject)
                                              : "the CA certificate " + Quote(f.failed_subject);
  const std::string prefix = "cannot verify the TLS certificate of " + url_text + ": ";

  if (f.verify_error != 0) {
    switch (f.verify_error) {
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        return TlsError(prefix + "unknown issuer " + Quote(f.failed_issuer) + " of " + what_cert +
                        "; add the issuing CA's certificate to " + trusted);
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        return TlsError(prefix + own + Quote(f.failed_subject) +
                        " is self-signed and not trusted; add it to " + trusted);
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        return TlsError(prefix + "the chain ends in the untrusted root CA " +
                        Quote(f.failed_subject) + "; add that CA's certificate to " + trusted);
      case X509_V_ERR_CERT_HAS_EXPIRED:
        return TlsError(prefix + what_cert + " expired on " + f.failed_not_after);
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return TlsError(prefix + what_cert + " is not valid before " + f.failed_not_before +
                        " (check the clock of this machine)");
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return TlsError(prefix + "host name mismatch: the certificate is for " + f.server_names +
                        ", not for " + Quote(host));
      default:
        return TlsError(prefix + X509_verify_cert_error_string(f.verify_error) + " (" + what_cert +
                        ")");
    }
  }

  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
      // The chain verified (no error recorded), so curl's own host name check
      // is what failed.
      if (!f.server_names.empty()) {
        return TlsError(prefix + "host name mismatch: the certificate is for " + f.server_names +
                        ", not for " + Quote(host) + "; use a" + (proxy ? " proxy" : "") +
                        " URL with a name the certificate holds");
      }
      return TlsError(prefix + detail);
    case CURLE_SSL_CLIENTCERT:
      if (client.configured()) return ClientCertificateRejected(url_text, detail, facts, client);
      return ClientCertificateMissing(url_text, detail, facts);
    case CURLE_SSL_CERTPROBLEM:
      return TlsError("the TLS library refused the client certificate: " + detail);
    case CURLE_SSL_CACERT_BADFILE:
      return TlsError("cannot load the system CA certificates: " + detail);
    case CURLE_SSL_CONNECT_ERROR:
    default:
      break;
  }
  std::string message = "TLS handshake with " + url_text + " failed: ";
  if (contains("wrong version number") || contains("packet length too long")) {
    return TlsError(message + peer_name +
                    " did not answer with TLS (is it plain HTTP? try http://)");
  }
  if (!proxy && (contains("certificate required") || f.client_certificate_requested)) {
    if (client.configured()) {
      return ClientCertificateRejected(url_text, "the TLS handshake failed: " + detail, facts,
                                       client);
    }
    return ClientCertificateMissing(url_text, "the TLS handshake failed: " + detail, facts);
  }
  if (!proxy && client.configured() &&
      (contains("unknown ca") || contains("bad certificate") || contains("certificate unknown") ||
       contains("certificate expired") || contains("unsupported certificate"))) {
    return ClientCertificateRejected(url_text, "the TLS handshake failed: " + detail, facts,
                                     client);
  }
  if (contains("protocol version") || contains("unsupported protocol")) {
    return TlsError(message + peer_name + " does not offer TLS 1.2 or later (" + detail + ")");
  }
  return TlsError(message + detail);
}

std::optional<Status> ExplainClientCertificateRefusal(int status, std::string_view status_line,
                                                      std::string_view body, std::string_view url,
                                                      const HandshakeFacts& facts,
                                                      const ClientCertificate& client) {
  // Only a server that asked this handshake for a certificate can have
  // refused one: the same page relayed from another server, or any other 400,
  // stays an HTTP error.
  if (status != 400 || !facts.client_certificate_asked) return std::nullopt;
  const bool configured = client.configured();
  for (std::string_view reason : {kNginxNoCertificate, kNginxCertificateError}) {
    if (body.find(reason) == std::string_view::npos) continue;
    std::string evidence = "HTTP " + std::to_string(status) + " \"" + std::string(reason) + "\"";
    return configured ? ClientCertificateRejected(url, evidence, facts, client)
                      : ClientCertificateMissing(url, evidence, facts);
  }
  if (!configured) {
    return ClientCertificateMissing(
        url, "it asked for one in the TLS handshake, then answered " + std::string(status_line),
        facts);
  }
  return std::nullopt;
}

Status ClientCertificateMissing(std::string_view url, std::string_view evidence,
                                const HandshakeFacts& facts) {
  const std::vector<std::string>& accepted = facts.accepted_client_cas;
  return TlsError(
      "the server at " + std::string(url) +
      " requires a TLS client certificate and none is configured (" + std::string(evidence) +
      "); give a certificate issued by " +
      (accepted.empty() ? std::string("a CA the server trusts") : AlternativesText(accepted)) +
      " and its key (--client-cert and --client-key)");
}

Status ClientCertificateRejected(std::string_view url, std::string_view evidence,
                                 const HandshakeFacts& facts, const ClientCertificate& client) {
  if (!client.configured()) return ClientCertificateMissing(url, evidence, facts);
  const X509* leaf = client.leaf.get();
  std::string message = "the server at " + std::string(url) +
                        " rejected the TLS client certificate " + Quote(SubjectText(leaf)) +
                        client.origin + " (" + std::string(evidence) + "): ";
  // Our own look at the certificate, for the likely reasons.
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    return TlsError(message + "it expired on " + TimeText(X509_get0_notAfter(leaf)) + "; renew it");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
    return TlsError(message + "it is not valid before " + TimeText(X509_get0_notBefore(leaf)) +
                    "; use a certificate that is valid now");
  }
  const std::string issuer = Quote(IssuerText(leaf));
  // The flags, for a certificate given as files (cdi-image's way); PEM text
  // comes from a Secret.
  const std::string how = client.from_file ? " (--client-cert and --client-key)" : "";
  const std::vector<std::string>& accepted = facts.accepted_client_cas;
  const bool accepted_issuer = std::any_of(
      client.chain_issuers.begin(), client.chain_issuers.end(), [&](const std::string& name) {
        return std::find(accepted.begin(), accepted.end(), name) != accepted.end();
      });
  if (!accepted.empty() && !accepted_issuer) {
    return TlsError(message + "it is issued by " + issuer +
                    ", and the server accepts certificates issued by " +
                    AlternativesText(accepted) + "; give such a certificate and its key" + how);
  }
  if (accepted_issuer) {
    return TlsError(message + "it is issued by " + issuer +
                    ", a CA the server accepts; check that the certificate is meant for client "
                    "authentication (extendedKeyUsage clientAuth) and not revoked; the server's "
                    "error log says why it refused it");
  }
  return TlsError(message + "it is issued by " + issuer +
                  "; give a certificate issued by a CA the server trusts, meant for client "
                  "authentication, and its key" +
                  how);
}

}  // namespace cdi::tls
