#include "sources/http/http_response.h"

#include <algorithm>
#include <charconv>
#include <system_error>

#include "common/text.h"

namespace cdi::importer {
namespace {

// Keeps the printable ASCII characters of `text`: values go into messages.
void AppendPrintable(std::string_view text, std::string* out) {
  for (char c : text) {
    if (c >= 0x20 && c < 0x7f) *out += c;
  }
}

void ParseStatusLine(std::string_view line, ResponseHeaders* response) {
  *response = ResponseHeaders();
  size_t space = line.find(' ');
  if (space == std::string_view::npos) return;
  std::string_view rest = line.substr(space + 1);
  int status = 0;
  auto [end, error] =
      std::from_chars(rest.data(), rest.data() + std::min<size_t>(3, rest.size()), status);
  if (error == std::errc()) response->status = status;
  std::string_view reason =
      TrimSpace(rest.substr(std::min<size_t>(end - rest.data(), rest.size())));
  // The reason phrase goes into messages: keep it short.
  AppendPrintable(reason.substr(0, 64), &response->reason);
}

}  // namespace

void ParseHeaderLine(std::string_view line, ResponseHeaders* response) {
  if (line.starts_with("HTTP/")) {
    ParseStatusLine(line, response);
    return;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return;
  std::string name = AsciiLower(TrimSpace(line.substr(0, colon)));
  std::string value;
  AppendPrintable(TrimSpace(line.substr(colon + 1)), &value);
  if (name == "location") {
    response->location = value;
  } else if (name == "content-length") {
    if (!value.empty() && response->content_lengths.size() < kMaxContentLengths) {
      response->content_lengths.push_back(value.substr(0, 40));
    }
    response->content_length = value;
  } else if (name == "content-encoding") {
    response->content_encoding = value;
  } else if (name == "transfer-encoding") {
    response->transfer_encoding = value;
  } else if (name == "content-range") {
    response->content_range = value;
  } else if (name == "retry-after") {
    response->retry_after = value;
  } else if (name == "etag") {
    response->etag = value.substr(0, 200);
  } else if (name == "last-modified") {
    response->last_modified = value.substr(0, 100);
  } else if (name == "accept-ranges") {
    response->accept_ranges = value;
  }
}

const char* StandardReason(int status) {
  switch (status) {
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

std::string StatusLine(int status, const std::string& reason) {
  std::string text = "HTTP " + std::to_string(status);
  std::string shown = reason.empty() ? StandardReason(status) : reason;
  if (!shown.empty()) text += " " + shown;
  return text;
}

bool IsRedirectStatus(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

Retryable RetryableStatus(int status) {
  switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return Retryable::kYes;
    default:
      return Retryable::kNo;
  }
}

std::optional<uint64_t> ParseUnsigned(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::optional<ContentRange> ParseContentRange(std::string_view value) {
  value = TrimSpace(value);
  if (!value.starts_with("bytes ")) return std::nullopt;
  value.remove_prefix(6);
  size_t dash = value.find('-');
  size_t slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) {
    return std::nullopt;
  }
  std::optional<uint64_t> first = ParseUnsigned(TrimSpace(value.substr(0, dash)));
  std::optional<uint64_t> last = ParseUnsigned(TrimSpace(value.substr(dash + 1, slash - dash - 1)));
  std::string_view complete_text = TrimSpace(value.substr(slash + 1));
  if (!first || !last || *last < *first) return std::nullopt;
  ContentRange range{*first, *last, std::nullopt};
  if (complete_text != "*") {
    range.complete = ParseUnsigned(complete_text);
    if (!range.complete || *range.complete <= *last) return std::nullopt;
  }
  return range;
}

Result<std::optional<uint64_t>> DeclaredLength(const ResponseHeaders& response,
                                               std::string_view url) {
  // Every number in every Content-Length; a value that is not one is
  // reported below, unless a Transfer-Encoding makes it moot.
  std::optional<uint64_t> agreed;
  bool invalid = false;
  bool conflict = false;
  for (const std::string& value : response.content_lengths) {
    std::string_view rest = value;
    while (true) {
      size_t comma = rest.find(',');
      std::optional<uint64_t> number = ParseUnsigned(TrimSpace(rest.substr(0, comma)));
      if (!number) {
        invalid = true;
      } else if (agreed && *agreed != *number) {
        conflict = true;
      } else {
        agreed = number;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (conflict) {
    std::string seen;
    for (const std::string& value : response.content_lengths) {
      seen += (seen.empty() ? "" : ", ") + ("'Content-Length: " + value + "'");
    }
    return NetworkError("conflicting Content-Length headers from " + std::string(url) + ": " +
                        seen +
                        "; the end of the body is ambiguous (RFC 9112 section 6.3), so none of "
                        "it is used: the server, or a proxy between, sends broken responses");
  }
  if (!response.transfer_encoding.empty() || response.content_lengths.empty()) {
    return std::optional<uint64_t>();
  }
  if (invalid) return NetworkError("invalid Content-Length from " + std::string(url));
  return agreed;
}

bool IsWeakEtag(std::string_view etag) { return etag.starts_with("W/"); }

Status HttpStatusError(const ResponseHeaders& response, const HttpUrl& request,
                       const Proxy* proxy) {
  int status = response.status;
  std::string message = StatusLine(status, response.reason) + " from " + request.redacted;
  if (status == 206) {
    message += ": partial content for a request of the whole file";
  } else if (status >= 300 && status < 400) {
    message += ": a redirect without a Location";
  } else if (status == 401) {
    message += ": the server wants credentials; check the user and password";
  } else if (status == 407 && proxy != nullptr) {
    message += ": the proxy " + proxy->redacted +
               " wants credentials; give them in its URL (http://user:password@host:port, in " +
               proxy->setting + ")";
  }
  if (status != 407 && proxy != nullptr) message += " (through the proxy " + proxy->redacted + ")";
  return NetworkError(std::move(message), RetryableStatus(status));
}

}  // namespace cdi::importer
