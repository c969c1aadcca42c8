#include "pod/termination_message.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace cdi::pod {
namespace {

// Length of the UTF-8 sequence starting at text[pos], or 0 when it is not a
// valid one (as Go's utf8.DecodeRuneInString decides: no overlong forms, no
// surrogates, nothing past U+10FFFF).
size_t ValidSequenceLength(std::string_view text, size_t pos) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  auto continuation = [&](size_t i) { return pos + i < text.size() && (byte(i) & 0xC0) == 0x80; };
  unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (lead == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (lead == 0xED && byte(1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (lead == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (lead == 0xF4 && byte(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// Go's encoding/json string encoding: the common JSON escapes (cli's
// JsonString), plus HTML-safe escapes and U+FFFD for invalid UTF-8.
std::string GoJsonString(std::string_view text) {
  std::string valid;
  valid.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t length = ValidSequenceLength(text, pos);
    if (length == 0) {
      valid += "\xEF\xBF\xBD";
      ++pos;
    } else {
      valid.append(text.substr(pos, length));
      pos += length;
    }
  }
  std::string json = JsonString(valid);
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < json.size() && json[i + 1] == '\x80' &&
               (json[i + 2] == '\xA8' || json[i + 2] == '\xA9')) {
      out += json[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";  // JavaScript line separators
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// The longest prefix of `text` of at most `limit` bytes that does not end
// inside a UTF-8 sequence.
std::string_view CutAtCharacter(std::string_view text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

std::string Render(const TerminationMessage& message, const std::optional<std::string>& text) {
  std::string json = "{";
  auto field = [&](std::string_view name, const std::string& value) {
    if (json.size() > 1) json += ',';
    json += '"';
    json += name;
    json += "\":";
    json += value;
  };
  if (message.scratch_space_required) {
    field("scratchSpaceRequired", *message.scratch_space_required ? "true" : "false");
  }
  if (message.preallocation_applied) {
    field("preallocationApplied", *message.preallocation_applied ? "true" : "false");
  }
  if (message.deadline_passed) {
    field("deadlinePassed", *message.deadline_passed ? "true" : "false");
  }
  if (!message.labels.empty()) {
    // Go's encoding/json writes a map's keys sorted, as std::map holds them.
    std::string labels = "{";
    for (const auto& [key, value] : message.labels) {
      if (labels.size() > 1) labels += ',';
      labels += GoJsonString(key) + ":" + GoJsonString(value);
    }
    field("labels", labels + "}");
  }
  if (text) field("message", GoJsonString(*text));
  return json + "}";
}

}  // namespace

std::string ToJson(const TerminationMessage& message) {
  std::string json = Render(message, message.message);
  if (json.size() <= kMaxTerminationMessageBytes || !message.message) return json;
  // Escaping makes the JSON up to six times the text: find the longest
  // prefix whose JSON, with "..." added, fits.
  const std::string& text = *message.message;
  size_t low = 0;
  size_t high = std::min(text.size(), kMaxTerminationMessageBytes);
  while (low < high) {
    size_t middle = (low + high + 1) / 2;
    std::string candidate = std::string(CutAtCharacter(text, middle)) + "...";
    if (Render(message, candidate).size() <= kMaxTerminationMessageBytes) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return Render(message, std::string(CutAtCharacter(text, low)) + "...");
}

std::string PlainTerminationText(std::string_view text) {
  std::string flat(text);
  for (char& c : flat) {
    if (c == '\n') c = ' ';
  }
  return std::string(CutAtCharacter(flat, kMaxTerminationMessageBytes));
}

std::map<std::string, std::string> EnvToLabels(const std::vector<std::string>& env) {
  static constexpr std::string_view kEnvPrefix = "KUBEVIRT_IO_";
  static constexpr std::string_view kLabelPrefix = "kubevirt.io/";
  std::map<std::string, std::string> labels;
  for (const std::string& entry : env) {
    const size_t equals = entry.find('=');
    if (equals == std::string::npos) continue;
    const std::string name = entry.substr(0, equals);
    const size_t at = name.find(kEnvPrefix);
    if (at == std::string::npos) continue;
    // "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE": what comes before the
    // prefix becomes dotted domain parts, what follows a dashed name.
    std::string label;
    std::string before = name.substr(0, at);
    if (!before.empty() && before.back() == '_') before.pop_back();
    if (!before.empty()) {
      for (char c : before) label += c == '_' ? '.' : c;
      label += '.';
    }
    label += kLabelPrefix;
    for (char c : name.substr(at + kEnvPrefix.size())) label += c == '_' ? '-' : c;
    for (char& c : label) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    labels[label] = entry.substr(equals + 1);
  }
  return labels;
}

Status WriteTerminationLog(const std::string& path, std::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return IoError("cannot write the termination message to " + path + ": " + std::strerror(errno));
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error_number = n < 0 ? errno : EIO;
      close(fd);
      return IoError("cannot write the termination message to " + path + ": " +
                     std::strerror(error_number));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    return IoError("cannot write the termination message to " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace cdi::pod
