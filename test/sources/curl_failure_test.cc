// The one conversion of a failed curl transfer into Status, without a
// network: each CURLcode with the facts curl gives, the code, retryability
// and message users see. Host name checks are answered by a fake.
#include "sources/http/curl_failure.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "sources/http/proxy.h"
#include "sources/url.h"
#include "tls/tls_config.h"

namespace cdi::importer {
namespace {

constexpr const char* kUrl = "https://alice:s3cret@images.example.com/disk.img?sig=abc";
constexpr const char* kRedacted = "https://images.example.com/disk.img";

class CurlFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<HttpUrl> url = ParseHttpUrl(kUrl);
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
    Result<std::unique_ptr<tls::CurlTls>> tls = tls::CurlTls::Create(TlsSettings());
    ASSERT_TRUE(tls.ok()) << tls.status().ToString();
    tls_ = std::move(tls).value();
  }

  // Goes through the proxy http://bob:pr0xy@proxy.example:3128 from now on.
  void UseProxy(std::string_view proxy_url = "http://bob:pr0xy@proxy.example:3128") {
    Result<Proxy> proxy = ParseProxy(proxy_url, "https_proxy");
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = *proxy;
  }

  Status Map(CURLcode code, CurlFailureFacts facts = {}) {
    facts.code = code;
    CurlFailureContext context{
        .request = url_,
        .proxy = proxy_ ? &*proxy_ : nullptr,
        .network = network_,
        .tls = *tls_,
        .check_host_name =
            [this](const std::string& host) {
              checked_hosts_.push_back(host);
              return name_check_;
            },
    };
    Status status = CurlFailure(facts, context);
    EXPECT_FALSE(status.ok());
    // Whatever the failure, no secret of the URL or the proxy is in it.
    for (std::string_view secret : {"s3cret", "alice", "sig=", "pr0xy", "bob"}) {
      EXPECT_EQ(status.message().find(secret), std::string::npos)
          << secret << " in: " << status.message();
    }
    return status;
  }

  HttpUrl url_;
  std::optional<Proxy> proxy_;
  NetworkSettings network_;
  std::unique_ptr<tls::CurlTls> tls_;
  NameCheck name_check_ = NameCheck::kDoesNotExist;
  std::vector<std::string> checked_hosts_;
};

TEST_F(CurlFailureTest, AbortsAreCancellation) {
  Status status = Map(CURLE_ABORTED_BY_CALLBACK);
  EXPECT_EQ(status.code(), ErrorCode::kCancelled);
  EXPECT_EQ(status.message(), std::string("cancelled while connecting to ") + kRedacted);
  status = Map(CURLE_WRITE_ERROR, {.published = true});
  EXPECT_EQ(status.code(), ErrorCode::kCancelled);
  EXPECT_EQ(status.message(), std::string("cancelled while downloading ") + kRedacted);
}

TEST_F(CurlFailureTest, CurlThatCannotRunIsInternal) {
  EXPECT_EQ(Map(CURLE_FAILED_INIT).code(), ErrorCode::kInternal);
  Status status = Map(CURLE_OUT_OF_MEMORY);
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
  EXPECT_EQ(status.message(), std::string("out of memory downloading ") + kRedacted);
}

TEST_F(CurlFailureTest, AStallSaysTheLimitAndHowFarItGot) {
  network_.stall_bytes_per_second = 2048;
  network_.stall_window = std::chrono::seconds(30);
  Status status =
      Map(CURLE_OPERATION_TIMEDOUT, {.stalled = true, .published = true, .progress = {10, 100}});
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), std::string("stalled: less than 2048 bytes/s for 30 s, after 10 of "
                                          "100 bytes from ") +
                                  kRedacted);
}

TEST_F(CurlFailureTest, AHostThatDoesNotExistIsNotRetried) {
  Status status = Map(CURLE_COULDNT_RESOLVE_HOST);
  EXPECT_EQ(checked_hosts_, std::vector<std::string>{"images.example.com"});
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), std::string("cannot resolve host name 'images.example.com' of ") +
                                  kRedacted + ": no such host");

  name_check_ = NameCheck::kMayResolveLater;
  status = Map(CURLE_COULDNT_RESOLVE_HOST);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), std::string("cannot resolve host name 'images.example.com' of ") +
                                  kRedacted + ": the name server did not answer");
}

