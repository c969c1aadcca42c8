#include "manifests/http_source.h"

#include <algorithm>

#include "cdi/checksum.h"
#include "cdi/headers.h"
#include "common/text.h"

namespace cdi::apply {
namespace {

constexpr char kCaKey[] = "ca.crt";
constexpr char kCertKey[] = "tls.crt";
constexpr char kKeyKey[] = "tls.key";
constexpr char kAccessKeyId[] = "accessKeyId";
constexpr char kSecretKey[] = "secretKey";

bool LooksLikePemCertificate(std::string_view text) {
  return text.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos;
}

bool IsHeaderLine(std::string_view header) { return ValidateHeaderLine(header, "header").ok(); }

class HttpSourceReader {
 public:
  explicit HttpSourceReader(SecretStore* store) : store_(store) {}

  std::optional<ResolvedSource> Http(const FieldReader& reader, const Node& http,
                                     const std::string& path, const std::string& ns) {
    const size_t problems_before = reader.problems()->size();
    reader.OnlyKnownFields(http, path,
                           {"url", "secretRef", "certConfigMap", "extraHeaders",
                            "secretExtraHeaders", "checksum", "insecureSkipVerify", "certConfig"});
    ResolvedSource source;
    source.origin = reader.object().ToString();
    if (std::optional<std::string> url =
            reader.RequiredString(http, "url", path, "the http(s) URL of the disk image")) {
      const std::string url_path = JoinPath(path, "url");
      if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0) {
        reader.Error(http.Find("url")->line, url_path,
                     "invalid source URL scheme: " + RedactUrl(*url) +
                         " (only http:// and https:// URLs can be imported)");
      } else if (url->find_first_of(" \t\r\n") != std::string::npos) {
        reader.Error(http.Find("url")->line, url_path,
                     "invalid source URL: " + RedactUrl(*url) + " (it contains white space)");
      }
      source.spec.url = *url;
    }
    if (std::optional<bool> insecure = reader.Bool(http, "insecureSkipVerify", path);
        insecure && *insecure) {
      source.spec.tls.verify = TlsVerify::kOff;
      source.security.push_back("server certificate NOT verified (insecureSkipVerify)");
    }
    if (const Node* cert_config = reader.Map(http, "certConfig", path)) {
      CertConfig(reader, *cert_config, JoinPath(path, "certConfig"), ns, &source);
    }
    if (std::optional<std::string> name = reader.String(http, "certConfigMap", path)) {
      CertConfigMap(reader, http.Find("certConfigMap")->line, JoinPath(path, "certConfigMap"), ns,
                    *name, &source);
    }
    if (std::optional<std::string> name = reader.String(http, "secretRef", path)) {
      BasicAuth(reader, http.Find("secretRef")->line, JoinPath(path, "secretRef"), ns, *name,
                &source);
    }
    if (const Node* headers = reader.List(http, "extraHeaders", path)) {
      for (size_t i = 0; i < headers->items.size(); ++i) {
        const Node& header = headers->items[i];
        const std::string header_path = IndexPath(JoinPath(path, "extraHeaders"), i);
        if (!header.IsScalar() || !IsHeaderLine(header.scalar)) {
          reader.Error(
              header.line, header_path,
              "must be a header line \"Name: value\", not " +
                  (header.IsScalar() ? Quoted(header.scalar) : std::string(header.KindName())));
          continue;
        }
        source.spec.auth.headers.push_back(header.scalar);
      }
    }
    if (const Node* secrets = reader.List(http, "secretExtraHeaders", path)) {
      for (size_t i = 0; i < secrets->items.size(); ++i) {
        const Node& name = secrets->items[i];
        const std::string item_path = IndexPath(JoinPath(path, "secretExtraHeaders"), i);
        if (!name.IsScalar() || name.scalar.empty()) {
          reader.Error(name.line, item_path, "must be the name of a Secret");
          continue;
        }
        SecretHeaders(reader, name.line, item_path, ns, name.scalar, &source);
      }
    }
    if (std::optional<std::string> checksum = reader.String(http, "checksum", path)) {
      Result<ExpectedChecksum> parsed = ParseChecksum(*checksum);
      if (!parsed.ok()) {
        reader.Error(http.Find("checksum")->line, JoinPath(path, "checksum"),
                     parsed.status().message());
      } else {
        source.checksum = parsed->algorithm + ":" + parsed->hex;
      }
    }
    if (source.spec.tls.ca_pem.empty() && source.spec.url.rfind("https://", 0) == 0 &&
        source.spec.tls.verify == TlsVerify::kOn) {
      source.security.insert(source.security.begin(), "server verified with the system CAs");
    }
    if (reader.problems()->size() != problems_before) return std::nullopt;
    return source;
  }

