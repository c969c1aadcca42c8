// Proxy settings: parsing, the environment, and no_proxy matching, without a
// network. The proxies themselves are used in http_proxy_test.cc.
#include "sources/http/proxy.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <string>

namespace cdi::importer {
namespace {

// Sets and clears the proxy variables for one test, restoring them after.
class ProxyEnvironment {
 public:
  static constexpr const char* kNames[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                           "HTTPS_PROXY", "no_proxy",   "NO_PROXY",
                                           "all_proxy",   "ALL_PROXY",  "REQUEST_METHOD"};
  explicit ProxyEnvironment(const std::map<std::string, std::string>& values) {
    for (const char* name : kNames) {
      if (const char* value = getenv(name)) saved_[name] = value;
      unsetenv(name);
    }
    for (const auto& [name, value] : values) setenv(name.c_str(), value.c_str(), 1);
  }
  ~ProxyEnvironment() {
    for (const char* name : kNames) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }
  ProxyEnvironment(const ProxyEnvironment&) = delete;
  ProxyEnvironment& operator=(const ProxyEnvironment&) = delete;

 private:
  std::map<std::string, std::string> saved_;
};

Origin MakeOrigin(const std::string& scheme, const std::string& host, uint16_t port) {
  return Origin{scheme, host, port};
}

TEST(ParseProxyTest, SchemesPortsAndCredentials) {
  Result<Proxy> plain = ParseProxy("proxy.corp:3128", "http_proxy");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->url, "http://proxy.corp:3128");
  EXPECT_EQ(plain->setting, "http_proxy");
  EXPECT_TRUE(plain->user.empty());

  Result<Proxy> secure = ParseProxy("HTTPS://User%40corp:p%3Ass@Proxy.Corp/", "HTTPS_PROXY");
  ASSERT_TRUE(secure.ok()) << secure.status().ToString();
  EXPECT_EQ(secure->url, "https://proxy.corp:443");
  EXPECT_EQ(secure->redacted, "https://proxy.corp:443");
  EXPECT_EQ(secure->user, "User@corp");
  EXPECT_EQ(secure->password, "p:ss");

  Result<Proxy> v6 = ParseProxy("http://[::1]:8080", "http_proxy");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->url, "http://[::1]:8080");
}

TEST(ParseProxyTest, RefusalsNameTheSettingAndHideTheCredentials) {
  Result<Proxy> socks = ParseProxy("socks5://user:s3cret@proxy:1080", "https_proxy");
  ASSERT_FALSE(socks.ok());
  EXPECT_EQ(socks.status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(socks.status().message(),
            "https_proxy: socks5:// proxies are not supported: only http:// and https:// "
            "proxies are");

  Result<Proxy> bad_port = ParseProxy("http://user:s3cret@proxy:99999", "http_proxy");
  ASSERT_FALSE(bad_port.ok());
  EXPECT_EQ(bad_port.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad_port.status().message(),
            "http_proxy: not a usable proxy URL (invalid URL http://proxy:99999: Port number was "
            "not a decimal number between 0 and 65535)");
}

TEST(ResolveProxyConfigTest, LowerCaseFirstThenUpperCase) {
  ProxyEnvironment env({{"http_proxy", "http://lower:1"},
                        {"HTTP_PROXY", "http://upper:2"},
                        {"HTTPS_PROXY", "http://upper-tls:3"},
                        {"NO_PROXY", ".internal"}});
  Result<ProxyConfig> config = ResolveProxyConfig({});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(config->http_proxy.has_value());
  EXPECT_EQ(config->http_proxy->url, "http://lower:1");
  EXPECT_EQ(config->http_proxy->setting, "http_proxy");
  ASSERT_TRUE(config->https_proxy.has_value());
  EXPECT_EQ(config->https_proxy->url, "http://upper-tls:3");
  EXPECT_EQ(config->https_proxy->setting, "HTTPS_PROXY");
  EXPECT_EQ(config->no_proxy, ".internal");
}

TEST(ResolveProxyConfigTest, UpperCaseHttpProxyIsHonouredOutsideCgiOnly) {
  {
    // Older CDI controllers set HTTP_PROXY (upper case) for their importer pods.
    ProxyEnvironment env(std::map<std::string, std::string>{{"HTTP_PROXY", "http://upper:2"}});
    Result<ProxyConfig> config = ResolveProxyConfig({});
    ASSERT_TRUE(config.ok());
    ASSERT_TRUE(config->http_proxy.has_value());
    EXPECT_EQ(config->http_proxy->url, "http://upper:2");
  }
  {
    // In a CGI program HTTP_PROXY is a request's "Proxy:" header (httpoxy).
    ProxyEnvironment env({{"HTTP_PROXY", "http://attacker:2"}, {"REQUEST_METHOD", "GET"}});
    Result<ProxyConfig> config = ResolveProxyConfig({});
    ASSERT_TRUE(config.ok());
    EXPECT_FALSE(config->http_proxy.has_value());
  }
}

TEST(ResolveProxyConfigTest, ExplicitSettingsWinAndEmptyMeansNone) {
  ProxyEnvironment env({{"http_proxy", "http://env:1"}, {"https_proxy", "http://env:2"}});
  ProxySettings settings;
  settings.http_proxy = "";
  settings.https_proxy = "https://given:8443";
  Result<ProxyConfig> config = ResolveProxyConfig(settings);
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->http_proxy.has_value());
  ASSERT_TRUE(config->https_proxy.has_value());
  EXPECT_EQ(config->https_proxy->url, "https://given:8443");
  EXPECT_EQ(config->https_proxy->setting, "the https proxy setting");
}

