// The HTTP source through a real proxy on 127.0.0.1 (tinyproxy, plain or
// behind a TLS front), and through the fault server acting as a CONNECT
// proxy, which records what a proxy sees of a tunnelled request.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "sources/http/http_source.h"
#include "sources/source.h"
#include "test/sources/source_test_util.h"
#include "test/support/certs.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/proxy_server.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

using test::FaultServer;
using test::NginxServer;
using test::ProxyServer;
using test::RecordedRequest;
using testing::Fetch;
using testing::LogCapture;

constexpr size_t kSize = 300000;
const std::string& Bytes() {
  static const std::string bytes = test::RandomBytes(kSize, 51);
  return bytes;
}

std::string Port(uint16_t port) { return std::to_string(port); }

// Proxy settings given explicitly, so that the environment (where the test
// servers put 127.0.0.1 into no_proxy) plays no part.
SourceSpec ViaProxy(const std::string& url, const std::string& http_proxy,
                    const std::string& https_proxy, const std::string& no_proxy = "") {
  SourceSpec spec;
  spec.url = url;
  spec.network.max_retries = 0;
  spec.network.proxy.http_proxy = http_proxy;
  spec.network.proxy.https_proxy = https_proxy;
  spec.network.proxy.no_proxy = no_proxy;
  return spec;
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override { test::WriteFile(root_.File("disk.img"), Bytes()); }
  test::TempDir root_;
  const test::TestCertificates& certs_ = test::SharedTestCertificates();
};

TEST_F(ProxyTest, PlainHttpGoesThroughTheProxy) {
  NginxServer origin({.root = root_.path()});
  ProxyServer proxy;
  LogCapture log;
  std::string body;
  Status status = Fetch(ViaProxy(origin.Url("/disk.img"), proxy.Url(), ""), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == Bytes());
  EXPECT_EQ(proxy.WaitForRequests(1),
            std::vector<std::string>{"GET " + origin.Url("/disk.img") + " HTTP/1.1"});
  EXPECT_EQ(origin.WaitForRequests(1).size(), 1u);
  EXPECT_NE(log.text().find("GET " + origin.Url("/disk.img") + " through the proxy " + proxy.Url()),
            std::string::npos)
      << log.text();
}

TEST_F(ProxyTest, HttpsGoesThroughAConnectTunnelWithTheServersCa) {
  NginxServer origin({.root = root_.path(), .tls = certs_.server});
  ProxyServer proxy;
  SourceSpec spec = ViaProxy(origin.Url("/disk.img"), "", proxy.Url());
  spec.tls.ca_files = {certs_.ca.cert};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == Bytes());
  EXPECT_EQ(proxy.WaitForRequests(1),
            std::vector<std::string>{"CONNECT 127.0.0.1:" + Port(origin.port()) + " HTTP/1.1"});
  EXPECT_EQ(origin.WaitForRequests(1).size(), 1u);

  // The server's certificate is still checked through the tunnel.
  SourceSpec untrusted = ViaProxy(origin.Url("/disk.img"), "", proxy.Url());
  Status refused = Fetch(untrusted);
  EXPECT_EQ(refused.code(), ErrorCode::kTls);
  EXPECT_TRUE(refused.message().starts_with("cannot verify the TLS certificate of " +
                                            origin.Url("/disk.img") + ": unknown issuer"))
      << refused.message();
}

TEST_F(ProxyTest, TheServersCredentialsStayInsideTheTunnel) {
  // The fault server as the proxy records the CONNECT request as it came.
  NginxServer origin({.root = root_.path(), .tls = certs_.server});
  FaultServer recorder(root_.path());
  SourceSpec spec = ViaProxy(origin.Url("/disk.img"), recorder.Url(""), recorder.Url(""));
  spec.tls.ca_files = {certs_.ca.cert};
  spec.auth.user = "importer";
  spec.auth.password = "pw-SECRET-tunnel";
  spec.auth.headers = {"X-Auth-Token: hdr-SECRET-tunnel"};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == Bytes());
  std::vector<RecordedRequest> requests = recorder.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "CONNECT");
  EXPECT_EQ(requests[0].target, "127.0.0.1:" + Port(origin.port()));
  for (const auto& [name, value] : requests[0].headers) {
    EXPECT_EQ(value.find("SECRET"), std::string::npos) << name;
    EXPECT_NE(name, "authorization");
    EXPECT_NE(name, "x-auth-token");
  }
}

TEST_F(ProxyTest, NoProxyBypassesTheProxy) {
  NginxServer origin({.root = root_.path()});
  ProxyServer proxy;
  for (const char* bypass : {"127.0.0.1", "127.0.0.0/8", "*", "localhost,127.0.0.1:1,127.0.0.1"}) {
    std::string body;
    Status status = Fetch(ViaProxy(origin.Url("/disk.img"), proxy.Url(), "", bypass), &body);
    ASSERT_TRUE(status.ok()) << bypass << ": " << status.ToString();
    EXPECT_TRUE(body == Bytes()) << bypass;
  }
  // A port that is not the server's does not bypass.
  Status status = Fetch(ViaProxy(origin.Url("/disk.img"), proxy.Url(), "", "127.0.0.1:1"));
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(proxy.WaitForRequests(1).size(), 1u);
  EXPECT_EQ(origin.WaitForRequests(5).size(), 5u);
}

