#include "sources/upload/request_body.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/text.h"

namespace cdi::importer {
namespace {

// Bounds on what framing may hold, so that a hostile client cannot make the
// server hold more than this for a line or a part's headers.
constexpr size_t kMaxLineBytes = 8192;
constexpr size_t kMaxPartHeaderBytes = 64 * 1024;
// A plain body read keeps reading the connection until it has this much (or
// the caller's buffer is full, or the body ends): TLS hands out 16 KiB
// records, and the pipeline is cheaper fed in larger chunks.
constexpr size_t kFillBytes = 256 * 1024;
constexpr size_t kMultipartBuffer = 1 << 20;

// A media type's parameters ("a=1; b=\"two\""): lowercased names, unquoted
// values. False when a parameter is malformed.
bool ParseParameters(std::string_view text,
                     std::vector<std::pair<std::string, std::string>>& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && (text[pos] == ';' || text[pos] == ' ' || text[pos] == '\t')) ++pos;
    if (pos >= text.size()) break;
    size_t equals = text.find('=', pos);
    if (equals == std::string_view::npos) return false;
    std::string name = AsciiLower(TrimSpace(text.substr(pos, equals - pos)));
    if (name.empty()) return false;
    pos = equals + 1;
    std::string value;
    if (pos < text.size() && text[pos] == '"') {
      ++pos;
      bool closed = false;
      while (pos < text.size()) {
        char c = text[pos++];
        if (c == '\\' && pos < text.size()) {
          value += text[pos++];
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return false;
    } else {
      size_t end = text.find(';', pos);
      value = std::string(TrimSpace(text.substr(pos, end == std::string_view::npos ? text.npos
                                                                              : end - pos)));
      pos = end == std::string_view::npos ? text.size() : end;
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return true;
}

// Buffered reads of the connection: lines for the framing, bytes for data.
class WireReader {
 public:
  WireReader(RequestStream& stream, const CancelToken* cancel) : stream_(stream), cancel_(cancel) {}

  Result<size_t> Read(std::span<uint8_t> out) {
    if (out.empty()) return size_t{0};
    if (pending_pos_ < pending_.size()) {
      size_t n = std::min(out.size(), pending_.size() - pending_pos_);
      std::memcpy(out.data(), pending_.data() + pending_pos_, n);
      pending_pos_ += n;
      return n;
    }
    if (cancel_ != nullptr && cancel_->cancelled()) return CancelledError("upload cancelled");
    return stream_.Read(out);
  }

  // The next line without its CRLF (or LF); nullopt when the connection
  // closed first. kInvalidArgument for a line longer than kMaxLineBytes.
  Result<std::optional<std::string>> ReadLine() {
    while (true) {
      std::string_view rest(pending_.data() + pending_pos_, pending_.size() - pending_pos_);
      size_t newline = rest.find('\n');
      if (newline != std::string_view::npos) {
        std::string line(rest.substr(0, newline));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pending_pos_ += newline + 1;
        return std::optional<std::string>(std::move(line));
      }
      if (rest.size() > kMaxLineBytes) {
        return InvalidArgumentError("a line of the request body's framing is longer than " +
                                    std::to_string(kMaxLineBytes) + " bytes");
      }
      pending_.erase(0, pending_pos_);
      pending_pos_ = 0;
      char chunk[4096];
      if (cancel_ != nullptr && cancel_->cancelled()) return CancelledError("upload cancelled");
      CDI_ASSIGN_OR_RETURN(size_t n,
                           stream_.Read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(chunk),
                                                           sizeof chunk)));
      if (n == 0) return std::optional<std::string>();
      pending_.append(chunk, n);
    }
  }

 private:
  RequestStream& stream_;
  const CancelToken* cancel_;
  std::string pending_;  // read past a line, handed out first
  size_t pending_pos_ = 0;
};

// The body's bytes, its transfer framing removed.
class BodyDecoder {
 public:
  BodyDecoder(const RequestBodySpec& spec, RequestStream& stream, const CancelToken* cancel)
      : wire_(stream, cancel),
        chunked_(spec.chunked),
        length_(spec.chunked ? std::nullopt : std::optional<uint64_t>(spec.content_length.value_or(0))),
        description_(spec.description) {}

