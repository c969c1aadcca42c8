#include "cdi/quantity.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string>


namespace cdi {
namespace {

using u128 = unsigned __int128;

constexpr std::string_view kAcceptedQuantityForms =
    "expected a number of bytes such as 11381663335, 10Gi, 1.5Gi, 500M or 1e9: digits with an "
    "optional fraction, then at most one suffix: Ki Mi Gi Ti Pi Ei (powers of 1024), k M G T P E "
    "(powers of 1000), m u n (thousandths, millionths, billionths) or an exponent e<n> / E<n>";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

Status BadQuantity(std::string_view text, std::string_view why) {
  std::string message = "invalid quantity \"";
  message += text;
  message += "\": ";
  message += why;
  message += "; ";
  message += kAcceptedQuantityForms;
  return InvalidArgumentError(std::move(message));
}

// What a quantity's suffix multiplies by: 10^decimal_exponent * 2^binary_exponent.
struct Multiplier {
  int64_t decimal_exponent = 0;
  int binary_exponent = 0;
};

// The suffix tables of Kubernetes' quantity parser (resource/suffix.go).
std::optional<Multiplier> SuffixMultiplier(std::string_view suffix) {
  struct Entry {
    std::string_view name;
    Multiplier multiplier;
  };
  static constexpr Entry kSuffixes[] = {
      {"", {0, 0}},    {"n", {-9, 0}},  {"u", {-6, 0}},  {"m", {-3, 0}},
      {"k", {3, 0}},   {"M", {6, 0}},   {"G", {9, 0}},   {"T", {12, 0}},
      {"P", {15, 0}},  {"E", {18, 0}},  {"Ki", {0, 10}}, {"Mi", {0, 20}},
      {"Gi", {0, 30}}, {"Ti", {0, 40}}, {"Pi", {0, 50}}, {"Ei", {0, 60}},
  };
  for (const Entry& entry : kSuffixes) {
    if (entry.name == suffix) return entry.multiplier;
  }
  return std::nullopt;
}

// Parses the exponent of "e<n>" / "E<n>": an optional sign and digits, which
// Kubernetes requires to fit an int32.
std::optional<int64_t> ParseExponent(std::string_view digits) {
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return std::nullopt;
  int64_t value = 0;
  for (char c : digits) {
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
    if (value > std::numeric_limits<int32_t>::max()) return std::nullopt;  // as Kubernetes
  }
  return negative ? -value : value;
}

// Doubles a decimal digit string in place (most significant digit first).
void DoubleDecimal(std::string& digits) {
  int carry = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = (*it - '0') * 2 + carry;
    *it = static_cast<char>('0' + d % 10);
    carry = d / 10;
  }
  if (carry != 0) digits.insert(digits.begin(), static_cast<char>('0' + carry));
}

// Parses at most 19 decimal digits (so that the value fits in 64 bits).
uint64_t SmallDecimal(std::string_view digits) {
  uint64_t value = 0;
  for (char c : digits) value = value * 10 + static_cast<uint64_t>(c - '0');
  return value;
}

// The overhead as an exact fraction numerator / denominator, denominator a
// power of ten no larger than 10^18 and numerator <= denominator, so that
// products with 64-bit sizes fit in 128 bits.
struct Fraction {
  u128 numerator = 0;
  u128 denominator = 1;
};

constexpr int kMaxOverheadDecimals = 18;

u128 PowerOfTen(int exponent) {
  u128 value = 1;
  for (int i = 0; i < exponent; ++i) value *= 10;
  return value;
}

// Reads "<digits>[.<digits>][e<exp>]" as printed by std::to_chars.
std::optional<Fraction> DecimalFraction(std::string_view text) {
  size_t e = text.find_first_of("eE");
  std::string_view mantissa = text.substr(0, e);
  int exponent = 0;
  if (e != std::string_view::npos) {
    std::string_view exp_text = text.substr(e + 1);
    if (!exp_text.empty() && exp_text[0] == '+') exp_text.remove_prefix(1);
    auto [ptr, ec] = std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
    if (ec != std::errc() || ptr != exp_text.data() + exp_text.size()) return std::nullopt;
  }
  u128 numerator = 0;
  int decimals = 0;
  bool after_point = false;
  int significant = 0;
  for (char c : mantissa) {
    if (c == '.') {
      after_point = true;
      continue;
    }
    if (!IsDigit(c)) return std::nullopt;
    numerator = numerator * 10 + static_cast<unsigned>(c - '0');
    if (numerator != 0) ++significant;
    if (significant > 19) return std::nullopt;
    if (after_point) ++decimals;
  }
  decimals -= exponent;
  while (decimals < 0) {
    numerator *= 10;
    ++decimals;
  }
  while (decimals > 0 && numerator % 10 == 0) {
    numerator /= 10;
    --decimals;
  }
  if (decimals > kMaxOverheadDecimals) return std::nullopt;
  return Fraction{numerator, PowerOfTen(decimals)};
}

Fraction OverheadFraction(double overhead) {
  if (!(overhead > 0)) return {0, 1};  // also NaN
  if (overhead >= 1) return {1, 1};
  // The shortest decimal that reads back as `overhead` is what the user
  // wrote ("0.06"); multiplying by the binary double instead (0.0599999...)
  // can move a ceil() by one byte.
  char buffer[64];
  auto shortest = std::to_chars(buffer, buffer + sizeof buffer, overhead);
  if (auto fraction = DecimalFraction(std::string_view(buffer, shortest.ptr - buffer))) {
    return *fraction;
  }
  auto fixed = std::to_chars(buffer, buffer + sizeof buffer, overhead, std::chars_format::fixed,
                             kMaxOverheadDecimals);
  if (auto fraction = DecimalFraction(std::string_view(buffer, fixed.ptr - buffer))) {
    return *fraction;
  }
  return {0, 1};  // unreachable for 0 < overhead < 1
}

u128 CeilDiv(u128 a, u128 b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace

Result<uint64_t> ParseQuantity(std::string_view text) {
  if (text.empty()) return BadQuantity(text, "it is empty");
  size_t pos = 0;
  bool negative = false;
  if (text[pos] == '+' || text[pos] == '-') {
    negative = text[pos] == '-';
    ++pos;
  }
  size_t integer_begin = pos;
  while (pos < text.size() && IsDigit(text[pos])) ++pos;
  std::string_view integer_digits = text.substr(integer_begin, pos - integer_begin);
  std::string_view fraction_digits;
  if (pos < text.size() && text[pos] == '.') {
    size_t fraction_begin = ++pos;
    while (pos < text.size() && IsDigit(text[pos])) ++pos;
    fraction_digits = text.substr(fraction_begin, pos - fraction_begin);
  }
  // Kubernetes reads "." and "+" as zero; a size with no digits is a mistake.
  if (integer_digits.empty() && fraction_digits.empty()) {
    return BadQuantity(text, "it does not start with a number");
  }

  std::string_view suffix = text.substr(pos);
  Multiplier multiplier;
  if (auto known = SuffixMultiplier(suffix)) {
    multiplier = *known;
  } else if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    auto exponent = ParseExponent(suffix.substr(1));
    if (!exponent) {
      return BadQuantity(text, "\"" + std::string(suffix) +
                                   "\" is not a valid exponent (a whole number from "
                                   "-2147483647 to 2147483647 after e or E)");
    }
    multiplier.decimal_exponent = *exponent;
  } else {
    return BadQuantity(text, "unknown suffix \"" + std::string(suffix) + "\"");
  }

  // value = digits * 10^(decimal_exponent - fraction length) * 2^binary_exponent,
  // computed exactly on decimal strings.
  std::string digits(integer_digits);
  digits += fraction_digits;
  size_t first_nonzero = digits.find_first_not_of('0');
  if (first_nonzero == std::string::npos) return uint64_t{0};
  if (negative) {
    return BadQuantity(text, "it is negative; a size must be zero or more");
  }
  digits.erase(0, first_nonzero);
  for (int i = 0; i < multiplier.binary_exponent; ++i) DoubleDecimal(digits);
  int64_t exponent = multiplier.decimal_exponent - static_cast<int64_t>(fraction_digits.size());

  Status too_large =
      BadQuantity(text,
                  "it is larger than the largest size Kubernetes holds, 9223372036854775807 bytes "
                  "(8Ei - 1); request a smaller size");
  uint64_t value = 0;
  if (exponent >= 0) {
    if (static_cast<int64_t>(digits.size()) + exponent > 19) return too_large;
    digits.append(static_cast<size_t>(exponent), '0');
    value = SmallDecimal(digits);
  } else {
    // Split into whole bytes and a fraction; any fraction rounds up.
    uint64_t decimals = static_cast<uint64_t>(-exponent);
    std::string_view whole;
    std::string_view fraction = digits;
    if (digits.size() > decimals) {
      whole = std::string_view(digits).substr(0, digits.size() - decimals);
      fraction = std::string_view(digits).substr(digits.size() - decimals);
    }
    if (whole.size() > 19) return too_large;
    value = SmallDecimal(whole);
    if (fraction.find_first_not_of('0') != std::string_view::npos) ++value;
  }
  if (value > kMaxQuantity) return too_large;
  return value;
}

uint64_t UsableSpace(double filesystem_overhead, uint64_t available) {
  Fraction overhead = OverheadFraction(filesystem_overhead);
  // available / (1 + n/d) == available * d / (d + n)
  u128 without_overhead =
      CeilDiv(u128{available} * overhead.denominator, overhead.denominator + overhead.numerator);
  return static_cast<uint64_t>(without_overhead / kAlignBlockSize * kAlignBlockSize);
}

uint64_t RequiredSpace(double filesystem_overhead, uint64_t requested) {
  Fraction overhead = OverheadFraction(filesystem_overhead);
  u128 aligned = CeilDiv(requested, kAlignBlockSize) * kAlignBlockSize;
  u128 with_overhead =
      CeilDiv(aligned * (overhead.denominator + overhead.numerator), overhead.denominator);
  return static_cast<uint64_t>(std::min<u128>(with_overhead, std::numeric_limits<uint64_t>::max()));
}

Result<double> ParseOverhead(std::string_view text) {
  auto bad = [&](std::string_view why) {
    std::string message = "invalid filesystem overhead \"";
    message += text;
    message += "\": ";
    message += why;
    message +=
        "; expected the fraction of a volume kept for filesystem metadata as a decimal from 0 "
        "up to (not including) 1, such as 0.06 (CDI's default) or 0 for block volumes";
    return InvalidArgumentError(std::move(message));
  };
  if (text.empty()) return bad("it is empty");
  size_t digits = 0;
  size_t points = 0;
  for (char c : text) {
    if (IsDigit(c)) {
      ++digits;
    } else if (c == '.') {
      ++points;
    } else if (c == '-') {
      return bad("it is negative");
    } else {
      return bad("it is not a plain decimal number");
    }
  }
  if (digits == 0 || points > 1) return bad("it is not a plain decimal number");
  double value = 0;
  auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return bad("it is not a plain decimal number");
  }
  if (!(value < 1)) return bad("an overhead of 1 or more leaves no usable space");
  return value;
}

Status CheckOverhead(double filesystem_overhead) {
  if (filesystem_overhead >= 0 && filesystem_overhead < 1) return Status::Ok();
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), filesystem_overhead);
  return InvalidArgumentError(
      "filesystem overhead must be at least 0 and below 1, got " +
      std::string(text, ec == std::errc() ? end : text) +
      "; expected the fraction of a volume kept for filesystem metadata, such as 0.06 (CDI's "
      "default) or 0 for block volumes");
}

}  // namespace cdi
