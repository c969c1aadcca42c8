#include "tls/tls_config.h"

#include <dirent.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "common/log.h"
#include "tls/openssl_util.h"
#include "tls/pem.h"

namespace cdi::tls {

struct CurlTls::Material {
  TlsVerify verify = TlsVerify::kOn;
  std::vector<X509Ptr> extra_cas;
  // The client certificate and key, each either a file (curl reads it) or PEM
  // text (handed to curl as a blob). The key may come from the certificate's
  // own PEM input when it holds both.
  std::string client_cert_file;
  std::string client_cert_pem;
  std::string client_key_file;
  std::string client_key_pem;
  // What messages say about the client certificate; not configured when
  // there is none.
  ClientCertificate client;
};

namespace {

// Index of our slot in SSL_CTX ex_data: how OpenSSL's callbacks find the
// CurlTls that configured the context.
int ContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

Status AddCertificates(std::string_view pem, std::string_view origin, std::vector<X509Ptr>& out) {
  CDI_ASSIGN_OR_RETURN(std::vector<X509Ptr> certificates, ParseCertificates(pem, origin));
  for (auto& certificate : certificates) out.push_back(std::move(certificate));
  return Status::Ok();
}

Status AddCaFile(const std::string& path, std::string_view what, std::vector<X509Ptr>& out) {
  CDI_ASSIGN_OR_RETURN(std::string pem, ReadPemFile(path, what));
  return AddCertificates(pem, std::string(what) + " " + path, out);
}

// Every regular file whose name does not start with '.', in name order, as
// CDI reads IMPORTER_CERT_DIR: Kubernetes mounts secret keys as symlinks into
// a "..data" directory, so links are followed and dot entries skipped.
Status AddCaDirectory(const std::string& dir, std::string_view what, std::vector<X509Ptr>& out) {
  DIR* stream = opendir(dir.c_str());
  if (stream == nullptr) return FileError(errno, std::string(what) + " directory", dir);
  std::vector<std::string> names;
  while (dirent* entry = readdir(stream)) {
    if (entry->d_name[0] != '.') names.emplace_back(entry->d_name);
  }
  closedir(stream);
  std::sort(names.begin(), names.end());
  size_t files = 0;
  for (const auto& name : names) {
    std::string path = dir + "/" + name;
    struct stat info {};
    if (stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
    ++files;
    CDI_RETURN_IF_ERROR(AddCaFile(path, std::string(what) + " file", out));
  }
  if (files == 0) Logger()->warn("{} directory {} holds no certificate files", what, dir);
  return Status::Ok();
}

template <typename T>
Status SetOption(CURL* handle, CURLoption option, T value, const char* name) {
  CURLcode code = curl_easy_setopt(handle, option, value);
  if (code != CURLE_OK) {
    return InternalError(std::string("libcurl refused TLS option ") + name + ": " +
                         curl_easy_strerror(code));
  }
  return Status::Ok();
}

Status SetBlob(CURL* handle, CURLoption option, const std::string& pem, const char* name) {
  curl_blob blob{};
  blob.data = const_cast<char*>(pem.data());
  blob.len = pem.size();
  blob.flags = CURL_BLOB_COPY;
  return SetOption(handle, option, &blob, name);
}

}  // namespace

// curl's and OpenSSL's callbacks, friends of CurlTls.
class TlsCallbacks {
 public:
  static CURLcode SslContext(CURL* handle, void* ssl_ctx, void* self_pointer);
  static int Verify(int preverify_ok, X509_STORE_CTX* store_ctx);
  static int CertificateRequest(SSL* ssl, void* self_pointer);
};

CurlTls::CurlTls(std::unique_ptr<Material> material) : material_(std::move(material)) {}
CurlTls::~CurlTls() = default;

Result<std::unique_ptr<CurlTls>> CurlTls::Create(const TlsSettings& settings) {
  auto material = std::make_unique<Material>();
  material->verify = settings.verify;

  for (const auto& path : settings.ca_files) {
    CDI_RETURN_IF_ERROR(AddCaFile(path, "CA file", material->extra_cas));
  }
  for (size_t i = 0; i < settings.ca_pem.size(); ++i) {
    CDI_RETURN_IF_ERROR(AddCertificates(
        settings.ca_pem[i], "CA certificate text #" + std::to_string(i + 1), material->extra_cas));
  }
  for (const auto& dir : settings.ca_dirs) {
    CDI_RETURN_IF_ERROR(AddCaDirectory(dir, "CA", material->extra_cas));
  }
  // One pool: a TLS callback cannot tell the proxy's handshake from the
  // server's, and CDI trusts its proxy CAs for servers too.
  for (const auto& path : settings.proxy_ca_files) {
    CDI_RETURN_IF_ERROR(AddCaFile(path, "proxy CA file", material->extra_cas));
  }
  for (const auto& dir : settings.proxy_ca_dirs) {
    CDI_RETURN_IF_ERROR(AddCaDirectory(dir, "proxy CA", material->extra_cas));
  }

  // Client certificate: check everything here, before any connection, so that
  // a wrong key is refused with a clear message instead of a failed handshake.
  bool cert_file = !settings.client_cert_file.empty();
  bool cert_pem = !settings.client_cert_pem.empty();
  bool key_file = !settings.client_key_file.empty();
  bool key_pem = !settings.client_key_pem.empty();
  if (cert_file && cert_pem) {
    return InvalidArgumentError(
        "the client certificate is given both as a file and as PEM text; give one");
  }
  if (key_file && key_pem) {
    return InvalidArgumentError("the client key is given both as a file and as PEM text; give one");
  }
  if ((key_file || key_pem) && !(cert_file || cert_pem)) {
    return InvalidArgumentError("a client key is given without a client certificate");
  }
  if (cert_file || cert_pem) {
    std::string cert_origin;
    std::string cert_text;
    if (cert_file) {
      cert_origin = "client certificate " + settings.client_cert_file;
      CDI_ASSIGN_OR_RETURN(cert_text, ReadPemFile(settings.client_cert_file, "client certificate"));
    } else {
      cert_origin = "client certificate text";
      cert_text = settings.client_cert_pem;
    }
    CDI_ASSIGN_OR_RETURN(std::vector<X509Ptr> chain, ParseCertificates(cert_text, cert_origin));

    std::string key_origin;
    std::string key_text;
    if (key_file) {
      key_origin = "client key " + settings.client_key_file;
      CDI_ASSIGN_OR_RETURN(key_text, ReadPemFile(settings.client_key_file, "client key"));
    } else if (key_pem) {
      key_origin = "client key text";
      key_text = settings.client_key_pem;
    } else if (cert_text.find("PRIVATE KEY-----") != std::string::npos) {
      key_origin = cert_origin;
      key_text = cert_text;
    } else {
      return InvalidArgumentError(cert_origin + " is given without its private key");
    }
    CDI_ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey(key_text, key_origin));
    ClearOpenSslErrors();
    if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
      ClearOpenSslErrors();
      return TlsError(key_origin + " does not match " + cert_origin + " (" +
                      SubjectText(chain.front().get()) + ")");
    }
    ClientCertificate& client = material->client;
    client.origin = cert_file ? " from " + settings.client_cert_file : " (PEM text)";
    client.from_file = cert_file;
    for (const auto& certificate : chain) {
      client.chain_issuers.push_back(IssuerText(certificate.get()));
    }
    client.leaf = std::move(chain.front());
    material->client_cert_file = settings.client_cert_file;
    material->client_cert_pem = settings.client_cert_pem;
    if (key_file || key_pem) {
      material->client_key_file = settings.client_key_file;
      material->client_key_pem = settings.client_key_pem;
    } else {
      // The key sits in the certificate's own input.
      material->client_key_file = settings.client_cert_file;
      material->client_key_pem = settings.client_cert_pem;
    }
  }
  return std::unique_ptr<CurlTls>(new CurlTls(std::move(material)));
}

