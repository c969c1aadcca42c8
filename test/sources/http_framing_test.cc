// Responses whose framing is ambiguous (conflicting Content-Lengths, bytes
// beyond the declared length) fail and never truncate; and every failure
// that another attempt cannot heal fails at once, retries on, each against
// a real server of its own (the fault server, nginx with TLS).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sources/http/http_source.h"
#include "sources/source.h"
#include "test/sources/source_test_util.h"
#include "test/support/certs.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

using test::FaultServer;
using test::RecordedRequest;
using testing::Fetch;

constexpr size_t kSmallSize = 100000;
// Small enough to arrive in one read with the headers (see below).
constexpr size_t kTinySize = 4096;
const std::string& SmallBytes() {
  static const std::string bytes = test::RandomBytes(kSmallSize, 43);
  return bytes;
}

// The defaults of every face: 5 retries, the first after 1 s, doubling. A
// failure that were retried would take 15 s or more and send more requests.
SourceSpec WithDefaultRetries(const std::string& url) {
  SourceSpec spec;
  spec.url = url;
  EXPECT_EQ(spec.network.max_retries, 5);
  EXPECT_EQ(spec.network.retry_initial_delay, std::chrono::seconds(1));
  return spec;
}

std::vector<std::string> Ranges(const std::vector<RecordedRequest>& requests) {
  std::vector<std::string> ranges;
  for (const auto& request : requests) ranges.push_back(request.Header("range"));
  return ranges;
}

class FramingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::WriteFile(root_.File("small.img"), SmallBytes());
    test::WriteFile(root_.File("tiny.img"), SmallBytes().substr(0, kTinySize));
  }
  test::TempDir root_;
};

// ---------------------------------------------------------------------------
// Ambiguous framing

TEST_F(FramingTest, ConflictingContentLengthsFailNamingTheHeaders) {
  // The body is 100000 bytes and says so; a second header says 50000. Taking
  // either would be a guess: a truncated image, or one with a stranger's tail.
  FaultServer server(root_.path(), R"({"/dup.img": {"file": "small.img",
      "header_lines": [["Content-Length", "50000"]]}})");
  std::string body;
  Status status = Fetch(WithDefaultRetries(server.Url("/dup.img")), &body);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "conflicting Content-Length headers from " + server.Url("/dup.img") +
                ": 'Content-Length: 100000', 'Content-Length: 50000'; the end of the body is "
                "ambiguous (RFC 9112 section 6.3), so none of it is used: the server, or a "
                "proxy between, sends broken responses");
  EXPECT_TRUE(body.empty());
  EXPECT_EQ(server.RequestsFor("/dup.img").size(), 1u);
}

TEST_F(FramingTest, AgreeingDuplicateContentLengthsAreOneLength) {
  FaultServer server(root_.path(), R"({"/twice.img": {"file": "small.img",
      "header_lines": [["Content-Length", "100000"]]}})");
  std::string body;
  Status status = Fetch(WithDefaultRetries(server.Url("/twice.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
}

TEST_F(FramingTest, ConflictingContentLengthsOnAResumedRangeFail) {
  // The first response is sound and drops after 30000 bytes; the answer to
  // "Range: bytes=30000-" declares two lengths.
  FaultServer server(root_.path(), R"({"/resume.img": {"file": "small.img", "etag": "\"v1\"",
      "close_after": 30000, "times": 1,
      "then": {"file": "small.img", "etag": "\"v1\"",
               "header_lines": [["Content-Length", "20000"]]}}})");
  SourceSpec spec = WithDefaultRetries(server.Url("/resume.img"));
  spec.network.retry_initial_delay = std::chrono::milliseconds(10);
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "conflicting Content-Length headers from " + server.Url("/resume.img") +
                ": 'Content-Length: 70000', 'Content-Length: 20000'; the end of the body is "
                "ambiguous (RFC 9112 section 6.3), so none of it is used: the server, or a "
                "proxy between, sends broken responses");
  EXPECT_EQ(Ranges(server.RequestsFor("/resume.img")),
            (std::vector<std::string>{"", "bytes=30000-"}));
}