 private:
  // The Secret or ConfigMap `name` in `ns`; reports and returns nullptr when
  // it is not to be found.
  const KeyValues* Lookup(const FieldReader& reader, int line, const std::string& field,
                          StoreKind kind, const std::string& ns, const std::string& name) {
    std::string error;
    const KeyValues* found = store_->Find(kind, ns, name, &error);
    const char* kind_name = kind == StoreKind::kSecret ? "Secret" : "ConfigMap";
    if (!error.empty()) {
      reader.Error(line, field, std::string(kind_name) + " " + ns + "/" + name + ": " + error);
      return nullptr;
    }
    if (found == nullptr) {
      std::string message =
          std::string(kind_name) + " " + ns + "/" + name + " is not in the manifests given with -f";
      if (kind == StoreKind::kSecret) {
        message += store_->secrets_dir().empty()
                       ? " (give its manifest with -f, or pass --secrets-dir DIR holding "
                         "DIR/" +
                             ns + "/" + name + "/<key> files)"
                       : " nor in --secrets-dir (no directory " + store_->secrets_dir() + "/" + ns +
                             "/" + name + ")";
      } else {
        message += " (give its manifest with -f)";
      }
      reader.Error(line, field, message);
    }
    return found;
  }

  // One key of a Secret; reports and returns nullopt when missing or empty.
  std::optional<std::string> Key(const FieldReader& reader, int line, const std::string& field,
                                 const KeyValues& values, const std::string& key) {
    auto it = values.data.find(key);
    if (it == values.data.end() || it->second.empty()) {
      std::vector<std::string> keys;
      for (const auto& entry : values.data) keys.push_back(entry.first);
      reader.Error(
          line, field,
          values.origin + (it == values.data.end() ? " has no key " : " has an empty key ") +
              Quoted(key) + " (its keys: " + (keys.empty() ? "none" : JoinList(keys)) + ")");
      return std::nullopt;
    }
    return it->second;
  }

  // A Secret named by {name: ...} at parent.key (certConfig.secretRef,
  // certConfig.cert.secretRef).
  std::optional<std::string> SecretRefKey(const FieldReader& reader, const Node& parent,
                                          std::string_view key, const std::string& parent_path,
                                          const std::string& ns, const std::string& data_key,
                                          std::string* secret_name) {
    const Node* ref = reader.Map(parent, key, parent_path);
    if (ref == nullptr) {
      if (parent.Find(key) == nullptr) {
        reader.Error(parent.line, JoinPath(parent_path, key),
                     "is required: {name: <Secret name>}, the Secret holding " + data_key);
      }
      return std::nullopt;
    }
    const std::string ref_path = JoinPath(parent_path, key);
    reader.OnlyKnownFields(*ref, ref_path, {"name", "namespace"});
    std::optional<std::string> name =
        reader.RequiredString(*ref, "name", ref_path, "the name of a Secret");
    if (!name) return std::nullopt;
    std::string secret_ns = ns;
    if (std::optional<std::string> other = reader.String(*ref, "namespace", ref_path)) {
      secret_ns = *other;
    }
    *secret_name = secret_ns + "/" + *name;
    const int line = ref->Find("name")->line;
    const KeyValues* values =
        Lookup(reader, line, JoinPath(ref_path, "name"), StoreKind::kSecret, secret_ns, *name);
    if (values == nullptr) return std::nullopt;
    return Key(reader, line, JoinPath(ref_path, "name"), *values, data_key);
  }

