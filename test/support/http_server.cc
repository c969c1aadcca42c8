#include "test/support/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "test/support/files.h"

namespace cdi::test {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);

// ---------------------------------------------------------------------------
// A small JSON reader: enough for the servers' log lines (objects, strings,
// numbers, booleans, null, arrays).

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;  // string value, or a number's or boolean's spelling
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  const Json* Find(std::string_view name) const {
    for (const auto& [key, value] : members) {
      if (key == name) return &value;
    }
    return nullptr;
  }
  std::string String(std::string_view name) const {
    const Json* value = Find(name);
    return value != nullptr ? value->text : "";
  }
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  Json Parse() {
    Json value = Value();
    SkipSpace();
    if (pos_ != text_.size()) Fail("trailing characters");
    return value;
  }

 private:
  [[noreturn]] void Fail(const std::string& why) const {
    throw std::runtime_error("bad JSON (" + why + ") at " + std::to_string(pos_) + ": " +
                             std::string(text_));
  }
  void SkipSpace() {
    while (pos_ < text_.size() &&
           std::string_view(" \t\r\n").find(text_[pos_]) != std::string_view::npos) {
      ++pos_;
    }
  }
  char Peek() {
    SkipSpace();
    if (pos_ >= text_.size()) Fail("unexpected end");
    return text_[pos_];
  }
  void Expect(char c) {
    if (Peek() != c) Fail(std::string("expected ") + c);
    ++pos_;
  }

  Json Value() {
    char c = Peek();
    Json value;
    if (c == '{') {
      value.kind = Json::Kind::kObject;
      ++pos_;
      if (Peek() == '}') {
        ++pos_;
        return value;
      }
      while (true) {
        std::string key = StringLiteral();
        Expect(':');
        value.members.emplace_back(std::move(key), Value());
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        Expect('}');
        return value;
      }
    }
    if (c == '[') {
      value.kind = Json::Kind::kArray;
      ++pos_;
      if (Peek() == ']') {
        ++pos_;
        return value;
      }
      while (true) {
        value.items.push_back(Value());
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        Expect(']');
        return value;
      }
    }
    if (c == '"') {
      value.kind = Json::Kind::kString;
      value.text = StringLiteral();
      return value;
    }
    size_t start = pos_;
    while (pos_ < text_.size() &&
           std::string_view(",}] \t\r\n").find(text_[pos_]) == std::string_view::npos) {
      ++pos_;
    }
    value.text = std::string(text_.substr(start, pos_ - start));
    if (value.text == "null") {
      value.kind = Json::Kind::kNull;
    } else if (value.text == "true" || value.text == "false") {
      value.kind = Json::Kind::kBool;
    } else if (!value.text.empty()) {
      value.kind = Json::Kind::kNumber;
    } else {
      Fail("unexpected character");
    }
    return value;
  }

  static void AppendUtf8(std::string& out, uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  uint32_t Hex4() {
    if (pos_ + 4 > text_.size()) Fail("short \\u escape");
    uint32_t code = 0;
    auto [end, error] = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 4, code, 16);
    if (error != std::errc() || end != text_.data() + pos_ + 4) Fail("bad \\u escape");
    pos_ += 4;
    return code;
  }

  std::string StringLiteral() {
    Expect('"');
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) Fail("unterminated string");
      char c = text_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) Fail("unterminated escape");
      char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t code = Hex4();
          if (code >= 0xD800 && code < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            uint32_t low = Hex4();
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(out, code);
          break;
        }
        default:
          Fail("unknown escape");
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines;
  if (!FileExists(path)) return lines;
  std::istringstream stream(ReadFile(path));
  std::string line;
  // A line still being written has no newline yet: leave it for next time.
  while (std::getline(stream, line)) {
    if (stream.eof()) break;
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A port the kernel just had free on 127.0.0.1.
uint16_t PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    throw std::runtime_error("cannot bind a free port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

// Connections to the test servers must not go through a proxy the
// environment may name (curl reads http_proxy and friends).
void BypassProxiesForLoopback() {
  for (const char* name : {"no_proxy", "NO_PROXY"}) {
    const char* current = getenv(name);
    std::string value = current != nullptr ? current : "";
    if (value.find("127.0.0.1") != std::string::npos) continue;
    value += std::string(value.empty() ? "" : ",") + "127.0.0.1,localhost";
    setenv(name, value.c_str(), 1);
  }
}

// Starts a server that writes {"port": ...} into `ports_file` once it
// listens, and waits for it; throws when it exits or takes too long.
Json StartWithPortsFile(const std::vector<std::string>& argv, const std::string& dir,
                        const std::string& ports_file, const std::string& what,
                        std::unique_ptr<BackgroundProcess>& process) {
  process = std::make_unique<BackgroundProcess>(argv, dir + "/server.out");
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!FileExists(ports_file)) {
    if (process->Wait(std::chrono::milliseconds(0)) != -1 ||
        std::chrono::steady_clock::now() >= deadline) {
      std::string output = FileExists(dir + "/server.out") ? ReadFile(dir + "/server.out") : "";
      process.reset();
      throw std::runtime_error(what + " did not start:\n" + output);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return JsonReader(ReadFile(ports_file)).Parse();
}

}  // namespace

uint16_t UnusedPort() { return PickFreePort(); }

// ---------------------------------------------------------------------------
// NginxServer

NginxServer::NginxServer(NginxOptions options) : options_(std::move(options)) {
  BypassProxiesForLoopback();
  const std::string& d = dir_.path();
  access_log_ = d + "/access.log";
  error_log_ = d + "/error.log";
  bool tls = !options_.tls.cert.empty();
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = PickFreePort();
    std::ostringstream conf;
    conf << "daemon off;\n"
         << "master_process off;\n"
         << "worker_processes 1;\n"
         << "pid " << d << "/nginx.pid;\n"
         << "error_log " << error_log_ << " info;\n"
         << "events { worker_connections 256; }\n"
         << "http {\n"
         << "  log_format cdi_test escape=json '{\"method\":\"$request_method\","
            "\"uri\":\"$request_uri\",\"status\":\"$status\",\"body_bytes\":\"$body_bytes_sent\","
            "\"range\":\"$http_range\",\"user_agent\":\"$http_user_agent\","
            "\"client_subject\":\"$ssl_client_s_dn\"}';\n"
         << "  access_log " << access_log_ << " cdi_test;\n"
         << "  client_body_temp_path " << d << "/body;\n"
         << "  proxy_temp_path " << d << "/proxy;\n"
         << "  fastcgi_temp_path " << d << "/fastcgi;\n"
         << "  uwsgi_temp_path " << d << "/uwsgi;\n"
         << "  scgi_temp_path " << d << "/scgi;\n"
         << "  default_type application/octet-stream;\n"
         << "  sendfile on;\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port_ << (tls ? " ssl" : "") << ";\n"
         << "    server_name localhost;\n"
         << "    root " << options_.root << ";\n";
    if (tls) {
      conf << "    ssl_certificate " << options_.tls.cert << ";\n"
           << "    ssl_certificate_key " << options_.tls.key << ";\n"
           << "    ssl_protocols TLSv1.2 TLSv1.3;\n";
      if (!options_.client_ca.empty()) {
        conf << "    ssl_client_certificate " << options_.client_ca << ";\n"
             << "    ssl_verify_client on;\n"
             << "    ssl_verify_depth 2;\n";
      }
    }
    conf << "    location / { }\n"
         << "  }\n"
         << "}\n";
    WriteFile(d + "/nginx.conf", conf.str());
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", d, "-c", d + "/nginx.conf", "-e",
                                 error_log_},
        d + "/nginx.out");
    if (WaitListening(port_, *process_, kStartTimeout)) return;
    process_.reset();
    last_error = (FileExists(error_log_) ? ReadFile(error_log_) : "") +
                 (FileExists(d + "/nginx.out") ? ReadFile(d + "/nginx.out") : "");
    if (last_error.find("Address already in use") == std::string::npos) break;
  }
  throw std::runtime_error("nginx did not start:\n" + last_error);
}

