#include "test/support/certs.h"

#include <mutex>
#include <stdexcept>
#include <vector>

#include "test/support/files.h"
#include "test/support/process.h"

namespace cdi::test {
namespace {

constexpr const char* kServerNames = "DNS:localhost,IP:127.0.0.1";

void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult result = Run(argv);
  if (result.exit_code != 0) {
    std::string command;
    for (const auto& arg : argv) command += arg + " ";
    throw std::runtime_error("openssl failed: " + command + "\n" + result.err);
  }
}

// A new EC key and a certificate signing request for `subject`.
void MakeRequest(const std::string& base, const std::string& subject) {
  Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", base + ".key", "-out", base + ".csr", "-subj", subject});
}

// Extensions of a leaf certificate, as an -extfile.
std::string LeafExtensions(const std::string& path, const std::string& usage,
                           const std::string& names) {
  std::string text =
      "basicConstraints=critical,CA:FALSE\n"
      "keyUsage=critical,digitalSignature,keyEncipherment\n"
      "extendedKeyUsage=" +
      usage +
      "\n"
      "subjectKeyIdentifier=hash\n";
  if (!names.empty()) text += "subjectAltName=" + names + "\n";
  WriteFile(path, text);
  return path;
}

int next_serial = 1000;

CertKey MakeCa(const std::string& dir, const std::string& name, const std::string& subject) {
  std::string base = dir + "/" + name;
  std::string extensions = base + ".ext";
  WriteFile(extensions,
            "basicConstraints=critical,CA:TRUE\n"
            "keyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\n");
  MakeRequest(base, subject);
  Openssl({"x509", "-req", "-in", base + ".csr", "-signkey", base + ".key", "-days", "3650",
           "-set_serial", std::to_string(++next_serial), "-extfile", extensions, "-out",
           base + ".pem"});
  return {base + ".pem", base + ".key"};
}

// A leaf certificate signed by `issuer` (or by its own key when issuer is
// null), valid for `days` (negative: expired that many days ago).
CertKey MakeLeaf(const std::string& dir, const std::string& name, const std::string& subject,
                 const std::string& usage, const std::string& names, const CertKey* issuer,
                 int days) {
  std::string base = dir + "/" + name;
  MakeRequest(base, subject);
  std::string extensions = LeafExtensions(base + ".ext", usage, names);
  std::vector<std::string> args = {"x509",        "-req",
                                   "-in",         base + ".csr",
                                   "-days",       std::to_string(days),
                                   "-set_serial", std::to_string(++next_serial),
                                   "-extfile",    extensions,
                                   "-out",        base + ".pem"};
  if (issuer != nullptr) {
    args.insert(args.end(), {"-CA", issuer->cert, "-CAkey", issuer->key});
  } else {
    args.insert(args.end(), {"-signkey", base + ".key"});
  }
  Openssl(args);
  return {base + ".pem", base + ".key"};
}

}  // namespace

TestCertificates::TestCertificates() {
  const std::string& d = dir_.path();
  ca = MakeCa(d, "ca", "/CN=cdi-test Root CA");
  other_ca = MakeCa(d, "other-ca", "/CN=cdi-test Other CA");
  server = MakeLeaf(d, "server", "/CN=localhost", "serverAuth", kServerNames, &ca, 825);
  // OpenSSL 3.0's x509 has no -not_after; a negative day count makes a
  // certificate whose validity ended the day before it began: expired.
  expired = MakeLeaf(d, "expired", "/CN=localhost", "serverAuth", kServerNames, &ca, -1);
  wrong_host =
      MakeLeaf(d, "wrong-host", "/CN=wrong.example", "serverAuth", "DNS:wrong.example", &ca, 825);
  self_signed =
      MakeLeaf(d, "self-signed", "/CN=localhost", "serverAuth", kServerNames, nullptr, 825);
  untrusted = MakeLeaf(d, "untrusted", "/CN=localhost", "serverAuth", kServerNames, &other_ca, 825);
  client = MakeLeaf(d, "client", "/CN=cdi-test client", "clientAuth", "", &ca, 825);
  other_client =
      MakeLeaf(d, "other-client", "/CN=cdi-test other client", "clientAuth", "", &other_ca, 825);
}

const TestCertificates& SharedTestCertificates() {
  static std::once_flag once;
  static TestCertificates* certificates = nullptr;
  std::call_once(once, [] {
    static TestCertificates made;
    certificates = &made;
  });
  return *certificates;
}

}  // namespace cdi::test
