// cdi-image over HTTPS, end to end: trust flags, client certificates, the
// messages and exit codes of every TLS failure, and no secret in any output.
#include <gtest/gtest.h>

#include "test/e2e/e2e_util.h"
#include "test/support/certs.h"
#include "test/support/http_server.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

std::string Base64(const std::string& bytes) {
  TempDir dir;
  WriteFile(dir.File("in"), bytes);
  std::string out = Sh("base64 -w0 " + dir.File("in"));
  return out;
}

class TlsCliTest : public ::testing::Test {
 protected:
  TlsCliTest() : certs_(SharedTestCertificates()) {
    image_ = MakeRawImage(8, 2, 31);  // 512 KiB
    WriteFile(www_.File("disk.raw"), image_);
  }

  // Imports `path` from `server` with `flags`; returns the run.
  RunResult ImportFrom(const NginxServer& server, std::vector<std::string> flags,
                       const std::string& target_name = "disk.img") {
    std::vector<std::string> args = {"import", server.Url("/disk.raw"), out_.File(target_name),
                                     "--progress", "none"};
    args.insert(args.end(), flags.begin(), flags.end());
    return CdiImage(args);
  }

  void ExpectImported(const RunResult& r, const std::string& target_name = "disk.img") {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Sha256File(out_.File(target_name)), Sha256Bytes(image_));
  }

  void ExpectTlsFailure(const RunResult& r, const std::string& message) {
    EXPECT_EQ(r.exit_code, 6) << r.err;
    EXPECT_TRUE(Contains(r.err, message)) << "wanted: " << message << "\ngot: " << r.err;
    EXPECT_EQ(ListDir(out_.path()), std::vector<std::string>{});
  }

  const TestCertificates& certs_;
  TempDir www_;
  TempDir out_;
  std::string image_;
};

TEST_F(TlsCliTest, EachWayOfTrustingACaWorks) {
  NginxServer server({.root = www_.path(), .tls = certs_.server});
  ExpectImported(ImportFrom(server, {"--ca-bundle", certs_.ca.cert}, "file.img"), "file.img");
  ExpectImported(
      ImportFrom(server, {"--ca-bundle-data", Base64(ReadFile(certs_.ca.cert))}, "data.img"),
      "data.img");
  // A directory as Kubernetes mounts a Secret: any key name, dot entries ignored.
  TempDir ca_dir;
  WriteFile(ca_dir.File("tls.crt"), ReadFile(certs_.ca.cert));
  WriteFile(ca_dir.File("..data"), "not a certificate");
  ExpectImported(ImportFrom(server, {"--ca-dir", ca_dir.path()}, "dir.img"), "dir.img");
  // A bundle with an unrelated CA first still trusts the right one.
  WriteFile(ca_dir.File("bundle.pem"), ReadFile(certs_.other_ca.cert) + ReadFile(certs_.ca.cert));
  ExpectImported(ImportFrom(server, {"--ca-bundle", ca_dir.File("bundle.pem")}, "bundle.img"),
                 "bundle.img");
}

TEST_F(TlsCliTest, UnknownIssuerNamesTheIssuer) {
  NginxServer server({.root = www_.path(), .tls = certs_.server});
  ExpectTlsFailure(ImportFrom(server, {}), "unknown issuer");
  ExpectTlsFailure(ImportFrom(server, {"--ca-bundle", certs_.other_ca.cert}), "cdi-test Root CA");
}

TEST_F(TlsCliTest, ExpiredWrongHostAndSelfSignedCertificatesAreRefused) {
  {
    NginxServer server({.root = www_.path(), .tls = certs_.expired});
    ExpectTlsFailure(ImportFrom(server, {"--ca-bundle", certs_.ca.cert}), "expired on");
  }
  {
    NginxServer server({.root = www_.path(), .tls = certs_.wrong_host});
    ExpectTlsFailure(ImportFrom(server, {"--ca-bundle", certs_.ca.cert}), "host name mismatch");
  }
  {
    NginxServer server({.root = www_.path(), .tls = certs_.self_signed});
    ExpectTlsFailure(ImportFrom(server, {"--ca-bundle", certs_.ca.cert}), "self-signed");
  }
}

TEST_F(TlsCliTest, InsecureSkipsVerificationAndSaysSo) {
  NginxServer server({.root = www_.path(), .tls = certs_.self_signed});
  RunResult r = ImportFrom(server, {"--insecure"});
  ExpectImported(r);
  EXPECT_TRUE(Contains(r.err, "warning")) << r.err;
  EXPECT_TRUE(Contains(r.err, "verif")) << r.err;
}