TEST_F(CurlFailureTest, ConnectFailuresNameTheEndpoint) {
  Status status = Map(CURLE_COULDNT_CONNECT, {.os_errno = ECONNREFUSED});
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(),
            std::string("connection refused by images.example.com:443 (") + kRedacted + ")");
  status = Map(CURLE_COULDNT_CONNECT, {.os_errno = EHOSTUNREACH});
  EXPECT_EQ(status.message(),
            std::string("no route to images.example.com:443 (") + kRedacted + ")");
  // Curl's own message, any URL in it redacted.
  status = Map(CURLE_COULDNT_CONNECT,
               {.curl_message = "Failed to connect to https://alice:s3cret@x/y?sig=1 port 443\n"});
  EXPECT_EQ(status.message(), std::string("cannot connect to images.example.com:443 (") +
                                  kRedacted + "): Failed to connect to https://x/y port 443");
}

TEST_F(CurlFailureTest, TimeoutsShortBodiesAndEmptyReplies) {
  network_.connect_timeout = std::chrono::seconds(7);
  Status status = Map(CURLE_OPERATION_TIMEDOUT);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), std::string("connecting to images.example.com:443 timed out after "
                                          "7 s (") +
                                  kRedacted + ")");
  status = Map(CURLE_PARTIAL_FILE, {.progress = {5, 9}});
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(),
            std::string("connection closed early: received 5 of 9 bytes from ") + kRedacted);
  status = Map(CURLE_GOT_NOTHING);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(),
            std::string("the server closed the connection without answering (") + kRedacted + ")");
}

TEST_F(CurlFailureTest, ResetConnectionsSayHowFarTheyGot) {
  Status status = Map(CURLE_RECV_ERROR, {.os_errno = ECONNRESET, .progress = {10, std::nullopt}});
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), std::string("connection reset by images.example.com:443 after 10 "
                                          "bytes (") +
                                  kRedacted + ")");
  status = Map(CURLE_SEND_ERROR, {.curl_message = "broken", .progress = {1, 2}});
  EXPECT_EQ(status.message(), std::string("connection to images.example.com:443 failed after 1 "
                                          "of 2 bytes (") +
                                  kRedacted + "): broken");
}

TEST_F(CurlFailureTest, AnInvalidResponseIsNotRetried) {
  for (CURLcode code :
       {CURLE_WEIRD_SERVER_REPLY, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_CONTENT_ENCODING}) {
    Status status = Map(code, {.curl_message = "nonsense"});
    EXPECT_EQ(status.code(), ErrorCode::kNetwork);
    EXPECT_FALSE(status.retryable());
    EXPECT_EQ(status.message(),
              std::string("invalid HTTP response from ") + kRedacted + ": nonsense");
  }
}

TEST_F(CurlFailureTest, HeadersBeyondLibcurlsLimitsAreTheServersAndNotRetried) {
  // libcurl's buffer of one header line is what runs out while headers arrive.
  Status status = Map(CURLE_OUT_OF_MEMORY, {.in_headers = true});
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), std::string("the response from ") + kRedacted +
                                  " has a header line longer than libcurl's limit of 100 KiB; the "
                                  "server sends a broken response, not tried again: fix the "
                                  "server, or whatever adds the headers between it and this "
                                  "importer");
  // The limit in force is the one libcurl names.
  status = Map(CURLE_RECV_ERROR,
               {.curl_message = "Too large response headers: 308086 > 307200", .in_headers = true});
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_TRUE(status.message().starts_with(std::string("the response from ") + kRedacted +
                                           " has headers larger than libcurl's limit of 300 KiB "
                                           "in all; "))
      << status.message();
  // Out of memory while a body streams is this machine's.
  status = Map(CURLE_OUT_OF_MEMORY, {.published = true});
  EXPECT_EQ(status.code(), ErrorCode::kInternal);
}

TEST_F(CurlFailureTest, TlsFailuresAreTls) {
  for (CURLcode code : {CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR}) {
    ASSERT_TRUE(tls::CurlTls::IsTlsFailure(code));
    Status status = Map(code, {.curl_message = "handshake went wrong"});
    EXPECT_EQ(status.code(), ErrorCode::kTls) << status.ToString();
    EXPECT_NE(status.message().find(kRedacted), std::string::npos) << status.message();
  }
}

