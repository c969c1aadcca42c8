// The upload server's request header parsing and its answers.
#include "uploadserver/http_request.h"

#include "uploadserver/digest_header.h"

#include <gtest/gtest.h>

namespace cdi::uploadserver {
namespace {

TEST(HttpRequestTest, ParsesLineFieldsAndFraming) {
  auto request = ParseRequestHeader(
      "POST /v1beta1/upload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length:  42 \r\n"
      "X-CDI-Content-Type: blockdevice-clone\r\nExpect: 100-continue");
  ASSERT_TRUE(request.ok()) << request.status().message();
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->path, "/v1beta1/upload");
  EXPECT_EQ(request->content_length, 42u);
  EXPECT_FALSE(request->chunked);
  EXPECT_TRUE(request->expects_continue);
  EXPECT_EQ(request->Header("x-cdi-content-type").value_or(""), "blockdevice-clone");
  EXPECT_FALSE(request->Header("authorization").has_value());
}

TEST(HttpRequestTest, ChunkedAndRefusals) {
  auto chunked = ParseRequestHeader("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked");
  ASSERT_TRUE(chunked.ok());
  EXPECT_TRUE(chunked->chunked);
  EXPECT_FALSE(ParseRequestHeader("POST / HTTP/1.1\r\nTransfer-Encoding: gzip").ok());
  EXPECT_FALSE(ParseRequestHeader("POST / HTTP/1.1\r\nContent-Length: 1x").ok());
  EXPECT_FALSE(
      ParseRequestHeader("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2").ok());
  EXPECT_FALSE(ParseRequestHeader("garbage").ok());
  EXPECT_FALSE(ParseRequestHeader("POST / HTTP/1.1\r\nno colon here").ok());
}

TEST(HttpRequestTest, Answers) {
  EXPECT_EQ(HttpResponse(409),
            "HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(HttpResponse(200, "OK"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
            "2\r\nConnection: close\r\n\r\nOK");
}


TEST(ContentRangeTest, BytesFirstLastTotal) {
  auto range = ParseContentRange("bytes 100-199/1000");
  ASSERT_TRUE(range.ok()) << range.status().message();
  EXPECT_EQ(range->first, 100u);
  EXPECT_EQ(range->last, 199u);
  EXPECT_EQ(range->total, 1000u);
  auto last_byte = ParseContentRange("Bytes 999-999/1000");
  ASSERT_TRUE(last_byte.ok());
  EXPECT_EQ(last_byte->first, 999u);
  for (const char* bad : {"bytes 100-199/*", "items 0-1/2", "bytes 200-100/1000",
                          "bytes 0-1000/1000", "bytes -5/10", "bytes 1-2", "bytes a-b/c", ""}) {
    auto refused = ParseContentRange(bad);
    EXPECT_FALSE(refused.ok()) << bad;
    if (!refused.ok()) {
      EXPECT_NE(refused.status().message().find("bytes FIRST-LAST/TOTAL"), std::string::npos);
    }
  }
}

TEST(ContentRangeTest, ResponseCarriesExtraHeaders) {
  EXPECT_EQ(HttpResponse(204, {}, "Upload-Offset: 5\r\n"),
            "HTTP/1.1 204 No Content\r\nUpload-Offset: 5\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n");
}

}  // namespace
}  // namespace cdi::uploadserver

namespace cdi::uploadserver {
namespace {

HttpRequest WithHeader(const std::string& line) {
  return ParseRequestHeader("POST /v1beta1/upload HTTP/1.1\r\n" + line).value();
}

// sha256 of "" in both forms.
constexpr const char* kEmptyHex =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

TEST(DigestHeaderTest, ReprDigestAndCdisForm) {
  auto repr = ExpectedChecksum(
      WithHeader("Repr-Digest: unknown=:AAAA:, sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"));
  ASSERT_TRUE(repr.ok()) << repr.status().message();
  EXPECT_EQ(repr->value_or(""), kEmptyHex);
  auto cdi = ExpectedChecksum(WithHeader(
      "X-CDI-Checksum: SHA256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
  ASSERT_TRUE(cdi.ok());
  EXPECT_EQ(cdi->value_or(""), kEmptyHex);
  auto none = ExpectedChecksum(WithHeader("Repr-Digest: md5=:1B2M2Y8AsgTpgAmY7PhCfg==:"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(ExpectedChecksum(WithHeader("Repr-Digest: sha-256=47DEQ")).ok());
  EXPECT_FALSE(ExpectedChecksum(WithHeader("Repr-Digest: sha-256=:AAAA:")).ok());
  EXPECT_FALSE(ExpectedChecksum(WithHeader("X-CDI-Checksum: sha256:12")).ok());
}

}  // namespace
}  // namespace cdi::uploadserver
