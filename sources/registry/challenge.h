// The authentication challenges of a registry's 401 answer (RFC 9110
// WWW-Authenticate), as the distribution spec's token authentication uses
// them:
//   WWW-Authenticate: Bearer realm="https://auth.example.com/token",
//                     service="registry.example.com",scope="repository:a/b:pull"
//   WWW-Authenticate: Basic realm="Registry Realm"
//
// Thread-safety: pure functions.
#ifndef CDI_SOURCES_REGISTRY_CHALLENGE_H_
#define CDI_SOURCES_REGISTRY_CHALLENGE_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cdi::importer::registry {

struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lower case, values unquoted
};

// Every challenge of one header value (several may share it, separated by
// commas). Malformed parts are skipped: what parses is kept.
std::vector<Challenge> ParseChallenges(std::string_view header_value);

// The URL of a Bearer token request: the realm with service and scope added
// as query parameters (percent-encoded), each when not empty.
std::string TokenRequestUrl(const std::string& realm, const std::string& service,
                            const std::string& scope);

}  // namespace cdi::importer::registry

#endif  // CDI_SOURCES_REGISTRY_CHALLENGE_H_