size_t CurlTls::extra_ca_count() const { return material_->extra_cas.size(); }

void CurlTls::ResetHandshakeFacts() { facts_ = HandshakeFacts(); }
const HandshakeFacts& CurlTls::handshake_facts() const { return facts_; }

Status CurlTls::Apply(CURL* handle) {
  const Material& m = *material_;
  bool verify = m.verify == TlsVerify::kOn;
  CDI_RETURN_IF_ERROR(SetOption(handle, CURLOPT_SSLVERSION,
                                static_cast<long>(CURL_SSLVERSION_TLSv1_2),  // NOLINT
                                "CURLOPT_SSLVERSION"));
  CDI_RETURN_IF_ERROR(
      SetOption(handle, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L, "CURLOPT_SSL_VERIFYPEER"));
  CDI_RETURN_IF_ERROR(
      SetOption(handle, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L, "CURLOPT_SSL_VERIFYHOST"));
  if (!verify) {
    Logger()->warn(
        "TLS certificate verification is off: the identity of HTTPS servers is not checked");
  }
  // An https:// proxy sees every request: it is verified whatever `verify`
  // says, against the same CAs (SslContext runs for its handshake too).
  CDI_RETURN_IF_ERROR(SetOption(handle, CURLOPT_PROXY_SSLVERSION,
                                static_cast<long>(CURL_SSLVERSION_TLSv1_2),  // NOLINT
                                "CURLOPT_PROXY_SSLVERSION"));
  CDI_RETURN_IF_ERROR(
      SetOption(handle, CURLOPT_PROXY_SSL_VERIFYPEER, 1L, "CURLOPT_PROXY_SSL_VERIFYPEER"));
  CDI_RETURN_IF_ERROR(
      SetOption(handle, CURLOPT_PROXY_SSL_VERIFYHOST, 2L, "CURLOPT_PROXY_SSL_VERIFYHOST"));
  // A cached CA store would be shared between connections and would keep the
  // certificates our callback adds; build a fresh one for every connection.
  CDI_RETURN_IF_ERROR(SetOption(handle, CURLOPT_CA_CACHE_TIMEOUT, 0L, "CURLOPT_CA_CACHE_TIMEOUT"));
  curl_ssl_ctx_callback callback = &TlsCallbacks::SslContext;
  CDI_RETURN_IF_ERROR(
      SetOption(handle, CURLOPT_SSL_CTX_FUNCTION, callback, "CURLOPT_SSL_CTX_FUNCTION"));
  CDI_RETURN_IF_ERROR(
      SetOption(handle, CURLOPT_SSL_CTX_DATA, static_cast<void*>(this), "CURLOPT_SSL_CTX_DATA"));

  if (m.client.configured()) {
    CDI_RETURN_IF_ERROR(SetOption(handle, CURLOPT_SSLCERTTYPE, "PEM", "CURLOPT_SSLCERTTYPE"));
    CDI_RETURN_IF_ERROR(SetOption(handle, CURLOPT_SSLKEYTYPE, "PEM", "CURLOPT_SSLKEYTYPE"));
    if (!m.client_cert_file.empty()) {
      CDI_RETURN_IF_ERROR(
          SetOption(handle, CURLOPT_SSLCERT, m.client_cert_file.c_str(), "CURLOPT_SSLCERT"));
    } else {
      CDI_RETURN_IF_ERROR(
          SetBlob(handle, CURLOPT_SSLCERT_BLOB, m.client_cert_pem, "CURLOPT_SSLCERT_BLOB"));
    }
    if (!m.client_key_file.empty()) {
      CDI_RETURN_IF_ERROR(
          SetOption(handle, CURLOPT_SSLKEY, m.client_key_file.c_str(), "CURLOPT_SSLKEY"));
    } else {
      CDI_RETURN_IF_ERROR(
          SetBlob(handle, CURLOPT_SSLKEY_BLOB, m.client_key_pem, "CURLOPT_SSLKEY_BLOB"));
    }
  }
  return Status::Ok();
}

