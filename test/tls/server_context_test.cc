// The server side of TLS: the self-signed certificate's properties, and TLS
// clients handshaking and talking with a ServerConnection over a socket pair.
#include "tls/server_context.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "common/unique_fd.h"

namespace cdi::tls {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kYear = std::chrono::hours(24 * 365);

KeyAndCertificate Make(std::string_view name = "test-server",
                       std::chrono::seconds validity = kYear) {
  Result<KeyAndCertificate> made = MakeSelfSignedCertificate(name, validity);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? std::move(made).value() : KeyAndCertificate{};
}

// Seconds from now to `time` (negative: in the past).
int64_t SecondsFromNow(const ASN1_TIME* time) {
  int days = 0;
  int seconds = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, time), 1);
  return int64_t{days} * 86400 + seconds;
}

TEST(SelfSignedCertificateTest, IsSignedByItsOwnKeyForTheNameGiven) {
  KeyAndCertificate made = Make("cdi-importer");
  ASSERT_TRUE(made.key && made.certificate);
  X509* cert = made.certificate.get();
  EXPECT_EQ(SubjectText(cert), "CN=cdi-importer");
  EXPECT_EQ(IssuerText(cert), "CN=cdi-importer");
  EXPECT_EQ(X509_get_version(cert), 2);  // v3
  EXPECT_EQ(X509_verify(cert, made.key.get()), 1) << "not signed by its own key";
  EXPECT_EQ(X509_check_private_key(cert, made.key.get()), 1);
  EXPECT_EQ(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
}

TEST(SelfSignedCertificateTest, KeyIsEcdsaP256) {
  KeyAndCertificate made = Make();
  ASSERT_TRUE(made.key);
  EXPECT_EQ(EVP_PKEY_get_base_id(made.key.get()), EVP_PKEY_EC);
  std::array<char, 64> group{};
  size_t length = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(made.key.get(), group.data(), group.size(), &length), 1);
  EXPECT_EQ(std::string(group.data(), length), "prime256v1");
}

TEST(SelfSignedCertificateTest, IsValidFromAnHourAgoForTheValidityGiven) {
  KeyAndCertificate made = Make("test-server", std::chrono::hours(48));
  ASSERT_TRUE(made.certificate);
  const int64_t not_before = SecondsFromNow(X509_get0_notBefore(made.certificate.get()));
  const int64_t not_after = SecondsFromNow(X509_get0_notAfter(made.certificate.get()));
  EXPECT_LE(not_before, -3600 + 60);
  EXPECT_GE(not_before, -3600 - 60);
  EXPECT_LE(not_after, 48 * 3600 + 60);
  EXPECT_GE(not_after, 48 * 3600 - 60);
  EXPECT_EQ(X509_cmp_current_time(X509_get0_notBefore(made.certificate.get())), -1);
  EXPECT_EQ(X509_cmp_current_time(X509_get0_notAfter(made.certificate.get())), 1);
}

TEST(SelfSignedCertificateTest, EachHasItsOwnKeyAndAPositiveSerial) {
  KeyAndCertificate first = Make();
  KeyAndCertificate second = Make();
  ASSERT_TRUE(first.certificate && second.certificate);
  EXPECT_NE(EVP_PKEY_eq(first.key.get(), second.key.get()), 1);
  const ASN1_INTEGER* serial = X509_get0_serialNumber(first.certificate.get());
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER) << "negative serial number";
  EXPECT_NE(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(second.certificate.get())), 0);
}

TEST(ServerContextTest, RefusesAKeyThatIsNotTheCertificates) {
  KeyAndCertificate first = Make();
  KeyAndCertificate second = Make();
  KeyAndCertificate mixed{std::move(second.key), std::move(first.certificate)};
  Result<ServerContext> context = ServerContext::Create(mixed);
  ASSERT_FALSE(context.ok());
  EXPECT_EQ(context.status().code(), ErrorCode::kTls);
  EXPECT_EQ(context.status().message().rfind("loading the server's certificate and key: ", 0), 0u)
      << context.status().message();
  EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL's error queue is left with errors";
}

