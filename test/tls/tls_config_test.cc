// The tls module: loading TLS material, and curl handshakes against nginx on
// 127.0.0.1 configured by it.
#include "tls/tls_config.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "test/support/certs.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/log_capture.h"
#include "test/support/temp_dir.h"

namespace cdi::tls {
namespace {

using test::NginxServer;
using test::LogCapture;

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct Fetched {
  CURLcode code = CURLE_OK;
  long status = 0;  // NOLINT(google-runtime-int): curl's type
  std::string body;
  Status failure;  // TranslateFailure of a TLS failure
};

// One GET with a curl handle configured by `tls`, as the HTTP source does.
Fetched Get(CurlTls& tls, const std::string& url, const std::string& host = "127.0.0.1",
            const std::string& system_ca_file = "") {
  std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
  Fetched fetched;
  Status applied = tls.Apply(handle.get());
  EXPECT_TRUE(applied.ok()) << applied.ToString();
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(handle.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle.get(), CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(handle.get(), CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(handle.get(), CURLOPT_WRITEDATA, &fetched.body);
  curl_easy_setopt(handle.get(), CURLOPT_NOSIGNAL, 1L);
  if (!system_ca_file.empty()) {
    // Stands in for the system store, which tests cannot change.
    curl_easy_setopt(handle.get(), CURLOPT_CAINFO, system_ca_file.c_str());
  }
  tls.ResetHandshakeFacts();
  fetched.code = curl_easy_perform(handle.get());
  curl_easy_getinfo(handle.get(), CURLINFO_RESPONSE_CODE, &fetched.status);
  if (CurlTls::IsTlsFailure(fetched.code)) {
    fetched.failure = tls.TranslateFailure(fetched.code, error, url, host);
  }
  return fetched;
}

std::unique_ptr<CurlTls> Make(const TlsSettings& settings) {
  Result<std::unique_ptr<CurlTls>> tls = CurlTls::Create(settings);
  EXPECT_TRUE(tls.ok()) << tls.status().ToString();
  return tls.ok() ? std::move(tls).value() : nullptr;
}

Status CreateError(const TlsSettings& settings) {
  Result<std::unique_ptr<CurlTls>> tls = CurlTls::Create(settings);
  return tls.ok() ? InternalError("Create succeeded") : tls.status();
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { test::WriteFile(root_.File("hello.txt"), "hello over TLS\n"); }
  const test::TestCertificates& certs_ = test::SharedTestCertificates();
  test::TempDir root_;
  test::TempDir scratch_;
};

// ---------------------------------------------------------------------------
// Loading

TEST_F(TlsTest, LoadsSeveralCertificatesPerFileTextAndDirectory) {
  std::string bundle = scratch_.File("bundle.pem");
  test::WriteFile(bundle, test::ReadFile(certs_.ca.cert) + test::ReadFile(certs_.other_ca.cert));
  test::TempDir dir;
  test::WriteFile(dir.File("ca.pem"), test::ReadFile(certs_.ca.cert));
  test::WriteFile(dir.File("tls.crt"), test::ReadFile(certs_.other_ca.cert));
  // Skipped: dot files (Kubernetes' ..data and friends) and directories.
  test::WriteFile(dir.File(".hidden"), "not a certificate");
  test::Sh("mkdir " + dir.File("subdir"));

  TlsSettings settings;
  settings.ca_files = {bundle};
  settings.ca_pem = {test::ReadFile(certs_.ca.cert)};
  settings.ca_dirs = {dir.path()};
  std::unique_ptr<CurlTls> tls = Make(settings);
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->extra_ca_count(), 5u);
}

TEST_F(TlsTest, MissingCaFileIsNamed) {
  TlsSettings settings;
  settings.ca_files = {"/nonexistent/ca.pem"};
  Status status = CreateError(settings);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "CA file /nonexistent/ca.pem: no such file or directory; check the path");
}

TEST_F(TlsTest, EmptyCaFileIsRefused) {
  test::WriteFile(scratch_.File("empty.pem"), "");
  TlsSettings settings;
  settings.ca_files = {scratch_.File("empty.pem")};
  Status status = CreateError(settings);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(),
            "CA file " + scratch_.File("empty.pem") +
                " holds no PEM certificate (expected a -----BEGIN CERTIFICATE----- block; convert "
                "DER files with `openssl x509 -inform der`)");
}

TEST_F(TlsTest, CorruptCertificateIsRefusedNamingTheFile) {
  std::string pem = test::ReadFile(certs_.ca.cert);
  // Damage the base64 of the second certificate in the file.
  std::string corrupt = pem;
  corrupt.replace(corrupt.find('\n') + 10, 20, "!!!!!!!!!!!!!!!!!!!!");
  test::WriteFile(scratch_.File("corrupt.pem"), pem + corrupt);
  TlsSettings settings;
  settings.ca_files = {scratch_.File("corrupt.pem")};
  Status status = CreateError(settings);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  std::string prefix =
      "CA file " + scratch_.File("corrupt.pem") + ": certificate 2 is not valid PEM: ";
  EXPECT_EQ(status.message().substr(0, prefix.size()), prefix) << status.message();
}

TEST_F(TlsTest, BadPemTextAndBadDirectoryFilesAreRefused) {
  TlsSettings text;
  text.ca_pem = {"not a certificate"};
  Status status = CreateError(text);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message().substr(0, 44), "CA certificate text #1 holds no PEM certific");

