#include "importer/resume_xz.h"

#include <charconv>

namespace cdi::importer {
namespace {

// .xz format section 2.1.1.2: the Check ID is four bits.
constexpr uint64_t kMaxCheckId = 15;
// Section 2.1.1: the Stream Header before the first block is 12 bytes.
constexpr uint64_t kStreamHeaderBytes = 12;

Status Damaged(const std::string& why) {
  return CorruptImageError("its xz format-state is damaged: " + why);
}

// Takes "KEY NUMBER" from the front of `text`.
Result<uint64_t> Take(std::string_view* text, std::string_view key) {
  if (text->substr(0, key.size() + 1) != std::string(key) + " ") {
    return Damaged("'" + std::string(key) + "' is missing");
  }
  text->remove_prefix(key.size() + 1);
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end == text->data()) {
    return Damaged("'" + std::string(key) + "' is not a number");
  }
  text->remove_prefix(static_cast<size_t>(end - text->data()));
  if (!text->empty()) {
    if (text->front() != ' ') return Damaged("'" + std::string(key) + "' is not a number");
    text->remove_prefix(1);
  }
  return value;
}

}  // namespace

std::string EncodeXzState(const formats::XzStreamStart& stream) {
  return "xz-check " + std::to_string(stream.check) + " stream-offset " +
         std::to_string(stream.compressed) + " stream-image-offset " +
         std::to_string(stream.decompressed);
}

Result<formats::XzStreamStart> DecodeXzState(std::string_view text, uint64_t source_offset,
                                             uint64_t target_bytes) {
  formats::XzStreamStart stream;
  CDI_ASSIGN_OR_RETURN(uint64_t check, Take(&text, "xz-check"));
  CDI_ASSIGN_OR_RETURN(stream.compressed, Take(&text, "stream-offset"));
  CDI_ASSIGN_OR_RETURN(stream.decompressed, Take(&text, "stream-image-offset"));
  if (!text.empty()) return Damaged("it has more than it should");
  if (check > kMaxCheckId) return Damaged("xz-check " + std::to_string(check) + " is no check");
  stream.check = static_cast<uint32_t>(check);
  if (stream.compressed > source_offset ||
      source_offset - stream.compressed < kStreamHeaderBytes) {
    return Damaged("the stream begins at " + std::to_string(stream.compressed) +
                   ", too late for a block at " + std::to_string(source_offset));
  }
  if (stream.decompressed > target_bytes) {
    return Damaged("the stream's image bytes begin past the " + std::to_string(target_bytes) +
                   " bytes claimed");
  }
  return stream;
}

}  // namespace cdi::importer
