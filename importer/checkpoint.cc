#include "importer/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "importer/checksum.h"

namespace cdi::importer {
namespace {

constexpr std::string_view kMagic = "cdi-import-checkpoint";
constexpr std::string_view kSealKey = "sha256";
// A checkpoint is a few hundred bytes; anything much larger is not one.
constexpr size_t kMaxCheckpointBytes = 64 * 1024;

// The keys of a checkpoint, in the order they are written.
const std::vector<std::string_view>& Keys() {
  static const std::vector<std::string_view> kKeys = {
      "url",    "length",         "etag",          "last-modified", "format",
      "target", "requested-size", "source-offset", "target-bytes"};
  return kKeys;
}

// Keys a checkpoint holds only when the format needs them.
constexpr std::string_view kFormatStateKey = "format-state";

std::string Seal(std::string_view body) {
  Checksum digest("sha256");
  digest.Update(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
  return digest.Finish().substr(kSealKey.size() + 1);  // "sha256:HEX" -> "HEX"
}

std::pair<std::string, std::string> SplitDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

std::string Beside(const std::string& target_path, const std::string& suffix) {
  auto [dir, name] = SplitDir(target_path);
  return (dir == "/" ? "/" : dir + "/") + "." + name + suffix;
}

Status Corrupt(const std::string& why) {
  return CorruptImageError("the checkpoint is damaged: " + why);
}

Result<uint64_t> ParseNumber(std::string_view key, std::string_view text) {
  std::optional<uint64_t> value = ParseDecimal(text);
  if (!value) return Corrupt(std::string(key) + " '" + std::string(text) + "' is not a number");
  return *value;
}

Status WriteAll(int fd, std::string_view text, const std::string& path) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, "writing " + path);
    text.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

std::optional<uint64_t> ParseDecimal(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::string CheckpointPath(const std::string& target_path, const std::string& checkpoint_dir) {
  if (checkpoint_dir.empty()) return Beside(target_path, ".checkpoint");
  std::string dir = checkpoint_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return Beside((dir == "/" ? "" : dir) + "/" + SplitDir(target_path).second, ".checkpoint");
}

std::string PartialPath(const std::string& target_path) { return Beside(target_path, ".partial"); }

Result<std::string> EncodeCheckpoint(const Checkpoint& c) {
  const std::vector<std::string> values = {
      c.url,
      std::to_string(c.length),
      c.etag,
      c.last_modified,
      c.format,
      c.target,
      c.requested_size ? std::to_string(*c.requested_size) : "none",
      std::to_string(c.source_offset),
      std::to_string(c.target_bytes)};
  std::string body = std::string(kMagic) + " " + std::to_string(kCheckpointVersion) + "\n";
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].find_first_of("\r\n") != std::string::npos) {
      return InvalidArgumentError("the checkpoint's " + std::string(Keys()[i]) +
                                  " holds a line break");
    }
    body += std::string(Keys()[i]) + " " + values[i] + "\n";
  }
  if (!c.format_state.empty()) {
    if (c.format_state.find_first_of("\r\n") != std::string::npos) {
      return InvalidArgumentError("the checkpoint's format-state holds a line break");
    }
    body += std::string(kFormatStateKey) + " " + c.format_state + "\n";
  }
  return body + std::string(kSealKey) + " " + Seal(body) + "\n";
}