// libcurl reads a body no further than its declared length: it sees bytes
// beyond it only when they arrive in the read that carries the headers, as
// they do here (one write of headers, body and excess). Later ones it never
// reads, and closes the connection.
TEST_F(FramingTest, BytesBeyondTheContentLengthFail) {
  // 4096 bytes declared and sent, then 100 more before the server closes.
  FaultServer server(root_.path(), R"({"/excess.img": {"file": "tiny.img", "excess": 100}})");
  Status status = Fetch(WithDefaultRetries(server.Url("/excess.img")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the server sent bytes beyond its 'Content-Length: 4096' for " +
                                  server.Url("/excess.img") +
                                  "; the end of the body is ambiguous (RFC 9112 section 6.3), so "
                                  "none of it is used: the server, or a proxy between, sends "
                                  "broken responses");
  EXPECT_EQ(server.RequestsFor("/excess.img").size(), 1u);
}

TEST_F(FramingTest, BytesBeyondAResumedRangeFail) {
  FaultServer server(root_.path(), R"({"/resume.img": {"file": "tiny.img", "etag": "\"v1\"",
      "close_after": 4000, "times": 1,
      "then": {"file": "tiny.img", "etag": "\"v1\"", "excess": 10}}})");
  SourceSpec spec = WithDefaultRetries(server.Url("/resume.img"));
  spec.network.retry_initial_delay = std::chrono::milliseconds(10);
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the server sent bytes beyond its 'Content-Length: 96' for " +
                                  server.Url("/resume.img") +
                                  "; the end of the body is ambiguous (RFC 9112 section 6.3), so "
                                  "none of it is used: the server, or a proxy between, sends "
                                  "broken responses");
  EXPECT_EQ(Ranges(server.RequestsFor("/resume.img")),
            (std::vector<std::string>{"", "bytes=4000-"}));
}

// ---------------------------------------------------------------------------
// Oversized headers: the server's protocol error, never retried

TEST_F(FramingTest, AHeaderLineOverLibcurlsLimitFailsAtOnceNamingTheLimit) {
  FaultServer server(root_.path(), R"({"/big.img": {"file": "small.img",
      "filler_headers": {"count": 1, "bytes": 10485760}}})");
  Status status = Fetch(WithDefaultRetries(server.Url("/big.img")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the response from " + server.Url("/big.img") +
                                  " has a header line longer than libcurl's limit of 100 KiB; the "
                                  "server sends a broken response, not tried again: fix "
                                  "the server, or whatever adds the headers between it and this "
                                  "importer");
  EXPECT_EQ(server.RequestsFor("/big.img").size(), 1u);
}

TEST_F(FramingTest, HeadersOverLibcurlsTotalLimitFailAtOnceNamingTheLimit) {
  // 400 headers of 1000 bytes: each line is fine, all of them are not.
  FaultServer server(root_.path(), R"({"/many.img": {"file": "small.img",
      "filler_headers": {"count": 400, "bytes": 1000}}})");
  Status status = Fetch(WithDefaultRetries(server.Url("/many.img")));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the response from " + server.Url("/many.img") +
                                  " has headers larger than libcurl's limit of 300 KiB in all; "
                                  "the server sends a broken response, not tried again: "
                                  "fix the server, or whatever adds the headers between it and "
                                  "this importer");
  EXPECT_EQ(server.RequestsFor("/many.img").size(), 1u);
}

// ---------------------------------------------------------------------------
// Every permanent failure the source maps (CURLcode and HTTP status) fails
// after one attempt.

struct PermanentCase {
  std::string name;
  // The fault server's script for "/case"; "" for cases with no fault server.
  std::string script;
  ErrorCode code = ErrorCode::kNetwork;
  size_t requests = 1;  // requests the fault server receives for "/case"
  // A part of the message (besides the URL).
  std::string says;
};

std::vector<PermanentCase> FaultServerCases() {
  auto status = [](int code, const std::string& says) {
    return PermanentCase{"HTTP " + std::to_string(code),
                         R"({"/case": {"status": )" + std::to_string(code) + "}}",
                         ErrorCode::kNetwork, 1, says};
  };
  std::vector<PermanentCase> cases = {
      status(400, "HTTP 400 Bad Request"),
      status(401, "HTTP 401 Unauthorized"),
      status(403, "HTTP 403 Forbidden"),
      status(404, "HTTP 404 Not Found"),
      status(405, "HTTP 405 Method Not Allowed"),
      status(406, "HTTP 406 Not Acceptable"),
      status(407, "HTTP 407 Proxy Authentication Required"),
      status(410, "HTTP 410 Gone"),
      status(416, "HTTP 416"),
      status(451, "HTTP 451"),
      status(501, "HTTP 501 Not Implemented"),
      status(505, "HTTP 505"),
      {"206 to a request of the whole file",
       R"({"/case": {"status": 206, "file": "small.img"}})", ErrorCode::kNetwork, 1,
       "partial content for a request of the whole file"},
      {"a redirect without Location", R"({"/case": {"status": 300}})", ErrorCode::kNetwork, 1,
       "a redirect without a Location"},
      {"too many redirects", R"({"/case": {"redirect": "/case"}})", ErrorCode::kNetwork, 11,
       "too many redirects"},
      {"a redirect to a file: URL", R"({"/case": {"redirect": "file:///etc/passwd"}})",
       ErrorCode::kNetwork, 1, "redirect from"},
      {"an invalid Content-Length",
       R"({"/case": {"file": "small.img", "content_length": null,
                     "header_lines": [["Content-Length", "12abc"]]}})",
       ErrorCode::kNetwork, 1, "Content-Length"},
      {"conflicting Content-Lengths",
       R"({"/case": {"file": "small.img", "header_lines": [["Content-Length", "5"]]}})",
       ErrorCode::kNetwork, 1, "conflicting Content-Length headers"},
      {"bytes beyond the Content-Length", R"({"/case": {"file": "tiny.img", "excess": 1}})",
       ErrorCode::kNetwork, 1, "bytes beyond its 'Content-Length: 4096'"},
      {"a header line over libcurl's limit",
       R"({"/case": {"file": "small.img", "filler_headers": {"count": 1, "bytes": 200000}}})",
       ErrorCode::kNetwork, 1, "a header line longer than libcurl's limit"},
      {"headers over libcurl's limit",
       R"({"/case": {"file": "small.img", "filler_headers": {"count": 40, "bytes": 10000}}})",
       ErrorCode::kNetwork, 1, "headers larger than libcurl's limit"},
      {"a reply that is not HTTP (CURLE_UNSUPPORTED_PROTOCOL)",
       R"({"/case": {"raw": "hello\r\n\r\n"}})", ErrorCode::kNetwork, 1,
       "invalid HTTP response"},
      {"a malformed status line (CURLE_WEIRD_SERVER_REPLY)",
       R"({"/case": {"raw": "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"}})",
       ErrorCode::kNetwork, 1, "invalid HTTP response"},
  };
  return cases;
}