  uint64_t received() const { return received_; }

  // Up to out.size() bytes of the body; 0 at its end.
  Result<size_t> Read(std::span<uint8_t> out) {
    if (done_ || out.empty()) return size_t{0};
    if (chunked_) return ReadChunked(out);
    const uint64_t left = *length_ - received_;
    if (left == 0) {
      done_ = true;
      return size_t{0};
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), left));
    size_t got = 0;
    while (got < want && got < kFillBytes) {
      CDI_ASSIGN_OR_RETURN(size_t n, wire_.Read(out.subspan(got, want - got)));
      if (n == 0) {
        if (got > 0) break;
        return NetworkError(description_ + " ended after " + std::to_string(received_) +
                            " of its " + std::to_string(*length_) +
                            " bytes: the client closed the connection before sending the whole "
                            "body; send it again");
      }
      got += n;
      received_ += n;
    }
    return got;
  }

 private:
  Result<size_t> ReadChunked(std::span<uint8_t> out) {
    if (chunk_left_ == 0) {
      if (in_chunks_) {
        CDI_ASSIGN_OR_RETURN(std::optional<std::string> end, wire_.ReadLine());
        if (!end) return Truncated();
        if (!end->empty()) return BadChunk("chunk data is not followed by CRLF");
      }
      in_chunks_ = true;
      CDI_ASSIGN_OR_RETURN(std::optional<std::string> line, wire_.ReadLine());
      if (!line) return Truncated();
      std::string_view size_text = TrimSpace(std::string_view(*line).substr(0, line->find(';')));
      uint64_t size = 0;
      if (size_text.empty() || size_text.size() > 15) return BadChunk("bad chunk size '" + *line + "'");
      for (char c : size_text) {
        int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                                : -1;
        if (digit < 0) return BadChunk("bad chunk size '" + *line + "'");
        size = size * 16 + static_cast<uint64_t>(digit);
      }
      if (size == 0) {
        // Trailers, up to the empty line that ends the message.
        while (true) {
          CDI_ASSIGN_OR_RETURN(std::optional<std::string> trailer, wire_.ReadLine());
          if (!trailer) return Truncated();
          if (trailer->empty()) break;
        }
        done_ = true;
        return size_t{0};
      }
      chunk_left_ = size;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), chunk_left_));
    CDI_ASSIGN_OR_RETURN(size_t n, wire_.Read(out.first(want)));
    if (n == 0) return Truncated();
    chunk_left_ -= n;
    received_ += n;
    return n;
  }

  Status Truncated() const {
    return NetworkError(description_ + " ended after " + std::to_string(received_) +
                        " bytes, inside its chunked encoding: the client closed the connection "
                        "before the last chunk; send it again");
  }
  Status BadChunk(const std::string& why) const {
    return InvalidArgumentError(description_ + " is not valid chunked transfer encoding after " +
                                std::to_string(received_) + " bytes: " + why);
  }

  WireReader wire_;
  const bool chunked_;
  const std::optional<uint64_t> length_;
  const std::string description_;
  uint64_t received_ = 0;
  uint64_t chunk_left_ = 0;
  bool in_chunks_ = false;
  bool done_ = false;
};

class PlainBodySource final : public ByteSource {
 public:
  PlainBodySource(const RequestBodySpec& spec, RequestStream& stream, const CancelToken* cancel)
      : body_(spec, stream, cancel),
        size_(spec.chunked ? std::nullopt : std::optional<uint64_t>(spec.content_length.value_or(0))),
        description_(spec.description) {}

  Result<size_t> Read(std::span<uint8_t> buffer) override { return body_.Read(buffer); }
  std::optional<uint64_t> size() const override { return size_; }
  std::string Describe() const override { return description_; }

 private:
  BodyDecoder body_;
  std::optional<uint64_t> size_;
  std::string description_;
};

