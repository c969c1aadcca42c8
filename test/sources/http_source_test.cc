// The HTTP(S) source against real servers on 127.0.0.1: nginx (plain, TLS,
// mutual TLS) and the fault server (test/server/fault_server.py).
#include "sources/http/http_source.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <sstream>
#include <thread>
#include <vector>

#include "sources/source.h"
#include "test/sources/source_test_util.h"
#include "test/support/certs.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

using test::FaultServer;
using test::NginxServer;
using test::RecordedRequest;
using testing::Fetch;
using testing::LogCapture;
using testing::ReadAll;

// 9 MiB and some: several times the source's buffer, not a multiple of anything.
const std::string& ImageBytes() {
  static const std::string bytes = test::RandomBytes(9 * 1024 * 1024 + 12345, 42);
  return bytes;
}

constexpr size_t kSmallSize = 100000;
const std::string& SmallBytes() {
  static const std::string bytes = test::RandomBytes(kSmallSize, 43);
  return bytes;
}

Result<std::unique_ptr<ByteSource>> Open(const SourceSpec& spec,
                                         const CancelToken* cancel = nullptr) {
  return OpenSource(spec, cancel);
}

// Retries are off here: these tests look at one failure and its message.
// Retries and resumes are tested in http_resume_test.cc.
SourceSpec Spec(const std::string& url) {
  SourceSpec spec;
  spec.url = url;
  spec.network.max_retries = 0;
  return spec;
}

std::string Port(uint16_t port) { return std::to_string(port); }

class HttpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::WriteFile(root_.File("disk.img"), ImageBytes());
    test::WriteFile(root_.File("small.img"), SmallBytes());
    test::WriteFile(root_.File("empty.img"), "");
  }
  test::TempDir root_;
};

// ---------------------------------------------------------------------------
// nginx, plain HTTP

TEST_F(HttpSourceTest, StreamsAMultiMiBBodyByteExactWithOddBufferSizes) {
  NginxServer server({.root = root_.path()});
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/disk.img")));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), ImageBytes().size());
  EXPECT_EQ((*source)->Describe(), server.Url("/disk.img"));
  Result<std::string> body = ReadAll(**source);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(body->size(), ImageBytes().size());
  EXPECT_EQ(test::Sha256Bytes(*body), test::Sha256Bytes(ImageBytes()));
  // At the end, reads keep returning 0.
  std::vector<uint8_t> buffer(16);
  EXPECT_EQ(*(*source)->Read(buffer), 0u);

  // One GET of the whole file, named by its User-Agent.
  std::vector<test::AccessLogEntry> log = server.WaitForRequests(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].uri, "/disk.img");
  EXPECT_EQ(log[0].status, 200);
  EXPECT_EQ(log[0].body_bytes, ImageBytes().size());
  EXPECT_EQ(log[0].range, "");
  EXPECT_EQ(log[0].user_agent, kHttpUserAgent);
  EXPECT_EQ(std::string(kHttpUserAgent), "cdi-image/0.1");
}

TEST_F(HttpSourceTest, EmptyBodyEndsAtOnce) {
  NginxServer server({.root = root_.path()});
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/empty.img")));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), 0u);
  EXPECT_EQ(*ReadAll(**source), "");
}

TEST_F(HttpSourceTest, NotFoundNamesTheStatusAndTheRedactedUrl) {
  NginxServer server({.root = root_.path()});
  std::string url =
      "http://someone:pa55word@127.0.0.1:" + Port(server.port()) + "/missing.img?token=abc";
  Status status = Fetch(Spec(url));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "HTTP 404 Not Found from " + server.Url("/missing.img"));
}

TEST_F(HttpSourceTest, IdleReaderHoldsTheTransferBack) {
  // 256 MiB, far more than the source's buffer plus every socket buffer
  // between it and nginx: while the reader does not read, the transfer must
  // wait, not download the whole image into memory.
  constexpr uint64_t kHuge = 256 * kMiB;
  test::WriteFile(root_.File("huge.img"), "");
  ASSERT_EQ(truncate(root_.File("huge.img").c_str(), kHuge), 0);
  NginxServer server({.root = root_.path()});
  // One connection: the back-pressure of one transfer (parts fetched ahead
  // over several connections are bounded by their own memory).
  SourceSpec spec = Spec(server.Url("/huge.img"));
  spec.network.connections = 1;
  Result<std::unique_ptr<ByteSource>> source = Open(spec);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), kHuge);
  std::vector<uint8_t> buffer(1000);
  ASSERT_TRUE((*source)->Read(buffer).ok());
  // Destroying the source while its transfer waits for room must return.
  source->reset();
  std::vector<test::AccessLogEntry> log = server.WaitForRequests(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_LT(log[0].body_bytes, kHuge / 4);
}

TEST(HttpSourceErrorsTest, ConnectionRefusedNamesTheEndpoint) {
  uint16_t port = test::UnusedPort();
  std::string url = "http://127.0.0.1:" + Port(port) + "/disk.img";
  Status status = Fetch(Spec(url));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "connection refused by 127.0.0.1:" + Port(port) + " (" + url + ")");
}