namespace {

CurlTls* FromSsl(const SSL* ssl) {
  if (ssl == nullptr) return nullptr;
  return static_cast<CurlTls*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
}

}  // namespace

CURLcode TlsCallbacks::SslContext(CURL* /*handle*/, void* ssl_ctx, void* self_pointer) {
  auto* self = static_cast<CurlTls*>(self_pointer);
  auto* context = static_cast<SSL_CTX*>(ssl_ctx);
  // Curl has loaded the system store into the context by now: the extra CAs
  // are added to it, so that public sites still verify.
  X509_STORE* store = SSL_CTX_get_cert_store(context);
  for (const auto& certificate : self->material_->extra_cas) {
    // A certificate already in the store (a CA given twice) is not an error.
    X509_STORE_add_cert(store, certificate.get());
  }
  SSL_CTX_set_ex_data(context, ContextIndex(), self);
  // curl traces every TLS record into its debug output when that is on
  // (the HTTP source reads it for one note): a formatted line per 16 KiB
  // record that nobody reads.
  SSL_CTX_set_msg_callback(context, nullptr);
  // Keep curl's verification mode; only observe what fails, to explain it.
  // Also with TlsVerify::kOff: an https:// proxy is verified all the same.
  SSL_CTX_set_verify(context, SSL_CTX_get_verify_mode(context), &TlsCallbacks::Verify);
  // Runs for every CertificateRequest, whether a certificate is configured
  // or not; curl sets no callback of its own here.
  SSL_CTX_set_cert_cb(context, &TlsCallbacks::CertificateRequest, self);
  ClearOpenSslErrors();
  return CURLE_OK;
}