TEST_F(TlsCliTest, MutualTls) {
  NginxServer server({.root = www_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  ExpectTlsFailure(ImportFrom(server, {"--ca-bundle", certs_.ca.cert}),
                   "error: the server at " + server.Url("/disk.raw") +
                       " requires a TLS client certificate and none is configured (HTTP 400 "
                       "\"No required SSL certificate was sent\"); give a certificate issued by "
                       "'CN=cdi-test Root CA' and its key (--client-cert and --client-key)\n");
  ExpectImported(ImportFrom(server, {"--ca-bundle", certs_.ca.cert, "--client-cert",
                                     certs_.client.cert, "--client-key", certs_.client.key}));
  auto log = server.WaitForRequests(2);
  EXPECT_TRUE(Contains(log.back().client_subject, "cdi-test client")) << log.back().client_subject;
}

// nginx answers a client certificate it does not trust with HTTP 400: the
// user is told it is the certificate, which one, and what the server wants;
// the import is not retried and leaves nothing behind.
TEST_F(TlsCliTest, ClientCertificateFromAnotherCaIsRejected) {
  NginxServer server({.root = www_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  RunResult r =
      ImportFrom(server, {"--ca-bundle", certs_.ca.cert, "--client-cert", certs_.other_client.cert,
                          "--client-key", certs_.other_client.key, "--retries", "3"});
  ExpectTlsFailure(r, "error: the server at " + server.Url("/disk.raw") +
                          " rejected the TLS client certificate 'CN=cdi-test other client' from " +
                          certs_.other_client.cert +
                          " (HTTP 400 \"The SSL certificate error\"): it is issued by "
                          "'CN=cdi-test Other CA', and the server accepts certificates issued by "
                          "'CN=cdi-test Root CA'; give such a certificate and its key "
                          "(--client-cert and --client-key)\n");
  EXPECT_FALSE(Contains(r.err, "retry")) << r.err;
  EXPECT_EQ(server.WaitForRequests(1).size(), 1u);
}

TEST_F(TlsCliTest, MaterialProblemsAreFoundBeforeConnecting) {
  NginxServer server({.root = www_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  // A key that belongs to another certificate.
  ExpectTlsFailure(
      ImportFrom(server, {"--ca-bundle", certs_.ca.cert, "--client-cert", certs_.client.cert,
                          "--client-key", certs_.other_client.key}),
      "does not match");
  // A CA file that holds no certificate.
  TempDir bad;
  WriteFile(bad.File("empty.pem"), "\n");
  ExpectTlsFailure(ImportFrom(server, {"--ca-bundle", bad.File("empty.pem")}),
                   bad.File("empty.pem") + " holds no PEM certificate");
  // Nothing reached the server.
  EXPECT_EQ(server.AccessLog().size(), 0u);
  // Half a client identity is a usage error.
  RunResult r = ImportFrom(server, {"--client-cert", certs_.client.cert});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "--client-cert and --client-key go together")) << r.err;
}

TEST_F(TlsCliTest, NoSecretInAnyOutputAtTheHighestVerbosity) {
  NginxServer server({.root = www_.path(), .tls = certs_.server, .client_ca = certs_.ca.cert});
  TempDir secrets;
  WriteFile(secrets.File("password"), "pw-Zq81\n");
  WriteFile(secrets.File("header"), "X-Token: hdrfile-Kk22\n");
  std::string url = server.Url("/disk.raw") + "?sig=query-Aa93";
  url.insert(url.find("//") + 2, "urluser:urlpass-Pp55@");
  for (const char* progress : {"plain", "json"}) {
    std::string target = out_.File(std::string(progress) + ".img");
    RunResult r = CdiImage({"import",
                            url,
                            target,
                            "-vv",
                            "--progress",
                            progress,
                            "--ca-bundle",
                            certs_.ca.cert,
                            "--client-cert",
                            certs_.client.cert,
                            "--client-key",
                            certs_.client.key,
                            "--user",
                            "basicuser",
                            "--password-file",
                            secrets.File("password"),
                            "--header",
                            "X-Api-Key: hdr-Ww77",
                            "--header-file",
                            secrets.File("header")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(Contains(r.err, "debug")) << "expected debug output at -vv:\n" << r.err;
    for (const char* secret :
         {"pw-Zq81", "hdrfile-Kk22", "query-Aa93", "urlpass-Pp55", "hdr-Ww77", "PRIVATE KEY"}) {
      EXPECT_FALSE(Contains(r.out, secret)) << secret << " on stdout:\n" << r.out;
      EXPECT_FALSE(Contains(r.err, secret)) << secret << " on stderr:\n" << r.err;
    }
  }
  // The same with a failure: errors carry no secret either.
  RunResult failed = CdiImage({"import", url + "x", out_.File("fail.img"), "-vv", "--ca-bundle",
                               certs_.ca.cert, "--user", "basicuser", "--password-file",
                               secrets.File("password"), "--header", "X-Api-Key: hdr-Ww77"});
  EXPECT_NE(failed.exit_code, 0);
  for (const char* secret : {"pw-Zq81", "query-Aa93", "urlpass-Pp55", "hdr-Ww77"}) {
    EXPECT_FALSE(Contains(failed.out + failed.err, secret)) << secret << ":\n" << failed.err;
  }
}

}  // namespace
}  // namespace cdi::test