// multipart/form-data: the content of the part named "file".
class FormFileSource final : public ByteSource {
 public:
  FormFileSource(const RequestBodySpec& spec, RequestStream& stream, const CancelToken* cancel)
      : body_(spec, stream, cancel),
        delimiter_("\r\n--" + spec.multipart_boundary),
        description_(spec.description) {
    // The first boundary may open the body: a CRLF before it makes every
    // delimiter look the same.
    buffer_.reserve(kMultipartBuffer + delimiter_.size());
    buffer_.assign({'\r', '\n'});
  }

  // Skips to the content of the part named "file".
  Status FindFilePart() {
    while (true) {
      CDI_ASSIGN_OR_RETURN(bool found, SkipPastDelimiter());
      if (!found) return NoFilePart();
      CDI_RETURN_IF_ERROR(Need(2));
      if (Available() >= 2 && buffer_[begin_] == '-' && buffer_[begin_ + 1] == '-') {
        return NoFilePart();
      }
      // Transport padding, then the CRLF that ends the boundary line.
      CDI_ASSIGN_OR_RETURN(std::string headers, ReadPartHeaders());
      std::string name = FormName(headers);
      if (name == "file") return Status::Ok();
      Logger()->info("Ignoring part {}", name);
    }
  }

  Result<size_t> Read(std::span<uint8_t> out) override {
    if (ended_ || out.empty()) return size_t{0};
    while (true) {
      CDI_RETURN_IF_ERROR(Need(delimiter_.size()));
      const std::string_view window = Window();
      const size_t at = window.find(delimiter_);
      size_t safe;
      if (at != std::string_view::npos) {
        safe = at;
        if (safe == 0) {
          ended_ = true;
          return size_t{0};
        }
      } else {
        if (body_ended_) {
          return InvalidArgumentError(description_ +
                                      ": the multipart form ended inside its part named 'file' "
                                      "(no closing boundary); send the whole form again");
        }
        safe = window.size() - (delimiter_.size() - 1);
      }
      if (safe == 0) continue;
      const size_t n = std::min(safe, out.size());
      std::memcpy(out.data(), buffer_.data() + begin_, n);
      begin_ += n;
      return n;
    }
  }

  std::optional<uint64_t> size() const override { return std::nullopt; }
  std::string Describe() const override { return description_; }

 private:
  size_t Available() const { return buffer_.size() - begin_; }
  std::string_view Window() const {
    return std::string_view(reinterpret_cast<const char*>(buffer_.data()) + begin_, Available());
  }

