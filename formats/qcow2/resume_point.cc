#include "formats/qcow2/resume_point.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/text.h"
#include "formats/qcow2/qcow2_format.h"

namespace cdi::formats {

using qcow2::Extent;

namespace {

// Neighbouring L2 tables closer than this are fetched in one request, the
// bytes between them read and dropped.
constexpr uint64_t kCoalesceGap = 256 << 10;

Status NotContinued(const std::string& why) {
  return CorruptImageError("the qcow2 image cannot be continued at this checkpoint: " + why);
}

}  // namespace

Qcow2MetadataPlan::Qcow2MetadataPlan(uint64_t at, uint64_t container_size)
    : at_(at), container_size_(container_size) {
  resume_.at = at;
  header_wanted_ = std::min<uint64_t>(header_wanted_, std::min(at, container_size));
}

std::optional<Extent> Qcow2MetadataPlan::Wanted() const {
  switch (stage_) {
    case Stage::kHeader:
      return Extent{0, header_wanted_};
    case Stage::kL1: {
      // With the rest of its last cluster, which the decoder keeps as it
      // passes (it may hold a compressed cluster).
      const uint64_t start = header_->l1_table_offset;
      const uint64_t cluster = header_->cluster_size();
      const uint64_t end = (start + header_->l1_bytes() + cluster - 1) / cluster * cluster;
      return Extent{start, std::min({end, at_, container_size_})};
    }
    case Stage::kL2:
      return fetches_.front();
    case Stage::kDone:
      break;
  }
  return std::nullopt;
}

Status Qcow2MetadataPlan::Give(uint64_t offset, std::span<const uint8_t> bytes) {
  const std::optional<Extent> wanted = Wanted();
  if (!wanted || offset != wanted->start || bytes.size() != wanted->end - wanted->start) {
    return InternalError("qcow2 resume: bytes given that were not asked for");
  }
  switch (stage_) {
    case Stage::kHeader: {
      // Parsed as the decoder parses it, growing the prefix as each try
      // asks, so that the bytes handed on are exactly what it takes.
      uint64_t needed = 8;
      qcow2::HeaderParse parse;
      while (needed <= bytes.size()) {
        CDI_ASSIGN_OR_RETURN(parse, qcow2::ParseHeader(bytes.first(needed), container_size_));
        if (parse.header) break;
        needed = parse.bytes_needed;
      }
      if (!parse.header) {
        if (needed > at_) return NotContinued("its header reaches past the checkpoint");
        header_wanted_ = needed;
        return Status::Ok();
      }
      bytes = bytes.first(needed);
      header_ = *parse.header;
      if (at_ < header_->cluster_size()) return NotContinued("the checkpoint lies in its header");
      resume_.metadata.push_back({0, std::vector<uint8_t>(bytes.begin(), bytes.end())});
      const uint64_t l1 = header_->l1_table_offset;
      if (l1 >= at_ || header_->l1_size == 0) {
        stage_ = Stage::kDone;  // the L1 table, and so every L2 table, comes in the stream
      } else if (l1 + header_->l1_bytes() > at_) {
        return NotContinued("its L1 table at " + Hex(l1) + " spans the checkpoint");
      } else {
        stage_ = Stage::kL1;
      }
      return Status::Ok();
    }
    case Stage::kL1:
      resume_.metadata.push_back(
          {header_->l1_table_offset, std::vector<uint8_t>(bytes.begin(), bytes.end())});
      return PlanL2Tables(bytes.first(static_cast<size_t>(header_->l1_bytes())));
    case Stage::kL2: {
      const uint64_t cluster = header_->cluster_size();
      for (uint64_t table : l2_tables_) {
        if (table < offset || table + cluster > offset + bytes.size()) continue;
        auto first = bytes.begin() + static_cast<std::ptrdiff_t>(table - offset);
        resume_.metadata.push_back(
            {table, std::vector<uint8_t>(first, first + static_cast<std::ptrdiff_t>(cluster))});
      }
      fetches_.erase(fetches_.begin());
      if (fetches_.empty()) {
        std::sort(resume_.metadata.begin(), resume_.metadata.end(),
                  [](const HostBytes& a, const HostBytes& b) { return a.offset < b.offset; });
        stage_ = Stage::kDone;
      }
      return Status::Ok();
    }
    case Stage::kDone:
      break;
  }
  return InternalError("qcow2 resume: bytes given after the plan completed");
}

Status Qcow2MetadataPlan::PlanL2Tables(std::span<const uint8_t> l1) {
  const uint64_t cluster = header_->cluster_size();
  for (size_t i = 0; i + qcow2::kTableEntryBytes <= l1.size(); i += qcow2::kTableEntryBytes) {
    const uint64_t table = qcow2::LoadBE64(l1.data() + i) & qcow2::kL1EntryOffsetMask;
    // Tables at or past the checkpoint come in the stream; the decoder checks
    // every entry (alignment, bounds) when it reads the L1 table itself.
    if (table == 0 || table >= at_) continue;
    if (table % cluster != 0 || table + cluster > container_size_) continue;
    if (table + cluster > at_) {
      return NotContinued("its L2 table at " + Hex(table) + " spans the checkpoint");
    }
    l2_tables_.push_back(table);
  }
  std::sort(l2_tables_.begin(), l2_tables_.end());
  l2_tables_.erase(std::unique(l2_tables_.begin(), l2_tables_.end()), l2_tables_.end());
  for (uint64_t table : l2_tables_) {
    if (!fetches_.empty() && table <= fetches_.back().end + kCoalesceGap) {
      fetches_.back().end = std::max(fetches_.back().end, table + cluster);
    } else {
      fetches_.push_back({table, table + cluster});
    }
  }
  stage_ = fetches_.empty() ? Stage::kDone : Stage::kL2;
  return Status::Ok();
}

}  // namespace cdi::formats