TEST(HttpSourceErrorsTest, UnresolvableHostIsNamedAndNotRetried) {
  // RFC 6761: .invalid never resolves. A name that does not exist will not
  // exist a moment later either: the failure is permanent, even with retries on.
  SourceSpec spec = Spec("http://no-such-host.invalid/disk.img");
  spec.network.max_retries = 5;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "cannot resolve host name 'no-such-host.invalid' of "
            "http://no-such-host.invalid/disk.img: no such host");
}

TEST(HttpSourceErrorsTest, MalformedExtraHeadersAreRefusedWithoutTheirValue) {
  SourceSpec spec = Spec("http://127.0.0.1:1/disk.img");
  spec.auth.headers = {"X-Good: 1", "no colon here"};
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "extra header #2 is not of the form 'Name: value'");

  spec.auth.headers = {"X-Token: abc\r\nX-Injected: 1"};
  status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "extra header #1 (X-Token) contains a line break");

  spec.auth.headers = {"Bad Name: abc"};
  status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "extra header #1 has an invalid name; expected 'Name: value'");
}

// ---------------------------------------------------------------------------
// nginx, HTTPS

class HttpsSourceTest : public HttpSourceTest {
 protected:
  const test::TestCertificates& certs_ = test::SharedTestCertificates();
};

TEST_F(HttpsSourceTest, TrustsAPrivateCaFromAFile) {
  NginxServer server({.root = root_.path(), .tls = certs_.server});
  SourceSpec spec = Spec(server.Url("/disk.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
}

TEST_F(HttpsSourceTest, TrustsAPrivateCaFromPemTextAndFromADirectory) {
  NginxServer server({.root = root_.path(), .tls = certs_.server});
  SourceSpec from_text = Spec(server.Url("/small.img"));
  from_text.tls.ca_pem = {test::ReadFile(certs_.ca.cert)};
  std::string body;
  Status status = Fetch(from_text, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());

  test::TempDir ca_dir;
  test::WriteFile(ca_dir.File("tls.crt"), test::ReadFile(certs_.ca.cert));
  SourceSpec from_dir = Spec(server.Url("/small.img"));
  from_dir.tls.ca_dirs = {ca_dir.path()};
  status = Fetch(from_dir, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
}

TEST_F(HttpsSourceTest, WithoutThePrivateCaTheServerIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.server});
  Status status = Fetch(Spec(server.Url("/small.img")));
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "cannot verify the TLS certificate of " + server.Url("/small.img") +
                                  ": unknown issuer 'CN=cdi-test Root CA' of the server "
                                  "certificate 'CN=localhost'; add the issuing CA's certificate "
                                  "to the trusted CAs");
  EXPECT_EQ(server.AccessLog().size(), 0u);
}

TEST_F(HttpsSourceTest, UntrustedIssuerIsNamed) {
  NginxServer server({.root = root_.path(), .tls = certs_.untrusted});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_NE(status.message().find("unknown issuer 'CN=cdi-test Other CA'"), std::string::npos)
      << status.message();
}

TEST_F(HttpsSourceTest, WrongHostIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.wrong_host});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "cannot verify the TLS certificate of " + server.Url("/small.img") +
                                  ": host name mismatch: the certificate is for "
                                  "DNS:wrong.example, not for '127.0.0.1'; use a URL with a name "
                                  "the certificate holds");
}

TEST_F(HttpsSourceTest, HostNameInTheCertificateWorks) {
  NginxServer server({.root = root_.path(), .tls = certs_.server});
  SourceSpec spec = Spec(server.UrlWithHost("localhost", "/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
}

TEST_F(HttpsSourceTest, ExpiredCertificateIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.expired});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  std::string prefix = "cannot verify the TLS certificate of " + server.Url("/small.img") +
                       ": the server certificate 'CN=localhost' expired on ";
  EXPECT_EQ(status.message().substr(0, prefix.size()), prefix) << status.message();
  EXPECT_TRUE(status.message().ends_with(" GMT")) << status.message();
}

TEST_F(HttpsSourceTest, SelfSignedCertificateIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.self_signed});
  Status status = Fetch(Spec(server.Url("/small.img")));
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "cannot verify the TLS certificate of " + server.Url("/small.img") +
                                  ": the server certificate 'CN=localhost' is self-signed and not "
                                  "trusted; add it to the trusted CAs");
}

TEST_F(HttpsSourceTest, InsecureModeConnectsAndWarns) {
  NginxServer server({.root = root_.path(), .tls = certs_.untrusted});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.verify = TlsVerify::kOff;
  LogCapture log;
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_NE(log.text().find("[warning] TLS certificate verification is off: the identity of "
                            "HTTPS servers is not checked"),
            std::string::npos)
      << log.text();
}

