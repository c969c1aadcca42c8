// Which HTTP proxy a request goes through: cdi::ProxySettings, completed from
// the environment, then matched against each request's origin.
//
//   CDI_ASSIGN_OR_RETURN(ProxyConfig config, ResolveProxyConfig(spec.network.proxy));
//   CDI_ASSIGN_OR_RETURN(std::optional<Proxy> proxy, ProxyFor(config, url.origin));
//
// Thread-safety: ResolveProxyConfig reads the environment (it must not race
// with setenv); the other functions have no shared state.
#ifndef CDI_SOURCES_HTTP_PROXY_H_
#define CDI_SOURCES_HTTP_PROXY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cdi/import.h"
#include "cdi/status.h"
#include "sources/url.h"

namespace cdi::importer {

// A proxy, parsed.
struct Proxy {
  // What curl is given: "http://host:port" or "https://host:port", with no
  // user info.
  std::string url;
  Origin origin;
  // Percent-decoded user info of the proxy URL; empty when none.
  std::string user;
  std::string password;
  // For messages and logs: the URL without user info.
  std::string redacted;
  // Where the setting came from, for messages: "http_proxy", "HTTPS_PROXY",
  // or "the https proxy setting" when given in ProxySettings.
  std::string setting;
};

// Every proxy setting decided, each proxy parsed and checked.
struct ProxyConfig {
  std::optional<Proxy> http_proxy;   // for http:// URLs; nullopt: none
  std::optional<Proxy> https_proxy;  // for https:// URLs
  std::string no_proxy;
};

// Fills the unset fields of `settings` from the environment (see
// cdi::ProxySettings for the variables and their order) and parses both
// proxies. Errors: kInvalidArgument or kUnsupported for a proxy that does not
// parse or has another scheme than http or https; messages name the setting
// ("https_proxy") and never the proxy's user info.
Result<ProxyConfig> ResolveProxyConfig(const ProxySettings& settings);

// Parses one proxy URL. `setting` names where it came from, for messages.
Result<Proxy> ParseProxy(std::string_view value, std::string_view setting);

// True when a request to `host` (lower case; an IPv6 literal without
// brackets) on `port` must not go through a proxy: an entry of `no_proxy`
// (comma- or space-separated, case-insensitive) is "*", the host's name or a
// parent domain of it (with or without a leading dot), its IP address, a CIDR
// range holding it, or any of these with ":port" for that port only.
bool BypassesProxy(std::string_view no_proxy, std::string_view host, uint16_t port);

// The proxy a request to `origin` goes through, or nullopt to connect directly.
std::optional<Proxy> ProxyFor(const ProxyConfig& config, const Origin& origin);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_HTTP_PROXY_H_
