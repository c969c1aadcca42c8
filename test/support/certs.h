// Certificates for TLS tests, made at test time with the openssl CLI.
#ifndef CDI_TEST_SUPPORT_CERTS_H_
#define CDI_TEST_SUPPORT_CERTS_H_

#include <string>

#include "test/support/temp_dir.h"

namespace cdi::test {

// A certificate and its unencrypted private key, as PEM file paths.
struct CertKey {
  std::string cert;
  std::string key;
};

// A set of certificates with EC P-256 keys (quick to make), written into a
// temporary directory that lives as long as the object.
//
//   const TestCertificates& certs = SharedTestCertificates();
//   NginxServer server({.root = dir, .tls = certs.server});
//   spec.tls.ca_files = {certs.ca.cert};
//
// Thread-safety: immutable after construction.
class TestCertificates {
 public:
  // Runs openssl; throws std::runtime_error when it fails.
  TestCertificates();

  const std::string& dir() const { return dir_.path(); }

  CertKey ca;            // "cdi-test Root CA", self-signed, CA:TRUE
  CertKey other_ca;      // "cdi-test Other CA": unrelated to `ca`
  CertKey server;        // CN=localhost, SAN DNS:localhost and IP:127.0.0.1; signed by ca
  CertKey expired;       // the same names, signed by ca, expired yesterday
  CertKey wrong_host;    // CN=wrong.example, SAN DNS:wrong.example only; signed by ca
  CertKey self_signed;   // localhost and 127.0.0.1, signed by its own key
  CertKey untrusted;     // localhost and 127.0.0.1, signed by other_ca
  CertKey client;        // CN=cdi-test client, extendedKeyUsage clientAuth; signed by ca
  CertKey other_client;  // CN=cdi-test other client, clientAuth; signed by other_ca

  // Subjects as messages print them (RFC 2253).
  static constexpr const char* kCaName = "CN=cdi-test Root CA";
  static constexpr const char* kOtherCaName = "CN=cdi-test Other CA";

 private:
  TempDir dir_;
};

// One set per test process, made on first use; lives until the process exits.
const TestCertificates& SharedTestCertificates();

}  // namespace cdi::test

#endif  // CDI_TEST_SUPPORT_CERTS_H_
