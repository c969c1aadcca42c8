// Response parsing without a server: header lines, status lines and their
// messages, Content-Length and Content-Range, entity tags.
#include "sources/http/http_response.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sources/http/proxy.h"
#include "sources/url.h"

namespace cdi::importer {
namespace {

ResponseHeaders Parse(std::initializer_list<std::string_view> lines) {
  ResponseHeaders response;
  for (std::string_view line : lines) ParseHeaderLine(line, &response);
  return response;
}

HttpUrl Url(std::string_view text) {
  Result<HttpUrl> url = ParseHttpUrl(text);
  EXPECT_TRUE(url.ok()) << url.status().ToString();
  return url.ok() ? *url : HttpUrl();
}

// ---------------------------------------------------------------------------
// Header lines

TEST(ParseHeaderLineTest, ReadsTheStatusLineAndTheHeadersActedOn) {
  ResponseHeaders response = Parse({
      "HTTP/1.1 206 Partial Content",
      "Location: /elsewhere",
      "Content-Length: 100",
      "Content-Encoding: gzip",
      "Transfer-Encoding: chunked",
      "Content-Range: bytes 0-99/100",
      "Retry-After: 5",
      "ETag: \"abc\"",
      "Last-Modified: Tue, 01 Jul 2025 10:00:00 GMT",
      "Accept-Ranges: bytes",
  });
  EXPECT_EQ(response.status, 206);
  EXPECT_EQ(response.reason, "Partial Content");
  EXPECT_EQ(response.location, "/elsewhere");
  EXPECT_EQ(response.content_length, "100");
  EXPECT_EQ(response.content_encoding, "gzip");
  EXPECT_EQ(response.transfer_encoding, "chunked");
  EXPECT_EQ(response.content_range, "bytes 0-99/100");
  EXPECT_EQ(response.retry_after, "5");
  EXPECT_EQ(response.etag, "\"abc\"");
  EXPECT_EQ(response.last_modified, "Tue, 01 Jul 2025 10:00:00 GMT");
  EXPECT_EQ(response.accept_ranges, "bytes");
}

TEST(ParseHeaderLineTest, NamesInAnyCaseValuesTrimmedLastOneWins) {
  ResponseHeaders response =
      Parse({"HTTP/1.1 200 OK", "CONTENT-length:   42  ", "content-LENGTH: 43", "  etag :\t\"x\""});
  EXPECT_EQ(response.content_length, "43");
  EXPECT_EQ(response.etag, "\"x\"");
}

TEST(ParseHeaderLineTest, AStatusLineStartsANewResponse) {
  ResponseHeaders response =
      Parse({"HTTP/1.1 301 Moved Permanently", "Location: http://b/x", "HTTP/1.1 200 OK"});
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.reason, "OK");
  EXPECT_EQ(response.location, "");
}

TEST(ParseHeaderLineTest, StatusLinesWithoutReasonOrStatus) {
  EXPECT_EQ(Parse({"HTTP/2 404"}).status, 404);
  EXPECT_EQ(Parse({"HTTP/2 404"}).reason, "");
  EXPECT_EQ(Parse({"HTTP/1.1"}).status, 0);
  EXPECT_EQ(Parse({"HTTP/1.1 abc"}).status, 0);
  // Only three digits are the status.
  ResponseHeaders response = Parse({"HTTP/1.1 2000 Odd"});
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.reason, "0 Odd");
}

TEST(ParseHeaderLineTest, IgnoresOtherHeadersAndLinesWithoutAColon) {
  ResponseHeaders response =
      Parse({"HTTP/1.1 200 OK", "X-Secret: hunter2", "garbage", "Set-Cookie: a=b"});
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.location, "");
  EXPECT_EQ(response.content_length, "");
  EXPECT_EQ(response.etag, "");
}

TEST(ParseHeaderLineTest, KeepsOnlyPrintableCharactersAndBoundsLongValues) {
  ResponseHeaders response =
      Parse({"HTTP/1.1 404 Not\x01 Fo\x7fund\xc3\xa9", "ETag: \"" + std::string(300, 'e') + "\"",
             "Last-Modified: " + std::string(150, 'm'), "Location: /a\x1b[31mb"});
  EXPECT_EQ(response.reason, "Not Found");
  EXPECT_EQ(response.etag.size(), 200u);
  EXPECT_EQ(response.last_modified, std::string(100, 'm'));
  EXPECT_EQ(response.location, "/a[31mb");
  ResponseHeaders long_reason = Parse({"HTTP/1.1 500 " + std::string(100, 'r')});
  EXPECT_EQ(long_reason.reason, std::string(64, 'r'));
}

// ---------------------------------------------------------------------------
// Statuses

TEST(StatusLineTest, TheServersReasonOrTheStandardOne) {
  EXPECT_EQ(StatusLine(404, "Nope"), "HTTP 404 Nope");
  EXPECT_EQ(StatusLine(404, ""), "HTTP 404 Not Found");
  EXPECT_EQ(StatusLine(407, ""), "HTTP 407 Proxy Authentication Required");
  EXPECT_EQ(StatusLine(599, ""), "HTTP 599");
}

