#include "test/support/proxy_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test/support/files.h"
#include "test/support/http_server.h"

namespace cdi::test {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);

std::string ReadIfThere(const std::string& path) { return FileExists(path) ? ReadFile(path) : ""; }

}  // namespace

ProxyServer::ProxyServer(ProxyServerOptions options) : options_(std::move(options)) {
  const std::string& d = dir_.path();
  log_ = d + "/tinyproxy.log";
  std::string last_error;
  for (int attempt = 0; attempt < 5 && !proxy_; ++attempt) {
    proxy_port_ = UnusedPort();
    std::ostringstream conf;
    conf << "Port " << proxy_port_ << "\n"
         << "Listen 127.0.0.1\n"
         << "Timeout 120\n"
         << "LogFile \"" << log_
         << "\"\n"
         // Connect: one line per connection and per request line.
         << "LogLevel Connect\n"
         << "MaxClients 64\n"
         << "Allow 127.0.0.1\n"
         << "PidFile \"" << d << "/tinyproxy.pid\"\n"
         << "DisableViaHeader Yes\n";
    if (!options_.user.empty()) {
      conf << "BasicAuth " << options_.user << " " << options_.password << "\n";
    }
    WriteFile(d + "/tinyproxy.conf", conf.str());
    auto process = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"tinyproxy", "-d", "-c", d + "/tinyproxy.conf"},
        d + "/tinyproxy.out");
    if (WaitListening(proxy_port_, *process, kStartTimeout)) {
      proxy_ = std::move(process);
      break;
    }
    process.reset();
    last_error = ReadIfThere(log_) + ReadIfThere(d + "/tinyproxy.out");
    if (last_error.find("in use") == std::string::npos) break;
  }
  if (!proxy_) throw std::runtime_error("tinyproxy did not start:\n" + last_error);
  port_ = proxy_port_;
  if (options_.tls.cert.empty()) return;

  std::string ports_file = d + "/tls-front.json";
  tls_front_ = std::make_unique<BackgroundProcess>(
      std::vector<std::string>{"python3", SourceDir() + "/test/server/tls_relay.py", "--cert",
                               options_.tls.cert, "--key", options_.tls.key, "--upstream-port",
                               std::to_string(proxy_port_), "--ports-file", ports_file},
      d + "/tls-front.out");
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!FileExists(ports_file)) {
    if (tls_front_->Wait(std::chrono::milliseconds(0)) != -1 ||
        std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("the TLS front of tinyproxy did not start:\n" +
                               ReadIfThere(d + "/tls-front.out"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string ports = ReadFile(ports_file);
  size_t colon = ports.find(':');
  port_ = static_cast<uint16_t>(std::stoi(ports.substr(colon + 1)));
}

ProxyServer::~ProxyServer() = default;

std::string ProxyServer::Url() const {
  return options_.tls.cert.empty() ? "http://127.0.0.1:" + std::to_string(port_)
                                   : "https://localhost:" + std::to_string(port_);
}

std::string ProxyServer::UrlWithCredentials(const std::string& user,
                                            const std::string& password) const {
  std::string url = Url();
  size_t authority = url.find("://") + 3;
  return url.substr(0, authority) + user + ":" + password + "@" + url.substr(authority);
}

std::vector<std::string> ProxyServer::RequestLines() const {
  std::vector<std::string> lines;
  std::istringstream log(ReadIfThere(log_));
  std::string line;
  const std::string marker = "]: Request (file descriptor ";
  while (std::getline(log, line)) {
    size_t at = line.find(marker);
    if (at == std::string::npos) continue;
    size_t start = line.find("): ", at + marker.size());
    if (start == std::string::npos) continue;
    lines.push_back(line.substr(start + 3));
  }
  return lines;
}

std::vector<std::string> ProxyServer::WaitForRequests(size_t count) const {
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    std::vector<std::string> lines = RequestLines();
    if (lines.size() >= count || std::chrono::steady_clock::now() >= deadline) return lines;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace cdi::test
