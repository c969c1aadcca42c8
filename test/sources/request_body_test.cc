// An HTTP request's body as a source: Content-Length, chunked, multipart
// form data, fed in chunks of every size, and the framings it refuses.
#include "sources/upload/request_body.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "test/support/files.h"

namespace cdi::importer {
namespace {

// A connection that hands out `data` at most `chunk` bytes per read, then
// reports the client gone.
class ScriptedStream : public RequestStream {
 public:
  ScriptedStream(std::string data, size_t chunk) : data_(std::move(data)), chunk_(chunk) {}
  Result<size_t> Read(std::span<uint8_t> buffer) override {
    const size_t n = std::min({buffer.size(), chunk_, data_.size() - pos_});
    std::memcpy(buffer.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t consumed() const { return pos_; }

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

Result<std::string> ReadAll(ByteSource& source, size_t buffer_size) {
  std::string out;
  std::vector<uint8_t> buffer(buffer_size);
  while (true) {
    CDI_ASSIGN_OR_RETURN(size_t n, source.Read(buffer));
    if (n == 0) return out;
    out.append(reinterpret_cast<const char*>(buffer.data()), n);
  }
}

Result<std::string> ReadBody(const RequestBodySpec& spec, const std::string& wire, size_t chunk,
                             size_t buffer = 4096) {
  ScriptedStream stream(wire, chunk);
  CDI_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> source, OpenRequestBody(spec, stream, nullptr));
  return ReadAll(*source, buffer);
}

std::string Chunked(const std::string& body, size_t piece) {
  std::string wire;
  for (size_t pos = 0; pos < body.size(); pos += piece) {
    const size_t n = std::min(piece, body.size() - pos);
    char size[32];
    std::snprintf(size, sizeof size, "%zx;ext=1\r\n", n);
    wire += size + body.substr(pos, n) + "\r\n";
  }
  return wire + "0\r\nX-Trailer: 1\r\n\r\n";
}

std::string Form(const std::string& boundary, const std::string& file) {
  return "preamble\r\n--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nnot the image\r\n--" +
         boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"disk.qcow2\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" + file + "\r\n--" + boundary +
         "--\r\n";
}

TEST(RequestBodyTest, ContentLengthBodyInEveryChunking) {
  const std::string body = test::RandomBytes(100'000, 1);
  for (size_t chunk : {1, 7, 4096, 1 << 20}) {
    RequestBodySpec spec;
    spec.content_length = body.size();
    // Bytes after the body (a pipelined request) are never read.
    ScriptedStream stream(body + "GET / HTTP/1.1\r\n\r\n", chunk);
    auto source = OpenRequestBody(spec, stream, nullptr);
    ASSERT_TRUE(source.ok());
    EXPECT_EQ((*source)->size(), body.size());
    auto read = ReadAll(**source, 3000);
    ASSERT_TRUE(read.ok()) << read.status().message();
    EXPECT_EQ(*read, body) << "chunk " << chunk;
    EXPECT_EQ(stream.consumed(), body.size());
  }
}

TEST(RequestBodyTest, ShortBodyIsANetworkErrorNamingTheCount) {
  RequestBodySpec spec;
  spec.content_length = 1000;
  auto read = ReadBody(spec, std::string(600, 'x'), 100);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), ErrorCode::kNetwork);
  EXPECT_NE(read.status().message().find("after 600 of its 1000 bytes"), std::string::npos)
      << read.status().message();
}

TEST(RequestBodyTest, ChunkedBodyInEveryChunking) {
  const std::string body = test::RandomBytes(50'000, 2);
  for (size_t piece : {1, 999, 50'000}) {
    for (size_t chunk : {1, 13, 65536}) {
      RequestBodySpec spec;
      spec.chunked = true;
      auto read = ReadBody(spec, Chunked(body, piece), chunk);
      ASSERT_TRUE(read.ok()) << read.status().message();
      EXPECT_EQ(*read, body) << "piece " << piece << " chunk " << chunk;
    }
  }
}

TEST(RequestBodyTest, ChunkedFramingErrors) {
  RequestBodySpec spec;
  spec.chunked = true;
  auto bad_size = ReadBody(spec, "zz\r\nabc\r\n0\r\n\r\n", 64);
  ASSERT_FALSE(bad_size.ok());
  EXPECT_EQ(bad_size.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_size.status().message().find("bad chunk size 'zz'"), std::string::npos);
  auto cut = ReadBody(spec, "10\r\nabc", 64);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), ErrorCode::kNetwork);
  auto no_crlf = ReadBody(spec, "3\r\nabcX\r\n0\r\n\r\n", 64);
  ASSERT_FALSE(no_crlf.ok());
  EXPECT_EQ(no_crlf.status().code(), ErrorCode::kInvalidArgument);
}

TEST(RequestBodyTest, FormFilePartInEveryChunking) {
  // The file holds what looks almost like a delimiter.
  const std::string boundary = "------------------------abc123";
  const std::string file = test::RandomBytes(70'000, 3) + "\r\n--" + boundary.substr(0, 10) +
                           test::RandomBytes(1000, 4);
  const std::string form = Form(boundary, file);
  for (size_t chunk : {1, 5, 4096, 1 << 20}) {
    for (bool chunked : {false, true}) {
      RequestBodySpec spec;
      spec.multipart_boundary = boundary;
      std::string wire = form;
      if (chunked) {
        spec.chunked = true;
        wire = Chunked(form, 777);
      } else {
        spec.content_length = form.size();
      }
      auto read = ReadBody(spec, wire, chunk, 1000);
      ASSERT_TRUE(read.ok()) << read.status().message();
      EXPECT_EQ(*read, file) << "chunk " << chunk << " chunked " << chunked;
    }
  }
}

TEST(RequestBodyTest, FormWithoutFilePartIsRefusedAtOpen) {
  const std::string form =
      "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n";
  RequestBodySpec spec;
  spec.multipart_boundary = "b";
  spec.content_length = form.size();
  ScriptedStream stream(form, 16);
  auto source = OpenRequestBody(spec, stream, nullptr);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("no part named 'file'"), std::string::npos);
}

TEST(RequestBodyTest, FormFilePartWithoutClosingBoundaryIsAnError) {
  const std::string form =
      "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nsome bytes, then nothing";
  RequestBodySpec spec;
  spec.multipart_boundary = "b";
  spec.content_length = form.size();
  auto read = ReadBody(spec, form, 8);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("ended inside its part named 'file'"), std::string::npos);
}

TEST(RequestBodyTest, FormDataBoundaryOfContentType) {
  auto quoted = FormDataBoundary("multipart/form-data; boundary=\"a b\"");
  ASSERT_TRUE(quoted.ok());
  EXPECT_EQ(quoted->value_or(""), "a b");
  auto plain = FormDataBoundary("Multipart/Form-Data;charset=utf-8; boundary=xyz");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->value_or(""), "xyz");
  auto other = FormDataBoundary("application/octet-stream");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
  EXPECT_FALSE(FormDataBoundary("multipart/form-data").ok());
  EXPECT_FALSE(FormDataBoundary("multipart/form-data; boundary=" + std::string(71, 'x')).ok());
}

}  // namespace
}  // namespace cdi::importer
