// Retries and resumes of the HTTP source, against the fault server: every
// fault is a test of the outcome, the requests the server saw, and the bytes
// (sha256) or the exact error.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "sources/http/http_source.h"
#include "sources/source.h"
#include "test/sources/source_test_util.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

using std::chrono::milliseconds;
using test::FaultServer;
using test::RecordedRequest;
using test::SentResponse;
using testing::Fetch;
using testing::LogCapture;

constexpr size_t kImageSize = 9 * 1024 * 1024 + 12345;  // several times the source's buffer
constexpr size_t kSmallSize = 100000;

const std::string& ImageBytes() {
  static const std::string bytes = test::RandomBytes(kImageSize, 42);
  return bytes;
}
const std::string& SmallBytes() {
  static const std::string bytes = test::RandomBytes(kSmallSize, 43);
  return bytes;
}
// As long as small.img, other bytes: the same image changed on the server.
const std::string& ChangedBytes() {
  static const std::string bytes = test::RandomBytes(kSmallSize, 44);
  return bytes;
}

// Retries on, with waits short enough for tests.
SourceSpec Resilient(const std::string& url, int retries = 5) {
  SourceSpec spec;
  spec.url = url;
  spec.network.max_retries = retries;
  spec.network.retry_initial_delay = milliseconds(10);
  spec.network.retry_max_delay = milliseconds(40);
  spec.network.stall_window = std::chrono::seconds(1);
  return spec;
}

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::WriteFile(root_.File("disk.img"), ImageBytes());
    test::WriteFile(root_.File("small.img"), SmallBytes());
    test::WriteFile(root_.File("changed.img"), ChangedBytes());
  }

  // Reads `url`'s body through a resilient source; the status and the body.
  Status Download(const SourceSpec& spec, std::string* body) { return Fetch(spec, body); }

  test::TempDir root_;
};

std::vector<std::string> Ranges(const std::vector<RecordedRequest>& requests) {
  std::vector<std::string> ranges;
  for (const auto& request : requests) ranges.push_back(request.Header("range"));
  return ranges;
}

// ---------------------------------------------------------------------------
// Drops and stalls mid-body: resumed from the last byte, nothing twice

TEST_F(ResumeTest, ADropMidBodyResumesWithRangeAndIfRange) {
  FaultServer server(root_.path(), R"({"/disk.img": {"file": "disk.img", "etag": "\"v1\"",
                                       "close_after": 3145728, "times": 1,
                                       "then": {"file": "disk.img", "etag": "\"v1\""}}})");
  LogCapture log;
  std::string body;
  Status status = Download(Resilient(server.Url("/disk.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));

  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.img");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(Ranges(requests), (std::vector<std::string>{"", "bytes=3145728-"}));
  EXPECT_FALSE(requests[0].HasHeader("if-range"));
  EXPECT_EQ(requests[1].Header("if-range"), "\"v1\"");
  // Not one byte was sent twice.
  EXPECT_EQ(server.BytesSent("/disk.img", 2), kImageSize);
  EXPECT_NE(log.text().find("[warning] connection closed early: received 3145728 of " +
                            std::to_string(kImageSize) + " bytes from " + server.Url("/disk.img") +
                            "; retry 1 of 5 in "),
            std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find(", resuming at byte 3145728"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("[info] Downloaded " + std::to_string(kImageSize) + " bytes from " +
                            server.Url("/disk.img") + " in 2 requests (1 retry)"),
            std::string::npos)
      << log.text();
}

TEST_F(ResumeTest, ResetsAndAStallInOneDownloadAreEachResumed) {
  FaultServer server(root_.path(), R"({"/disk.img": {
      "file": "disk.img", "reset_after": 1048576, "times": 1,
      "then": {"file": "disk.img", "stall_after": 4194304, "times": 1,
               "then": {"file": "disk.img", "close_after": 8388608, "times": 1}}}})");
  std::string body;
  Status status = Download(Resilient(server.Url("/disk.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  std::vector<RecordedRequest> requests = server.RequestsFor("/disk.img");
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].Header("range"), "");
  // Each resume starts where the bytes received end: after a reset that may
  // be before the fault's offset (bytes in flight are lost), never after it.
  uint64_t previous = 0;
  const uint64_t faults[] = {1048576, 4194304, 8388608};
  for (size_t i = 1; i < requests.size(); ++i) {
    // A reset may even lose every byte of the first response: then the
    // second request asks for the whole image again.
    std::string range = requests[i].Header("range");
    uint64_t start = 0;
    if (!range.empty()) {
      ASSERT_TRUE(range.starts_with("bytes=") && range.ends_with("-")) << range;
      start = std::stoull(range.substr(6, range.size() - 7));
      EXPECT_GT(start, previous) << range;
    }
    EXPECT_LE(start, faults[i - 1]) << range;
    previous = start;
  }
  EXPECT_EQ(requests[2].Header("range"), "bytes=4194304-");  // after the stall: all arrived
  EXPECT_EQ(requests[3].Header("range"), "bytes=8388608-");
}

TEST_F(ResumeTest, AStallIsDetectedAndResumed) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "stall_after": 20000,
                                                      "times": 1}})");
  LogCapture log;
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_EQ(Ranges(server.RequestsFor("/small.img")),
            (std::vector<std::string>{"", "bytes=20000-"}));
  EXPECT_NE(log.text().find("[warning] stalled: less than 1024 bytes/s for 1 s, after 20000 of "
                            "100000 bytes from " +
                            server.Url("/small.img") + "; retry 1 of 5 in "),
            std::string::npos)
      << log.text();
}