TEST_F(HttpsSourceTest, PlainHttpServerOnAnHttpsUrlIsExplained) {
  NginxServer server({.root = root_.path()});
  std::string url = "https://127.0.0.1:" + Port(server.port()) + "/small.img";
  Status status = Fetch(Spec(url));
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "TLS handshake with " + url +
                                  " failed: the server did not answer with TLS (is it plain HTTP? "
                                  "try http://)");
}

TEST_F(HttpsSourceTest, MutualTlsWithAClientCertificate) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(server.Url("/disk.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  spec.tls.client_cert_file = certs_.client.cert;
  spec.tls.client_key_file = certs_.client.key;
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));

  // The same certificate and key given as PEM text.
  SourceSpec from_text = Spec(server.Url("/small.img"));
  from_text.tls.ca_files = {certs_.ca.cert};
  from_text.tls.client_cert_pem = test::ReadFile(certs_.client.cert);
  from_text.tls.client_key_pem = test::ReadFile(certs_.client.key);
  status = Fetch(from_text, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());

  std::vector<test::AccessLogEntry> log = server.WaitForRequests(2);
  ASSERT_EQ(log.size(), 2u);
  for (const auto& entry : log) {
    EXPECT_EQ(entry.status, 200);
    EXPECT_EQ(entry.client_subject, "CN=cdi-test client");
  }
}

TEST_F(HttpsSourceTest, MutualTlsWithoutAClientCertificateIsExplained) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the server at " + server.Url("/small.img") +
                                  " requires a TLS client certificate and none is configured "
                                  "(HTTP 400 \"No required SSL certificate was sent\"); give a "
                                  "certificate issued by 'CN=cdi-test Root CA' and its key "
                                  "(--client-cert and --client-key)");
}

// nginx completes the handshake with any client certificate and answers one
// it does not trust with HTTP 400: a TLS error, tried once, whatever the
// retry settings.
TEST_F(HttpsSourceTest, MutualTlsWithACertificateFromAnotherCaIsRefused) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.network.max_retries = 3;
  spec.network.retry_initial_delay = std::chrono::milliseconds(10);
  spec.tls.ca_files = {certs_.ca.cert};
  spec.tls.client_cert_file = certs_.other_client.cert;
  spec.tls.client_key_file = certs_.other_client.key;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "the server at " + server.Url("/small.img") +
                " rejected the TLS client certificate 'CN=cdi-test other client' from " +
                certs_.other_client.cert +
                " (HTTP 400 \"The SSL certificate error\"): it is issued by 'CN=cdi-test Other "
                "CA', and the server accepts certificates issued by 'CN=cdi-test Root CA'; give "
                "such a certificate and its key (--client-cert and --client-key)");
  std::vector<test::AccessLogEntry> log = server.WaitForRequests(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].status, 400);

  // The same certificate given as PEM text (as from a Secret).
  SourceSpec from_text = Spec(server.Url("/small.img"));
  from_text.tls.ca_files = {certs_.ca.cert};
  from_text.tls.client_cert_pem = test::ReadFile(certs_.other_client.cert);
  from_text.tls.client_key_pem = test::ReadFile(certs_.other_client.key);
  status = Fetch(from_text);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_NE(status.message().find(" rejected the TLS client certificate 'CN=cdi-test other "
                                  "client' (PEM text) (HTTP 400 "),
            std::string::npos)
      << status.message();
}

TEST_F(HttpsSourceTest, MutualTlsWithAnExpiredClientCertificateSaysWhenItExpired) {
  // Signed by the CA the server trusts, expired yesterday.
  test::TempDir dir;
  const std::string base = dir.File("expired-client");
  test::Sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
           base + ".key -out " + base + ".csr -subj '/CN=cdi-test expired client' 2>/dev/null");
  test::WriteFile(base + ".ext", "extendedKeyUsage=clientAuth\n");
  test::Sh("openssl x509 -req -in " + base + ".csr -CA " + certs_.ca.cert + " -CAkey " +
           certs_.ca.key + " -set_serial 4242 -days -1 -extfile " + base + ".ext -out " + base +
           ".pem 2>/dev/null");
  std::string not_after = test::Sh("openssl x509 -noout -enddate -in " + base + ".pem");
  not_after = not_after.substr(not_after.find('=') + 1);
  not_after.pop_back();

  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  spec.tls.client_cert_file = base + ".pem";
  spec.tls.client_key_file = base + ".key";
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "the server at " + server.Url("/small.img") +
                                  " rejected the TLS client certificate 'CN=cdi-test expired "
                                  "client' from " +
                                  base +
                                  ".pem (HTTP 400 \"The SSL certificate error\"): it "
                                  "expired on " +
                                  not_after + "; renew it");
}

TEST_F(HttpsSourceTest, MutualTlsWithACertificateNotForClientsIsRefused) {
  // Issued by the right CA, but for servers only (extendedKeyUsage serverAuth).
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  spec.tls.client_cert_file = certs_.server.cert;
  spec.tls.client_key_file = certs_.server.key;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(),
            "the server at " + server.Url("/small.img") +
                " rejected the TLS client certificate 'CN=localhost' from " + certs_.server.cert +
                " (HTTP 400 \"The SSL certificate error\"): it is issued by 'CN=cdi-test Root "
                "CA', a CA the server accepts; check that the certificate is meant for client "
                "authentication (extendedKeyUsage clientAuth) and not revoked; the server's error "
                "log says why it refused it");
}

