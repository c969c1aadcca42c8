// Where an S3 object is: s3://BUCKET/KEY and the service's settings turned
// into the HTTPS URL of one GetObject request, path-style or virtual-hosted,
// and the region that signs it. Pure text: no I/O, tested without a server.
//
//   S3Object object = *ParseS3Url("s3://images/fedora/disk.qcow2");
//   S3Request request = *ResolveS3Request(object, spec.s3);
//   request.url == "https://images.s3.us-east-1.amazonaws.com/fedora/disk.qcow2"
//
// Thread-safety: free functions without shared state.
#ifndef CDI_SOURCES_S3_S3_LOCATION_H_
#define CDI_SOURCES_S3_S3_LOCATION_H_

#include <string>
#include <string_view>

#include "cdi/source.h"
#include "cdi/status.h"

namespace cdi::importer {

struct S3Object {
  std::string bucket;
  std::string key;  // as stored: not percent-encoded
};

// Parses "s3://BUCKET/KEY". The key is everything after the bucket's '/',
// taken literally ("s3://b/a%20b" names the key "a%20b"), as the AWS command
// line takes it. kInvalidArgument for a missing bucket or key.
Result<S3Object> ParseS3Url(std::string_view url);

// The region CDI's importer signs with for an endpoint host ("host[:port]"):
// REGION of s3.REGION.amazonaws.com, else the host's first label; us-east-1
// when that is no DNS label (an IPv6 address, a name with '_').
std::string RegionFromHost(std::string_view host);

// AWS's URI encoding of an object key for the request path: every byte but
// A-Z a-z 0-9 - . _ ~ and '/' as %XX (upper-case hex).
std::string EncodeS3Key(std::string_view key);

// Decodes %XX escapes; false on a malformed escape.
bool PercentDecode(std::string_view text, std::string* out);

// One GetObject request.
struct S3Request {
  std::string url;         // http(s)://..., the key encoded
  std::string region;      // the signing region
  S3Addressing addressing = S3Addressing::kPath;  // kPath or kVirtualHost, as chosen
  std::string describe;    // "s3://BUCKET/KEY at ENDPOINT" for messages (no secrets)
};

// The region of an AWS endpoint host (s3.REGION.amazonaws.com, also with a
// bucket or "dualstack." before it); "" for other hosts.
std::string AwsRegionOfHost(std::string_view host);

// Builds the request for `object` with `settings`: the endpoint (AWS's for
// the region when empty), the region (settings.region, else
// AwsRegionOfHost, else us-east-1),
// and the addressing (kAuto: virtual-hosted on AWS's endpoints for bucket
// names that are DNS labels without dots, else path-style). kInvalidArgument
// for an endpoint that is not http(s)://host[:port], or a bucket name that
// cannot be a host name when kVirtualHost is asked for.
Result<S3Request> ResolveS3Request(const S3Object& object, const S3Settings& settings);

}  // namespace cdi::importer

#endif  // CDI_SOURCES_S3_S3_LOCATION_H_
