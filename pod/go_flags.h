// Command lines and log lines as CDI's helper programs have them: Go's
// `flag` and `log` packages.
//
// CDI's controller starts its helpers (cdi-containerimage-server,
// cdi-image-size-detection, cdi-source-update-poller) with Go-style flags:
// one or two dashes before a name (`-p 8100`, `--image-dir=/disk`), a value
// after `=` or as the next argument, booleans alone (`-x`) or as `-x=false`.
// `--` ends the flags, as does the first argument that is not a flag.
// `-h`, `-help` and `--help` ask for the usage (Go exits 0 then); an unknown
// flag or a missing or bad value is an error (Go exits 2 after the usage).
//
// The value targets are the caller's; they must outlive Parse().
#ifndef CDI_POD_GO_FLAGS_H_
#define CDI_POD_GO_FLAGS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cdi::pod {

class GoFlagSet {
 public:
  explicit GoFlagSet(std::string program) : program_(std::move(program)) {}

  // Registers a flag; the target's value when Parse() starts is its default.
  void String(std::string name, std::string* target, std::string help);
  void Int(std::string name, int64_t* target, std::string help);
  void Bool(std::string name, bool* target, std::string help);

  enum class Outcome { kParsed, kHelp, kError };
  // Parses `arguments` (without the program name). kError leaves the reason
  // in error(), as Go words it ("flag provided but not defined: -x").
  Outcome Parse(const std::vector<std::string>& arguments);

  const std::string& error() const { return error_; }
  // Arguments after the flags.
  const std::vector<std::string>& positional() const { return positional_; }
  // Go's usage text: "Usage of <program>:" and one entry per flag, by name.
  std::string Usage() const;

 private:
  enum class Kind { kString, kInt, kBool };
  struct Flag {
    std::string name;
    Kind kind;
    void* target;
    std::string help;
    std::string default_text;
  };
  const Flag* Find(const std::string& name) const;
  bool Set(const Flag& flag, const std::string& value);

  std::string program_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  std::string error_;
};

// One line on standard error in the layout of Go's `log` package, which
// CDI's helpers log with: "2006/01/02 15:04:05 message" (local time).
void GoLog(std::string_view message);

}  // namespace cdi::pod

#endif  // CDI_POD_GO_FLAGS_H_
