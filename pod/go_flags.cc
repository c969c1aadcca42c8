#include "pod/go_flags.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>

namespace cdi::pod {
namespace {

// strconv.ParseBool. (pod_config.h has the same for the importer; this file
// stands alone so that the static helpers link nothing else.)
std::optional<bool> ParseBoolFlag(const std::string& text) {
  for (const char* word : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (text == word) return true;
  }
  for (const char* word : {"0", "f", "F", "FALSE", "false", "False"}) {
    if (text == word) return false;
  }
  return std::nullopt;
}

}  // namespace

void GoFlagSet::String(std::string name, std::string* target, std::string help) {
  std::string default_text = target->empty() ? "" : "\"" + *target + "\"";
  flags_.push_back({std::move(name), Kind::kString, target, std::move(help), default_text});
}

void GoFlagSet::Int(std::string name, int64_t* target, std::string help) {
  std::string default_text = *target == 0 ? "" : std::to_string(*target);
  flags_.push_back({std::move(name), Kind::kInt, target, std::move(help), default_text});
}

void GoFlagSet::Bool(std::string name, bool* target, std::string help) {
  flags_.push_back({std::move(name), Kind::kBool, target, std::move(help), *target ? "true" : ""});
}

const GoFlagSet::Flag* GoFlagSet::Find(const std::string& name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

bool GoFlagSet::Set(const Flag& flag, const std::string& value) {
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.target) = value;
      return true;
    case Kind::kInt: {
      // strconv.ParseInt(value, 0, 64): decimal, 0x hex, 0 octal.
      if (value.empty()) return false;
      errno = 0;
      char* end = nullptr;
      const long long parsed = std::strtoll(value.c_str(), &end, 0);
      if (errno != 0 || end != value.c_str() + value.size()) return false;
      *static_cast<int64_t*>(flag.target) = parsed;
      return true;
    }
    case Kind::kBool: {
      std::optional<bool> parsed = ParseBoolFlag(value);
      if (!parsed) return false;
      *static_cast<bool*>(flag.target) = *parsed;
      return true;
    }
  }
  return false;
}

GoFlagSet::Outcome GoFlagSet::Parse(const std::vector<std::string>& arguments) {
  positional_.clear();
  error_.clear();
  size_t i = 0;
  for (; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument.size() < 2 || argument[0] != '-') break;  // "" , "-" and words end the flags
    size_t dashes = argument[1] == '-' ? 2 : 1;
    if (dashes == 2 && argument.size() == 2) {  // "--"
      ++i;
      break;
    }
    std::string name = argument.substr(dashes);
    if (name.empty() || name[0] == '-' || name[0] == '=') {
      error_ = "bad flag syntax: " + argument;
      return Outcome::kError;
    }
    std::optional<std::string> value;
    if (size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name.resize(equals);
    }
    const Flag* flag = Find(name);
    if (flag == nullptr) {
      if (name == "h" || name == "help") return Outcome::kHelp;
      error_ = "flag provided but not defined: -" + name;
      return Outcome::kError;
    }
    if (flag->kind == Kind::kBool) {
      if (!Set(*flag, value.value_or("true"))) {
        error_ = "invalid boolean value \"" + *value + "\" for -" + name + ": parse error";
        return Outcome::kError;
      }
      continue;
    }
    if (!value) {
      if (i + 1 >= arguments.size()) {
        error_ = "flag needs an argument: -" + name;
        return Outcome::kError;
      }
      value = arguments[++i];
    }
    if (!Set(*flag, *value)) {
      error_ = "invalid value \"" + *value + "\" for flag -" + name + ": parse error";
      return Outcome::kError;
    }
  }
  positional_.assign(arguments.begin() + static_cast<std::ptrdiff_t>(i), arguments.end());
  return Outcome::kParsed;
}

std::string GoFlagSet::Usage() const {
  std::vector<const Flag*> sorted;
  for (const Flag& flag : flags_) sorted.push_back(&flag);
  std::sort(sorted.begin(), sorted.end(),
            [](const Flag* a, const Flag* b) { return a->name < b->name; });
  std::string text = "Usage of " + program_ + ":\n";
  for (const Flag* flag : sorted) {
    text += "  -" + flag->name;
    if (flag->kind == Kind::kString) text += " string";
    if (flag->kind == Kind::kInt) text += " int";
    text += "\n    \t" + flag->help;
    if (!flag->default_text.empty()) text += " (default " + flag->default_text + ")";
    text += "\n";
  }
  return text;
}

void GoLog(std::string_view message) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y/%m/%d %H:%M:%S", &local);
  std::string line = std::string(stamp) + " " + std::string(message);
  if (!line.ends_with('\n')) line += '\n';
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace cdi::pod
