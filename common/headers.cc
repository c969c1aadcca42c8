#include "cdi/headers.h"

#include <string>

namespace cdi {
namespace {

bool IsTokenChar(char c) {
  // RFC 9110 tchar.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

Status ValidateHeaderLine(std::string_view line, std::string_view what) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError(std::string(what) + " is not of the form 'Name: value'");
  }
  const std::string_view name = line.substr(0, colon);
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return InvalidArgumentError(std::string(what) + " has an invalid name; expected 'Name: value'");
    }
  }
  if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    return InvalidArgumentError(std::string(what) + " (" + std::string(name) +
                                ") contains a line break");
  }
  return Status::Ok();
}

}  // namespace cdi