  void CertConfig(const FieldReader& reader, const Node& config, const std::string& path,
                  const std::string& ns, ResolvedSource* source) {
    reader.OnlyKnownFields(config, path, {"caBundle", "secretRef", "cert", "key"});
    if (std::optional<std::string> bundle = reader.String(config, "caBundle", path)) {
      const int line = config.Find("caBundle")->line;
      const std::string field = JoinPath(path, "caBundle");
      std::string pem;
      if (LooksLikePemCertificate(*bundle)) {
        reader.Error(line, field,
                     "holds PEM text, but caBundle is the base64 of a PEM bundle: encode it, "
                     "e.g. with 'base64 -w0 ca.pem'");
      } else if (!DecodeBase64(*bundle, &pem)) {
        reader.Error(line, field, "is not valid base64 (expected the base64 of a PEM CA bundle)");
      } else if (!LooksLikePemCertificate(pem)) {
        reader.Error(line, field,
                     "does not decode to a PEM certificate (no \"-----BEGIN CERTIFICATE-----\")");
      } else {
        source->spec.tls.ca_pem.push_back(std::move(pem));
        source->security.push_back("CA from certConfig.caBundle");
      }
    }
    if (config.Find("secretRef") != nullptr) {
      std::string secret;
      if (std::optional<std::string> pem =
              SecretRefKey(reader, config, "secretRef", path, ns, kCaKey, &secret)) {
        if (!LooksLikePemCertificate(*pem)) {
          reader.Error(config.Find("secretRef")->line, JoinPath(path, "secretRef.name"),
                       "Secret " + secret + " key " + kCaKey +
                           " does not hold a PEM certificate (no \"-----BEGIN CERTIFICATE-----\")");
        } else {
          source->spec.tls.ca_pem.push_back(std::move(*pem));
          source->security.push_back("CA from Secret " + secret + " (" + kCaKey + ")");
        }
      }
    }
    const Node* cert = reader.Map(config, "cert", path);
    const Node* key = reader.Map(config, "key", path);
    if ((cert == nullptr) != (key == nullptr)) {
      const bool has_cert = cert != nullptr;
      reader.Error((has_cert ? cert : key)->line, JoinPath(path, has_cert ? "key" : "cert"),
                   std::string("is required with ") + JoinPath(path, has_cert ? "cert" : "key") +
                       ": a client certificate needs its private key and the other way round");
      return;
    }
    if (cert == nullptr) return;
    reader.OnlyKnownFields(*cert, JoinPath(path, "cert"), {"secretRef"});
    reader.OnlyKnownFields(*key, JoinPath(path, "key"), {"secretRef"});
    std::string cert_secret;
    std::string key_secret;
    std::optional<std::string> cert_pem = SecretRefKey(
        reader, *cert, "secretRef", JoinPath(path, "cert"), ns, kCertKey, &cert_secret);
    std::optional<std::string> key_pem =
        SecretRefKey(reader, *key, "secretRef", JoinPath(path, "key"), ns, kKeyKey, &key_secret);
    if (!cert_pem || !key_pem) return;
    source->spec.tls.client_cert_pem = std::move(*cert_pem);
    source->spec.tls.client_key_pem = std::move(*key_pem);
    source->security.push_back("client certificate from Secret " + cert_secret + " (" + kCertKey +
                               "), key from Secret " + key_secret + " (" + kKeyKey + ")");
  }