TEST_F(CurlFailureTest, AnythingElseIsRetriedWithCurlsCode) {
  Status status = Map(CURLE_TOO_MANY_REDIRECTS, {.curl_message = "odd"});
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(),
            std::string("downloading ") + kRedacted + " failed: odd (curl error 47)");
  // Without a message from curl, curl's text for the code.
  status = Map(CURLE_TOO_MANY_REDIRECTS);
  EXPECT_NE(status.message().find(curl_easy_strerror(CURLE_TOO_MANY_REDIRECTS)), std::string::npos)
      << status.message();
}

TEST_F(CurlFailureTest, AProxyThatRefusesTheTunnelIsNamedWithItsStatus) {
  UseProxy();
  Status status = Map(CURLE_COULDNT_CONNECT, {.connect_code = 407});
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "the proxy " + proxy_->redacted +
                " refused to open a tunnel to images.example.com:443 for " + kRedacted +
                ": HTTP 407 Proxy Authentication Required; give the proxy's credentials in its "
                "URL (http://user:password@host:port, in https_proxy)");
  status = Map(CURLE_RECV_ERROR, {.connect_code = 503});
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "the proxy " + proxy_->redacted +
                                  " refused to open a tunnel to images.example.com:443 for " +
                                  kRedacted + ": HTTP 503 Service Unavailable");
}

TEST_F(CurlFailureTest, ProxyConnectFailuresNameTheProxyAndItsSetting) {
  UseProxy();
  Status status = Map(CURLE_COULDNT_RESOLVE_PROXY);
  EXPECT_EQ(checked_hosts_, std::vector<std::string>{"proxy.example"});
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "cannot resolve the host name 'proxy.example' of the proxy " +
                                  proxy_->redacted + " (from https_proxy) for " + kRedacted +
                                  ": no such host");
  name_check_ = NameCheck::kMayResolveLater;
  EXPECT_TRUE(Map(CURLE_COULDNT_RESOLVE_PROXY).retryable());

  status = Map(CURLE_COULDNT_CONNECT, {.os_errno = ECONNREFUSED});
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "cannot connect to the proxy " + proxy_->redacted +
                                  " (from https_proxy): connection refused (for " + kRedacted +
                                  "); check the proxy settings");
  status = Map(CURLE_COULDNT_CONNECT, {.os_errno = ENETUNREACH});
  EXPECT_NE(status.message().find("no route to proxy.example:3128"), std::string::npos)
      << status.message();
}

TEST_F(CurlFailureTest, AProxyTimeoutBeforeAnyResponseIsTheProxys) {
  UseProxy();
  network_.connect_timeout = std::chrono::seconds(3);
  Status status = Map(CURLE_OPERATION_TIMEDOUT);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "connecting to the proxy " + proxy_->redacted +
                                  " timed out after 3 s (for " + kRedacted + ")");
  // Once a response arrived, the time out is the server's.
  status = Map(CURLE_OPERATION_TIMEDOUT, {.response_status = 200});
  EXPECT_EQ(status.message(), std::string("connecting to images.example.com:443 timed out after "
                                          "3 s (") +
                                  kRedacted + ")");
}

TEST_F(CurlFailureTest, FailuresThroughAProxySaySo) {
  UseProxy();
  Status status = Map(CURLE_GOT_NOTHING);
  EXPECT_EQ(status.message(), std::string("the server closed the connection without answering (") +
                                  kRedacted + ") (through the proxy " + proxy_->redacted + ")");
}

TEST(ShortBodyErrorTest, WithAndWithoutADeclaredLength) {
  Status status = ShortBodyError({3, 8}, "http://host/x");
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "connection closed early: received 3 of 8 bytes from http://host/x");
  status = ShortBodyError({3, std::nullopt}, "http://host/x");
  EXPECT_EQ(status.message(),
            "connection closed early: received 3 bytes from http://host/x before the end of the "
            "chunked body");
}

TEST(SanitizeCurlMessageTest, TrimsAndRedactsEveryUrl) {
  EXPECT_EQ(SanitizeCurlMessage("  plain words\n"), "plain words");
  EXPECT_EQ(SanitizeCurlMessage("from http://u:p@a/x?q=1 to https://b/y#t"),
            "from http://a/x to https://b/y");
  EXPECT_EQ(SanitizeCurlMessage(""), "");
}

}  // namespace
}  // namespace cdi::importer