TEST_F(ResumeTest, ADropBeforeTheFirstByteStartsAgainWithoutRange) {
  FaultServer server(root_.path(),
                     R"({"/small.img": {"file": "small.img", "close_after": 0, "times": 2}})");
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_EQ(Ranges(server.RequestsFor("/small.img")), (std::vector<std::string>{"", "", ""}));
}

TEST_F(ResumeTest, AChunkedBodyCutShortIsResumed) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "chunked": true,
                                                      "close_after": 5000, "times": 1,
                                                      "then": {"file": "small.img",
                                                               "chunked": true}}})");
  Result<std::unique_ptr<ByteSource>> source =
      OpenSource(Resilient(server.Url("/small.img")), nullptr);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->size(), std::nullopt);
  Result<std::string> body = testing::ReadAll(**source);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_TRUE(*body == SmallBytes());
  EXPECT_EQ(Ranges(server.RequestsFor("/small.img")),
            (std::vector<std::string>{"", "bytes=5000-"}));
}

TEST_F(ResumeTest, ADropAfterARedirectResumesAtTheFinalUrl) {
  FaultServer server(root_.path(), R"({"/latest": {"redirect": "/v2/small.img"},
                                       "/v2/small.img": {"file": "small.img", "close_after": 1000,
                                                         "times": 1}})");
  std::string body;
  Status status = Download(Resilient(server.Url("/latest")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].path, "/latest");
  EXPECT_EQ(requests[1].path, "/v2/small.img");
  EXPECT_EQ(requests[2].path, "/v2/small.img");
  EXPECT_EQ(requests[2].Header("range"), "bytes=1000-");
}

TEST_F(ResumeTest, CredentialsGoWithEveryResume) {
  FaultServer server(root_.path(),
                     R"({"/small.img": {"file": "small.img", "reset_after": 30000, "times": 1}})");
  SourceSpec spec = Resilient(server.Url("/small.img"));
  spec.auth.user = "importer";
  spec.auth.password = "pw";
  spec.auth.headers = {"X-Token: t0k"};
  std::string body;
  Status status = Download(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& request : requests) {
    EXPECT_EQ(request.Header("authorization"), "Basic aW1wb3J0ZXI6cHc=");
    EXPECT_EQ(request.Header("x-token"), "t0k");
  }
}

// ---------------------------------------------------------------------------
// The budget: drops that make progress go on, drops that do not give up

TEST_F(ResumeTest, DropsThatKeepMakingProgressNeverExhaustTheRetries) {
  // Four drops, with only two retries allowed per outage: each resume gets
  // further, so each one ends an outage.
  FaultServer server(root_.path(),
                     R"({"/small.img": {"file": "small.img", "close_every": 20000}})");
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img"), 2), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_EQ(Ranges(server.RequestsFor("/small.img")),
            (std::vector<std::string>{"", "bytes=20000-", "bytes=40000-", "bytes=60000-",
                                      "bytes=80000-"}));
  EXPECT_EQ(server.BytesSent("/small.img", 5), kSmallSize);
}

TEST_F(ResumeTest, ADropAlwaysAtTheSameByteGivesUpAfterTheRetries) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "close_after": 1000}})");
  Status status = Download(Resilient(server.Url("/small.img"), 3), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  const std::string prefix = "giving up after 3 retries in ";
  EXPECT_EQ(status.message().substr(0, prefix.size()), prefix) << status.message();
  EXPECT_TRUE(
      status.message().ends_with(": connection closed early: received 1000 of 100000 "
                                 "bytes from " +
                                 server.Url("/small.img")))
      << status.message();
  EXPECT_EQ(Ranges(server.RequestsFor("/small.img")),
            (std::vector<std::string>{"", "bytes=1000-", "bytes=1000-", "bytes=1000-"}));
}

