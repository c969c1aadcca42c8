#include "uploadserver/upload_config.h"

#include <openssl/ssl.h>

#include <cctype>
#include <charconv>
#include <ctime>
#include <string>

#include "cdi/quantity.h"
#include "common/log.h"

namespace cdi::uploadserver {
namespace {

bool ReadNumber(std::string_view text, size_t& pos, size_t digits, int& out) {
  if (pos + digits > text.size()) return false;
  out = 0;
  for (size_t i = 0; i < digits; ++i) {
    char c = text[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    out = out * 10 + (c - '0');
  }
  pos += digits;
  return true;
}

bool Expect(std::string_view text, size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

Result<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text) {
  auto bad = [&] {
    return InvalidArgumentError("'" + std::string(text) +
                                "' is not an RFC 3339 time; expected e.g. 2026-01-02T15:04:05Z or "
                                "2026-01-02T15:04:05+02:00");
  };
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ReadNumber(text, pos, 4, year) || !Expect(text, pos, '-') ||
      !ReadNumber(text, pos, 2, month) || !Expect(text, pos, '-') ||
      !ReadNumber(text, pos, 2, day) || !Expect(text, pos, 'T') ||
      !ReadNumber(text, pos, 2, hour) || !Expect(text, pos, ':') ||
      !ReadNumber(text, pos, 2, minute) || !Expect(text, pos, ':') ||
      !ReadNumber(text, pos, 2, second)) {
    return bad();
  }
  std::chrono::nanoseconds fraction{0};
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int64_t scale = 100'000'000;
    size_t digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      fraction += std::chrono::nanoseconds((text[pos] - '0') * scale);
      scale /= 10;
      ++pos;
      ++digits;
    }
    if (digits == 0) return bad();
  }
  int offset_seconds = 0;
  if (pos < text.size() && text[pos] == 'Z') {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '-' ? -1 : 1;
    ++pos;
    int offset_hours = 0, offset_minutes = 0;
    if (!ReadNumber(text, pos, 2, offset_hours) || !Expect(text, pos, ':') ||
        !ReadNumber(text, pos, 2, offset_minutes) || offset_hours > 23 || offset_minutes > 59) {
      return bad();
    }
    offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
  } else {
    return bad();
  }
  if (pos != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 59) {
    return bad();
  }
  std::tm parts{};
  parts.tm_year = year - 1900;
  parts.tm_mon = month - 1;
  parts.tm_mday = day;
  parts.tm_hour = hour;
  parts.tm_min = minute;
  parts.tm_sec = second;
  const time_t seconds = timegm(&parts);
  return std::chrono::system_clock::from_time_t(seconds - offset_seconds) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(fraction);
}

Result<UploadConfig> ParseUploadEnvironment(const pod::Environment& env, const UploadPaths& paths) {
  UploadConfig config;
  if (std::optional<std::string> address = env.Get("LISTEN_ADDRESS")) config.listen_host = *address;
  if (std::string port = env.GetOr("LISTEN_PORT"); !port.empty()) {
    unsigned value = 0;
    auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (error == std::errc() && end == port.data() + port.size() && value <= 65535) {
      config.listen_port = static_cast<uint16_t>(value);
    } else {
      Logger()->warn("LISTEN_PORT '{}' is not a port number: listening on {}", port,
                     config.listen_port);
    }
  }
  config.data_dir = paths.data_dir;
  config.scratch_dir = paths.scratch_dir;
  config.destination = env.GetOr("DESTINATION");
  if (config.destination.empty()) config.destination = pod::DiskImagePath({.data_dir = paths.data_dir});

  config.key_file = env.GetOr("TLS_KEY_FILE");
  config.cert_file = env.GetOr("TLS_CERT_FILE");
  if (config.key_file.empty() || config.cert_file.empty()) {
    return InvalidArgumentError(
        "invalid TLS config: TLS_KEY_FILE and TLS_CERT_FILE must name the server's key and "
        "certificate (PEM files)");
  }
  config.client_ca_file = env.GetOr("CLIENT_CERT_FILE");
  config.client_name = env.GetOr("CLIENT_NAME");

  if (std::string size = env.GetOr("UPLOAD_IMAGE_SIZE"); !size.empty()) {
    Result<uint64_t> bytes = ParseQuantity(size);
    if (!bytes.ok()) {
      return InvalidArgumentError("UPLOAD_IMAGE_SIZE: " + bytes.status().message());
    }
    config.image_size = *bytes;
  }
  if (std::string overhead = env.GetOr("FILESYSTEM_OVERHEAD"); !overhead.empty()) {
    Result<double> value = ParseOverhead(overhead);
    if (value.ok()) {
      config.filesystem_overhead = *value;
    } else {
      Logger()->warn("FILESYSTEM_OVERHEAD: {}: using 0", value.status().message());
    }
  }
  if (std::string preallocation = env.GetOr("PREALLOCATION"); !preallocation.empty()) {
    std::optional<bool> on = pod::ParseGoBool(preallocation);
    if (!on) Logger()->warn("PREALLOCATION '{}' is not a boolean: preallocation off", preallocation);
    config.preallocation = on.value_or(false) ? Preallocation::kOn : Preallocation::kOff;
  }
  const std::string ciphers = env.GetOr("TLS_CIPHERS");
  for (std::string_view rest = ciphers; !rest.empty();) {
    const size_t comma = rest.find(',');
    std::string name(rest.substr(0, comma));
    if (!name.empty()) config.cipher_suites.push_back(name);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  if (std::string version = env.GetOr("TLS_MIN_VERSION"); !version.empty()) {
    if (version == "VersionTLS13") {
      config.min_tls_version = TLS1_3_VERSION;
    } else if (version == "VersionTLS12") {
      config.min_tls_version = TLS1_2_VERSION;
    } else if (version == "VersionTLS10" || version == "VersionTLS11") {
      Logger()->warn("TLS_MIN_VERSION {}: TLS 1.0 and 1.1 are not offered; the minimum is TLS 1.2",
                     version);
    } else {
      Logger()->warn("TLS_MIN_VERSION '{}' is not one of VersionTLS10 to VersionTLS13: the "
                     "minimum is TLS 1.2",
                     version);
    }
  }
  if (std::string deadline = env.GetOr("DEADLINE"); !deadline.empty()) {
    Result<std::chrono::system_clock::time_point> when = ParseRfc3339(deadline);
    if (!when.ok()) return InvalidArgumentError("Failed to parse deadline: " + when.status().message());
    config.deadline = *when;
  }
  config.owner_uid = env.GetOr("OWNER_UID");
  return config;
}

}  // namespace cdi::uploadserver