TEST_F(ProxyTest, TheEnvironmentNamesTheProxy) {
  NginxServer origin({.root = root_.path()});
  ProxyServer proxy;
  // After the servers: their constructors put 127.0.0.1 into no_proxy.
  const char* names[] = {"http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"};
  std::vector<std::pair<std::string, std::string>> saved;
  for (const char* name : names) {
    if (const char* value = getenv(name)) saved.emplace_back(name, value);
    unsetenv(name);
  }
  setenv("HTTP_PROXY", proxy.Url().c_str(), 1);
  SourceSpec spec;
  spec.url = origin.Url("/disk.img");
  spec.network.max_retries = 0;
  std::string body;
  Status through = Fetch(spec, &body);
  setenv("no_proxy", "127.0.0.1", 1);
  Status direct = Fetch(spec);
  for (const char* name : names) unsetenv(name);
  for (const auto& [name, value] : saved) setenv(name.c_str(), value.c_str(), 1);
  ASSERT_TRUE(through.ok()) << through.ToString();
  EXPECT_TRUE(body == Bytes());
  ASSERT_TRUE(direct.ok()) << direct.ToString();
  EXPECT_EQ(proxy.WaitForRequests(1),
            std::vector<std::string>{"GET " + origin.Url("/disk.img") + " HTTP/1.1"});
}

TEST_F(ProxyTest, AnUnreachableProxyIsNamed) {
  const uint16_t unused = test::UnusedPort();
  const std::string proxy = "http://127.0.0.1:" + Port(unused);
  Status status = Fetch(ViaProxy("http://images.example/disk.img", proxy, proxy));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_EQ(status.message(), "cannot connect to the proxy " + proxy +
                                  " (from the http proxy setting): connection refused (for "
                                  "http://images.example/disk.img); check the proxy settings");
  Status tunnel = Fetch(ViaProxy("https://images.example/disk.img", proxy, proxy));
  EXPECT_EQ(tunnel.message(), "cannot connect to the proxy " + proxy +
                                  " (from the https proxy setting): connection refused (for "
                                  "https://images.example/disk.img); check the proxy settings");
}

TEST_F(ProxyTest, AProxyNameThatDoesNotExistIsPermanent) {
  SourceSpec spec =
      ViaProxy("http://images.example/disk.img", "http://no-such-proxy.invalid:3128", "");
  spec.network.max_retries = 5;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(),
            "cannot resolve the host name 'no-such-proxy.invalid' of the proxy "
            "http://no-such-proxy.invalid:3128 (from the http proxy setting) for "
            "http://images.example/disk.img: no such host");
}

TEST_F(ProxyTest, AServerTheProxyCannotReachIsATransientProxyAnswer) {
  ProxyServer proxy;
  const std::string url = "http://127.0.0.1:" + Port(test::UnusedPort()) + "/disk.img";
  Status status = Fetch(ViaProxy(url, proxy.Url(), ""));
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_TRUE(status.retryable());
  EXPECT_TRUE(status.message().starts_with("HTTP 5")) << status.message();
  EXPECT_TRUE(
      status.message().ends_with(" from " + url + " (through the proxy " + proxy.Url() + ")"))
      << status.message();
}