TEST_F(ResumeTest, ServiceUnavailableTwiceThenServed) {
  FaultServer server(root_.path(),
                     R"({"/small.img": {"file": "small.img", "status": 503, "times": 2}})");
  LogCapture log;
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_EQ(server.RequestsFor("/small.img").size(), 3u);
  EXPECT_EQ(testing::CountOccurrences(log.text(), "[warning] HTTP 503 Service Unavailable from " +
                                                      server.Url("/small.img") + "; retry "),
            2u)
      << log.text();
  EXPECT_NE(log.text().find("; retry 2 of 5 in "), std::string::npos) << log.text();
}

TEST_F(ResumeTest, EveryTransientStatusIsRetriedEveryPermanentOneIsNot) {
  for (int code : {408, 429, 500, 502, 503, 504}) {
    const std::string path = "/s" + std::to_string(code);
    FaultServer server(root_.path(), "{\"" + path + "\": {\"file\": \"small.img\", \"status\": " +
                                         std::to_string(code) + ", \"times\": 1}}");
    std::string body;
    Status status = Download(Resilient(server.Url(path)), &body);
    ASSERT_TRUE(status.ok()) << code << ": " << status.ToString();
    EXPECT_TRUE(body == SmallBytes()) << code;
    EXPECT_EQ(server.RequestsFor(path).size(), 2u) << code;
  }
  for (int code : {400, 401, 403, 404, 410, 501}) {
    const std::string path = "/s" + std::to_string(code);
    FaultServer server(root_.path(), "{\"" + path + "\": {\"file\": \"small.img\", \"status\": " +
                                         std::to_string(code) + ", \"times\": 1}}");
    Status status = Download(Resilient(server.Url(path)), nullptr);
    EXPECT_EQ(status.code(), ErrorCode::kNetwork) << code;
    EXPECT_FALSE(status.retryable()) << code;
    EXPECT_TRUE(status.message().starts_with("HTTP " + std::to_string(code) + " "))
        << status.message();
    EXPECT_EQ(server.RequestsFor(path).size(), 1u) << code;
  }
}

TEST_F(ResumeTest, RetryAfterSetsTheWait) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "status": 429,
                                       "headers": {"Retry-After": "1"}, "times": 1}})");
  LogCapture log;
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_EQ(server.RequestsFor("/small.img").size(), 2u);
  EXPECT_NE(
      log.text().find("[warning] HTTP 429 Too Many Requests from " + server.Url("/small.img") +
                      "; retry 1 of 5 in 1.0 s (as Retry-After asks)"),
      std::string::npos)
      << log.text();
}

TEST_F(ResumeTest, RetryAfterBeyondTheBudgetFailsAtOnce) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "status": 503,
                                       "headers": {"Retry-After": "3600"}}})");
  SourceSpec spec = Resilient(server.Url("/small.img"));
  spec.network.retry_budget = std::chrono::seconds(60);
  Status status = Download(spec, nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(),
            "giving up: the server asks to retry after 3600 s, beyond the retry budget of 60 s: "
            "HTTP 503 Service Unavailable from " +
                server.Url("/small.img"));
  EXPECT_EQ(server.RequestsFor("/small.img").size(), 1u);
}

TEST_F(ResumeTest, TheTimeBudgetEndsAnOutage) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "status": 502}})");
  SourceSpec spec = Resilient(server.Url("/small.img"), 1000);
  spec.network.retry_budget = milliseconds(1500);
  spec.network.retry_initial_delay = milliseconds(200);
  spec.network.retry_max_delay = milliseconds(400);
  Status status = Download(spec, nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  const std::string prefix = "giving up after ";
  const std::string suffix =
      " retries: the retry budget of 1.5 s would be spent: HTTP 502 Bad "
      "Gateway from " +
      server.Url("/small.img");
  EXPECT_TRUE(status.message().starts_with(prefix) && status.message().ends_with(suffix))
      << status.message();
  size_t requests = server.RequestsFor("/small.img").size();
  EXPECT_GE(requests, 3u);
  EXPECT_LT(requests, 20u);
}

