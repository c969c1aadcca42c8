#include "sources/url.h"

#include <gtest/gtest.h>

#include "cdi/import.h"

namespace cdi::importer {
namespace {

TEST(RedactUrlTest, RemovesUserInfoQueryAndFragment) {
  EXPECT_EQ(RedactUrl("https://alice:s3cret@images.example.com:8443/a/b.qcow2?sig=abc#frag"),
            "https://images.example.com:8443/a/b.qcow2");
  EXPECT_EQ(RedactUrl("http://token@host/x"), "http://host/x");
  EXPECT_EQ(RedactUrl("http://host/x?X-Amz-Signature=deadbeef"), "http://host/x");
  EXPECT_EQ(RedactUrl("http://host/x#access_token=abc"), "http://host/x");
}

TEST(RedactUrlTest, KeepsUrlsWithoutSecretsAsTheyAre) {
  EXPECT_EQ(RedactUrl("https://host:1234/path/disk.img"), "https://host:1234/path/disk.img");
  EXPECT_EQ(RedactUrl("http://[::1]:80/d"), "http://[::1]:80/d");
  EXPECT_EQ(RedactUrl("http://host/mail@example.com/disk.img"),
            "http://host/mail@example.com/disk.img");
  EXPECT_EQ(RedactUrl("/var/images/disk.img"), "/var/images/disk.img");
  EXPECT_EQ(RedactUrl(""), "");
}

TEST(RedactUrlTest, HidesPasswordsHoldingUnencodedDelimiters) {
  // Passwords with '@', '?', '#' or ':' that were not percent-encoded.
  EXPECT_EQ(RedactUrl("http://user:p@ss@host/x"), "http://host/x");
  EXPECT_EQ(RedactUrl("http://user:pa?ss@host/x"), "http://host/x");
  EXPECT_EQ(RedactUrl("http://user:pa#ss@host/x"), "http://host/x");
  EXPECT_EQ(RedactUrl("http://user:pass@host"), "http://host");
  EXPECT_EQ(RedactUrl("//user:pass@host/x"), "//host/x");
  EXPECT_EQ(RedactUrl("HTTPS://user:pass@host/x?q"), "HTTPS://host/x");
}

TEST(RedactUrlTest, EscapesControlCharacters) {
  EXPECT_EQ(RedactUrl("http://host/a\nb\r\x7f"), "http://host/a%0Ab%0D%7F");
}

TEST(UrlSchemeTest, FollowsRfc3986) {
  EXPECT_EQ(UrlScheme("https://x"), "https");
  EXPECT_EQ(UrlScheme("HTTP://x"), "http");
  EXPECT_EQ(UrlScheme("file:///etc/passwd"), "file");
  EXPECT_EQ(UrlScheme("s3+v4.x-y://bucket"), "s3+v4.x-y");
  EXPECT_EQ(UrlScheme("/path/to:file"), "");
  EXPECT_EQ(UrlScheme("relative/path"), "");
  EXPECT_EQ(UrlScheme("1abc://x"), "");
  EXPECT_EQ(UrlScheme("-"), "");
  EXPECT_EQ(UrlScheme(""), "");
  EXPECT_TRUE(IsHttpScheme("http"));
  EXPECT_TRUE(IsHttpScheme("https"));
  EXPECT_FALSE(IsHttpScheme("ftp"));
  EXPECT_FALSE(IsHttpScheme("file"));
}

TEST(ParseHttpUrlTest, SplitsCredentialsFromTheRequestUrl) {
  Result<HttpUrl> url = ParseHttpUrl("https://al%40ice:p%3Ass@Images.Example.COM/d.img?sig=1#f");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->user, "al@ice");
  EXPECT_EQ(url->password, "p:ss");
  EXPECT_EQ(url->request_url, "https://Images.Example.COM/d.img?sig=1");
  EXPECT_EQ(url->origin, (Origin{"https", "images.example.com", 443}));
  EXPECT_EQ(url->redacted, "https://Images.Example.COM/d.img");
}

TEST(ParseHttpUrlTest, DefaultAndExplicitPortsMakeTheSameOrigin) {
  Result<HttpUrl> implicit = ParseHttpUrl("http://host/a");
  Result<HttpUrl> explicit_port = ParseHttpUrl("http://HOST:80/b");
  Result<HttpUrl> other_port = ParseHttpUrl("http://host:8080/a");
  Result<HttpUrl> other_scheme = ParseHttpUrl("https://host/a");
  Result<HttpUrl> ipv6 = ParseHttpUrl("http://[::1]:8080/a");
  ASSERT_TRUE(implicit.ok() && explicit_port.ok() && other_port.ok() && other_scheme.ok() &&
              ipv6.ok());
  EXPECT_TRUE(SameOrigin(implicit->origin, explicit_port->origin));
  EXPECT_FALSE(SameOrigin(implicit->origin, other_port->origin));
  EXPECT_FALSE(SameOrigin(implicit->origin, other_scheme->origin));
  EXPECT_EQ(ipv6->origin, (Origin{"http", "::1", 8080}));
}

TEST(ParseHttpUrlTest, RefusesOtherSchemesByName) {
  Result<HttpUrl> ftp = ParseHttpUrl("ftp://user:pw@host/x");
  ASSERT_FALSE(ftp.ok());
  EXPECT_EQ(ftp.status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(ftp.status().message(), "ftp:// URLs are not supported: only http and https are");

  Result<HttpUrl> relative = ParseHttpUrl("/x/y");
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(relative.status().message(), "not an absolute URL: /x/y");
}

TEST(ParseHttpUrlTest, MalformedUrlMessagesHideSecrets) {
  Result<HttpUrl> bad = ParseHttpUrl("http://user:hunter2@host:99999/x?token=abc");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("http://host:99999/x"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos);
  EXPECT_EQ(bad.status().message().find("token"), std::string::npos);
}

TEST(ResolveRedirectTest, ResolvesRelativeAndAbsoluteTargets) {
  EXPECT_EQ(*ResolveRedirect("http://a.example/dir/file?x=1", "other"),
            "http://a.example/dir/other");
  EXPECT_EQ(*ResolveRedirect("http://a.example/dir/file", "/root"), "http://a.example/root");
  EXPECT_EQ(*ResolveRedirect("https://a.example/dir/file", "//b.example/x"), "https://b.example/x");
  EXPECT_EQ(*ResolveRedirect("http://a.example/", "  HTTPS://b.example:8443/y?z  "),
            "https://b.example:8443/y?z");
  EXPECT_EQ(*ResolveRedirect("http://a.example/", "/with space"), "http://a.example/with%20space");
}

TEST(ResolveRedirectTest, RefusesOtherSchemesByName) {
  for (const char* target : {"file:///etc/passwd", "ftp://h/x", "gopher://h/", "FILE:/etc/shadow",
                             "javascript:alert(1)"}) {
    Result<std::string> resolved = ResolveRedirect("http://a.example/x?secret=1", target);
    ASSERT_FALSE(resolved.ok()) << target;
    EXPECT_EQ(resolved.status().code(), ErrorCode::kNetwork);
    EXPECT_FALSE(resolved.status().retryable());
    std::string scheme = UrlScheme(target);
    EXPECT_EQ(resolved.status().message(), "redirect from http://a.example/x to a " + scheme +
                                               ":// URL refused: only http and https are allowed");
  }
}

TEST(ResolveRedirectTest, EmptyLocationIsAnError) {
  Result<std::string> resolved = ResolveRedirect("http://a.example/x", "   ");
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.status().message(), "redirect from http://a.example/x has an empty Location");
}

}  // namespace
}  // namespace cdi::importer