TEST_F(ProxyTest, ProxyCredentialsGoToTheProxyAndNowhereElse) {
  NginxServer origin({.root = root_.path()});
  NginxServer tls_origin({.root = root_.path(), .tls = certs_.server});
  ProxyServer proxy({.user = "proxyuser", .password = "proxy-SECRET-pw"});
  LogCapture log;
  std::string seen;

  // Without credentials: the proxy says so, for plain requests and tunnels.
  Status plain = Fetch(ViaProxy(origin.Url("/disk.img"), proxy.Url(), proxy.Url()));
  EXPECT_EQ(plain.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(plain.retryable());
  EXPECT_EQ(plain.message(), "HTTP 407 Proxy Authentication Required from " +
                                 origin.Url("/disk.img") + ": the proxy " + proxy.Url() +
                                 " wants credentials; give them in its URL "
                                 "(http://user:password@host:port, in the http proxy setting)");
  SourceSpec tunnel = ViaProxy(tls_origin.Url("/disk.img"), proxy.Url(), proxy.Url());
  tunnel.tls.ca_files = {certs_.ca.cert};
  Status refused = Fetch(tunnel);
  EXPECT_EQ(refused.code(), ErrorCode::kNetwork);
  EXPECT_EQ(refused.message(), "the proxy " + proxy.Url() +
                                   " refused to open a tunnel to "
                                   "127.0.0.1:" +
                                   Port(tls_origin.port()) + " for " + tls_origin.Url("/disk.img") +
                                   ": HTTP 407 Proxy Authentication Required; give the proxy's "
                                   "credentials in its URL (http://user:password@host:port, in "
                                   "the https proxy setting)");
  seen += plain.message() + "\n" + refused.message() + "\n";

  // With them, in the proxy's URL.
  const std::string with = proxy.UrlWithCredentials("proxyuser", "proxy-SECRET-pw");
  std::string body;
  Status ok = Fetch(ViaProxy(origin.Url("/disk.img"), with, with), &body);
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_TRUE(body == Bytes());
  tunnel = ViaProxy(tls_origin.Url("/disk.img"), with, with);
  tunnel.tls.ca_files = {certs_.ca.cert};
  ok = Fetch(tunnel, &body);
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_TRUE(body == Bytes());

  // Wrong ones, and an unreachable proxy with credentials: no message, no log
  // line shows them.
  const std::string wrong = proxy.UrlWithCredentials("proxyuser", "wrong-SECRET-pw");
  seen += Fetch(ViaProxy(origin.Url("/disk.img"), wrong, wrong)).message() + "\n";
  const std::string gone = "http://u:gone-SECRET-pw@127.0.0.1:" + Port(test::UnusedPort());
  seen += Fetch(ViaProxy(origin.Url("/disk.img"), gone, gone)).message() + "\n";
  seen += Fetch(ViaProxy(origin.Url("/disk.img"), "socks5://u:socks-SECRET-pw@h:1", "")).message();
  const std::string everything = seen + log.text();
  for (const char* secret :
       {"proxy-SECRET-pw", "wrong-SECRET-pw", "gone-SECRET-pw", "socks-SECRET-pw", "proxyuser:"}) {
    EXPECT_EQ(everything.find(secret), std::string::npos) << secret << " in:\n" << everything;
  }
  EXPECT_NE(seen.find("the http proxy setting: socks5:// proxies are not supported"),
            std::string::npos)
      << seen;
}

// ---------------------------------------------------------------------------
// An https:// proxy: TLS between the importer and the proxy

TEST_F(ProxyTest, AnHttpsProxyIsTrustedThroughItsProxyCa) {
  NginxServer origin({.root = root_.path()});
  NginxServer tls_origin({.root = root_.path(), .tls = certs_.server});
  ProxyServer proxy({.tls = certs_.server});
  ASSERT_TRUE(proxy.Url().starts_with("https://localhost:"));

  SourceSpec spec = ViaProxy(origin.Url("/disk.img"), proxy.Url(), proxy.Url());
  spec.tls.proxy_ca_files = {certs_.ca.cert};
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == Bytes());

  // TLS inside TLS: a tunnel through the https:// proxy to an https server;
  // the proxy CA directory (the pod's /proxycerts/) serves both.
  test::TempDir proxy_certs;
  test::WriteFile(proxy_certs.File("ca-bundle.crt"), test::ReadFile(certs_.ca.cert));
  SourceSpec tunnel = ViaProxy(tls_origin.Url("/disk.img"), proxy.Url(), proxy.Url());
  tunnel.tls.proxy_ca_dirs = {proxy_certs.path()};
  status = Fetch(tunnel, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE(body == Bytes());
  EXPECT_EQ(
      proxy.WaitForRequests(2),
      (std::vector<std::string>{"GET " + origin.Url("/disk.img") + " HTTP/1.1",
                                "CONNECT 127.0.0.1:" + Port(tls_origin.port()) + " HTTP/1.1"}));
}

TEST_F(ProxyTest, AnHttpsProxyWithoutItsCaIsRefusedNamingTheProxy) {
  NginxServer origin({.root = root_.path()});
  ProxyServer proxy({.tls = certs_.server});
  SourceSpec spec = ViaProxy(origin.Url("/disk.img"), proxy.Url(), proxy.Url());
  // Turning verification off is for the server: the proxy is still verified.
  spec.tls.verify = TlsVerify::kOff;
  Status status = Fetch(spec);
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), "cannot verify the TLS certificate of the proxy " + proxy.Url() +
                                  ": unknown issuer 'CN=cdi-test Root CA' of the proxy's "
                                  "certificate 'CN=localhost'; add the issuing CA's certificate "
                                  "to the trusted proxy CAs");
  EXPECT_EQ(proxy.RequestLines().size(), 0u);
}

TEST_F(ProxyTest, AnHttpsProxyThatIsPlainHttpIsExplained) {
  NginxServer origin({.root = root_.path()});
  // Plain HTTP where TLS was expected: nginx answers the handshake with an
  // HTTP error page.
  const std::string wrong = "https://127.0.0.1:" + Port(origin.port());
  Status status = Fetch(ViaProxy(origin.Url("/disk.img"), wrong, wrong));
  EXPECT_EQ(status.code(), ErrorCode::kTls);
  EXPECT_EQ(status.message(), "TLS handshake with the proxy " + wrong +
                                  " failed: the proxy did not answer with TLS (is it plain HTTP? "
                                  "try http://)");
}

}  // namespace
}  // namespace cdi::importer