  // Reads until `bytes` are buffered or the body ends.
  Status Need(size_t bytes) {
    while (Available() < bytes && !body_ended_) {
      if (begin_ > 0) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(begin_));
        begin_ = 0;
      }
      const size_t old = buffer_.size();
      const size_t room = std::max<size_t>(kMultipartBuffer + delimiter_.size() - old, 4096);
      buffer_.resize(old + room);
      Result<size_t> n = body_.Read(std::span<uint8_t>(buffer_.data() + old, room));
      buffer_.resize(old + (n.ok() ? *n : 0));
      if (!n.ok()) return n.status();
      if (*n == 0) body_ended_ = true;
    }
    return Status::Ok();
  }

  // Drops everything up to and including the next delimiter; false when the
  // body ends first.
  Result<bool> SkipPastDelimiter() {
    while (true) {
      CDI_RETURN_IF_ERROR(Need(std::min(kMultipartBuffer, Available() + 4096)));
      const std::string_view window = Window();
      const size_t at = window.find(delimiter_);
      if (at != std::string_view::npos) {
        begin_ += at + delimiter_.size();
        return true;
      }
      if (body_ended_) return false;
      if (window.size() >= delimiter_.size()) begin_ += window.size() - (delimiter_.size() - 1);
    }
  }

  // The header lines of a part, after its boundary line (whose padding and
  // CRLF are skipped); consumes the blank line that ends them.
  Result<std::string> ReadPartHeaders() {
    while (true) {
      CDI_RETURN_IF_ERROR(Need(std::min(Available() + 1, kMaxPartHeaderBytes)));
      const std::string_view window = Window();
      // The boundary line's end: transport padding, then CRLF.
      const size_t line_end = window.find("\r\n");
      if (line_end != std::string_view::npos) {
        if (window.substr(0, line_end).find_first_not_of(" \t") != std::string_view::npos) {
          return InvalidArgumentError(description_ + ": a multipart boundary line holds more "
                                      "than the boundary");
        }
        const std::string_view rest = window.substr(line_end + 2);
        if (rest.substr(0, 2) == "\r\n") {
          begin_ += line_end + 4;  // a part with no headers at all
          return std::string();
        }
        const size_t end = rest.find("\r\n\r\n");
        if (end != std::string_view::npos) {
          std::string headers(rest.substr(0, end + 2));
          begin_ += line_end + 2 + end + 4;
          return headers;
        }
      }
      if (body_ended_ || window.size() >= kMaxPartHeaderBytes) {
        return InvalidArgumentError(description_ +
                                    ": a part of the multipart form has no end to its headers "
                                    "within " + std::to_string(kMaxPartHeaderBytes) + " bytes");
      }
    }
  }

  // The name parameter of a part's Content-Disposition: form-data; "" when
  // it has none.
  static std::string FormName(const std::string& headers) {
    size_t pos = 0;
    while (pos < headers.size()) {
      size_t end = headers.find("\r\n", pos);
      if (end == std::string::npos) end = headers.size();
      std::string_view line(headers.data() + pos, end - pos);
      pos = end + 2;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      if (AsciiLower(TrimSpace(line.substr(0, colon))) != "content-disposition") continue;
      std::string_view value = TrimSpace(line.substr(colon + 1));
      size_t semicolon = value.find(';');
      if (AsciiLower(TrimSpace(value.substr(0, semicolon))) != "form-data") return "";
      if (semicolon == std::string_view::npos) return "";
      std::vector<std::pair<std::string, std::string>> parameters;
      if (!ParseParameters(value.substr(semicolon + 1), parameters)) return "";
      for (const auto& [key, text] : parameters) {
        if (key == "name") return text;
      }
      return "";
    }
    return "";
  }

  Status NoFilePart() const {
    return InvalidArgumentError(description_ +
                                ": the multipart form has no part named 'file'; send the image "
                                "as the form field 'file' (curl -F file=@IMAGE)");
  }

  BodyDecoder body_;
  const std::string delimiter_;
  const std::string description_;
  std::vector<uint8_t> buffer_;
  size_t begin_ = 0;
  bool body_ended_ = false;
  bool ended_ = false;
};

}  // namespace

Result<std::optional<std::string>> FormDataBoundary(std::string_view content_type) {
  const size_t semicolon = content_type.find(';');
  if (AsciiLower(TrimSpace(content_type.substr(0, semicolon))) != "multipart/form-data") {
    return std::optional<std::string>();
  }
  std::vector<std::pair<std::string, std::string>> parameters;
  if (semicolon != std::string_view::npos &&
      !ParseParameters(content_type.substr(semicolon + 1), parameters)) {
    return InvalidArgumentError("the Content-Type header's parameters are malformed: " +
                                std::string(content_type));
  }
  for (const auto& [name, value] : parameters) {
    if (name != "boundary") continue;
    if (value.empty() || value.size() > 70) {
      return InvalidArgumentError("the multipart boundary must be 1 to 70 characters long, got " +
                                  std::to_string(value.size()));
    }
    return std::optional<std::string>(value);
  }
  return InvalidArgumentError(
      "multipart/form-data without a boundary parameter in the Content-Type header");
}

Result<std::unique_ptr<ByteSource>> OpenRequestBody(const RequestBodySpec& spec,
                                                    RequestStream& stream,
                                                    const CancelToken* cancel) {
  if (spec.multipart_boundary.empty()) {
    return std::unique_ptr<ByteSource>(std::make_unique<PlainBodySource>(spec, stream, cancel));
  }
  auto form = std::make_unique<FormFileSource>(spec, stream, cancel);
  CDI_RETURN_IF_ERROR(form->FindFilePart());
  return std::unique_ptr<ByteSource>(std::move(form));
}

}  // namespace cdi::importer