TEST_F(FramingTest, EveryPermanentFailureFailsAtOnceWithoutARetry) {
  for (const PermanentCase& c : FaultServerCases()) {
    SCOPED_TRACE(c.name);
    FaultServer server(root_.path(), c.script);
    auto start = std::chrono::steady_clock::now();
    Status status = Fetch(WithDefaultRetries(server.Url("/case")));
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(status.code(), c.code) << status.ToString();
    EXPECT_FALSE(status.retryable()) << status.ToString();
    EXPECT_NE(status.message().find(c.says), std::string::npos) << status.message();
    EXPECT_NE(status.message().find(server.Url("/case")), std::string::npos) << status.message();
    EXPECT_EQ(server.RequestsFor("/case").size(), c.requests);
    // Not retried: the first retry alone would wait at least half a second,
    // five of them over 15 s.
    EXPECT_LT(elapsed, std::chrono::seconds(5));
  }
}

TEST_F(FramingTest, PermanentFailuresWithoutAnHttpAnswerFailAtOnce) {
  const test::TestCertificates& certs = test::SharedTestCertificates();
  test::NginxServer tls_server({.root = root_.path(), .tls = certs.server});
  FaultServer proxy(root_.path());
  struct Case {
    std::string name;
    std::function<SourceSpec()> spec;
    ErrorCode code;
    std::string says;
  };
  std::vector<Case> cases = {
      {"a host name that does not exist (CURLE_COULDNT_RESOLVE_HOST)",
       [] { return WithDefaultRetries("http://no-such-host.invalid/disk.img"); },
       ErrorCode::kNetwork, "no such host"},
      {"an untrusted server certificate (CURLE_PEER_FAILED_VERIFICATION)",
       [&] { return WithDefaultRetries(tls_server.Url("/small.img")); }, ErrorCode::kTls,
       "unknown issuer"},
      {"a proxy name that does not exist (CURLE_COULDNT_RESOLVE_PROXY)",
       [&] {
         SourceSpec spec = WithDefaultRetries(tls_server.Url("/small.img"));
         spec.network.proxy.https_proxy = "http://no-such-proxy.invalid:3128";
         spec.network.proxy.no_proxy = "";  // not even 127.0.0.1 goes around it
         return spec;
       },
       ErrorCode::kNetwork, "no such host"},
      {"a proxy that refuses the tunnel (HTTP 403 to CONNECT)",
       [&] {
         SourceSpec spec = WithDefaultRetries("https://no-tunnel.example/disk.img");
         spec.network.proxy.https_proxy = proxy.Url("");
         return spec;
       },
       ErrorCode::kNetwork, "refused to open a tunnel"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto start = std::chrono::steady_clock::now();
    Status status = Fetch(c.spec());
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(status.code(), c.code) << status.ToString();
    EXPECT_FALSE(status.retryable()) << status.ToString();
    EXPECT_NE(status.message().find(c.says), std::string::npos) << status.message();
    EXPECT_LT(elapsed, std::chrono::seconds(5));
  }
  EXPECT_EQ(tls_server.AccessLog().size(), 0u);
  EXPECT_EQ(proxy.Requests().size(), 1u);
}

}  // namespace
}  // namespace cdi::importer
