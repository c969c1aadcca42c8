#include "sources/registry/challenge.h"

#include <cctype>
#include <cstdio>

namespace cdi::importer::registry {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  // Space and the commas between challenges or parameters.
  void SkipSeparators() {
    SkipSpace();
    while (Peek() == ',') {
      Advance();
      SkipSpace();
    }
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  void Advance() { ++pos_; }
  std::string_view Token() {
    size_t start = pos_;
    while (pos_ < text_.size() && IsTokenChar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  // A quoted string after its opening quote; backslash escapes one character.
  std::string Quoted() {
    std::string value;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      value += text_[pos_++];
    }
    if (pos_ < text_.size()) ++pos_;  // the closing quote
    return value;
  }
  size_t position() const { return pos_; }
  void Reset(size_t position) { pos_ = position; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<Challenge> ParseChallenges(std::string_view header_value) {
  std::vector<Challenge> challenges;
  Scanner scan(header_value);
  while (true) {
    scan.SkipSeparators();
    if (scan.AtEnd()) break;
    std::string_view scheme = scan.Token();
    if (scheme.empty()) {
      scan.Advance();  // not a token: skip the character
      continue;
    }
    Challenge challenge;
    challenge.scheme = Lower(scheme);
    // Parameters: name = value, separated by commas, until a token that is
    // not followed by '=' (the next challenge's scheme).
    while (true) {
      scan.SkipSeparators();
      if (scan.AtEnd()) break;
      size_t mark = scan.position();
      std::string_view name = scan.Token();
      scan.SkipSpace();
      if (name.empty() || scan.Peek() != '=') {
        scan.Reset(mark);
        if (name.empty()) scan.Advance();
        break;
      }
      scan.Advance();  // '='
      scan.SkipSpace();
      std::string value;
      if (scan.Peek() == '"') {
        scan.Advance();
        value = scan.Quoted();
      } else {
        value = std::string(scan.Token());
      }
      challenge.params[Lower(name)] = std::move(value);
    }
    challenges.push_back(std::move(challenge));
  }
  return challenges;
}

namespace {

std::string PercentEncode(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", byte);
      out += escaped;
    }
  }
  return out;
}

}  // namespace

std::string TokenRequestUrl(const std::string& realm, const std::string& service,
                            const std::string& scope) {
  std::string url = realm;
  char separator = realm.find('?') == std::string::npos ? '?' : '&';
  if (!service.empty()) {
    url += separator + std::string("service=") + PercentEncode(service);
    separator = '&';
  }
  if (!scope.empty()) url += separator + std::string("scope=") + PercentEncode(scope);
  return url;
}

}  // namespace cdi::importer::registry
