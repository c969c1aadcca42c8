#include "test/support/registry_server.h"

#include <openssl/evp.h>

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test/support/files.h"
#include "test/support/http_server.h"

namespace cdi::test {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(20);

std::string Sha256Hex(const std::string& bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_Digest(bytes.data(), bytes.size(), out, &length, EVP_sha256(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    hex += kDigits[out[i] >> 4];
    hex += kDigits[out[i] & 0xf];
  }
  return hex;
}

std::string Quote(const std::string& text) { return "'" + text + "'"; }

std::string DescriptorJson(const OciLayout::Descriptor& d) {
  std::string json = "{\"mediaType\":\"" + d.media_type + "\",\"digest\":\"" + d.digest +
                     "\",\"size\":" + std::to_string(d.size);
  if (!d.platform_json.empty()) json += ",\"platform\":" + d.platform_json;
  return json + "}";
}

}  // namespace

OciLayout::OciLayout(std::string dir) : dir_(std::move(dir)) {
  Sh("mkdir -p " + Quote(dir_ + "/blobs/sha256"));
  WriteFile(dir_ + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
  WriteFile(dir_ + "/index.json", "{\"schemaVersion\":2,\"manifests\":[]}");
}

std::string OciLayout::AddBlob(const std::string& bytes) {
  const std::string hex = Sha256Hex(bytes);
  WriteFile(dir_ + "/blobs/sha256/" + hex, bytes);
  return "sha256:" + hex;
}

OciLayout::Descriptor OciLayout::AddLayer(const std::string& tar, Compression compression) {
  std::string bytes = tar;
  std::string media_type = "application/vnd.oci.image.layer.v1.tar";
  if (compression != Compression::kNone) {
    const std::string plain = dir_ + "/layer.tmp";
    WriteFile(plain, tar);
    const bool gzip = compression == Compression::kGzip;
    Sh(std::string(gzip ? "gzip -n -c " : "zstd -q -c ") + Quote(plain) + " > " +
       Quote(plain + ".z") + " && rm " + Quote(plain));
    bytes = ReadFile(plain + ".z");
    Sh("rm " + Quote(plain + ".z"));
    media_type += gzip ? "+gzip" : "+zstd";
  }
  return {media_type, AddBlob(bytes), bytes.size(), ""};
}

OciLayout::Descriptor OciLayout::AddImage(const std::vector<Descriptor>& layers,
                                          const std::string& architecture,
                                          const std::vector<std::string>& env,
                                          const std::string& labels_json) {
  std::string env_json;
  for (const std::string& entry : env) env_json += (env_json.empty() ? "\"" : ",\"") + entry + "\"";
  std::string diff_ids;
  for (const Descriptor& layer : layers) {
    diff_ids +=
        (diff_ids.empty() ? "\"" : ",\"") + layer.digest + "\"";  // not checked by the registry
  }
  const std::string config = "{\"architecture\":\"" + architecture +
                             "\",\"os\":\"linux\",\"config\":{\"Env\":[" + env_json +
                             "],\"Labels\":" + labels_json +
                             "},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" + diff_ids + "]}}";
  Descriptor config_descriptor{"application/vnd.oci.image.config.v1+json", AddBlob(config),
                               config.size(), ""};
  std::string layers_json;
  for (const Descriptor& layer : layers) {
    layers_json += (layers_json.empty() ? "" : ",") + DescriptorJson(layer);
  }
  const std::string manifest =
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
      "\"config\":" +
      DescriptorJson(config_descriptor) + ",\"layers\":[" + layers_json + "]}";
  return {"application/vnd.oci.image.manifest.v1+json", AddBlob(manifest), manifest.size(), ""};
}

OciLayout::Descriptor OciLayout::AddIndex(
    const std::vector<std::pair<Descriptor, std::string>>& images) {
  std::string entries;
  for (const auto& [image, architecture] : images) {
    Descriptor entry = image;
    entry.platform_json = "{\"architecture\":\"" + architecture + "\",\"os\":\"linux\"}";
    entries += (entries.empty() ? "" : ",") + DescriptorJson(entry);
  }
  const std::string index =
      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
      "\"manifests\":[" +
      entries + "]}";
  return {"application/vnd.oci.image.index.v1+json", AddBlob(index), index.size(), ""};
}

void OciLayout::Tag(const Descriptor& descriptor, const std::string& tag) {
  tagged_.emplace_back(descriptor, tag);
  std::string entries;
  for (const auto& [d, name] : tagged_) {
    std::string json = DescriptorJson(d);
    json.pop_back();
    json += ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"" + name + "\"}}";
    entries += (entries.empty() ? "" : ",") + json;
  }
  WriteFile(dir_ + "/index.json", "{\"schemaVersion\":2,\"manifests\":[" + entries + "]}");
}

RegistryServer::RegistryServer(RegistryOptions options) : options_(std::move(options)) {
  const std::string& d = dir_.path();
  const bool tls = !options_.tls.cert.empty();
  if (!options_.storage_from.empty()) {
    Sh("cp -a " + Quote(options_.storage_from) + " " + Quote(storage_dir()));
  }
  std::string auth;
  if (!options_.basic_user.empty()) {
    Sh("htpasswd -Bbn " + Quote(options_.basic_user) + " " + Quote(options_.basic_password) +
       " > " + Quote(d + "/htpasswd") + " 2>/dev/null");
    auth = "auth:\n  htpasswd:\n    realm: cdi-test\n    path: " + d + "/htpasswd\n";
  }
  if (options_.token_auth) {
    // The token signing key and its certificate, which the registry trusts.
    Sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cdi-test-token-signer "
       "-keyout " +
       Quote(d + "/token.key") + " -out " + Quote(d + "/token.crt") + " >/dev/null 2>&1");
    std::vector<std::string> argv = {"python3",      SourceDir() + "/test/server/token_server.py",
                                     "--key",        d + "/token.key",
                                     "--cert",       d + "/token.crt",
                                     "--issuer",     "cdi-test-issuer",
                                     "--ports-file", d + "/token-ports.json",
                                     "--log",        d + "/token.log"};
    if (!options_.token_user.empty()) {
      argv.insert(argv.end(),
                  {"--user", options_.token_user, "--password", options_.token_password});
    }
    if (tls) {
      argv.insert(argv.end(), {"--tls-cert", options_.tls.cert, "--tls-key", options_.tls.key});
    }
    token_server_ = std::make_unique<BackgroundProcess>(argv, d + "/token.out");
    const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while (!FileExists(d + "/token-ports.json")) {
      if (token_server_->Wait(std::chrono::milliseconds(0)) != -1 ||
          std::chrono::steady_clock::now() >= deadline) {
        throw std::runtime_error("token server did not start:\n" + ReadFile(d + "/token.out"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::string ports = ReadFile(d + "/token-ports.json");
    const std::string token_port = ports.substr(ports.find(':') + 1);
    auth = "auth:\n  token:\n    realm: " + std::string(tls ? "https" : "http") +
           "://127.0.0.1:" + std::to_string(std::stoi(token_port)) +
           "/token\n    service: cdi-test-registry\n    issuer: cdi-test-issuer\n"
           "    rootcertbundle: " +
           d + "/token.crt\n";
  }
  std::string last_output;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = UnusedPort();
    std::ostringstream config;
    config << "version: 0.1\n"
           << "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
           << "storage:\n  filesystem:\n    rootdirectory: " << d << "/storage\n"
           << "  delete:\n    enabled: true\n"
           << "http:\n  addr: 127.0.0.1:" << port_ << "\n";
    if (tls) {
      config << "  tls:\n    certificate: " << options_.tls.cert
             << "\n    key: " << options_.tls.key << "\n";
    }
    config << auth;
    WriteFile(d + "/config.yml", config.str());
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"docker-registry", "serve", d + "/config.yml"},
        d + "/registry.log");
    if (WaitListening(port_, *process_, kStartTimeout)) return;
    last_output = ReadFile(d + "/registry.log");
    process_.reset();
  }
  throw std::runtime_error("docker-registry did not start:\n" + last_output);
}

RegistryServer::~RegistryServer() = default;

std::string RegistryServer::host() const { return "127.0.0.1:" + std::to_string(port_); }

std::string RegistryServer::Reference(const std::string& name) const {
  return "docker://" + host() + "/" + name;
}

void RegistryServer::Push(const OciLayout& layout, const std::string& tag, const std::string& name,
                          const std::string& format) {
  std::vector<std::string> argv = {"skopeo", "--insecure-policy",      "copy", "--quiet",
                                   "--all",  "--dest-tls-verify=false"};
  if (!format.empty()) argv.insert(argv.end(), {"--format", format});
  if (!options_.basic_user.empty()) {
    argv.push_back("--dest-creds=" + options_.basic_user + ":" + options_.basic_password);
  } else if (!options_.token_user.empty()) {
    argv.push_back("--dest-creds=" + options_.token_user + ":" + options_.token_password);
  }
  argv.push_back("oci:" + layout.dir() + ":" + tag);
  argv.push_back("docker://" + host() + "/" + name);
  RunResult result =
      Run(argv, {.env = {{"HOME", dir_.path()}}, .timeout = std::chrono::seconds(60)});
  if (result.exit_code != 0) {
    throw std::runtime_error("skopeo copy to " + name + " failed: " + result.err + result.out);
  }
}

std::string RegistryServer::BlobDataPath(const std::string& digest) const {
  const std::string hex = digest.substr(digest.find(':') + 1);
  return dir_.path() + "/storage/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex +
         "/data";
}

std::string RegistryServer::TokenLog() const {
  const std::string path = dir_.path() + "/token.log";
  return FileExists(path) ? ReadFile(path) : "";
}

}  // namespace cdi::test