  test::TempDir dir;
  test::WriteFile(dir.File("a-good.pem"), test::ReadFile(certs_.ca.cert));
  test::WriteFile(dir.File("b-bad.pem"), "garbage");
  TlsSettings directory;
  directory.ca_dirs = {dir.path()};
  status = CreateError(directory);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message().substr(0, ("CA file " + dir.File("b-bad.pem") + " holds").size()),
            "CA file " + dir.File("b-bad.pem") + " holds");

  TlsSettings missing;
  missing.ca_dirs = {"/nonexistent/certs"};
  status = CreateError(missing);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "CA directory /nonexistent/certs: no such file or directory; check the path");
}

TEST_F(TlsTest, EmptyCaDirectoryIsAWarning) {
  test::TempDir dir;
  LogCapture log;
  TlsSettings settings;
  settings.ca_dirs = {dir.path()};
  std::unique_ptr<CurlTls> tls = Make(settings);
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->extra_ca_count(), 0u);
  EXPECT_NE(log.text().find("[warning] CA directory " + dir.path() + " holds no certificate files"),
            std::string::npos)
      << log.text();
}

TEST_F(TlsTest, ProxyCasJoinThePoolAndAreNamedAsProxyCas) {
  test::TempDir dir;
  test::WriteFile(dir.File("proxy-ca.crt"), test::ReadFile(certs_.other_ca.cert));
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  settings.proxy_ca_files = {certs_.ca.cert};
  settings.proxy_ca_dirs = {dir.path()};
  std::unique_ptr<CurlTls> tls = Make(settings);
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->extra_ca_count(), 3u);

  TlsSettings missing;
  missing.proxy_ca_dirs = {"/nonexistent/proxycerts"};
  Status status = CreateError(missing);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "proxy CA directory /nonexistent/proxycerts: no such file or directory; check the path");

  test::WriteFile(dir.File("zz-bad.crt"), "garbage");
  TlsSettings bad;
  bad.proxy_ca_dirs = {dir.path()};
  status = CreateError(bad);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_TRUE(status.message().starts_with("proxy CA file " + dir.File("zz-bad.crt") + " holds"))
      << status.message();

  test::TempDir empty;
  LogCapture log;
  TlsSettings nothing;
  nothing.proxy_ca_dirs = {empty.path()};
  ASSERT_NE(Make(nothing), nullptr);
  EXPECT_NE(log.text().find("[warning] proxy CA directory " + empty.path() +
                            " holds no certificate files"),
            std::string::npos)
      << log.text();
}

TEST_F(TlsTest, ClientKeyMustMatchItsCertificate) {
  TlsSettings settings;
  settings.client_cert_file = certs_.client.cert;
  settings.client_key_file = certs_.server.key;
  Status status = CreateError(settings);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "client key " + certs_.server.key +
                                  " does not match client certificate " + certs_.client.cert +
                                  " (CN=cdi-test client)");

  TlsSettings text;
  text.client_cert_pem = test::ReadFile(certs_.client.cert);
  text.client_key_pem = test::ReadFile(certs_.server.key);
  status = CreateError(text);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(),
            "client key text does not match client certificate text (CN=cdi-test client)");
}

