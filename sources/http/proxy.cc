#include "common/text.h"
#include "sources/http/proxy.h"

#include <arpa/inet.h>
#include <stdlib.h>

#include <array>
#include <charconv>
#include <cstring>

namespace cdi::importer {
namespace {

// The first of `names` set in the environment (even to ""), with its name.
std::optional<std::pair<std::string, std::string>> FirstSet(
    std::initializer_list<const char*> names) {
  for (const char* name : names) {
    // std::getenv is fine here: the library never writes the environment.
    if (const char* value = std::getenv(name)) return std::make_pair(std::string(name), value);
  }
  return std::nullopt;
}

// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into ::ffff:0:0/96), so
// that one comparison serves both; nullopt for anything else.
struct Address {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;
};

std::optional<Address> ParseAddress(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  std::string copy(text);
  Address address;
  in_addr v4{};
  if (inet_pton(AF_INET, copy.c_str(), &v4) == 1) {
    address.v4 = true;
    address.bytes[10] = 0xff;
    address.bytes[11] = 0xff;
    std::memcpy(address.bytes.data() + 12, &v4, 4);
    return address;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, copy.c_str(), &v6) == 1) {
    std::memcpy(address.bytes.data(), &v6, 16);
    return address;
  }
  return std::nullopt;
}

bool InPrefix(const Address& address, const Address& network, unsigned bits) {
  for (unsigned i = 0; i < 16 && bits > 0; ++i) {
    unsigned take = bits >= 8 ? 8 : bits;
    auto mask = static_cast<uint8_t>(0xff << (8 - take));
    if ((address.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

// Splits "host:port", "[v6]:port", "[v6]", "v6" (several colons: no port) and
// "host" into a host and a port (0 when none).
std::pair<std::string_view, uint16_t> SplitPort(std::string_view entry) {
  if (entry.starts_with("[")) {
    size_t close = entry.find(']');
    if (close == std::string_view::npos) return {entry, 0};
    std::string_view host = entry.substr(1, close - 1);
    std::string_view rest = entry.substr(close + 1);
    uint16_t port = 0;
    if (rest.starts_with(":")) {
      std::from_chars(rest.data() + 1, rest.data() + rest.size(), port);
    }
    return {host, port};
  }
  size_t colon = entry.find(':');
  if (colon == std::string_view::npos || entry.find(':', colon + 1) != std::string_view::npos) {
    return {entry, 0};
  }
  uint16_t port = 0;
  std::string_view digits = entry.substr(colon + 1);
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (error != std::errc() || end != digits.data() + digits.size()) return {entry, 0};
  return {entry.substr(0, colon), port};
}

bool EntryMatches(std::string_view entry, std::string_view host,
                  const std::optional<Address>& host_address, uint16_t port) {
  if (entry == "*") return true;
  // A CIDR range: "10.0.0.0/8", "fd00::/8".
  if (size_t slash = entry.find('/'); slash != std::string_view::npos) {
    std::optional<Address> network = ParseAddress(entry.substr(0, slash));
    std::string_view digits = entry.substr(slash + 1);
    unsigned bits = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (!network || !host_address || error != std::errc() || end != digits.data() + digits.size()) {
      return false;
    }
    if (network->v4) {
      if (!host_address->v4 || bits > 32) return false;
      bits += 96;
    } else if (bits > 128) {
      return false;
    }
    return InPrefix(*host_address, *network, bits);
  }
  auto [entry_host, entry_port] = SplitPort(entry);
  if (entry_port != 0 && entry_port != port) return false;
  if (std::optional<Address> address = ParseAddress(entry_host)) {
    return host_address && host_address->bytes == address->bytes;
  }
  if (host_address) return false;  // a name never matches an IP literal
  while (entry_host.starts_with(".")) entry_host.remove_prefix(1);
  if (entry_host.starts_with("*.")) entry_host.remove_prefix(2);
  if (entry_host.empty()) return false;
  if (host == entry_host) return true;
  return host.size() > entry_host.size() && host.ends_with(entry_host) &&
         host[host.size() - entry_host.size() - 1] == '.';
}

}  // namespace

Result<Proxy> ParseProxy(std::string_view value, std::string_view setting) {
  std::string text(value);
  std::string scheme = UrlScheme(text);
  // "host:port" looks like a scheme named "host": only "scheme://" is one.
  if (scheme.empty() || text.compare(scheme.size(), 3, "://") != 0) {
    text = "http://" + text;
    scheme = "http";
  }
  if (!IsHttpScheme(scheme)) {
    return UnsupportedError(std::string(setting) + ": " + scheme +
                            ":// proxies are not supported: only http:// and https:// proxies are");
  }
  Result<HttpUrl> url = ParseHttpUrl(text);
  if (!url.ok()) {
    return InvalidArgumentError(std::string(setting) + ": not a usable proxy URL (" +
                                url.status().message() + ")");
  }
  Proxy proxy;
  proxy.origin = url->origin;
  proxy.user = url->user;
  proxy.password = url->password;
  std::string host = proxy.origin.host.find(':') != std::string::npos
                         ? "[" + proxy.origin.host + "]"
                         : proxy.origin.host;
  // Any path of the proxy URL means nothing to a proxy: drop it.
  proxy.url = proxy.origin.scheme + "://" + host + ":" + std::to_string(proxy.origin.port);
  proxy.redacted = proxy.url;
  proxy.setting = std::string(setting);
  return proxy;
}

Result<ProxyConfig> ResolveProxyConfig(const ProxySettings& settings) {
  ProxyConfig config;
  struct Choice {
    std::optional<std::string> value;
    std::string setting;
  };
  auto choose = [](const std::optional<std::string>& given, const char* given_name,
                   std::initializer_list<const char*> variables) {
    Choice choice;
    if (given.has_value()) {
      choice.value = *given;
      choice.setting = given_name;
    } else if (auto found = FirstSet(variables)) {
      choice.setting = found->first;
      choice.value = found->second;
    }
    return choice;
  };
  // HTTP_PROXY in a CGI program comes from the request's "Proxy:" header
  // ("httpoxy"): trust it only outside CGI, as Go's net/http does. CDI's
  // controller has set HTTP_PROXY for its importer pods in some releases,
  // http_proxy in others, so both are read.
  const bool cgi = std::getenv("REQUEST_METHOD") != nullptr;
  Choice http =
      cgi ? choose(settings.http_proxy, "the http proxy setting", {"http_proxy"})
          : choose(settings.http_proxy, "the http proxy setting", {"http_proxy", "HTTP_PROXY"});
  Choice https =
      choose(settings.https_proxy, "the https proxy setting", {"https_proxy", "HTTPS_PROXY"});
  Choice no_proxy = choose(settings.no_proxy, "the no_proxy setting", {"no_proxy", "NO_PROXY"});
  if (http.value && !http.value->empty()) {
    CDI_ASSIGN_OR_RETURN(config.http_proxy, ParseProxy(*http.value, http.setting));
  }
  if (https.value && !https.value->empty()) {
    CDI_ASSIGN_OR_RETURN(config.https_proxy, ParseProxy(*https.value, https.setting));
  }
  config.no_proxy = no_proxy.value.value_or("");
  return config;
}

bool BypassesProxy(std::string_view no_proxy, std::string_view host, uint16_t port) {
  std::string lower_host = AsciiLower(host);
  while (lower_host.ends_with(".")) lower_host.pop_back();  // "example.com." is example.com
  std::optional<Address> host_address = ParseAddress(lower_host);
  std::string list = AsciiLower(no_proxy);
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find_first_of(", \t", start);
    if (end == std::string::npos) end = list.size();
    std::string_view entry = std::string_view(list).substr(start, end - start);
    while (entry.ends_with(".")) entry.remove_suffix(1);
    if (!entry.empty() && EntryMatches(entry, lower_host, host_address, port)) return true;
    start = end + 1;
  }
  return false;
}

std::optional<Proxy> ProxyFor(const ProxyConfig& config, const Origin& origin) {
  const std::optional<Proxy>& proxy =
      origin.scheme == "https" ? config.https_proxy : config.http_proxy;
  if (!proxy) return std::nullopt;
  if (BypassesProxy(config.no_proxy, origin.host, origin.port)) return std::nullopt;
  return proxy;
}

}  // namespace cdi::importer