TEST(ResolveProxyConfigTest, AllProxyIsNotRead) {
  ProxyEnvironment env({{"all_proxy", "http://all:1"}, {"ALL_PROXY", "http://all:2"}});
  Result<ProxyConfig> config = ResolveProxyConfig({});
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->http_proxy.has_value());
  EXPECT_FALSE(config->https_proxy.has_value());
}

TEST(ResolveProxyConfigTest, AMalformedVariableFailsNamingIt) {
  ProxyEnvironment env(
      std::map<std::string, std::string>{{"https_proxy", "ftp://user:pw-SECRET@proxy:21"}});
  Result<ProxyConfig> config = ResolveProxyConfig({});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "https_proxy: ftp:// proxies are not supported: only http:// and https:// proxies are");
}

TEST(BypassesProxyTest, NamesDomainsAddressesRangesAndPorts) {
  const std::string list =
      "example.com, .internal.corp,10.0.0.0/8 ,fd00::/8,192.168.1.7,"
      "[::1],localhost:8080";
  EXPECT_TRUE(BypassesProxy(list, "example.com", 80));
  EXPECT_TRUE(BypassesProxy(list, "images.example.com", 443));
  EXPECT_FALSE(BypassesProxy(list, "notexample.com", 80));
  EXPECT_TRUE(BypassesProxy(list, "internal.corp", 80));
  EXPECT_TRUE(BypassesProxy(list, "a.b.internal.corp", 80));
  EXPECT_TRUE(BypassesProxy(list, "IMAGES.Example.COM.", 80));
  EXPECT_TRUE(BypassesProxy(list, "10.200.3.4", 80));
  EXPECT_FALSE(BypassesProxy(list, "11.0.0.1", 80));
  EXPECT_TRUE(BypassesProxy(list, "fd12:3456::1", 80));
  EXPECT_FALSE(BypassesProxy(list, "fe80::1", 80));
  EXPECT_TRUE(BypassesProxy(list, "192.168.1.7", 80));
  EXPECT_FALSE(BypassesProxy(list, "192.168.1.8", 80));
  EXPECT_TRUE(BypassesProxy(list, "::1", 80));
  EXPECT_TRUE(BypassesProxy(list, "localhost", 8080));
  EXPECT_FALSE(BypassesProxy(list, "localhost", 80));
  // A name never matches an address, whatever it resolves to.
  EXPECT_FALSE(BypassesProxy("localhost", "127.0.0.1", 80));
  EXPECT_TRUE(BypassesProxy("*", "anything.at.all", 1));
  EXPECT_FALSE(BypassesProxy("", "example.com", 80));
  EXPECT_FALSE(BypassesProxy("10.0.0.0/33,garbage/x,/8", "10.0.0.1", 80));
}

TEST(ProxyForTest, PicksTheSchemesProxyUnlessBypassed) {
  ProxyConfig config;
  config.http_proxy = *ParseProxy("http://plain:3128", "http_proxy");
  config.https_proxy = *ParseProxy("http://tls:3128", "https_proxy");
  config.no_proxy = "direct.example";
  std::optional<Proxy> http = ProxyFor(config, MakeOrigin("http", "images.example", 80));
  ASSERT_TRUE(http.has_value());
  EXPECT_EQ(http->url, "http://plain:3128");
  std::optional<Proxy> https = ProxyFor(config, MakeOrigin("https", "images.example", 443));
  ASSERT_TRUE(https.has_value());
  EXPECT_EQ(https->url, "http://tls:3128");
  EXPECT_FALSE(ProxyFor(config, MakeOrigin("https", "direct.example", 443)).has_value());
  config.https_proxy.reset();
  EXPECT_FALSE(ProxyFor(config, MakeOrigin("https", "images.example", 443)).has_value());
}

}  // namespace
}  // namespace cdi::importer