TEST_F(TlsTest, ClientCertificateSettingsMustBeConsistent) {
  TlsSettings both;
  both.client_cert_file = certs_.client.cert;
  both.client_cert_pem = test::ReadFile(certs_.client.cert);
  both.client_key_file = certs_.client.key;
  EXPECT_EQ(CreateError(both).message(),
            "the client certificate is given both as a file and as PEM text; give one");

  TlsSettings key_only;
  key_only.client_key_file = certs_.client.key;
  EXPECT_EQ(CreateError(key_only).message(), "a client key is given without a client certificate");

  TlsSettings cert_only;
  cert_only.client_cert_file = certs_.client.cert;
  Status status = CreateError(cert_only);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "client certificate " + certs_.client.cert + " is given without its private key");

  TlsSettings not_a_key;
  not_a_key.client_cert_file = certs_.client.cert;
  not_a_key.client_key_file = certs_.client.cert;
  status = CreateError(not_a_key);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "client key " + certs_.client.cert +
                                  " holds no PEM private key (expected a -----BEGIN PRIVATE "
                                  "KEY----- block)");
}

TEST_F(TlsTest, EncryptedClientKeyIsRefusedWithoutPrompting) {
  std::string encrypted = scratch_.File("encrypted.key");
  test::Sh("openssl pkey -in " + certs_.client.key + " -aes256 -passout pass:secret -out " +
           encrypted);
  TlsSettings settings;
  settings.client_cert_file = certs_.client.cert;
  settings.client_key_file = encrypted;
  Status status = CreateError(settings);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "client key " + encrypted +
                                  " is encrypted; give the key without a passphrase (openssl pkey "
                                  "-in KEY -out PLAIN)");
}

TEST_F(TlsTest, CertificateAndKeyInOneFileAreAccepted) {
  std::string combined = scratch_.File("client-with-key.pem");
  test::WriteFile(combined, test::ReadFile(certs_.client.cert) + test::ReadFile(certs_.client.key));
  TlsSettings settings;
  settings.client_cert_file = combined;
  EXPECT_NE(Make(settings), nullptr);
}

// ---------------------------------------------------------------------------
// Handshakes against nginx

TEST_F(TlsTest, PrivateCaIsTrustedThroughEachWayOfGivingIt) {
  NginxServer server({.root = root_.path(), .tls = certs_.server});
  test::TempDir dir;
  test::WriteFile(dir.File("ca.crt"), test::ReadFile(certs_.ca.cert));
  TlsSettings by_file, by_text, by_dir;
  by_file.ca_files = {certs_.ca.cert};
  by_text.ca_pem = {test::ReadFile(certs_.ca.cert)};
  by_dir.ca_dirs = {dir.path()};
  for (const TlsSettings* settings : {&by_file, &by_text, &by_dir}) {
    std::unique_ptr<CurlTls> tls = Make(*settings);
    ASSERT_NE(tls, nullptr);
    Fetched fetched = Get(*tls, server.Url("/hello.txt"));
    EXPECT_EQ(fetched.code, CURLE_OK) << fetched.failure.ToString();
    EXPECT_EQ(fetched.status, 200);
    EXPECT_EQ(fetched.body, "hello over TLS\n");
  }
}

TEST_F(TlsTest, ExtraCasAreAddedToTheSystemStoreNotInsteadOfIt) {
  // "System store" (curl's CA file): only the other CA. Extra CA: ours.
  // Servers of both CAs must verify.
  NginxServer ours({.root = root_.path(), .tls = certs_.server});
  NginxServer theirs({.root = root_.path(), .tls = certs_.untrusted});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  ASSERT_NE(tls, nullptr);
  Fetched from_ours = Get(*tls, ours.Url("/hello.txt"), "127.0.0.1", certs_.other_ca.cert);
  EXPECT_EQ(from_ours.code, CURLE_OK) << from_ours.failure.ToString();
  Fetched from_theirs = Get(*tls, theirs.Url("/hello.txt"), "127.0.0.1", certs_.other_ca.cert);
  EXPECT_EQ(from_theirs.code, CURLE_OK) << from_theirs.failure.ToString();

  // Without the extra CA, only the "system" one verifies.
  std::unique_ptr<CurlTls> plain = Make(TlsSettings());
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(Get(*plain, theirs.Url("/hello.txt"), "127.0.0.1", certs_.other_ca.cert).code,
            CURLE_OK);
  EXPECT_EQ(Get(*plain, ours.Url("/hello.txt"), "127.0.0.1", certs_.other_ca.cert).code,
            CURLE_PEER_FAILED_VERIFICATION);
}

