#include "importer/qcow2_resume.h"

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "sources/http/range_read.h"

namespace cdi::importer {
namespace {

constexpr std::string_view kHeldKey = "held";
// Held ranges closer than this are fetched in one request.
constexpr uint64_t kHeldCoalesce = 32 * kKiB;

Status BadHeld(const std::string& why) {
  return CorruptImageError("the checkpoint's held ranges are damaged: " + why);
}

Result<uint64_t> Number(std::string_view text) {
  std::optional<uint64_t> value = ParseDecimal(text);
  if (!value) return BadHeld("'" + std::string(text) + "' is not a number");
  return *value;
}

}  // namespace

std::string EncodeQcow2Held(const std::vector<std::pair<uint64_t, uint64_t>>& held) {
  if (held.empty()) return "";
  std::string text(kHeldKey);
  for (auto [start, end] : held) text += " " + std::to_string(start) + "-" + std::to_string(end);
  return text;
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> DecodeQcow2Held(std::string_view state,
                                                                 uint64_t point) {
  std::vector<std::pair<uint64_t, uint64_t>> held;
  if (state.empty()) return held;
  if (state.substr(0, kHeldKey.size()) != kHeldKey) {
    return BadHeld("it does not begin with '" + std::string(kHeldKey) + "'");
  }
  state.remove_prefix(kHeldKey.size());
  uint64_t last_end = 0;
  while (!state.empty()) {
    if (state.front() != ' ') return BadHeld("a range is not separated by a space");
    state.remove_prefix(1);
    const size_t space = state.find(' ');
    const std::string_view range = state.substr(0, space);
    state.remove_prefix(space == std::string_view::npos ? state.size() : space);
    const size_t dash = range.find('-');
    if (dash == std::string_view::npos) return BadHeld("'" + std::string(range) + "' is no range");
    CDI_ASSIGN_OR_RETURN(uint64_t start, Number(range.substr(0, dash)));
    CDI_ASSIGN_OR_RETURN(uint64_t end, Number(range.substr(dash + 1)));
    if (start >= end || start < last_end || end > point) {
      return BadHeld("the range " + std::string(range) +
                     " is empty, out of order, or not before the point " + std::to_string(point));
    }
    held.emplace_back(start, end);
    last_end = end;
  }
  return held;
}

Result<formats::Qcow2Resume> FetchQcow2Resume(const SourceSpec& spec, const Checkpoint& checkpoint,
                                              const CancelToken* cancel, uint64_t* bytes_fetched) {
  CDI_ASSIGN_OR_RETURN(auto held,
                       DecodeQcow2Held(checkpoint.format_state, checkpoint.source_offset));
  HttpResumePoint identity;
  identity.length = checkpoint.length;
  identity.etag = checkpoint.etag;
  identity.last_modified = checkpoint.last_modified;
  formats::Qcow2MetadataPlan plan(checkpoint.source_offset, checkpoint.length);
  uint64_t requests = 0;
  while (std::optional<formats::qcow2::Extent> wanted = plan.Wanted()) {
    CDI_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                         ReadImageRange(spec, identity, wanted->start, wanted->end, cancel));
    ++requests;
    *bytes_fetched += bytes.size();
    CDI_RETURN_IF_ERROR(plan.Give(wanted->start, bytes));
  }
  formats::Qcow2Resume resume = plan.Take();
  uint64_t held_bytes = 0;
  for (size_t first = 0; first < held.size();) {
    size_t last = first;
    while (last + 1 < held.size() && held[last + 1].first - held[last].second <= kHeldCoalesce) {
      ++last;
    }
    const uint64_t begin = held[first].first;
    CDI_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                         ReadImageRange(spec, identity, begin, held[last].second, cancel));
    ++requests;
    *bytes_fetched += bytes.size();
    for (size_t i = first; i <= last; ++i) {
      const auto from = bytes.begin() + static_cast<ptrdiff_t>(held[i].first - begin);
      const auto to = bytes.begin() + static_cast<ptrdiff_t>(held[i].second - begin);
      resume.metadata.push_back({held[i].first, std::vector<uint8_t>(from, to)});
      held_bytes += held[i].second - held[i].first;
    }
    first = last + 1;
  }
  std::sort(resume.metadata.begin(), resume.metadata.end(),
            [](const formats::HostBytes& a, const formats::HostBytes& b) {
              return a.offset < b.offset;
            });
  for (size_t i = 1; i < resume.metadata.size(); ++i) {
    const formats::HostBytes& before = resume.metadata[i - 1];
    if (before.offset + before.bytes.size() > resume.metadata[i].offset) {
      return BadHeld("the range at host offset " + std::to_string(resume.metadata[i].offset) +
                     " overlaps the image's metadata");
    }
  }
  Logger()->info(
      "Fetched the qcow2 header and tables before byte {} again{}: {} bytes in {} "
      "ranged requests",
      checkpoint.source_offset,
      held.empty() ? std::string()
                   : ", and " + std::to_string(held_bytes) + " bytes in " +
                         std::to_string(held.size()) + " ranges that no table had mapped yet",
      *bytes_fetched, requests);
  return resume;
}

}  // namespace cdi::importer