TEST_F(ResumeTest, ConnectionRefusedIsRetriedThenReported) {
  const uint16_t port = test::UnusedPort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/small.img";
  LogCapture log;
  Status status = Download(Resilient(url, 2), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  const std::string cause =
      "connection refused by 127.0.0.1:" + std::to_string(port) + " (" + url + ")";
  EXPECT_TRUE(status.message().starts_with("giving up after 2 retries in ") &&
              status.message().ends_with(": " + cause))
      << status.message();
  EXPECT_EQ(testing::CountOccurrences(log.text(), "[warning] " + cause + "; retry "), 2u)
      << log.text();
}

// ---------------------------------------------------------------------------
// Servers that do not resume properly

TEST_F(ResumeTest, AServerIgnoringRangeIsReadAgainAndTheBytesReceivedSkipped) {
  FaultServer server(root_.path(), R"({"/disk.img": {"file": "disk.img", "ranges": false,
                                       "close_after": 3145728, "times": 1,
                                       "then": {"file": "disk.img", "ranges": false}}})");
  LogCapture log;
  std::string body;
  Status status = Download(Resilient(server.Url("/disk.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  EXPECT_EQ(Ranges(server.RequestsFor("/disk.img")),
            (std::vector<std::string>{"", "bytes=3145728-"}));
  EXPECT_EQ(server.BytesSent("/disk.img", 2), kImageSize + 3145728);
  EXPECT_NE(log.text().find("[warning] " + server.Url("/disk.img") +
                            " does not serve ranges: downloading the image from its start again "
                            "and skipping the 3145728 bytes already received"),
            std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find("(1 retry, 3145728 bytes downloaded twice)"), std::string::npos)
      << log.text();
}

TEST_F(ResumeTest, AcceptRangesNoneMeansNoRangeIsAsked) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "ranges": false,
                                       "headers": {"Accept-Ranges": "none"},
                                       "reset_after": 40000, "times": 1,
                                       "then": {"file": "small.img", "ranges": false}}})");
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  EXPECT_EQ(Ranges(server.RequestsFor("/small.img")), (std::vector<std::string>{"", ""}));
}

TEST_F(ResumeTest, AServerIgnoringRangeWithoutValidatorsCannotBeResumed) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "ranges": false,
                                       "etag": false, "last_modified": false,
                                       "close_after": 30000}})");
  Status status = Download(Resilient(server.Url("/small.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "cannot resume after 30000 of 100000 bytes from " + server.Url("/small.img") +
                ": the server sends the whole image again (HTTP 200, it does not serve ranges) "
                "and gives no ETag or Last-Modified to show that it is the same image; import it "
                "again");
  EXPECT_EQ(server.RequestsFor("/small.img").size(), 2u);
}

TEST_F(ResumeTest, AWrongContentRangeIsRefused) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "close_after": 1000,
                                       "times": 1, "then": {"file": "small.img",
                                       "content_range": "bytes 0-98999/100000"}}})");
  Status status = Download(Resilient(server.Url("/small.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the server answered the request for bytes 1000- of " +
                                  server.Url("/small.img") +
                                  " with Content-Range 'bytes 0-98999/100000', not the rest of "
                                  "the image; cannot resume");
  EXPECT_EQ(server.RequestsFor("/small.img").size(), 2u);
}

TEST_F(ResumeTest, AMissingContentRangeIsRefused) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "close_after": 1000,
                                       "times": 1, "then": {"file": "small.img", "status": 206}}})");
  Status status = Download(Resilient(server.Url("/small.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(), "the server answered the request for bytes 1000- of " +
                                  server.Url("/small.img") +
                                  " with no Content-Range; cannot resume");
}

TEST_F(ResumeTest, AnImageChangedBetweenRequestsIsNeverSpliced) {
  // The server honours If-Range: the changed image comes whole, with its new ETag.
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "etag": "\"one\"",
                                       "close_after": 1000, "times": 1,
                                       "then": {"file": "changed.img", "etag": "\"two\""}}})");
  Status status = Download(Resilient(server.Url("/small.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "the image at " + server.Url("/small.img") +
                                  " changed while it was being downloaded (its ETag was \"one\", "
                                  "now \"two\") after 1000 bytes; import it again");
  std::vector<RecordedRequest> requests = server.RequestsFor("/small.img");
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("if-range"), "\"one\"");
  std::vector<SentResponse> responses = server.WaitForResponses(2);
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[1].status, 200);
}