TEST_F(TlsTest, UnknownIssuerIsNamed) {
  NginxServer server({.root = root_.path(), .tls = certs_.untrusted});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  Fetched fetched = Get(*tls, server.Url("/hello.txt"));
  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_EQ(fetched.failure.code(), ErrorCode::kTls);
  EXPECT_EQ(fetched.failure.message(),
            "cannot verify the TLS certificate of " + server.Url("/hello.txt") +
                ": unknown issuer 'CN=cdi-test Other CA' of the server certificate "
                "'CN=localhost'; add the issuing CA's certificate to the trusted CAs");
  EXPECT_EQ(tls->handshake_facts().verify_error,
            20);  // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
}

TEST_F(TlsTest, ExpiredCertificateIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.expired});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  Fetched fetched = Get(*tls, server.Url("/hello.txt"));
  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  std::string not_after =
      test::Sh("openssl x509 -noout -enddate -in " + certs_.expired.cert);  // notAfter=...\n
  not_after = not_after.substr(not_after.find('=') + 1);
  not_after.pop_back();
  EXPECT_EQ(fetched.failure.message(),
            "cannot verify the TLS certificate of " + server.Url("/hello.txt") +
                ": the server certificate 'CN=localhost' expired on " + not_after);
}

TEST_F(TlsTest, WrongHostIsRefusedNamingWhatTheCertificateHolds) {
  NginxServer server({.root = root_.path(), .tls = certs_.wrong_host});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  Fetched fetched = Get(*tls, server.UrlWithHost("localhost", "/hello.txt"), "localhost");
  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_EQ(fetched.failure.message(),
            "cannot verify the TLS certificate of " +
                server.UrlWithHost("localhost", "/hello.txt") +
                ": host name mismatch: the certificate is for DNS:wrong.example, not for "
                "'localhost'; use a URL with a name the certificate holds");
}

TEST_F(TlsTest, ServerCertificateNamesBothLocalhostAndItsAddress) {
  NginxServer server({.root = root_.path(), .tls = certs_.server});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  EXPECT_EQ(Get(*tls, server.UrlWithHost("localhost", "/hello.txt"), "localhost").code, CURLE_OK);
  EXPECT_EQ(Get(*tls, server.Url("/hello.txt")).code, CURLE_OK);
  EXPECT_EQ(tls->handshake_facts().server_names, "DNS:localhost, IP:127.0.0.1");
}

TEST_F(TlsTest, SelfSignedCertificateIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.self_signed});
  std::unique_ptr<CurlTls> tls = Make(TlsSettings());
  Fetched fetched = Get(*tls, server.Url("/hello.txt"));
  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_EQ(fetched.failure.message(), "cannot verify the TLS certificate of " +
                                           server.Url("/hello.txt") +
                                           ": the server certificate 'CN=localhost' is "
                                           "self-signed and not trusted; add it to the trusted "
                                           "CAs");
}

TEST_F(TlsTest, TrustingASelfSignedCertificateWorks) {
  NginxServer server({.root = root_.path(), .tls = certs_.self_signed});
  TlsSettings settings;
  settings.ca_files = {certs_.self_signed.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  EXPECT_EQ(Get(*tls, server.Url("/hello.txt")).code, CURLE_OK);
}

TEST_F(TlsTest, VerificationOffConnectsAnywhereAndWarns) {
  LogCapture log;
  TlsSettings settings;
  settings.verify = TlsVerify::kOff;
  std::unique_ptr<CurlTls> tls = Make(settings);
  for (const test::CertKey* cert :
       {&certs_.untrusted, &certs_.expired, &certs_.wrong_host, &certs_.self_signed}) {
    NginxServer server({.root = root_.path(), .tls = *cert});
    Fetched fetched = Get(*tls, server.Url("/hello.txt"));
    EXPECT_EQ(fetched.code, CURLE_OK) << cert->cert << ": " << fetched.failure.ToString();
    EXPECT_EQ(fetched.body, "hello over TLS\n");
  }
  EXPECT_NE(log.text().find("[warning] TLS certificate verification is off"), std::string::npos)
      << log.text();
}

TEST_F(TlsTest, VerificationOnDoesNotWarn) {
  LogCapture log;
  std::unique_ptr<CurlTls> tls = Make(TlsSettings());
  NginxServer server({.root = root_.path(), .tls = certs_.self_signed});
  Get(*tls, server.Url("/hello.txt"));
  EXPECT_EQ(log.text().find("verification is off"), std::string::npos) << log.text();
}

TEST_F(TlsTest, MutualTlsSendsTheClientCertificate) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  settings.client_cert_file = certs_.client.cert;
  settings.client_key_file = certs_.client.key;
  std::unique_ptr<CurlTls> tls = Make(settings);
  Fetched fetched = Get(*tls, server.Url("/hello.txt"));
  EXPECT_EQ(fetched.code, CURLE_OK) << fetched.failure.ToString();
  EXPECT_EQ(fetched.status, 200);
  EXPECT_FALSE(tls->handshake_facts().client_certificate_requested);
  std::vector<test::AccessLogEntry> log = server.WaitForRequests(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_subject, "CN=cdi-test client");
}