// A 400 that is not about the client certificate stays an HTTP error: nginx
// refuses a path above its root ("/%2e%2e/") with its plain 400 page.
TEST_F(HttpsSourceTest, OrdinaryBadRequestOverHttpsIsAnHttpError) {
  NginxServer mutual({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(mutual.Url("/%2e%2e/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  spec.tls.client_cert_file = certs_.client.cert;
  spec.tls.client_key_file = certs_.client.key;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "HTTP 400 Bad Request from " + mutual.Url("/%2e%2e/small.img"));

  NginxServer plain({.root = root_.path(), .tls = certs_.server});
  SourceSpec without = Spec(plain.Url("/%2e%2e/small.img"));
  without.tls.ca_files = {certs_.ca.cert};
  status = Fetch(without);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(), "HTTP 400 Bad Request from " + plain.Url("/%2e%2e/small.img"));
}

TEST_F(HttpsSourceTest, ClientKeyNotMatchingItsCertificateIsRefusedBeforeConnecting) {
  NginxServer server({.root = root_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  SourceSpec spec = Spec(server.Url("/small.img"));
  spec.tls.ca_files = {certs_.ca.cert};
  spec.tls.client_cert_file = certs_.client.cert;
  spec.tls.client_key_file = certs_.other_client.key;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "client key " + certs_.other_client.key +
                                  " does not match client certificate " + certs_.client.cert +
                                  " (CN=cdi-test client)");
  EXPECT_EQ(server.AccessLog().size(), 0u);
}

// ---------------------------------------------------------------------------
// The fault server

class FaultTest : public HttpSourceTest {
 protected:
  // The fault server's requests for `path`, in order.
  static std::vector<RecordedRequest> RequestsFor(const FaultServer& server,
                                                  const std::string& path) {
    std::vector<RecordedRequest> matching;
    for (auto& request : server.Requests()) {
      if (request.path == path) matching.push_back(request);
    }
    return matching;
  }
};

TEST_F(FaultTest, ServedPlainlyTheBodyIsExact) {
  FaultServer server(root_.path());
  std::string body;
  Status status = Fetch(Spec(server.Url("/disk.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].Header("user-agent"), "cdi-image/0.1");
  EXPECT_FALSE(requests[0].HasHeader("range"));
  EXPECT_FALSE(requests[0].HasHeader("authorization"));
}

TEST_F(FaultTest, ShortBodyIsAnErrorSayingHowMuchArrived) {
  FaultServer server(root_.path(), R"({"/short.img": {"file": "small.img", "close_after": 1000}})");
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/short.img")));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), kSmallSize);
  // The bytes that arrived come first, then the error; never a clean end.
  std::string received;
  std::vector<uint8_t> buffer(333);
  Status status;
  while (true) {
    Result<size_t> n = (*source)->Read(buffer);
    if (!n.ok()) {
      status = n.status();
      break;
    }
    ASSERT_NE(*n, 0u) << "a short body must not end cleanly";
    received.append(reinterpret_cast<const char*>(buffer.data()), *n);
  }
  EXPECT_TRUE(received == SmallBytes().substr(0, 1000));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "connection closed early: received 1000 of 100000 bytes from " +
                                  server.Url("/short.img"));
}

TEST_F(FaultTest, LyingContentLengthIsAShortBody) {
  FaultServer server(root_.path(),
                     R"({"/lying.img": {"file": "small.img", "content_length": 150000,
                                        "close_after": 100000}})");
  Status status = Fetch(Spec(server.Url("/lying.img")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "connection closed early: received 100000 of 150000 bytes from " +
                                  server.Url("/lying.img"));
}

TEST_F(FaultTest, ChunkedBodyWithoutContentLengthHasNoSize) {
  FaultServer server(root_.path(), R"({"/chunked.img": {"file": "disk.img", "chunked": true}})");
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/chunked.img")));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), std::nullopt);
  Result<std::string> body = ReadAll(**source);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(test::Sha256Bytes(*body), test::Sha256Bytes(ImageBytes()));
}

TEST_F(FaultTest, ChunkedBodyCutShortIsAnError) {
  FaultServer server(root_.path(), R"({"/cut.img": {"file": "small.img", "chunked": true,
                                                    "close_after": 5000}})");
  Status status = Fetch(Spec(server.Url("/cut.img")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "connection closed early: received 5000 bytes from " +
                                  server.Url("/cut.img") + " before the end of the chunked body");
}

TEST_F(FaultTest, BodyEndedByClosingHasNoSizeAndIsRead) {
  FaultServer server(root_.path(),
                     R"({"/close.img": {"file": "small.img", "content_length": null}})");
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/close.img")));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), std::nullopt);
  EXPECT_TRUE(*ReadAll(**source) == SmallBytes());
}

TEST_F(FaultTest, ConnectionResetIsNamed) {
  FaultServer server(root_.path(), R"({"/reset.img": {"file": "small.img", "reset_after": 1000}})");
  Status status = Fetch(Spec(server.Url("/reset.img")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  std::string endpoint = "127.0.0.1:" + Port(server.port());
  EXPECT_EQ(status.message(), "connection reset by " + endpoint + " after 1000 of 100000 bytes (" +
                                  server.Url("/reset.img") + ")");
}

TEST_F(FaultTest, StallIsDetected) {
  FaultServer server(root_.path(), R"({"/stall.img": {"file": "small.img", "stall_after": 1000}})");
  SourceSpec spec = Spec(server.Url("/stall.img"));
  spec.network.stall_bytes_per_second = 1000;
  spec.network.stall_window = std::chrono::seconds(2);
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(),
            "stalled: less than 1000 bytes/s for 2 s, after 1000 of 100000 "
            "bytes from " +
                server.Url("/stall.img"));
}

TEST_F(FaultTest, StallBeforeTheHeadersIsDetected) {
  FaultServer server(root_.path(), R"({"/slow.img": {"file": "small.img", "delay_headers": 600}})");
  SourceSpec spec = Spec(server.Url("/slow.img"));
  spec.network.stall_bytes_per_second = 1000;
  spec.network.stall_window = std::chrono::seconds(1);
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "stalled: less than 1000 bytes/s for 1 s, after 0 bytes from " +
                                  server.Url("/slow.img"));
}

TEST_F(FaultTest, SlowButSteadyServerIsNotAStall) {
  // About 4000 bytes/s for 3 s, three windows of 1 s, against a limit of
  // 1000 bytes/s.
  FaultServer server(root_.path(), R"({"/trickle.img": {"body": ")" + std::string(12000, 'x') +
                                       R"(", "trickle": {"bytes": 400, "interval": 0.1}}})");
  SourceSpec spec = Spec(server.Url("/trickle.img"));
  spec.network.stall_bytes_per_second = 1000;
  spec.network.stall_window = std::chrono::seconds(1);
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(body, std::string(12000, 'x'));
  EXPECT_EQ(server.Requests().size(), 1u);
}

