// TLS failures explained, without a handshake: the explanations are pure
// functions of what the handshake revealed and the client certificate
// configured.
#include "tls/tls_errors.h"

#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "test/support/certs.h"
#include "tls/pem.h"

namespace cdi::tls {
namespace {

constexpr char kUrl[] = "https://images.example/disk.img";
constexpr char kHost[] = "images.example";

// A certificate given as files, the way cdi-image takes one.
ClientCertificate FromFile(const std::string& path) {
  ClientCertificate client;
  Result<std::string> pem = ReadPemFile(path, "client certificate");
  EXPECT_TRUE(pem.ok()) << pem.status().ToString();
  if (!pem.ok()) return client;
  Result<std::vector<X509Ptr>> chain = ParseCertificates(*pem, path);
  EXPECT_TRUE(chain.ok()) << chain.status().ToString();
  if (!chain.ok()) return client;
  for (const X509Ptr& certificate : *chain) {
    client.chain_issuers.push_back(IssuerText(certificate.get()));
  }
  client.leaf = std::move(chain->front());
  client.origin = " from " + path;
  client.from_file = true;
  return client;
}

Status Explain(CURLcode code, const std::string& curl_message, const HandshakeFacts& facts,
               const ClientCertificate& client = {}, TlsPeer peer = TlsPeer::kServer) {
  return ExplainTlsFailure(code, curl_message, kUrl, kHost, peer, facts, client);
}

TEST(TlsErrorsTest, UnknownIssuerNamesItAndTheCasToAddTo) {
  HandshakeFacts facts;
  facts.verify_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
  facts.failed_subject = "CN=images.example";
  facts.failed_issuer = "CN=Private CA";
  Status status = Explain(CURLE_PEER_FAILED_VERIFICATION, "", facts);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(),
            "cannot verify the TLS certificate of https://images.example/disk.img: unknown "
            "issuer 'CN=Private CA' of the server certificate 'CN=images.example'; add the "
            "issuing CA's certificate to the trusted CAs");
  // A proxy's certificate is trusted through the proxy CAs.
  Status proxy = Explain(CURLE_PEER_FAILED_VERIFICATION, "", facts, {}, TlsPeer::kProxy);
  EXPECT_NE(proxy.message().find("of the proxy's certificate 'CN=images.example'; add the "
                                 "issuing CA's certificate to the trusted proxy CAs"),
            std::string::npos)
      << proxy.message();
}

TEST(TlsErrorsTest, ExpiredAndNotYetValidCertificatesSayWhen) {
  HandshakeFacts facts;
  facts.verify_error = X509_V_ERR_CERT_HAS_EXPIRED;
  facts.verify_depth = 1;
  facts.failed_subject = "CN=Intermediate";
  facts.failed_not_before = "Jan  1 00:00:00 2020 GMT";
  facts.failed_not_after = "Jan  1 00:00:00 2021 GMT";
  EXPECT_EQ(Explain(CURLE_PEER_FAILED_VERIFICATION, "", facts).message(),
            "cannot verify the TLS certificate of https://images.example/disk.img: the CA "
            "certificate 'CN=Intermediate' expired on Jan  1 00:00:00 2021 GMT");
  facts.verify_error = X509_V_ERR_CERT_NOT_YET_VALID;
  facts.verify_depth = 0;
  EXPECT_EQ(Explain(CURLE_PEER_FAILED_VERIFICATION, "", facts).message(),
            "cannot verify the TLS certificate of https://images.example/disk.img: the server "
            "certificate 'CN=Intermediate' is not valid before Jan  1 00:00:00 2020 GMT (check "
            "the clock of this machine)");
}

TEST(TlsErrorsTest, HostNameMismatchNamesWhatTheCertificateHolds) {
  HandshakeFacts facts;
  facts.server_names = "DNS:other.example, IP:10.0.0.1";
  EXPECT_EQ(
      Explain(CURLE_PEER_FAILED_VERIFICATION, "SSL: no alternative certificate subject", facts)
          .message(),
      "cannot verify the TLS certificate of https://images.example/disk.img: host name "
      "mismatch: the certificate is for DNS:other.example, IP:10.0.0.1, not for "
      "'images.example'; use a URL with a name the certificate holds");
}

TEST(TlsErrorsTest, PlainHttpAndOldTlsAreNamed) {
  HandshakeFacts facts;
  EXPECT_EQ(Explain(CURLE_SSL_CONNECT_ERROR, "OpenSSL SSL_connect: wrong version number", facts)
                .message(),
            "TLS handshake with https://images.example/disk.img failed: the server did not "
            "answer with TLS (is it plain HTTP? try http://)");
  EXPECT_EQ(Explain(CURLE_SSL_CONNECT_ERROR, "tlsv1 alert protocol version", facts).message(),
            "TLS handshake with https://images.example/disk.img failed: the server does not "
            "offer TLS 1.2 or later (tlsv1 alert protocol version)");
  // Anything else: curl's own words.
  EXPECT_EQ(Explain(CURLE_SSL_CONNECT_ERROR, "something odd", facts).message(),
            "TLS handshake with https://images.example/disk.img failed: something odd");
}

TEST(TlsErrorsTest, MissingClientCertificateNamesTheCasTheServerAccepts) {
  HandshakeFacts facts;
  facts.client_certificate_asked = true;
  facts.client_certificate_requested = true;
  facts.accepted_client_cas = {"CN=A", "CN=B", "CN=C", "CN=D", "CN=E", "CN=F"};
  EXPECT_EQ(Explain(CURLE_SSL_CONNECT_ERROR, "alert certificate required", facts).message(),
            "the server at https://images.example/disk.img requires a TLS client certificate "
            "and none is configured (the TLS handshake failed: alert certificate required); "
            "give a certificate issued by 'CN=A', 'CN=B', 'CN=C', 'CN=D' or 2 more and its key "
            "(--client-cert and --client-key)");
  facts.accepted_client_cas = {"CN=A", "CN=B"};
  EXPECT_NE(ClientCertificateMissing(kUrl, "evidence", facts)
                .message()
                .find("give a certificate issued by 'CN=A' or 'CN=B' and its key"),
            std::string::npos);
  facts.accepted_client_cas.clear();
  EXPECT_NE(ClientCertificateMissing(kUrl, "evidence", facts)
                .message()
                .find("give a certificate issued by a CA the server trusts and its key"),
            std::string::npos);
}

TEST(TlsErrorsTest, RejectedClientCertificateSaysWhoIssuedItAndWhomTheServerAccepts) {
  const test::TestCertificates& certs = test::SharedTestCertificates();
  ClientCertificate client = FromFile(certs.client.cert);
  ASSERT_TRUE(client.configured());
  HandshakeFacts facts;
  facts.client_certificate_asked = true;
  facts.accepted_client_cas = {test::TestCertificates::kOtherCaName};
  EXPECT_EQ(Explain(CURLE_SSL_CONNECT_ERROR, "tlsv1 alert unknown ca", facts, client).message(),
            "the server at https://images.example/disk.img rejected the TLS client certificate "
            "'CN=cdi-test client' from " +
                certs.client.cert +
                " (the TLS handshake failed: tlsv1 alert unknown ca): it is issued by "
                "'CN=cdi-test Root CA', and the server accepts certificates issued by "
                "'CN=cdi-test Other CA'; give such a certificate and its key (--client-cert and "
                "--client-key)");
  // Issued by a CA the server accepts: the reason is elsewhere.
  facts.accepted_client_cas = {test::TestCertificates::kCaName};
  EXPECT_NE(ClientCertificateRejected(kUrl, "evidence", facts, client)
                .message()
                .find("a CA the server accepts; check that the certificate is meant for client "
                      "authentication"),
            std::string::npos);
  // From PEM text (a Secret), the advice names no flags.
  client.from_file = false;
  client.origin = " (PEM text)";
  facts.accepted_client_cas.clear();
  Status pem = ClientCertificateRejected(kUrl, "evidence", facts, client);
  EXPECT_NE(pem.message().find("'CN=cdi-test client' (PEM text) (evidence)"), std::string::npos)
      << pem.message();
  EXPECT_EQ(pem.message().find("--client-cert"), std::string::npos) << pem.message();
}

TEST(TlsErrorsTest, AnExpiredClientCertificateIsSaidToBeExpired) {
  ClientCertificate client = FromFile(test::SharedTestCertificates().expired.cert);
  ASSERT_TRUE(client.configured());
  HandshakeFacts facts;
  Status status = ClientCertificateRejected(kUrl, "evidence", facts, client);
  EXPECT_NE(status.message().find(": it expired on "), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("; renew it"), std::string::npos) << status.message();
}

TEST(TlsErrorsTest, RejectionWithoutACertificateIsAMissingOne) {
  HandshakeFacts facts;
  EXPECT_EQ(ClientCertificateRejected(kUrl, "evidence", facts, ClientCertificate{}).message(),
            ClientCertificateMissing(kUrl, "evidence", facts).message());
}

TEST(TlsErrorsTest, NginxRefusalsAreReadOnlyWhenTheHandshakeAskedForACertificate) {
  const std::string page = "<html><center>No required SSL certificate was sent</center></html>";
  HandshakeFacts facts;
  // Not asked: an ordinary HTTP error, whatever the page says.
  EXPECT_FALSE(ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", page, kUrl, facts,
                                               ClientCertificate{}));
  facts.client_certificate_asked = true;
  EXPECT_FALSE(ExplainClientCertificateRefusal(403, "HTTP 403 Forbidden", page, kUrl, facts,
                                               ClientCertificate{}));
  std::optional<Status> missing = ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", page,
                                                                  kUrl, facts, ClientCertificate{});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->code(), ErrorCode::kTls);
  EXPECT_FALSE(missing->retryable());
  EXPECT_NE(missing->message().find(
                "none is configured (HTTP 400 \"No required SSL certificate was sent\")"),
            std::string::npos)
      << missing->message();
  // Asked, none configured, any 400: the missing certificate is the likely cause.
  missing = ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", "<html/>", kUrl, facts,
                                            ClientCertificate{});
  ASSERT_TRUE(missing);
  EXPECT_NE(missing->message().find(
                "(it asked for one in the TLS handshake, then answered HTTP 400 Bad Request)"),
            std::string::npos)
      << missing->message();
  // Configured: only nginx's words make it a refusal.
  ClientCertificate client = FromFile(test::SharedTestCertificates().client.cert);
  EXPECT_FALSE(
      ExplainClientCertificateRefusal(400, "HTTP 400 Bad Request", "<html/>", kUrl, facts, client));
  std::optional<Status> rejected = ExplainClientCertificateRefusal(
      400, "HTTP 400 Bad Request", "<h1>The SSL certificate error</h1>", kUrl, facts, client);
  ASSERT_TRUE(rejected);
  EXPECT_NE(rejected->message().find("rejected the TLS client certificate 'CN=cdi-test client'"),
            std::string::npos)
      << rejected->message();
}

TEST(TlsErrorsTest, IsTlsFailureSeparatesTlsFromOtherFailures) {
  EXPECT_TRUE(IsTlsFailure(CURLE_SSL_CONNECT_ERROR));
  EXPECT_TRUE(IsTlsFailure(CURLE_PEER_FAILED_VERIFICATION));
  EXPECT_TRUE(IsTlsFailure(CURLE_SSL_CLIENTCERT));
  EXPECT_FALSE(IsTlsFailure(CURLE_OK));
  EXPECT_FALSE(IsTlsFailure(CURLE_COULDNT_CONNECT));
  EXPECT_FALSE(IsTlsFailure(CURLE_OPERATION_TIMEDOUT));
}

}  // namespace
}  // namespace cdi::tls
