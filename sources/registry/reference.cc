#include "sources/registry/reference.h"

#include <algorithm>
#include <cctype>

namespace cdi::importer::registry {
namespace {

constexpr std::string_view kScheme = "docker://";
constexpr std::string_view kDockerHub = "registry-1.docker.io";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// One path component: [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
bool ValidComponent(std::string_view component) {
  if (component.empty() || !IsLowerAlnum(component.front()) || !IsLowerAlnum(component.back())) {
    return false;
  }
  for (size_t i = 0; i < component.size(); ++i) {
    char c = component[i];
    if (IsLowerAlnum(c) || c == '-') continue;
    if (c == '.' || c == '_') {
      // '.', '_' and '__' separate alphanumeric runs.
      if (!IsLowerAlnum(component[i - 1])) {
        if (!(c == '_' && component[i - 1] == '_' && i >= 2 && IsLowerAlnum(component[i - 2]))) {
          return false;
        }
      }
      continue;
    }
    return false;
  }
  return true;
}

bool ValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128 || tag.front() == '.' || tag.front() == '-') return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool ValidHost(std::string_view host) {
  if (host.empty()) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
           c == '[' || c == ']';
  });
}

Status Malformed(std::string_view url, const std::string& why) {
  return InvalidArgumentError("malformed image reference '" + std::string(url) + "': " + why +
                              "; expected docker://HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]");
}

}  // namespace

std::string ImageReference::Describe() const {
  std::string text = "docker://" + registry + "/" + repository;
  if (!digest.empty()) return text + "@" + digest;
  return text + ":" + tag;
}

bool IsDockerReference(std::string_view url) {
  if (url.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(url[i])) != kScheme[i]) return false;
  }
  return true;
}

Result<ImageReference> ParseImageReference(std::string_view url) {
  if (!IsDockerReference(url)) {
    return InvalidArgumentError("'" + std::string(url) + "' is not a docker:// image reference");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find('@') != std::string_view::npos && rest.find('/') > rest.find('@')) {
    return Malformed(url, "no repository");  // user info is not part of a reference
  }
  ImageReference ref;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!digest.starts_with("sha256:") || digest.size() != 7 + 64 ||
        !std::all_of(digest.begin() + 7, digest.end(), IsHex)) {
      return Malformed(url, "the digest '" + std::string(digest) +
                                "' is not sha256: followed by 64 lower-case hex digits");
    }
    ref.digest = std::string(digest);
  }
  // The tag follows the last ':' after the last '/' (a port's ':' comes before a '/').
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!ValidTag(tag)) {
      return Malformed(url, "the tag '" + std::string(tag) +
                                "' is not 1 to 128 of letters, digits, '_', '.' and '-' "
                                "(not starting with '.' or '-')");
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (ref.tag.empty()) ref.tag = "latest";
  if (rest.empty()) return Malformed(url, "no repository");

  // The first component is a registry when it looks like a host name.
  std::string_view name = rest;
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
        first == "localhost" || first.starts_with('[')) {
      if (!ValidHost(first)) return Malformed(url, "the registry '" + std::string(first) + "'");
      ref.registry = std::string(first);
      name = rest.substr(slash + 1);
    }
  }
  if (ref.registry.empty() || ref.registry == "docker.io" || ref.registry == "index.docker.io") {
    ref.registry = std::string(kDockerHub);
    if (name.find('/') == std::string_view::npos) ref.repository = "library/";
  }
  ref.repository += std::string(name);
  size_t start = 0;
  while (true) {
    size_t end = ref.repository.find('/', start);
    std::string_view component =
        std::string_view(ref.repository)
            .substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!ValidComponent(component)) {
      return Malformed(url, "the repository '" + std::string(name) +
                                "' must be lower-case letters and digits, separated by '.', '_', "
                                "'__' or '-' within a component and '/' between components");
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return ref;
}

}  // namespace cdi::importer::registry
