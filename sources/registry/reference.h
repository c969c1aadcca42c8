// Image references as CDI's registry sources name them:
//   docker://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]
// read as containers/image's docker transport reads them (the Docker
// reference grammar): a first component without '.' or ':' that is not
// "localhost" is a repository on Docker Hub ("docker://fedora" is
// docker.io/library/fedora:latest); the tag defaults to "latest"; a digest
// pins the manifest (a tag beside it is then only informative).
//
// Thread-safety: pure functions.
#ifndef CDI_SOURCES_REGISTRY_REFERENCE_H_
#define CDI_SOURCES_REGISTRY_REFERENCE_H_

#include <string>
#include <string_view>

#include "cdi/status.h"

namespace cdi::importer::registry {

struct ImageReference {
  // Where the distribution API is: "host" or "host:port" ("registry-1.docker.io"
  // for Docker Hub). IPv6 literals keep their brackets.
  std::string registry;
  std::string repository;  // "library/fedora", "containerdisks/fedora"
  std::string tag;         // "latest" when none was given
  std::string digest;      // "sha256:<64 hex>" when pinned; else ""

  // The manifest to ask for: the digest when pinned, else the tag.
  const std::string& manifest_reference() const { return digest.empty() ? tag : digest; }
  // "docker://registry/repository:tag" or "...@sha256:...", for messages.
  std::string Describe() const;
};

// True when `url` starts with "docker://" (any case).
bool IsDockerReference(std::string_view url);

// Parses a docker:// reference. kInvalidArgument naming what is wrong: another
// scheme, an empty or malformed repository (lower-case letters, digits and
// the separators '.', '_', '__', '-' between them, components separated by
// '/'), a malformed tag (at most 128 of [A-Za-z0-9_.-], not starting with '.'
// or '-'), a digest that is not sha256 with 64 lower-case hex digits.
Result<ImageReference> ParseImageReference(std::string_view url);

}  // namespace cdi::importer::registry

#endif  // CDI_SOURCES_REGISTRY_REFERENCE_H_