NginxServer::~NginxServer() = default;

std::string NginxServer::base_url() const {
  return std::string(options_.tls.cert.empty() ? "http" : "https") +
         "://127.0.0.1:" + std::to_string(port_);
}

std::string NginxServer::Url(std::string_view path) const { return base_url() + std::string(path); }

std::string NginxServer::UrlWithHost(std::string_view host, std::string_view path) const {
  return std::string(options_.tls.cert.empty() ? "http" : "https") + "://" + std::string(host) +
         ":" + std::to_string(port_) + std::string(path);
}

std::vector<AccessLogEntry> NginxServer::AccessLog() const {
  std::vector<AccessLogEntry> entries;
  for (const auto& line : Lines(access_log_)) {
    Json json = JsonReader(line).Parse();
    AccessLogEntry entry;
    entry.method = json.String("method");
    entry.uri = json.String("uri");
    entry.status = std::stoi(json.String("status"));
    entry.body_bytes = std::stoull(json.String("body_bytes"));
    entry.range = json.String("range");
    entry.user_agent = json.String("user_agent");
    entry.client_subject = json.String("client_subject");
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::vector<AccessLogEntry> NginxServer::WaitForRequests(size_t count) const {
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    std::vector<AccessLogEntry> entries = AccessLog();
    if (entries.size() >= count || std::chrono::steady_clock::now() >= deadline) return entries;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

size_t NginxServer::CountRequests(std::string_view path) const {
  size_t count = 0;
  for (const auto& entry : AccessLog()) {
    if (std::string_view(entry.uri).substr(0, entry.uri.find('?')) == path) ++count;
  }
  return count;
}

// ---------------------------------------------------------------------------
// FaultServer

std::string RecordedRequest::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

FaultServer::FaultServer(const std::string& root, const std::string& script_json) {
  BypassProxiesForLoopback();
  const std::string& d = dir_.path();
  request_log_ = d + "/requests.jsonl";
  sent_log_ = d + "/sent.jsonl";
  std::string script = d + "/script.json";
  std::string ports_file = d + "/ports.json";
  JsonReader(script_json).Parse();  // a typo in a test's script fails here, clearly
  WriteFile(script, script_json);
  Json ports = StartWithPortsFile(
      {"python3", SourceDir() + "/test/server/fault_server.py", "--root", root, "--script", script,
       "--log", request_log_, "--sent-log", sent_log_, "--ports-file", ports_file},
      d, ports_file, "fault server", process_);
  port_ = static_cast<uint16_t>(std::stoi(ports.String("port")));
  other_port_ = static_cast<uint16_t>(std::stoi(ports.String("other_port")));
}

FaultServer::~FaultServer() = default;

std::string FaultServer::Url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::string FaultServer::OtherUrl(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(other_port_) + std::string(path);
}

std::vector<RecordedRequest> FaultServer::Requests() const {
  std::vector<RecordedRequest> requests;
  for (const auto& line : Lines(request_log_)) {
    Json json = JsonReader(line).Parse();
    RecordedRequest request;
    request.origin = json.String("origin");
    request.method = json.String("method");
    request.target = json.String("target");
    request.path = json.String("path");
    request.query = json.String("query");
    if (const Json* headers = json.Find("headers")) {
      for (const auto& [name, value] : headers->members) request.headers[name] = value.text;
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

std::vector<RecordedRequest> FaultServer::RequestsFor(std::string_view path) const {
  std::vector<RecordedRequest> matching;
  for (auto& request : Requests()) {
    if (request.path == path) matching.push_back(std::move(request));
  }
  return matching;
}

std::vector<SentResponse> FaultServer::Responses() const {
  std::vector<SentResponse> responses;
  for (const auto& line : Lines(sent_log_)) {
    Json json = JsonReader(line).Parse();
    SentResponse response;
    response.origin = json.String("origin");
    response.method = json.String("method");
    response.path = json.String("path");
    response.status = std::stoi(json.String("status"));
    response.first = std::stoull(json.String("first"));
    response.bytes = std::stoull(json.String("bytes"));
    response.ending = json.String("ending");
    responses.push_back(std::move(response));
  }
  return responses;
}

std::vector<SentResponse> FaultServer::WaitForResponses(size_t count) const {
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    std::vector<SentResponse> responses = Responses();
    if (responses.size() >= count || std::chrono::steady_clock::now() >= deadline) {
      return responses;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

uint64_t FaultServer::BytesSent(std::string_view path, size_t responses) const {
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    uint64_t bytes = 0;
    size_t ended = 0;
    for (const SentResponse& response : Responses()) {
      if (response.path != path) continue;
      bytes += response.bytes;
      ++ended;
    }
    if (ended >= responses || std::chrono::steady_clock::now() >= deadline) return bytes;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---------------------------------------------------------------------------
// S3 server

S3Server::S3Server(const std::string& root, S3ServerOptions server_options)
    : options_(std::move(server_options)) {
  BypassProxiesForLoopback();
  const S3ServerOptions& options = options_;
  const std::string& d = dir_.path();
  log_ = d + "/requests.jsonl";
  const std::string ports_file = d + "/ports.json";
  // botocore imports under Debian's interpreter only.
  std::vector<std::string> argv = {"/usr/bin/python3", SourceDir() + "/test/support/s3_server.py",
                                   "--root", root, "--access-key", options.access_key,
                                   "--secret-key", options.secret_key, "--log", log_,
                                   "--ports-file", ports_file};
  if (!options.session_token.empty()) {
    argv.insert(argv.end(), {"--session-token", options.session_token});
  }
  for (const std::string& bucket : options.public_buckets) {
    argv.insert(argv.end(), {"--public-bucket", bucket});
  }
  for (const std::string& drop : options.drops) argv.insert(argv.end(), {"--drop", drop});
  if (!options.tls.cert.empty()) {
    argv.insert(argv.end(), {"--cert", options.tls.cert, "--key", options.tls.key});
  }
  Json ports = StartWithPortsFile(argv, d, ports_file, "S3 server", process_);
  port_ = static_cast<uint16_t>(std::stoi(ports.String("port")));
}

S3Server::~S3Server() = default;

std::string S3Server::endpoint() const {
  return (options_.tls.cert.empty() ? "http" : "https") + std::string("://127.0.0.1:") +
         std::to_string(port_);
}

std::string S3Server::virtual_host_endpoint() const {
  return (options_.tls.cert.empty() ? "http" : "https") + std::string("://localhost:") +
         std::to_string(port_);
}

std::vector<S3LoggedRequest> S3Server::Requests() const {
  std::vector<S3LoggedRequest> requests;
  for (const auto& line : Lines(log_)) {
    Json json = JsonReader(line).Parse();
    S3LoggedRequest request;
    request.method = json.String("method");
    request.host = json.String("host");
    request.path = json.String("path");
    request.range = json.String("range");
    request.signed_headers = json.String("signed_headers");
    request.status = std::stoi(json.String("status"));
    request.body_bytes = std::stoull(json.String("body_bytes"));
    requests.push_back(std::move(request));
  }
  return requests;
}

}  // namespace cdi::test