TEST_F(ResumeTest, AnImageChangedBehindAServerIgnoringIfRangeIsNeverSpliced) {
  // This server sends the range of the new image anyway; its ETag tells.
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "etag": "\"one\"",
                                       "close_after": 1000, "times": 1,
                                       "then": {"file": "changed.img", "etag": "\"two\"",
                                                "if_range": false}}})");
  Status status = Download(Resilient(server.Url("/small.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(), "the image at " + server.Url("/small.img") +
                                  " changed while it was being downloaded (its ETag was \"one\", "
                                  "now \"two\") after 1000 bytes; import it again");
  std::vector<SentResponse> responses = server.WaitForResponses(2);
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[1].status, 206);
}

TEST_F(ResumeTest, AChangedLastModifiedIsAChangedImage) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "etag": false,
                                       "last_modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                                       "close_after": 1000, "times": 1,
                                       "then": {"file": "changed.img", "etag": false,
                                                "last_modified": "Tue, 02 Jan 2024 00:00:00 GMT"}}})");
  Status status = Download(Resilient(server.Url("/small.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_EQ(status.message(), "the image at " + server.Url("/small.img") +
                                  " changed while it was being downloaded (it was last modified "
                                  "Mon, 01 Jan 2024 00:00:00 GMT, now Tue, 02 Jan 2024 00:00:00 "
                                  "GMT) after 1000 bytes; import it again");
  EXPECT_EQ(server.RequestsFor("/small.img")[1].Header("if-range"),
            "Mon, 01 Jan 2024 00:00:00 GMT");
}

TEST_F(ResumeTest, ALengthThatLiedEndsInRangeNotSatisfiable) {
  // 150000 bytes announced, 100000 sent: the rest does not exist.
  FaultServer server(root_.path(),
                     R"({"/liar.img": {"file": "small.img", "content_length": 150000}})");
  Status status = Download(Resilient(server.Url("/liar.img")), nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "cannot resume after 100000 of 150000 bytes from " +
                                  server.Url("/liar.img") +
                                  ": the server answered HTTP 416 Range Not Satisfiable, so the "
                                  "image on the server is shorter than it was; import it again");
  EXPECT_EQ(Ranges(server.RequestsFor("/liar.img")),
            (std::vector<std::string>{"", "bytes=100000-"}));
}

TEST_F(ResumeTest, HeadRefusedDoesNotMatterOnlyGetIsUsed) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "head_status": 405,
                                       "close_after": 50000, "times": 1,
                                       "then": {"file": "small.img", "head_status": 405}}})");
  std::string body;
  Status status = Download(Resilient(server.Url("/small.img")), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == SmallBytes());
  std::vector<RecordedRequest> requests = server.Requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& request : requests) EXPECT_EQ(request.method, "GET");
}

// ---------------------------------------------------------------------------
// Cancellation is never held back by a wait

TEST_F(ResumeTest, CancelDuringABackOffWaitStopsAtOnce) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "status": 503,
                                       "headers": {"Retry-After": "120"}}})");
  CancelToken cancel;
  // The retry would come after two minutes; cancelling must not wait for it.
  auto opened = std::async(std::launch::async, [&] {
    return OpenSource(Resilient(server.Url("/small.img")), &cancel).status();
  });
  while (server.RequestsFor("/small.img").empty()) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  cancel.Cancel();
  // A safety net, not a measurement: a wait that ignores cancellation takes
  // two minutes.
  ASSERT_EQ(opened.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  Status status = opened.get();
  EXPECT_EQ(status.code(), ErrorCode::kCancelled);
  EXPECT_EQ(status.message(), "cancelled while connecting to " + server.Url("/small.img"));
  EXPECT_EQ(server.RequestsFor("/small.img").size(), 1u);
}

TEST_F(ResumeTest, CancelDuringAStallStopsAtOnce) {
  FaultServer server(root_.path(), R"({"/small.img": {"file": "small.img", "stall_after": 1000}})");
  SourceSpec spec = Resilient(server.Url("/small.img"));
  spec.network.stall_window = std::chrono::seconds(300);
  CancelToken cancel;
  Result<std::unique_ptr<ByteSource>> source = OpenSource(spec, &cancel);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto read = std::async(std::launch::async, [&] { return testing::ReadAll(**source).status(); });
  std::this_thread::sleep_for(milliseconds(200));
  cancel.Cancel();
  ASSERT_EQ(read.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(read.get().code(), ErrorCode::kCancelled);
  // Destroying the source ends its transfer thread, stalled as it is.
  auto destroyed = std::async(std::launch::async, [&] { source->reset(); });
  ASSERT_EQ(destroyed.wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

}  // namespace
}  // namespace cdi::importer