TEST_F(TlsTest, MutualTlsWithoutACertificateIsNoticed) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  TlsSettings settings;
  settings.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(settings);
  Fetched fetched = Get(*tls, server.Url("/hello.txt"));
  // nginx completes the handshake and answers 400; the handshake showed why.
  EXPECT_EQ(fetched.code, CURLE_OK);
  EXPECT_EQ(fetched.status, 400);
  EXPECT_TRUE(tls->handshake_facts().client_certificate_requested);
}

TEST_F(TlsTest, ClientCertificateRequiredIsExplained) {
  std::unique_ptr<CurlTls> tls = Make(TlsSettings());
  Status status =
      tls->TranslateFailure(CURLE_SSL_CLIENTCERT, "", "https://h.example/x", "h.example");
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(),
            "the server at https://h.example/x requires a TLS client certificate and none is "
            "configured (SSL Client Certificate required); give a certificate issued by a CA the "
            "server trusts and its key (--client-cert and --client-key)");
}

// A server that refuses the client certificate with a TLS alert (not nginx,
// which answers HTTP 400): the certificate is named all the same.
TEST_F(TlsTest, ClientCertificateRefusedByAnAlertIsNamed) {
  TlsSettings settings;
  settings.client_cert_file = certs_.other_client.cert;
  settings.client_key_file = certs_.other_client.key;
  std::unique_ptr<CurlTls> tls = Make(settings);
  ASSERT_NE(tls, nullptr);
  Status status =
      tls->TranslateFailure(CURLE_SSL_CONNECT_ERROR, "OpenSSL SSL_connect: tlsv1 alert unknown ca",
                            "https://h.example/x", "h.example");
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(),
            "the server at https://h.example/x rejected the TLS client certificate 'CN=cdi-test "
            "other client' from " +
                certs_.other_client.cert +
                " (the TLS handshake failed: OpenSSL SSL_connect: tlsv1 alert unknown ca): it is "
                "issued by 'CN=cdi-test Other CA'; give a certificate issued by a CA the server "
                "trusts, meant for client authentication, and its key (--client-cert and "
                "--client-key)");
}

