#include "pod/containerimage_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pod/go_flags.h"

extern char** environ;

namespace cdi::pod {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr int kHeadTimeoutMs = 10'000;  // CDI's ReadHeaderTimeout

std::string ErrnoText(int error) { return std::strerror(error); }

// Go's log.Fatal: the line, then exit 1.
[[noreturn]] void Fatal(const std::string& message) {
  GoLog(message);
  std::exit(1);
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Names in `dir`, sorted as Go's os.ReadDir sorts them; nullopt with errno set on failure.
std::optional<std::vector<std::string>> ReadDirNames(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return std::nullopt;
  std::vector<std::string> names;
  while (dirent* entry = readdir(d)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// filepath.Walk's order: the root, then each entry in lexical order, depth first.
void PrintFiles(const std::string& path) {
  std::printf("%s\n", path.c_str());
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  if (auto names = ReadDirNames(path)) {
    for (const std::string& name : *names) {
      PrintFiles(path == "/" ? "/" + name : path + "/" + name);
    }
  }
}

std::string HttpDate(std::time_t when) {
  std::tm gmt{};
  gmtime_r(&when, &gmt);
  char text[64];
  std::strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &gmt);
  return text;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// Go's encoding/json string escaping (<, > and & as \u00XX, as json.Encoder does).
std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == '<' || c == '>' || c == '&') {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// A request path, percent-decoded and cleaned as path.Clean("/" + p) does, so
// that no ".." leaves the served directory. nullopt when the encoding is bad.
std::optional<std::string> CleanPath(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::string decoded;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] != '%') {
      decoded += target[i];
      continue;
    }
    if (i + 2 >= target.size() || !std::isxdigit(static_cast<unsigned char>(target[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(target[i + 2]))) {
      return std::nullopt;
    }
    decoded += static_cast<char>(std::stoi(std::string(target.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  if (decoded.find('\0') != std::string::npos) return std::nullopt;
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= decoded.size()) {
    size_t end = decoded.find('/', start);
    if (end == std::string::npos) end = decoded.size();
    std::string part = decoded.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string clean;
  for (const std::string& part : parts) clean += "/" + part;
  if (clean.empty()) clean = "/";
  // A trailing slash is kept: it says "the directory".
  if (clean != "/" && decoded.ends_with('/')) clean += "/";
  return clean;
}

// One byte range of a file of `size` bytes, from a Range header's value.
enum class RangeVerdict { kWhole, kPart, kUnsatisfiable };
struct ByteRange {
  RangeVerdict verdict = RangeVerdict::kWhole;
  uint64_t first = 0;
  uint64_t length = 0;
};

std::optional<uint64_t> ParseDecimal(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

ByteRange ParseRange(std::string_view header, uint64_t size) {
  header = Trim(header);
  if (!header.starts_with("bytes=")) return {};
  std::string_view spec = Trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return {};  // several ranges: the whole file
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  std::string_view first_text = Trim(spec.substr(0, dash));
  std::string_view last_text = Trim(spec.substr(dash + 1));
  if (first_text.empty()) {  // "-n": the last n bytes
    std::optional<uint64_t> n = ParseDecimal(last_text);
    if (!n) return {};
    if (*n == 0 || size == 0) return {RangeVerdict::kUnsatisfiable};
    const uint64_t length = std::min(*n, size);
    return {RangeVerdict::kPart, size - length, length};
  }
  std::optional<uint64_t> first = ParseDecimal(first_text);
  if (!first) return {};
  if (*first >= size) return {RangeVerdict::kUnsatisfiable};
  uint64_t last = size - 1;
  if (!last_text.empty()) {
    std::optional<uint64_t> parsed = ParseDecimal(last_text);
    if (!parsed || *parsed < *first) return {};
    last = std::min(*parsed, size - 1);
  }
  return {RangeVerdict::kPart, *first, last - *first + 1};
}

struct Request {
  std::string method;
  std::string target;
  std::string version;
  std::map<std::string, std::string> headers;  // names in lower case
};

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool SendFileRange(int socket, int file, uint64_t first, uint64_t length) {
  off_t offset = static_cast<off_t>(first);
  while (length > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(length, 1u << 30));
    const ssize_t n = sendfile(socket, file, &offset, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    length -= static_cast<uint64_t>(n);
  }
  return true;
}

class Server {
 public:
  explicit Server(std::string dir) : dir_(std::move(dir)) {}

  // Binds 127.0.0.1:port; "" on success, else the error.
  std::string Listen(int port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return ErrnoText(errno);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listen_fd_, 64) != 0) {
      return ErrnoText(errno);
    }
    return "";
  }

  void Start() {
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  // Stops accepting, ends every connection and waits for their threads.
  void Stop() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    close(listen_fd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (int fd : connections_) shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (std::thread& thread : threads) thread.join();
  }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) {
        close(fd);
        return;
      }
      connections_.insert(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // One connection: requests until the client closes, asks to close, or
  // sends nothing for kHeadTimeoutMs.
  void Serve(int fd) {
    std::string buffer;
    while (!stopping_) {
      std::optional<Request> request = ReadRequest(fd, buffer);
      if (!request) break;
      if (!Answer(fd, *request)) break;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.erase(fd);
    close(fd);
  }

  std::optional<Request> ReadRequest(int fd, std::string& buffer) {
    size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (buffer.size() > kMaxHeadBytes) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, kHeadTimeoutMs) <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return std::nullopt;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    std::string head = buffer.substr(0, end);
    buffer.erase(0, end + 4);  // requests carry no body here
    Request request;
    size_t line_end = head.find("\r\n");
    std::string_view line = std::string_view(head).substr(0, line_end);
    const size_t a = line.find(' ');
    const size_t b = line.rfind(' ');
    if (a == std::string_view::npos || b == a) {
      SendAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return std::nullopt;
    }
    request.method = line.substr(0, a);
    request.target = line.substr(a + 1, b - a - 1);
    request.version = line.substr(b + 1);
    while (line_end != std::string::npos) {
      const size_t next = head.find("\r\n", line_end + 2);
      std::string_view header = std::string_view(head).substr(
          line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = header.find(':');
      if (colon != std::string_view::npos) {
        request.headers[Lower(Trim(header.substr(0, colon)))] =
            std::string(Trim(header.substr(colon + 1)));
      }
      line_end = next;
    }
    return request;
  }

  std::string Header(const Request& request, const std::string& name) const {
    auto it = request.headers.find(name);
    return it == request.headers.end() ? "" : it->second;
  }

  // Sends the answer; false when the connection is to close.
  bool Answer(int fd, const Request& request) {
    bool keep_alive = request.version == "HTTP/1.1";
    const std::string connection = Lower(Header(request, "connection"));
    if (connection == "close") keep_alive = false;
    if (connection == "keep-alive") keep_alive = true;
    const bool head = request.method == "HEAD";

    auto simple = [&](int status, std::string_view reason, const std::string& content_type,
                      const std::string& body, const std::string& extra = "") {
      std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                        "\r\nContent-Type: " + content_type +
                        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra +
                        "Date: " + HttpDate(std::time(nullptr)) + "\r\n" +
                        (keep_alive ? "" : "Connection: close\r\n") + "\r\n";
      if (!head) out += body;
      return SendAll(fd, out) && keep_alive;
    };
    const std::string kText = "text/plain; charset=utf-8";

    std::optional<std::string> path = CleanPath(request.target);
    if (!path || request.target.empty() || request.target[0] != '/') {
      keep_alive = false;
      return simple(400, "Bad Request", kText, "400 Bad Request\n");
    }
    if (*path == "/info") {
      std::string body = "{\"env\":[";
      for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        if (entry != environ) body += ",";
        body += JsonString(*entry);
      }
      body += "]}\n";
      return simple(200, "OK", "application/json", body);
    }

    const std::string file_path = dir_ + *path;
    const int file = open(file_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file < 0) {
      if (errno == EACCES) return simple(403, "Forbidden", kText, "403 Forbidden\n");
      return simple(404, "Not Found", kText, "404 page not found\n");
    }
    std::unique_ptr<int, void (*)(int*)> closer(new int(file), [](int* f) {
      close(*f);
      delete f;
    });
    struct stat st {};
    if (fstat(file, &st) != 0) return simple(500, "Internal Server Error", kText, "stat failed\n");

    if (S_ISDIR(st.st_mode)) {
      if (!path->ends_with('/')) {
        const std::string location = *path + "/";
        return simple(301, "Moved Permanently", "text/html; charset=utf-8",
                      "<a href=\"" + location + "\">Moved Permanently</a>.\n\n",
                      "Location: " + location + "\r\n");
      }
      std::string body = "<pre>\n";
      if (auto names = ReadDirNames(file_path)) {
        for (const std::string& name : *names) {
          const std::string shown = IsDirectory(file_path + "/" + name) ? name + "/" : name;
          body += "<a href=\"" + shown + "\">" + shown + "</a>\n";
        }
      }
      body += "</pre>\n";
      return simple(200, "OK", "text/html; charset=utf-8", body);
    }
    if (!S_ISREG(st.st_mode)) return simple(404, "Not Found", kText, "404 page not found\n");

    const uint64_t size = static_cast<uint64_t>(st.st_size);
    const std::string last_modified = HttpDate(st.st_mtime);
    ByteRange range;
    const std::string range_header = Header(request, "range");
    const std::string if_range = Header(request, "if-range");
    if (!range_header.empty() && (if_range.empty() || if_range == last_modified)) {
      range = ParseRange(range_header, size);
    }
    if (range.verdict == RangeVerdict::kUnsatisfiable) {
      return simple(416, "Requested Range Not Satisfiable", kText,
                    "invalid range: failed to overlap\n",
                    "Content-Range: bytes */" + std::to_string(size) + "\r\n");
    }
    const bool part = range.verdict == RangeVerdict::kPart;
    const uint64_t first = part ? range.first : 0;
    const uint64_t length = part ? range.length : size;
    std::string out = part ? "HTTP/1.1 206 Partial Content\r\n" : "HTTP/1.1 200 OK\r\n";
    out += "Accept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n";
    out += "Content-Length: " + std::to_string(length) + "\r\n";
    if (part) {
      out += "Content-Range: bytes " + std::to_string(first) + "-" +
             std::to_string(first + length - 1) + "/" + std::to_string(size) + "\r\n";
    }
    out += "Last-Modified: " + last_modified + "\r\nDate: " + HttpDate(std::time(nullptr)) + "\r\n";
    if (!keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
    if (!SendAll(fd, out)) return false;
    if (!head && !SendFileRange(fd, file, first, length)) return false;
    return keep_alive;
  }

  std::string dir_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::set<int> connections_;
  std::vector<std::thread> threads_;
};

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

int RunContainerImageServer(const std::string& program,
                            const std::vector<std::string>& arguments) {
  int64_t port = 8100;
  std::string directory = ".";
  std::string ready_file = "/shared/ready";
  std::string done_file = "/shared/done";
  bool version = false;
  GoFlagSet flags(program);
  flags.Int("p", &port, "server port");
  flags.String("image-dir", &directory, "directory to serve");
  flags.String("ready-file", &ready_file, "file to create when ready for connections");
  flags.String("done-file", &done_file, "file created when the client is done");
  flags.Bool("version", &version, "print the version and exit");
  switch (flags.Parse(arguments)) {
    case GoFlagSet::Outcome::kParsed:
      break;
    case GoFlagSet::Outcome::kHelp:
      std::fputs(flags.Usage().c_str(), stderr);
      return 0;
    case GoFlagSet::Outcome::kError:
      std::fprintf(stderr, "%s\n%s", flags.error().c_str(), flags.Usage().c_str());
      return 2;
  }
  if (version) {
    std::printf("cdi-containerimage-server %s\n", CDI_VERSION);
    return 0;
  }
  if (port < 0 || port > 65535) {
    Fatal("Failed listening on localhost:" + std::to_string(port) + " err: invalid port");
  }

  for (const char* dir : {"/sysroot", "/ostree"}) {
    if (IsDirectory(dir)) {
      Fatal(
          "bootc image detected: this image contains an ostree-based bootable OS and cannot be "
          "imported as a regular container disk; bootc-to-disk conversion is not yet "
          "implemented");
    }
  }

  struct stat st {};
  if (lstat(directory.c_str(), &st) != 0) {
    Fatal("Failed walking the directory " + directory + ": lstat " + directory + ": " +
          ErrnoText(errno));
  }
  PrintFiles(directory);
  std::fflush(stdout);
  std::optional<std::vector<std::string>> names = ReadDirNames(directory);
  if (!names) {
    Fatal("Failed get image filename in " + directory + ": open " + directory + ": " +
          ErrnoText(errno));
  }
  if (names->size() != 1 || IsDirectory(directory + "/" + names->front())) {
    Fatal("Failed get image filename in " + directory + ": Invalid container image");
  }
  const std::string image_filename = names->front();

  Server server(directory);
  const std::string address = "localhost:" + std::to_string(port);
  if (std::string error = server.Listen(static_cast<int>(port)); !error.empty()) {
    Fatal("Failed listening on " + address + " err: listen tcp 127.0.0.1:" +
          std::to_string(port) + ": " + error);
  }
  {
    const int fd = open(ready_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !WriteAll(fd, image_filename)) {
      Fatal("Failed creating \"ready\" file: open " + ready_file + ": " + ErrnoText(errno));
    }
    close(fd);
  }
  GoLog("Serving " + directory + " on HTTP port: " + std::to_string(port));
  server.Start();

  while (!FileExists(done_file)) std::this_thread::sleep_for(std::chrono::seconds(1));
  unlink(done_file.c_str());
  server.Stop();
  unlink(ready_file.c_str());
  GoLog("Importer has completed");
  return 0;
}

}  // namespace cdi::pod
