#include "tls/openssl_util.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <array>

namespace cdi::tls {

Status OpenSslError(ErrorCode code, std::string_view context) {
  // The most recent error is the most specific one: earlier entries are
  // usually the generic layers it climbed through.
  unsigned long last = 0;  // NOLINT(google-runtime-int): OpenSSL's type
  while (unsigned long error = ERR_get_error()) last = error;  // NOLINT(google-runtime-int)
  std::string message(context);
  if (last != 0) {
    const char* reason = ERR_reason_error_string(last);
    message += ": ";
    message += reason != nullptr ? reason : "OpenSSL error " + std::to_string(last);
  }
  return Status(code, std::move(message));
}

void ClearOpenSslErrors() { ERR_clear_error(); }

std::string NameText(const X509_NAME* name) {
  if (name == nullptr) return "(no name)";
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return "(no name)";
  // RFC 2253 prints the most specific part first ("CN=...,O=..."), the way
  // people read and write names.
  if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "(no name)";
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  if (length <= 0) return "(no name)";
  return std::string(data, static_cast<size_t>(length));
}

std::string SubjectText(const X509* cert) { return NameText(X509_get_subject_name(cert)); }
std::string IssuerText(const X509* cert) { return NameText(X509_get_issuer_name(cert)); }

std::string TimeText(const ASN1_TIME* time) {
  if (time == nullptr) return "(unknown time)";
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), time) != 1) return "(unknown time)";
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
  return length > 0 ? std::string(data, static_cast<size_t>(length)) : "(unknown time)";
}

namespace {

std::string Asn1StringText(const ASN1_STRING* text) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                     static_cast<size_t>(ASN1_STRING_length(text)));
}

std::string IpText(const ASN1_OCTET_STRING* ip) {
  const unsigned char* bytes = ASN1_STRING_get0_data(ip);
  int length = ASN1_STRING_length(ip);
  std::string text;
  if (length == 4) {
    for (int i = 0; i < 4; ++i) {
      if (i > 0) text += '.';
      text += std::to_string(bytes[i]);
    }
  } else if (length == 16) {
    constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                           '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
    for (int i = 0; i < 16; i += 2) {
      if (i > 0) text += ':';
      for (int j = i; j < i + 2; ++j) {
        text += kHex[bytes[j] >> 4];
        text += kHex[bytes[j] & 0xf];
      }
    }
  } else {
    text = "(malformed address)";
  }
  return text;
}

}  // namespace

std::string SubjectAltNamesText(const X509* cert) {
  std::string text;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      std::string entry;
      if (name->type == GEN_DNS) {
        entry = "DNS:" + Asn1StringText(name->d.dNSName);
      } else if (name->type == GEN_IPADD) {
        entry = "IP:" + IpText(name->d.iPAddress);
      } else {
        continue;
      }
      if (!text.empty()) text += ", ";
      text += entry;
    }
    GENERAL_NAMES_free(names);
  }
  if (text.empty()) text = SubjectText(cert);
  return text;
}

}  // namespace cdi::tls