  // CDI's certConfigMap: every key of the ConfigMap is a PEM CA bundle, as
  // CDI mounts it at /certs and reads every file there.
  void CertConfigMap(const FieldReader& reader, int line, const std::string& field,
                     const std::string& ns, const std::string& name, ResolvedSource* source) {
    const KeyValues* values = Lookup(reader, line, field, StoreKind::kConfigMap, ns, name);
    if (values == nullptr) return;
    size_t added = 0;
    for (const auto& [key, pem] : values->data) {
      if (key.empty() || key[0] == '.') continue;
      if (!LooksLikePemCertificate(pem)) {
        reader.Error(line, field,
                     values->origin + " key " + Quoted(key) +
                         " does not hold a PEM certificate (no \"-----BEGIN CERTIFICATE-----\")");
        continue;
      }
      source->spec.tls.ca_pem.push_back(pem);
      ++added;
    }
    if (added == 0 && values->data.empty()) {
      reader.Error(line, field, values->origin + " has no data: expected PEM CA certificates");
    }
    if (added > 0) source->security.push_back("CA from ConfigMap " + ns + "/" + name);
  }

  // CDI's secretRef: basic-auth user and password from keys accessKeyId and secretKey.
  void BasicAuth(const FieldReader& reader, int line, const std::string& field,
                 const std::string& ns, const std::string& name, ResolvedSource* source) {
    const KeyValues* values = Lookup(reader, line, field, StoreKind::kSecret, ns, name);
    if (values == nullptr) return;
    std::optional<std::string> user = Key(reader, line, field, *values, kAccessKeyId);
    std::optional<std::string> password = Key(reader, line, field, *values, kSecretKey);
    if (!user || !password) return;
    source->spec.auth.user = std::move(*user);
    source->spec.auth.password = std::move(*password);
    source->security.push_back("basic auth from Secret " + ns + "/" + name);
  }

  // CDI's secretExtraHeaders: every key of the Secret is one header line.
  void SecretHeaders(const FieldReader& reader, int line, const std::string& field,
                     const std::string& ns, const std::string& name, ResolvedSource* source) {
    const KeyValues* values = Lookup(reader, line, field, StoreKind::kSecret, ns, name);
    if (values == nullptr) return;
    size_t added = 0;
    for (const auto& [key, value] : values->data) {
      if (key.empty() || key[0] == '.') continue;
      std::string header = value;
      while (!header.empty() && (header.back() == '\n' || header.back() == '\r')) header.pop_back();
      if (!IsHeaderLine(header)) {
        // The value is a secret: name the key only.
        reader.Error(
            line, field,
            values->origin + " key " + Quoted(key) + " is not a header line \"Name: value\"");
        continue;
      }
      source->spec.auth.headers.push_back(std::move(header));
      ++added;
    }
    if (values->data.empty()) {
      reader.Error(line, field, values->origin + " has no data: expected header lines");
    }
    if (added > 0) source->security.push_back("headers from Secret " + ns + "/" + name);
  }

  SecretStore* store_;
};

}  // namespace

std::string ResolvedSource::Key() const {
  const char kSeparator = '\x1f';
  std::string key = spec.url + kSeparator + checksum + kSeparator +
                    (spec.tls.verify == TlsVerify::kOff ? "insecure" : "verify");
  for (const auto& pem : spec.tls.ca_pem) key += kSeparator + std::string("ca=") + pem;
  key += kSeparator + spec.tls.client_cert_pem + kSeparator + spec.tls.client_key_pem;
  key += kSeparator + spec.auth.user + kSeparator + spec.auth.password;
  for (const auto& header : spec.auth.headers) key += kSeparator + std::string("h=") + header;
  return key;
}

std::optional<ResolvedSource> ReadHttpSource(const FieldReader& reader, const Node& http,
                                             const std::string& path, const std::string& ns,
                                             SecretStore* store) {
  return HttpSourceReader(store).Http(reader, http, path, ns);
}

}  // namespace cdi::apply
