// Helpers for the `cdi-image apply` tests: the user documentation's manifests
// (fixtures/manifests), edited as a user would edit them, and the binary.
#ifndef CDI_TEST_APPLY_APPLY_TEST_UTIL_H_
#define CDI_TEST_APPLY_APPLY_TEST_UTIL_H_

#include <string>
#include <vector>

#include "test/support/files.h"
#include "test/support/process.h"

namespace cdi::test {

// The placeholder URL of the documentation's DataSource.
inline constexpr char kPlaceholderUrl[] = "http://example.com/path/to/your/image.qcow2";
inline constexpr char kVmManifest[] = "vm-with-http-datasource.yaml";
inline constexpr char kPoolManifest[] = "vm-pool-with-http-datasource.yaml";

inline bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

inline std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

// A manifest of fixtures/manifests, as the user documentation has it.
inline std::string Manifest(const std::string& name) {
  return ReadFile(SourceDir() + "/fixtures/manifests/" + name);
}

// The manifest with the placeholder URL replaced by `url`: what a user does first.
inline std::string ManifestFor(const std::string& name, const std::string& url) {
  std::string text = Manifest(name);
  if (!Contains(text, kPlaceholderUrl)) throw std::runtime_error(name + " has no placeholder URL");
  return ReplaceAll(text, kPlaceholderUrl, url);
}

// Uncomments the DataSource's certConfig block, as its comment tells the user
// to, and puts `ca_base64` where the documentation says "base64encodedCABundle".
inline std::string UncommentCertConfig(const std::string& manifest, const std::string& ca_base64) {
  std::string out;
  bool in_block = false;
  size_t start = 0;
  while (start < manifest.size()) {
    size_t end = manifest.find('\n', start);
    if (end == std::string::npos) end = manifest.size();
    std::string line = manifest.substr(start, end - start);
    start = end + 1;
    const size_t hash = line.find('#');
    const bool commented = hash != std::string::npos && line.find_first_not_of(' ') == hash &&
                           hash + 1 < line.size() && line[hash + 1] == ' ';
    if (commented && Contains(line, "# certConfig:")) in_block = true;
    if (in_block && commented) {
      line.erase(hash, 2);  // "# " goes, the indentation stays
    } else {
      in_block = false;
    }
    out += line + "\n";
  }
  if (!Contains(out, "\n      certConfig:")) throw std::runtime_error("no certConfig to uncomment");
  return ReplaceAll(out, "base64encodedCABundle", ca_base64);
}

inline std::string Base64(const std::string& bytes) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += {kAlphabet[n >> 18], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63],
            kAlphabet[n & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    out += {kAlphabet[n >> 18], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t n =
        (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
    out += {kAlphabet[n >> 18], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

// Runs build/bin/cdi-image apply with `args`.
inline RunResult CdiImageApply(const std::vector<std::string>& args,
                               const RunOptions& options = {}) {
  std::vector<std::string> argv = {BinDir() + "/cdi-image", "apply"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, options);
}

}  // namespace cdi::test

#endif  // CDI_TEST_APPLY_APPLY_TEST_UTIL_H_