TEST(HttpStatusTest, RedirectsAndRetryableStatuses) {
  for (int status : {301, 302, 303, 307, 308}) EXPECT_TRUE(IsRedirectStatus(status)) << status;
  for (int status : {200, 300, 304, 305, 306, 400})
    EXPECT_FALSE(IsRedirectStatus(status)) << status;
  for (int status : {408, 429, 500, 502, 503, 504}) {
    EXPECT_EQ(RetryableStatus(status), Retryable::kYes) << status;
  }
  for (int status : {200, 400, 401, 403, 404, 407, 416, 501, 505}) {
    EXPECT_EQ(RetryableStatus(status), Retryable::kNo) << status;
  }
}

TEST(HttpStatusErrorTest, SaysStatusAndUrlWithoutSecrets) {
  HttpUrl url = Url("https://alice:s3cret@images.example.com/disk.img?sig=abc");
  ResponseHeaders response = Parse({"HTTP/1.1 404 Not Found"});
  Status status = HttpStatusError(response, url, nullptr);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "HTTP 404 Not Found from https://images.example.com/disk.img");

  status = HttpStatusError(Parse({"HTTP/1.1 503"}), url, nullptr);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(),
            "HTTP 503 Service Unavailable from https://images.example.com/disk.img");
}

TEST(HttpStatusErrorTest, HintsForPartialContentRedirectsAndCredentials) {
  HttpUrl url = Url("http://host/disk.img");
  EXPECT_EQ(HttpStatusError(Parse({"HTTP/1.1 206 Partial Content"}), url, nullptr).message(),
            "HTTP 206 Partial Content from http://host/disk.img: partial content for a request "
            "of the whole file");
  EXPECT_EQ(HttpStatusError(Parse({"HTTP/1.1 302 Found"}), url, nullptr).message(),
            "HTTP 302 Found from http://host/disk.img: a redirect without a Location");
  EXPECT_EQ(HttpStatusError(Parse({"HTTP/1.1 401 Unauthorized"}), url, nullptr).message(),
            "HTTP 401 Unauthorized from http://host/disk.img: the server wants credentials; "
            "check the user and password");
  // 407 without a proxy has no proxy to name.
  EXPECT_EQ(HttpStatusError(Parse({"HTTP/1.1 407"}), url, nullptr).message(),
            "HTTP 407 Proxy Authentication Required from http://host/disk.img");
}

TEST(HttpStatusErrorTest, NamesTheProxyWithoutItsCredentials) {
  HttpUrl url = Url("http://host/disk.img");
  Result<Proxy> proxy = ParseProxy("http://bob:pr0xy@proxy.example:3128", "http_proxy");
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  Status status = HttpStatusError(Parse({"HTTP/1.1 404 Not Found"}), url, &*proxy);
  EXPECT_EQ(status.message(), "HTTP 404 Not Found from http://host/disk.img (through the proxy " +
                                  proxy->redacted + ")");
  status = HttpStatusError(Parse({"HTTP/1.1 407"}), url, &*proxy);
  EXPECT_EQ(status.message(),
            "HTTP 407 Proxy Authentication Required from http://host/disk.img: the proxy " +
                proxy->redacted +
                " wants credentials; give them in its URL (http://user:password@host:port, in "
                "http_proxy)");
  EXPECT_EQ(status.message().find("pr0xy"), std::string::npos);
  EXPECT_FALSE(status.retryable());
}

// ---------------------------------------------------------------------------
// Lengths and ranges

TEST(ParseUnsignedTest, DecimalDigitsOnly) {
  EXPECT_EQ(ParseUnsigned("0"), 0u);
  EXPECT_EQ(ParseUnsigned("1234"), 1234u);
  EXPECT_EQ(ParseUnsigned("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(ParseUnsigned(""));
  EXPECT_FALSE(ParseUnsigned("18446744073709551616"));
  EXPECT_FALSE(ParseUnsigned("-1"));
  EXPECT_FALSE(ParseUnsigned("+1"));
  EXPECT_FALSE(ParseUnsigned(" 1"));
  EXPECT_FALSE(ParseUnsigned("1 "));
  EXPECT_FALSE(ParseUnsigned("12a"));
  EXPECT_FALSE(ParseUnsigned("0x10"));
}

TEST(ParseContentRangeTest, SatisfiedByteRanges) {
  std::optional<ContentRange> range = ParseContentRange("bytes 100-199/200");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->first, 100u);
  EXPECT_EQ(range->last, 199u);
  EXPECT_EQ(range->complete, 200u);

  range = ParseContentRange("  bytes 0-0/* ");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->first, 0u);
  EXPECT_EQ(range->last, 0u);
  EXPECT_FALSE(range->complete);

  range = ParseContentRange("bytes 5 - 9 / 10");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->first, 5u);
  EXPECT_EQ(range->last, 9u);
  EXPECT_EQ(range->complete, 10u);
}