TEST_F(FaultTest, ATrickleBelowTheLimitIsAStall) {
  // About 200 bytes/s against a limit of 1000 bytes/s.
  FaultServer server(root_.path(), R"({"/trickle.img": {"body": ")" + std::string(12000, 'x') +
                                       R"(", "trickle": {"bytes": 20, "interval": 0.1}}})");
  SourceSpec spec = Spec(server.Url("/trickle.img"));
  spec.network.stall_bytes_per_second = 1000;
  spec.network.stall_window = std::chrono::seconds(1);
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_TRUE(status.message().starts_with("stalled: less than 1000 bytes/s for 1 s, after "))
      << status.message();
  EXPECT_TRUE(status.message().ends_with(" of 12000 bytes from " + server.Url("/trickle.img")))
      << status.message();
}

TEST_F(FaultTest, ErrorStatusesSayWhetherToRetry) {
  FaultServer server(root_.path(), R"({
      "/400": {"status": 400}, "/401": {"status": 401}, "/403": {"status": 403},
      "/408": {"status": 408}, "/410": {"status": 410}, "/429": {"status": 429},
      "/500": {"status": 500}, "/502": {"status": 502}, "/503": {"status": 503},
      "/504": {"status": 504}, "/501": {"status": 501},
      "/slowdown": {"status": 503, "reason": "Slow Down"}})");
  struct Case {
    const char* path;
    const char* status_line;
    bool retryable;
    const char* suffix;
  };
  for (const Case& c : {Case{"/400", "HTTP 400 Bad Request", false, ""},
                        Case{"/401", "HTTP 401 Unauthorized", false,
                             ": the server wants credentials; check the user and password"},
                        Case{"/403", "HTTP 403 Forbidden", false, ""},
                        Case{"/408", "HTTP 408 Request Timeout", true, ""},
                        Case{"/410", "HTTP 410 Gone", false, ""},
                        Case{"/429", "HTTP 429 Too Many Requests", true, ""},
                        Case{"/500", "HTTP 500 Internal Server Error", true, ""},
                        Case{"/501", "HTTP 501 Not Implemented", false, ""},
                        Case{"/502", "HTTP 502 Bad Gateway", true, ""},
                        Case{"/503", "HTTP 503 Service Unavailable", true, ""},
                        Case{"/504", "HTTP 504 Gateway Timeout", true, ""},
                        Case{"/slowdown", "HTTP 503 Slow Down", true, ""}}) {
    Status status = Fetch(Spec(server.Url(c.path)));
    EXPECT_EQ(status.code(), ErrorCode::kNetwork) << c.path;
    EXPECT_EQ(status.retryable(), c.retryable) << c.path;
    EXPECT_EQ(status.message(),
              std::string(c.status_line) + " from " + server.Url(c.path) + c.suffix);
  }
}