// A server connection on one end of a socket pair, served on its own thread
// the way a server serves one accepted socket, and a client end for the test.
class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // As a server does: a client that goes away must not end the process.
    signal(SIGPIPE, SIG_IGN);
    identity_ = Make("test-server");
    Result<ServerContext> context = ServerContext::Create(identity_);
    ASSERT_TRUE(context.ok()) << context.status().ToString();
    context_.emplace(std::move(context).value());
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    server_fd_.reset(pair[0]);
    client_fd_.reset(pair[1]);
    ASSERT_EQ(fcntl(server_fd_.get(), F_SETFL, O_NONBLOCK), 0);
    int stop[2];
    ASSERT_EQ(pipe2(stop, O_CLOEXEC), 0);
    stop_read_.reset(stop[0]);
    stop_write_.reset(stop[1]);
  }

  void TearDown() override {
    if (server_.joinable()) server_.join();
  }

  // Serves one exchange: the handshake, a request of up to 64 bytes, and
  // "pong:" followed by the request as the answer.
  void StartEchoServer(std::chrono::milliseconds budget = std::chrono::seconds(10)) {
    server_ = std::thread([this, budget] {
      const Clock::time_point start = Clock::now();
      ServerConnection connection(*context_, server_fd_.get(), stop_read_.get(), start + budget);
      handshake_ok_ = connection.Handshake();
      handshake_time_ = Clock::now() - start;
      if (!handshake_ok_) return;
      char buffer[64];
      size_t n = connection.Read(buffer, sizeof buffer);
      request_ = std::string(buffer, n);
      if (n == 0) return;
      write_ok_ = connection.WriteAll("pong:" + request_);
      connection.Close();
      queue_empty_ = ERR_peek_error() == 0;
    });
  }

  // A client context that trusts the server's certificate alone.
  SslCtxPtr TrustingClientContext() {
    SslCtxPtr client(SSL_CTX_new(TLS_client_method()));
    EXPECT_TRUE(client);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client.get()), identity_.certificate.get());
    SSL_CTX_set_verify(client.get(), SSL_VERIFY_PEER, nullptr);
    return client;
  }

  KeyAndCertificate identity_;
  std::optional<ServerContext> context_;
  UniqueFd server_fd_;
  UniqueFd client_fd_;
  UniqueFd stop_read_;
  UniqueFd stop_write_;
  std::thread server_;
  // What the server thread saw; read after joining it.
  bool handshake_ok_ = false;
  Clock::duration handshake_time_{};
  std::string request_;
  bool write_ok_ = false;
  bool queue_empty_ = false;
};

TEST_F(ConnectionTest, AClientThatTrustsTheCertificateHandshakesAndTalks) {
  StartEchoServer();
  SslCtxPtr client_context = TrustingClientContext();
  SslPtr client(SSL_new(client_context.get()));
  SSL_set_fd(client.get(), client_fd_.get());
  ASSERT_EQ(SSL_connect(client.get()), 1) << ERR_reason_error_string(ERR_peek_error());
  EXPECT_EQ(SSL_get_verify_result(client.get()), X509_V_OK);
  EXPECT_GE(SSL_version(client.get()), TLS1_2_VERSION);
  X509Ptr presented(SSL_get1_peer_certificate(client.get()));
  ASSERT_TRUE(presented);
  EXPECT_EQ(X509_cmp(presented.get(), identity_.certificate.get()), 0);

  ASSERT_EQ(SSL_write(client.get(), "ping", 4), 4);
  std::string answer;
  char buffer[64];
  int n;
  while ((n = SSL_read(client.get(), buffer, sizeof buffer)) > 0) answer.append(buffer, n);
  // The server ended with close_notify: a clean end of the stream.
  EXPECT_EQ(SSL_get_error(client.get(), n), SSL_ERROR_ZERO_RETURN);
  EXPECT_EQ(answer, "pong:ping");
  server_.join();
  EXPECT_TRUE(handshake_ok_);
  EXPECT_EQ(request_, "ping");
  EXPECT_TRUE(write_ok_);
  EXPECT_TRUE(queue_empty_) << "OpenSSL's error queue is left with errors";
}

TEST_F(ConnectionTest, AClientThatOffersOnlyTls11IsRefused) {
  StartEchoServer();
  SslCtxPtr client_context(SSL_CTX_new(TLS_client_method()));
  // Security level 0 lets this client offer TLS 1.1 at all.
  SSL_CTX_set_security_level(client_context.get(), 0);
  SSL_CTX_set_min_proto_version(client_context.get(), TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(client_context.get(), TLS1_1_VERSION);
  SslPtr client(SSL_new(client_context.get()));
  SSL_set_fd(client.get(), client_fd_.get());
  EXPECT_NE(SSL_connect(client.get()), 1);
  ERR_clear_error();
  client.reset();
  client_fd_.reset();
  server_.join();
  EXPECT_FALSE(handshake_ok_);
}

TEST_F(ConnectionTest, AClientThatSpeaksNoTlsIsRefused) {
  StartEchoServer();
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(client_fd_.get(), request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  server_.join();
  EXPECT_FALSE(handshake_ok_);
}

TEST_F(ConnectionTest, ASilentClientIsGivenUpAtTheDeadline) {
  StartEchoServer(std::chrono::milliseconds(300));
  server_.join();
  EXPECT_FALSE(handshake_ok_);
  EXPECT_GE(handshake_time_, std::chrono::milliseconds(250));
  EXPECT_LT(handshake_time_, std::chrono::seconds(5));
}

TEST_F(ConnectionTest, StoppingEndsAWaitingHandshake) {
  StartEchoServer(std::chrono::seconds(60));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  char byte = 1;
  ASSERT_EQ(write(stop_write_.get(), &byte, 1), 1);
  server_.join();
  EXPECT_FALSE(handshake_ok_);
  EXPECT_LT(handshake_time_, std::chrono::seconds(10));
}

}  // namespace
}  // namespace cdi::tls