TEST(ParseContentRangeTest, RefusesEverythingElse) {
  for (std::string_view value :
       {"", "bytes", "bytes */200", "items 0-1/2", "Bytes 0-1/2", "bytes 0-1", "bytes 0/2-1",
        "bytes 5-4/10", "bytes 0-9/9", "bytes 0-9/5", "bytes a-9/10", "bytes 0-b/10", "bytes 0-9/c",
        "bytes -1-9/10", "bytes 0-9/"}) {
    EXPECT_FALSE(ParseContentRange(value)) << value;
  }
}

TEST(DeclaredLengthTest, ContentLengthUnlessChunkedOrAbsent) {
  Result<std::optional<uint64_t>> length =
      DeclaredLength(Parse({"HTTP/1.1 200 OK", "Content-Length: 4096"}), "http://host/x");
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(*length, 4096u);

  length = DeclaredLength(Parse({"HTTP/1.1 200 OK"}), "http://host/x");
  ASSERT_TRUE(length.ok());
  EXPECT_FALSE(length->has_value());

  // RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length.
  length =
      DeclaredLength(Parse({"HTTP/1.1 200 OK", "Content-Length: 12", "Transfer-Encoding: chunked"}),
                     "http://host/x");
  ASSERT_TRUE(length.ok());
  EXPECT_FALSE(length->has_value());
}

TEST(DeclaredLengthTest, RefusesAMalformedContentLength) {
  for (std::string_view value : {"abc", "-5", "1,", "99999999999999999999"}) {
    Result<std::optional<uint64_t>> length = DeclaredLength(
        Parse({"HTTP/1.1 200 OK", "Content-Length: " + std::string(value)}), "http://host/x");
    ASSERT_FALSE(length.ok()) << value;
    EXPECT_EQ(length.status().code(), ErrorCode::kNetwork);
    EXPECT_FALSE(length.status().retryable());
    EXPECT_EQ(length.status().message(), "invalid Content-Length from http://host/x");
  }
}

ResponseHeaders ParseLines(const std::vector<std::string>& lines) {
  ResponseHeaders response;
  for (const std::string& line : lines) ParseHeaderLine(line, &response);
  return response;
}

TEST(DeclaredLengthTest, ConflictingContentLengthsAreRefusedNamingThem) {
  // RFC 9112 section 6.3: differing lengths, in repeated headers or in one
  // list, leave the end of the body unknown; a Transfer-Encoding does not
  // make that any less suspicious.
  for (const std::vector<std::string>& lines :
       std::vector<std::vector<std::string>>{
           {"HTTP/1.1 200 OK", "Content-Length: 4194304", "Content-Length: 2097152"},
           {"HTTP/1.1 200 OK", "Content-Length: 4194304, 2097152"},
           {"HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 1",
            "Content-Length: 2"}}) {
    Result<std::optional<uint64_t>> length = DeclaredLength(ParseLines(lines), "http://host/x");
    ASSERT_FALSE(length.ok()) << lines[1];
    EXPECT_EQ(length.status().code(), ErrorCode::kNetwork);
    EXPECT_FALSE(length.status().retryable());
    EXPECT_TRUE(length.status().message().starts_with(
        "conflicting Content-Length headers from http://host/x: 'Content-Length: "))
        << length.status().message();
  }
  Result<std::optional<uint64_t>> length = DeclaredLength(
      Parse({"HTTP/1.1 200 OK", "Content-Length: 4194304", "Content-Length: 2097152"}),
      "http://host/x");
  EXPECT_EQ(length.status().message(),
            "conflicting Content-Length headers from http://host/x: 'Content-Length: 4194304', "
            "'Content-Length: 2097152'; the end of the body is ambiguous (RFC 9112 section 6.3), "
            "so none of it is used: the server, or a proxy between, sends broken responses");
}

TEST(DeclaredLengthTest, AgreeingContentLengthsAreOneLength) {
  for (const std::vector<std::string>& lines : std::vector<std::vector<std::string>>{
           {"HTTP/1.1 200 OK", "Content-Length: 42", "Content-Length: 42"},
           {"HTTP/1.1 200 OK", "Content-Length: 42, 42"}}) {
    Result<std::optional<uint64_t>> length = DeclaredLength(ParseLines(lines), "http://host/x");
    ASSERT_TRUE(length.ok()) << length.status().ToString();
    EXPECT_EQ(*length, 42u);
  }
}

TEST(IsWeakEtagTest, OnlyTheWeakPrefix) {
  EXPECT_TRUE(IsWeakEtag("W/\"abc\""));
  EXPECT_FALSE(IsWeakEtag("\"abc\""));
  EXPECT_FALSE(IsWeakEtag("w/\"abc\""));
  EXPECT_FALSE(IsWeakEtag(""));
}

}  // namespace
}  // namespace cdi::importer