TEST_F(FaultTest, UnexpectedSuccessAndRedirectStatusesAreRefused) {
  FaultServer server(root_.path(), R"({"/partial": {"status": 206, "file": "small.img"},
                                       "/choices": {"status": 300}})");
  Status partial = Fetch(Spec(server.Url("/partial")));
  EXPECT_EQ(partial.code(), ErrorCode::kNetwork);
  EXPECT_EQ(partial.message(), "HTTP 206 Partial Content from " + server.Url("/partial") +
                                   ": partial content for a request of the whole file");
  Status choices = Fetch(Spec(server.Url("/choices")));
  EXPECT_EQ(choices.code(), ErrorCode::kNetwork);
  EXPECT_EQ(choices.message(), "HTTP 300 Multiple Choices from " + server.Url("/choices") +
                                   ": a redirect without a Location");
}

TEST_F(FaultTest, CompressedContentEncodingHidesTheSizeAndPassesBytesAsServed) {
  FaultServer server(root_.path(), R"({"/gz.img": {"file": "small.img",
                                                   "headers": {"Content-Encoding": "gzip"}}})");
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/gz.img")));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), std::nullopt);
  EXPECT_TRUE(*ReadAll(**source) == SmallBytes());
  EXPECT_FALSE(server.Requests().at(0).HasHeader("accept-encoding"));
}

TEST_F(FaultTest, EveryRedirectStatusIsFollowed) {
  FaultServer server(root_.path(), R"({
      "/301": {"redirect": "/small.img", "status": 301},
      "/302": {"redirect": "/small.img", "status": 302},
      "/303": {"redirect": "/small.img", "status": 303},
      "/307": {"redirect": "small.img", "status": 307},
      "/308": {"redirect": "primary:/small.img", "status": 308}})");
  for (const char* path : {"/301", "/302", "/303", "/307", "/308"}) {
    std::string body;
    Status status = Fetch(Spec(server.Url(path)), &body);
    ASSERT_TRUE(status.ok()) << path << ": " << status.ToString();
    EXPECT_TRUE(body == SmallBytes()) << path;
  }
  EXPECT_EQ(RequestsFor(server, "/small.img").size(), 5u);
}

TEST_F(FaultTest, CredentialsFollowSameOriginRedirects) {
  FaultServer server(root_.path(), R"({"/moved.img": {"redirect": "/small.img"}})");
  SourceSpec spec = Spec(server.Url("/moved.img"));
  spec.auth.user = "importer";
  spec.auth.password = "pw-same-origin";
  spec.auth.headers = {"X-Auth-Token: token-same-origin"};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& request : requests) {
    EXPECT_EQ(request.origin, "primary");
    // base64("importer:pw-same-origin")
    EXPECT_EQ(request.Header("authorization"), "Basic aW1wb3J0ZXI6cHctc2FtZS1vcmlnaW4=")
        << request.path;
    EXPECT_EQ(request.Header("x-auth-token"), "token-same-origin") << request.path;
  }
}

TEST_F(FaultTest, CredentialsAreNeverSentToAnotherOrigin) {
  // primary /hop1 -> other /hop2 -> primary /small.img
  FaultServer server(root_.path(), R"({"/hop1": {"redirect": "other:/hop2"},
                                       "/hop2": {"redirect": "primary:/small.img"}})");
  SourceSpec spec = Spec(server.Url("/hop1"));
  spec.auth.user = "importer";
  spec.auth.password = "pw-cross-origin";
  spec.auth.headers = {"X-Auth-Token: token-cross-origin", "Authorization-Extra: also-secret"};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());

  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].origin, "primary");
  EXPECT_EQ(requests[0].path, "/hop1");
  EXPECT_EQ(requests[1].origin, "other");
  EXPECT_EQ(requests[1].path, "/hop2");
  EXPECT_EQ(requests[2].origin, "primary");
  EXPECT_EQ(requests[2].path, "/small.img");
  for (size_t i : {0u, 2u}) {
    EXPECT_TRUE(requests[i].HasHeader("authorization")) << i;
    EXPECT_EQ(requests[i].Header("x-auth-token"), "token-cross-origin") << i;
  }
  // What the other origin received: no credentials of any kind.
  EXPECT_FALSE(requests[1].HasHeader("authorization"));
  EXPECT_FALSE(requests[1].HasHeader("x-auth-token"));
  EXPECT_FALSE(requests[1].HasHeader("authorization-extra"));
  EXPECT_EQ(requests[1].Header("user-agent"), "cdi-image/0.1");
}

