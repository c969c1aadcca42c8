#include "uploadserver/http_request.h"

#include <charconv>

#include "common/text.h"

namespace cdi::uploadserver {
namespace {

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 413: return "Request Entity Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace

std::optional<std::string> HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

Result<HttpRequest> ParseRequestHeader(std::string_view text) {
  HttpRequest request;
  size_t line_end = text.find("\r\n");
  std::string_view line = text.substr(0, line_end);
  const size_t first = line.find(' ');
  const size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos ||
      line.substr(second + 1).substr(0, 5) != "HTTP/") {
    return InvalidArgumentError("malformed request line '" + std::string(line.substr(0, 200)) + "'");
  }
  request.method = std::string(line.substr(0, first));
  request.target = std::string(line.substr(first + 1, second - first - 1));
  request.path = request.target.substr(0, request.target.find('?'));
  size_t pos = line_end == std::string_view::npos ? text.size() : line_end + 2;
  while (pos < text.size()) {
    line_end = text.find("\r\n", pos);
    if (line_end == std::string_view::npos) line_end = text.size();
    line = text.substr(pos, line_end - pos);
    pos = line_end + 2;
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line[0] == ' ' || line[0] == '\t') {
      return InvalidArgumentError("malformed header field '" + std::string(line.substr(0, 200)) +
                                  "'");
    }
    std::string name = AsciiLower(line.substr(0, colon));
    std::string value(TrimSpace(line.substr(colon + 1)));
    if (name == "content-length") {
      uint64_t length = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (value.empty() || error != std::errc() || end != value.data() + value.size()) {
        return InvalidArgumentError("Content-Length '" + value + "' is not a number");
      }
      if (request.content_length && *request.content_length != length) {
        return InvalidArgumentError("two Content-Length fields that disagree");
      }
      request.content_length = length;
    } else if (name == "transfer-encoding") {
      if (AsciiLower(value) != "chunked") {
        return InvalidArgumentError("Transfer-Encoding '" + value +
                                    "' is not supported; send the body as it is or chunked");
      }
      request.chunked = true;
    } else if (name == "expect" && AsciiLower(value) == "100-continue") {
      request.expects_continue = true;
    }
    request.headers.emplace_back(std::move(name), std::move(value));
  }
  return request;
}

Result<ContentRange> ParseContentRange(std::string_view value) {
  const auto bad = [&](std::string_view why) {
    return InvalidArgumentError("Content-Range '" + std::string(value) + "' " + std::string(why) +
                                "; a resumed upload sends 'Content-Range: bytes FIRST-LAST/TOTAL' "
                                "(FIRST the Upload-Offset that HEAD answered, TOTAL the image's "
                                "size in bytes)");
  };
  std::string_view text = TrimSpace(value);
  if (AsciiLower(text.substr(0, 6)) != "bytes ") return bad("is not in bytes");
  text = TrimSpace(text.substr(6));
  const auto number = [](std::string_view digits, uint64_t& out) {
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return !digits.empty() && error == std::errc() && end == digits.data() + digits.size();
  };
  const size_t dash = text.find('-');
  const size_t slash = text.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return bad("is malformed");
  }
  ContentRange range;
  if (text.substr(slash + 1) == "*") return bad("has no total length");
  if (!number(text.substr(0, dash), range.first) ||
      !number(text.substr(dash + 1, slash - dash - 1), range.last) ||
      !number(text.substr(slash + 1), range.total)) {
    return bad("is malformed");
  }
  if (range.last < range.first) return bad("ends before it starts");
  if (range.last >= range.total) return bad("ends past its total length");
  return range;
}

std::string HttpResponse(int code, std::string_view body, std::string_view extra_headers) {
  std::string response = "HTTP/1.1 " + std::to_string(code) + " " +
                         std::string(ReasonPhrase(code)) + "\r\n";
  response += extra_headers;
  if (!body.empty()) response += "Content-Type: text/plain; charset=utf-8\r\n";
  response += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  response += body;
  return response;
}

}  // namespace cdi::uploadserver
