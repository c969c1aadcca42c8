#include "sources/s3/s3_location.h"


#include "cdi/import.h"
#include "common/text.h"
#include "sources/url.h"

namespace cdi::importer {
namespace {

constexpr std::string_view kDefaultRegion = "us-east-1";

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "host[:port]" without the port; IPv6 literals keep their brackets.
std::string_view HostOnly(std::string_view host_port) {
  if (host_port.starts_with('[')) {
    size_t close = host_port.find(']');
    return close == std::string_view::npos ? host_port : host_port.substr(0, close + 1);
  }
  size_t colon = host_port.find(':');
  return colon == std::string_view::npos ? host_port : host_port.substr(0, colon);
}

// Dot-separated labels of 1 to 63 letters, digits and '-', none starting or
// ending with '-' (the rule CDI's importer checks a region against).
bool IsDnsName(std::string_view name) {
  if (name.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-')) {
        return false;
      }
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// What the pattern s3\.(.+)\.amazonaws\.com finds in `name`, searched as Go's
// regexp does (leftmost, greedy): from the first "s3." to the last
// ".amazonaws.com" after it; "" when it does not match.
std::string AwsPatternRegion(std::string_view name) {
  constexpr std::string_view kPrefix = "s3.";
  constexpr std::string_view kSuffix = ".amazonaws.com";
  const size_t start = name.find(kPrefix);
  const size_t end = name.rfind(kSuffix);
  if (start == std::string_view::npos || end == std::string_view::npos ||
      end <= start + kPrefix.size()) {
    return "";
  }
  return std::string(name.substr(start + kPrefix.size(), end - start - kPrefix.size()));
}

// A bucket name that can be the first label of a host name: what AWS's
// naming rules allow, without dots (which a TLS wildcard does not cover).
bool IsVirtualHostBucket(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

bool IsAwsHost(std::string_view host) {
  const std::string lower = AsciiLower(host);
  return lower == "amazonaws.com" || lower.ends_with(".amazonaws.com");
}

struct Endpoint {
  std::string scheme;
  std::string authority;  // host[:port]
};

Result<Endpoint> ParseEndpoint(std::string_view endpoint) {
  auto invalid = [&](std::string_view why) {
    return InvalidArgumentError("invalid S3 endpoint " + RedactUrl(endpoint) + ": " +
                                std::string(why) +
                                "; give the service's base URL, http(s)://host[:port]");
  };
  const std::string scheme = UrlScheme(endpoint);
  if (!IsHttpScheme(scheme) || endpoint.substr(scheme.size(), 3) != "://") {
    return invalid("not an http:// or https:// URL");
  }
  std::string_view rest = endpoint.substr(scheme.size() + 3);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && rest.substr(slash) != "/") {
    return invalid("it has a path (the bucket and key go in s3://BUCKET/KEY)");
  }
  if (authority.find('@') != std::string_view::npos) {
    return invalid("credentials do not go in the URL");
  }
  if (authority.find_first_of("?# ") != std::string_view::npos) return invalid("bad characters");
  if (HostOnly(authority).empty()) return invalid("no host");
  // The whole URL must parse as one.
  CDI_RETURN_IF_ERROR(ParseHttpUrl(scheme + "://" + std::string(authority) + "/").status());
  return Endpoint{scheme, AsciiLower(authority)};
}

}  // namespace

Result<S3Object> ParseS3Url(std::string_view url) {
  constexpr std::string_view kPrefix = "s3://";
  if (url.size() < kPrefix.size() || AsciiLower(url.substr(0, kPrefix.size())) != kPrefix) {
    return InvalidArgumentError("not an s3:// URL: " + RedactUrl(url));
  }
  std::string_view rest = url.substr(kPrefix.size());
  size_t slash = rest.find('/');
  S3Object object;
  object.bucket = std::string(rest.substr(0, slash));
  if (object.bucket.empty()) {
    return InvalidArgumentError("no bucket in " + RedactUrl(url) + ": expected s3://BUCKET/KEY");
  }
  if (object.bucket.find_first_of("@:?# ") != std::string::npos) {
    return InvalidArgumentError("invalid bucket name in " + RedactUrl(url) +
                                ": expected s3://BUCKET/KEY (the service goes in the endpoint)");
  }
  if (slash != std::string_view::npos) object.key = std::string(rest.substr(slash + 1));
  if (object.key.empty()) {
    return InvalidArgumentError("no object key in " + RedactUrl(url) +
                                ": expected s3://BUCKET/KEY, the object to import");
  }
  return object;
}

std::string AwsRegionOfHost(std::string_view host) {
  std::string region = AwsPatternRegion(AsciiLower(HostOnly(host)));
  if (region.starts_with("dualstack.")) region = region.substr(10);
  return IsDnsName(region) ? region : "";
}

std::string RegionFromHost(std::string_view host) {
  const std::string_view name = HostOnly(host);
  std::string region = AwsPatternRegion(name);
  if (region.empty()) region = std::string(name.substr(0, name.find('.')));
  return IsDnsName(region) ? region : std::string(kDefaultRegion);
}

std::string EncodeS3Key(std::string_view key) {
  constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    auto byte = static_cast<unsigned char>(c);
    if (IsUnreserved(byte) || c == '/') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

bool PercentDecode(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      *out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return false;
    int high = HexValue(text[i + 1]);
    int low = HexValue(text[i + 2]);
    if (high < 0 || low < 0) return false;
    *out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return true;
}

Result<S3Request> ResolveS3Request(const S3Object& object, const S3Settings& settings) {
  S3Request request;
  Endpoint endpoint;
  if (settings.endpoint.empty()) {
    request.region = settings.region.empty() ? std::string(kDefaultRegion) : settings.region;
    endpoint = {"https", "s3." + AsciiLower(request.region) + ".amazonaws.com"};
  } else {
    CDI_ASSIGN_OR_RETURN(endpoint, ParseEndpoint(settings.endpoint));
    request.region = settings.region;
    if (request.region.empty()) request.region = AwsRegionOfHost(endpoint.authority);
    if (request.region.empty()) request.region = std::string(kDefaultRegion);
  }
  if (!IsDnsName(request.region)) {
    return InvalidArgumentError("invalid S3 region \"" + request.region +
                                "\": a region is a DNS name such as us-east-1");
  }
  const std::string_view host = HostOnly(endpoint.authority);
  const bool ip_or_v6 = host.starts_with('[') ||
                        host.find_first_not_of("0123456789.") == std::string_view::npos;
  switch (settings.addressing) {
    case S3Addressing::kPath:
      request.addressing = S3Addressing::kPath;
      break;
    case S3Addressing::kVirtualHost:
      if (!IsVirtualHostBucket(object.bucket)) {
        return InvalidArgumentError(
            "the bucket name \"" + object.bucket +
            "\" cannot be a host name (3 to 63 lower-case letters, digits and '-'): use "
            "path-style addressing for it");
      }
      if (ip_or_v6) {
        return InvalidArgumentError("virtual-hosted addressing needs an endpoint with a host "
                                    "name, not an IP address: use path-style addressing");
      }
      request.addressing = S3Addressing::kVirtualHost;
      break;
    case S3Addressing::kAuto:
      request.addressing = IsAwsHost(host) && IsVirtualHostBucket(object.bucket)
                               ? S3Addressing::kVirtualHost
                               : S3Addressing::kPath;
      break;
  }
  const std::string key = EncodeS3Key(object.key);
  if (request.addressing == S3Addressing::kVirtualHost) {
    request.url = endpoint.scheme + "://" + object.bucket + "." + endpoint.authority + "/" + key;
  } else {
    request.url = endpoint.scheme + "://" + endpoint.authority + "/" + EncodeS3Key(object.bucket) +
                  "/" + key;
  }
  request.describe = RedactUrl("s3://" + object.bucket + "/" + object.key) + " at " +
                     endpoint.scheme + "://" + endpoint.authority;
  return request;
}

}  // namespace cdi::importer