TEST_F(FaultTest, UrlUserInfoIsSentAsBasicAuthOnlyToItsOrigin) {
  FaultServer server(root_.path(), R"({"/moved.img": {"redirect": "other:/small.img"}})");
  std::string url =
      "http://url%20user:url-pw@127.0.0.1:" + Port(server.port()) + "/moved.img?sig=abc";
  std::string body;
  Status status = Fetch(Spec(url), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  // base64("url user:url-pw"); the query goes to the server, the user info not in the target.
  EXPECT_EQ(requests[0].Header("authorization"), "Basic dXJsIHVzZXI6dXJsLXB3");
  EXPECT_EQ(requests[0].target, "/moved.img?sig=abc");
  EXPECT_EQ(requests[1].origin, "other");
  EXPECT_FALSE(requests[1].HasHeader("authorization"));
}

TEST_F(FaultTest, AnotherPortOrSchemeIsAnotherOrigin) {
  // Same host, another port: the "other" origin differs only by port.
  FaultServer server(root_.path(), R"({"/moved.img": {"redirect": "other:/small.img"}})");
  ASSERT_NE(server.port(), server.other_port());
  SourceSpec spec = Spec(server.Url("/moved.img"));
  spec.auth.user = "u";
  spec.auth.password = "p";
  ASSERT_TRUE(Fetch(spec).ok());
  EXPECT_FALSE(server.Requests().at(1).HasHeader("authorization"));
}

TEST_F(FaultTest, RedirectLimitIsEnforced) {
  FaultServer server(root_.path(), R"({"/r1": {"redirect": "/r2"}, "/r2": {"redirect": "/r3"},
                                       "/r3": {"redirect": "/small.img"}})");
  SourceSpec spec = Spec(server.Url("/r1"));
  spec.network.max_redirects = 2;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "too many redirects: stopped after 2 starting at " + server.Url("/r1"));
  EXPECT_EQ(server.Requests().size(), 3u);  // r1, r2, r3; small.img never asked

  spec.network.max_redirects = 3;
  std::string body;
  status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
}

TEST_F(FaultTest, RedirectLoopStopsAtTheDefaultLimit) {
  FaultServer server(root_.path(), R"({"/loop": {"redirect": "/loop"}})");
  Status status = Fetch(Spec(server.Url("/loop")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(),
            "too many redirects: stopped after 10 starting at " + server.Url("/loop"));
  EXPECT_EQ(server.Requests().size(), 11u);
}

TEST_F(FaultTest, RedirectToAFileUrlIsRefused) {
  FaultServer server(root_.path(), R"({"/tofile": {"redirect": "file:///etc/passwd"},
                                       "/toftp": {"redirect": "ftp://127.0.0.1/x"}})");
  Status status = Fetch(Spec(server.Url("/tofile")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "redirect from " + server.Url("/tofile") +
                                  " to a file:// URL refused: only http and https are allowed");
  status = Fetch(Spec(server.Url("/toftp")));
  EXPECT_EQ(status.message(), "redirect from " + server.Url("/toftp") +
                                  " to a ftp:// URL refused: only http and https are allowed");
  EXPECT_EQ(server.Requests().size(), 2u);
}

TEST_F(FaultTest, CancelWhileStreamingStopsARead) {
  FaultServer server(root_.path(), R"({"/stall.img": {"file": "small.img", "stall_after": 1000}})");
  CancelToken cancel;
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/stall.img")), &cancel);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  std::vector<uint8_t> buffer(1000);
  size_t received = 0;
  while (received < 1000) {
    Result<size_t> n = (*source)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    received += *n;
  }
  // The next read waits for bytes that never come, until cancelled.
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Cancel();
  });
  Result<size_t> n = (*source)->Read(buffer);
  canceller.join();
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), ErrorCode::kCancelled);
  EXPECT_EQ(n.status().message(), "cancelled while downloading " + server.Url("/stall.img"));
}

TEST_F(FaultTest, CancelWhileWaitingForTheResponse) {
  FaultServer server(root_.path(), R"({"/slow.img": {"file": "small.img", "delay_headers": 600}})");
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Cancel();
  });
  Result<std::unique_ptr<ByteSource>> source = Open(Spec(server.Url("/slow.img")), &cancel);
  canceller.join();
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::kCancelled);
  EXPECT_EQ(source.status().message(), "cancelled while connecting to " + server.Url("/slow.img"));
}

TEST_F(FaultTest, AlreadyCancelledTokenStopsAtOnce) {
  FaultServer server(root_.path());
  CancelToken cancel;
  cancel.Cancel();
  Status status = Fetch(Spec(server.Url("/small.img")), nullptr, &cancel);
  EXPECT_EQ(status.code(), ErrorCode::kCancelled);
}

// ---------------------------------------------------------------------------
// Secrets never appear in messages or log lines