Result<Checkpoint> DecodeCheckpoint(std::string_view text) {
  if (text.empty() || text.back() != '\n') return Corrupt("it is cut short");
  const size_t seal_at = text.rfind('\n', text.size() - 2);
  if (seal_at == std::string_view::npos) return Corrupt("it is cut short");
  const std::string_view body = text.substr(0, seal_at + 1);
  const std::string_view seal_line = text.substr(seal_at + 1, text.size() - seal_at - 2);
  const std::string version_line =
      std::string(kMagic) + " " + std::to_string(kCheckpointVersion) + "\n";
  if (body.substr(0, kMagic.size()) != kMagic) return Corrupt("it is not a checkpoint");
  if (body.substr(0, version_line.size()) != version_line) {
    return Corrupt("it is not of version " + std::to_string(kCheckpointVersion));
  }
  if (seal_line.substr(0, kSealKey.size() + 1) != std::string(kSealKey) + " ") {
    return Corrupt("its last line is not its seal (cut short?)");
  }
  if (seal_line.substr(kSealKey.size() + 1) != Seal(body)) {
    return Corrupt("its content does not match its seal (edited or partly written)");
  }
  std::map<std::string, std::string, std::less<>> fields;
  std::string_view rest = body.substr(version_line.size());
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return Corrupt("line '" + std::string(line) + "'");
    const std::string key(line.substr(0, space));
    if (std::find(Keys().begin(), Keys().end(), key) == Keys().end() && key != kFormatStateKey) {
      return Corrupt("unknown key '" + key + "'");
    }
    if (!fields.emplace(key, std::string(line.substr(space + 1))).second) {
      return Corrupt("'" + key + "' is given twice");
    }
  }
  for (std::string_view key : Keys()) {
    if (fields.find(key) == fields.end()) return Corrupt("'" + std::string(key) + "' is missing");
  }
  Checkpoint c;
  c.url = fields["url"];
  CDI_ASSIGN_OR_RETURN(c.length, ParseNumber("length", fields["length"]));
  c.etag = fields["etag"];
  c.last_modified = fields["last-modified"];
  c.format = fields["format"];
  c.target = fields["target"];
  if (fields["requested-size"] != "none") {
    CDI_ASSIGN_OR_RETURN(c.requested_size, ParseNumber("requested-size", fields["requested-size"]));
  }
  CDI_ASSIGN_OR_RETURN(c.source_offset, ParseNumber("source-offset", fields["source-offset"]));
  CDI_ASSIGN_OR_RETURN(c.target_bytes, ParseNumber("target-bytes", fields["target-bytes"]));
  if (auto state = fields.find(kFormatStateKey); state != fields.end()) c.format_state = state->second;
  if (c.source_offset > c.length) return Corrupt("source-offset lies past the length");
  if (c.format == "raw" && c.target_bytes != c.source_offset) {
    return Corrupt("a raw image's target-bytes differ from its source-offset");
  }
  return c;
}

Status WriteCheckpoint(const std::string& path, const Checkpoint& checkpoint) {
  CDI_ASSIGN_OR_RETURN(std::string text, EncodeCheckpoint(checkpoint));
  const std::string temporary = path + ".tmp";
  UniqueFd fd(open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return PosixError(errno, "creating " + temporary);
  CDI_RETURN_IF_ERROR(WriteAll(fd.get(), text, temporary));
  if (fsync(fd.get()) != 0) return PosixError(errno, "flushing " + temporary + " to disk");
  fd.reset();
  // The directory is not synced: a rename lost in a crash leaves the
  // previous checkpoint, which claims less, or none; either is true.
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    return PosixError(errno, "moving " + temporary + " to " + path);
  }
  return Status::Ok();
}

Result<std::optional<Checkpoint>> ReadCheckpoint(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<Checkpoint>();
    return PosixError(errno, "opening " + path, PathUse::kRead);
  }
  std::string text;
  char buffer[4096];
  while (text.size() <= kMaxCheckpointBytes) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, "reading " + path, PathUse::kRead);
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  if (text.size() > kMaxCheckpointBytes) return Corrupt("it is far too long");
  CDI_ASSIGN_OR_RETURN(Checkpoint checkpoint, DecodeCheckpoint(text));
  return std::optional<Checkpoint>(std::move(checkpoint));
}

void RemoveCheckpoint(const std::string& path) {
  unlink(path.c_str());
  unlink((path + ".tmp").c_str());
}

std::string CheckpointMismatch(const Checkpoint& saved, const Checkpoint& wanted) {
  if (saved.url != wanted.url) return "it is for another source, " + saved.url;
  if (saved.target != wanted.target) return "it is for another target, " + saved.target;
  // The format is the image's, which the server's validators pin down: a
  // checkpoint of a format that is continued fits the same image again.
  if (saved.format != "raw" && saved.format != "zstd+raw" && saved.format != "xz+raw" &&
      saved.format != "qcow2") {
    return "it is for a " + saved.format +
           " image, and only raw images (bare or compressed with zstd or xz) and qcow2 images "
           "are continued";
  }
  if (saved.requested_size != wanted.requested_size) {
    auto text = [](const std::optional<uint64_t>& size) {
      return size ? std::to_string(*size) + " bytes" : std::string("none");
    };
    return "the requested size changed (" + text(saved.requested_size) + " then, " +
           text(wanted.requested_size) + " now)";
  }
  return "";
}

}  // namespace cdi::importer
