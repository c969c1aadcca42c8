// A real HTTP proxy on 127.0.0.1 for tests: Debian's tinyproxy, run in the
// foreground with its own configuration and log in a temporary directory,
// optionally behind a TLS front (test/server/tls_relay.py) to make an
// https:// proxy, and optionally requiring Basic credentials.
//
//   ProxyServer proxy;
//   spec.network.proxy.http_proxy = proxy.Url();
//   ...
//   EXPECT_EQ(proxy.WaitForRequests(1), {"GET http://127.0.0.1:PORT/disk.img HTTP/1.1"});
//
// The constructor throws std::runtime_error when tinyproxy cannot start
// (scripts/install-deps.sh installs it); the destructor stops it.
// Thread-safety: construct and destroy on one thread; the const accessors may
// be called from any thread.
#ifndef CDI_TEST_SUPPORT_PROXY_SERVER_H_
#define CDI_TEST_SUPPORT_PROXY_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test/support/certs.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {

struct ProxyServerOptions {
  // Credentials the proxy requires (tinyproxy's BasicAuth); empty: none.
  std::string user;
  std::string password;
  // Speak TLS to clients with this certificate (an https:// proxy); empty:
  // plain HTTP.
  CertKey tls;
};

class ProxyServer {
 public:
  explicit ProxyServer(ProxyServerOptions options = {});
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Where clients connect: the TLS front's port for an https:// proxy.
  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT", or "https://localhost:PORT" (the name the test
  // certificates hold).
  std::string Url() const;
  // The same URL with user info, "http://user:password@127.0.0.1:PORT".
  std::string UrlWithCredentials(const std::string& user, const std::string& password) const;

  // The request lines tinyproxy logged, in order: "GET http://host:port/path
  // HTTP/1.1", "CONNECT host:port HTTP/1.1".
  std::vector<std::string> RequestLines() const;
  // Waits (30 s at most) until `count` request lines are logged.
  std::vector<std::string> WaitForRequests(size_t count) const;
  const std::string& log_path() const { return log_; }

 private:
  ProxyServerOptions options_;
  TempDir dir_;
  std::string log_;
  uint16_t proxy_port_ = 0;  // tinyproxy's own
  uint16_t port_ = 0;
  std::unique_ptr<BackgroundProcess> proxy_;
  std::unique_ptr<BackgroundProcess> tls_front_;
};

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_PROXY_SERVER_H_