// nginx (`ssl_verify_client on`) completes every handshake and answers a
// missing or untrusted client certificate with HTTP 400 and a page that says
// which; the handshake showed that it asked for one, and from which CAs.
TEST_F(TlsTest, ClientCertificateRefusalIsReadFromNginxsAnswer) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  const std::string url = server.Url("/hello.txt");

  TlsSettings none;
  none.ca_files = {certs_.ca.cert};
  std::unique_ptr<CurlTls> tls = Make(none);
  Fetched fetched = Get(*tls, url);
  ASSERT_EQ(fetched.status, 400);
  EXPECT_TRUE(tls->handshake_facts().client_certificate_asked);
  EXPECT_EQ(tls->handshake_facts().accepted_client_cas,
            std::vector<std::string>{"CN=cdi-test Root CA"});
  std::optional<Status> missing =
      tls->ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", fetched.body, url);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->code(), ErrorCode::kTls);
  EXPECT_FALSE(missing->retryable());
  EXPECT_EQ(missing->message(),
            "the server at " + url +
                " requires a TLS client certificate and none is configured (HTTP 400 \"No "
                "required SSL certificate was sent\"); give a certificate issued by 'CN=cdi-test "
                "Root CA' and its key (--client-cert and --client-key)");
  // Another page (a custom error page): the handshake alone tells.
  missing = tls->ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", "<html/>", url);
  ASSERT_TRUE(missing.has_value());
  EXPECT_NE(missing->message().find("none is configured (it asked for one in the TLS handshake, "
                                    "then answered HTTP 400 Bad Request)"),
            std::string::npos)
      << missing->message();

  TlsSettings other;
  other.ca_files = {certs_.ca.cert};
  other.client_cert_file = certs_.other_client.cert;
  other.client_key_file = certs_.other_client.key;
  tls = Make(other);
  fetched = Get(*tls, url);
  ASSERT_EQ(fetched.status, 400);
  std::optional<Status> rejected =
      tls->ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", fetched.body, url);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->code(), ErrorCode::kTls);
  EXPECT_FALSE(rejected->retryable());
  EXPECT_EQ(rejected->message(),
            "the server at " + url +
                " rejected the TLS client certificate 'CN=cdi-test other client' from " +
                certs_.other_client.cert +
                " (HTTP 400 \"The SSL certificate error\"): it is issued by 'CN=cdi-test Other "
                "CA', and the server accepts certificates issued by 'CN=cdi-test Root CA'; give "
                "such a certificate and its key (--client-cert and --client-key)");
}

TEST_F(TlsTest, OrdinaryHttpErrorsAreNotClientCertificateRefusals) {
  const std::string nginx_page = "<center>The SSL certificate error</center>";
  // A certificate the server accepted, then a 400 for another reason.
  NginxServer mutual({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  TlsSettings good;
  good.ca_files = {certs_.ca.cert};
  good.client_cert_file = certs_.client.cert;
  good.client_key_file = certs_.client.key;
  std::unique_ptr<CurlTls> tls = Make(good);
  const std::string url = mutual.Url("/hello.txt");
  ASSERT_EQ(Get(*tls, url).status, 200);
  EXPECT_TRUE(tls->handshake_facts().client_certificate_asked);
  EXPECT_FALSE(tls->ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request",
                                                    "<h1>400 Bad Request</h1>", url));
  // Only 400 is nginx's way.
  EXPECT_FALSE(tls->ExplainClientCertificateRefusal(403, "HTTP 403 Forbidden", nginx_page, url));

  // A server that asked for no certificate: nginx's page relayed from
  // elsewhere is not about ours.
  NginxServer plain({.root = root_.path(), .tls = certs_.server});
  TlsSettings none;
  none.ca_files = {certs_.ca.cert};
  tls = Make(none);
  ASSERT_EQ(Get(*tls, plain.Url("/hello.txt")).status, 200);
  EXPECT_FALSE(tls->handshake_facts().client_certificate_asked);
  EXPECT_FALSE(tls->ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", nginx_page,
                                                    plain.Url("/hello.txt")));
}

TEST_F(TlsTest, PlainHttpServerIsExplained) {
  NginxServer server({.root = root_.path()});
  std::unique_ptr<CurlTls> tls = Make(TlsSettings());
  std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/hello.txt";
  Fetched fetched = Get(*tls, url);
  EXPECT_EQ(fetched.code, CURLE_SSL_CONNECT_ERROR);
  EXPECT_EQ(fetched.failure.message(),
            "TLS handshake with " + url +
                " failed: the server did not answer with TLS (is it plain HTTP? try http://)");
}

TEST_F(TlsTest, IsTlsFailureSeparatesTlsFromNetworkErrors) {
  EXPECT_TRUE(CurlTls::IsTlsFailure(CURLE_PEER_FAILED_VERIFICATION));
  EXPECT_TRUE(CurlTls::IsTlsFailure(CURLE_SSL_CONNECT_ERROR));
  EXPECT_TRUE(CurlTls::IsTlsFailure(CURLE_SSL_CLIENTCERT));
  EXPECT_FALSE(CurlTls::IsTlsFailure(CURLE_COULDNT_CONNECT));
  EXPECT_FALSE(CurlTls::IsTlsFailure(CURLE_OK));
  EXPECT_FALSE(CurlTls::IsTlsFailure(CURLE_RECV_ERROR));
}

}  // namespace
}  // namespace cdi::tls