TEST_F(FaultTest, NoSecretInAnyMessageOrLogLine) {
  const std::vector<std::string> secrets = {"pw-SECRET-5b1c",    "hdr-SECRET-9d2e",
                                            "url-user-4c4c",     "url-pw-SECRET-8e8e",
                                            "query-SECRET-1a1a", "frag-SECRET-2b2b"};
  const test::TestCertificates& certs = test::SharedTestCertificates();
  FaultServer server(root_.path(), R"({
      "/moved.img": {"redirect": "/cross.img"},
      "/cross.img": {"redirect": "other:/small.img"},
      "/short.img": {"file": "small.img", "close_after": 10},
      "/stall.img": {"file": "small.img", "stall_after": 10},
      "/tofile": {"redirect": "file:///etc/passwd"},
      "/loop": {"redirect": "/loop"},
      "/500": {"status": 500}})");
  NginxServer tls_server({.root = root_.path(), .tls = certs.untrusted});
  uint16_t unused = test::UnusedPort();

  // Every secret in every spec: user info and query in the URL, a password,
  // a secret header.
  auto secret_spec = [&](const std::string& base, const std::string& path) {
    std::string scheme_end = "://";
    size_t at = base.find(scheme_end) + scheme_end.size();
    SourceSpec spec;
    spec.url = base.substr(0, at) + "url-user-4c4c:url-pw-SECRET-8e8e@" + base.substr(at) + path +
               "?sig=query-SECRET-1a1a#frag-SECRET-2b2b";
    spec.auth.headers = {"X-Auth-Token: hdr-SECRET-9d2e"};
    // One quick retry, so that retry warnings are checked too.
    spec.network.max_retries = 1;
    spec.network.retry_initial_delay = std::chrono::milliseconds(10);
    return spec;
  };
  std::string primary = "http://127.0.0.1:" + Port(server.port());

  LogCapture log;
  std::string seen;
  auto attempt = [&](SourceSpec spec, const CancelToken* cancel = nullptr) {
    Result<std::unique_ptr<ByteSource>> source = Open(spec, cancel);
    if (!source.ok()) {
      seen += source.status().ToString() + "\n";
      return;
    }
    seen += (*source)->Describe() + "\n";
    Result<std::string> body = ReadAll(**source);
    seen += body.ok() ? "ok\n" : body.status().ToString() + "\n";
  };

  attempt(secret_spec(primary, "/moved.img"));  // success through two redirects
  SourceSpec with_password = secret_spec(primary, "/small.img");
  with_password.auth.user = "importer";
  with_password.auth.password = "pw-SECRET-5b1c";
  attempt(with_password);
  with_password.url = secret_spec(primary, "/missing.img").url;
  attempt(with_password);  // 404
  for (const char* path : {"/short.img", "/tofile", "/loop", "/500"}) {
    attempt(secret_spec(primary, path));
  }
  SourceSpec stall = secret_spec(primary, "/stall.img");
  stall.network.stall_window = std::chrono::seconds(1);
  attempt(stall);
  attempt(secret_spec("http://127.0.0.1:" + Port(unused), "/x"));  // refused
  attempt(secret_spec("http://no-such-host.invalid", "/x"));       // DNS
  attempt(secret_spec("http://127.0.0.1:99999", "/x"));            // malformed
  attempt(secret_spec("ftp://127.0.0.1", "/x"));                   // unsupported scheme
  attempt(secret_spec(tls_server.base_url(), "/small.img"));       // unknown issuer
  SourceSpec bad_header = secret_spec(primary, "/small.img");
  bad_header.auth.headers = {"X-Auth-Token: hdr-SECRET-9d2e\r\nX-More: 1"};
  attempt(bad_header);
  SourceSpec insecure = secret_spec(tls_server.base_url(), "/small.img");
  insecure.tls.verify = TlsVerify::kOff;
  attempt(insecure);
  CancelToken cancelled;
  cancelled.Cancel();
  attempt(secret_spec(primary, "/small.img"), &cancelled);

  std::string everything = seen + log.text();
  for (const auto& secret : secrets) {
    EXPECT_EQ(everything.find(secret), std::string::npos) << secret << " leaked in:\n"
                                                          << everything;
  }
  // The capture saw what it should have: messages and debug lines with redacted URLs.
  EXPECT_NE(seen.find("HTTP 404 Not Found from " + primary + "/missing.img\n"), std::string::npos)
      << seen;
  EXPECT_NE(seen.find("[network] giving up after 1 retry in "), std::string::npos) << seen;
  EXPECT_NE(seen.find("connection closed early: received 10 of 100000 bytes from " + primary +
                      "/short.img\n"),
            std::string::npos)
      << seen;
  EXPECT_NE(seen.find("[tls] cannot verify the TLS certificate of " + tls_server.base_url()),
            std::string::npos)
      << seen;
  EXPECT_NE(log.text().find("GET " + primary + "/moved.img"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("[warning] HTTP 500 Internal Server Error from " + primary +
                            "/500; retry 1 of 1 in "),
            std::string::npos)
      << log.text();
  EXPECT_NE(
      log.text().find("redirected to http://127.0.0.1:" + Port(server.other_port()) + "/small.img"),
      std::string::npos)
      << log.text();
  // The requests themselves carried the secrets where they belong.
  EXPECT_EQ(server.Requests().at(0).Header("x-auth-token"), "hdr-SECRET-9d2e");
  EXPECT_EQ(server.Requests().at(0).query, "sig=query-SECRET-1a1a");
}

}  // namespace
}  // namespace cdi::importer
