// The upload server's request header parsing and its answers.
#include "uploadserver/http_request.h"

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

}  // namespace
}  // namespace cdi::uploadserver