int TlsCallbacks::Verify(int preverify_ok, X509_STORE_CTX* store_ctx) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  CurlTls* self = FromSsl(ssl);
  if (self == nullptr) return preverify_ok;
  // A connection that does not verify (the server, with TlsVerify::kOff)
  // has nothing to explain.
  if (ssl != nullptr && SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE) return 1;
  HandshakeFacts& facts = self->facts_;
  int depth = X509_STORE_CTX_get_error_depth(store_ctx);
  X509* certificate = X509_STORE_CTX_get_current_cert(store_ctx);
  if (depth == 0 && certificate != nullptr) {
    facts.server_subject = SubjectText(certificate);
    facts.server_names = SubjectAltNamesText(certificate);
  }
  if (preverify_ok != 1 && facts.verify_error == 0) {
    facts.verify_error = X509_STORE_CTX_get_error(store_ctx);
    facts.verify_depth = depth;
    if (certificate != nullptr) {
      facts.failed_subject = SubjectText(certificate);
      facts.failed_issuer = IssuerText(certificate);
      facts.failed_not_before = TimeText(X509_get0_notBefore(certificate));
      facts.failed_not_after = TimeText(X509_get0_notAfter(certificate));
    }
  }
  return preverify_ok;
}

int TlsCallbacks::CertificateRequest(SSL* ssl, void* self_pointer) {
  auto* self = static_cast<CurlTls*>(self_pointer);
  HandshakeFacts& facts = self->facts_;
  facts.client_certificate_asked = true;
  if (!self->material_->client.configured()) facts.client_certificate_requested = true;
  // On a client, the CA names of the server's CertificateRequest.
  facts.accepted_client_cas.clear();
  if (const STACK_OF(X509_NAME)* names = SSL_get_client_CA_list(ssl)) {
    for (int i = 0; i < sk_X509_NAME_num(names); ++i) {
      facts.accepted_client_cas.push_back(NameText(sk_X509_NAME_value(names, i)));
    }
  }
  return 1;  // go on: curl has set the certificate, if any
}

bool CurlTls::IsTlsFailure(CURLcode code) { return tls::IsTlsFailure(code); }

Status CurlTls::TranslateFailure(CURLcode code, std::string_view curl_message, std::string_view url,
                                 std::string_view host, TlsPeer peer) const {
  return ExplainTlsFailure(code, curl_message, url, host, peer, facts_, material_->client);
}

std::optional<Status> CurlTls::ExplainClientCertificateRefusal(int status,
                                                               std::string_view status_line,
                                                               std::string_view body,
                                                               std::string_view url) const {
  return tls::ExplainClientCertificateRefusal(status, status_line, body, url, facts_,
                                              material_->client);
}

}  // namespace cdi::tls
