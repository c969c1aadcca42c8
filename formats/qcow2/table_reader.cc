#include "formats/qcow2/table_reader.h"

#include <algorithm>

#include "common/zero.h"

namespace cdi::formats::qcow2 {

TableReader::TableReader(const Header& header, std::optional<uint64_t> container_size)
    : header_(header), geometry_(header.geometry), container_size_(container_size) {}

Status TableReader::L1EntryError(uint64_t index, uint64_t entry, const std::string& what,
                                 const char* advice) const {
  return CorruptImageError("qcow2: L1 entry " + std::to_string(index) + " (" + Hex(entry) +
                           ", guest offset " + Hex(geometry_.l1_index_to_guest_offset(index)) +
                           ") " + what + advice);
}

Result<L1Mapping> TableReader::ReadL1Entry(uint64_t index, uint64_t entry) const {
  L1Mapping mapping;
  mapping.guest_offset = geometry_.l1_index_to_guest_offset(index);
  if (index >= geometry_.size_to_l1(header_.virtual_size)) return mapping;  // past the disk
  mapping.guest_length = std::min<uint64_t>(uint64_t{1} << geometry_.l1_entry_bits(),
                                            header_.virtual_size - mapping.guest_offset);
  if (entry & kL1EntryReservedMask) return L1EntryError(index, entry, "has reserved bits set");
  const uint64_t l2_offset = entry & kL1EntryOffsetMask;
  if (l2_offset == 0) {
    mapping.kind = L1Mapping::Kind::kZero;
    return mapping;
  }
  if (geometry_.offset_into_cluster(l2_offset) != 0) {
    return L1EntryError(
        index, entry, "points to an L2 table at " + Hex(l2_offset) + ", not aligned to a cluster");
  }
  if (container_size_ && l2_offset + geometry_.cluster_size() > *container_size_) {
    return L1EntryError(index, entry,
                        "points to an L2 table at " + Hex(l2_offset) +
                            ", past the end of the image (" + std::to_string(*container_size_) +
                            " bytes)",
                        kPastEndAdvice);
  }
  mapping.kind = L1Mapping::Kind::kL2Table;
  mapping.l2_offset = l2_offset;
  return mapping;
}

Status TableReader::ReadL2Table(uint64_t l2_offset, uint64_t l1_index,
                                std::span<const uint8_t> table, MappingSink& sink) const {
  const uint64_t cluster = geometry_.cluster_size();
  const uint64_t first_guest = geometry_.l1_index_to_guest_offset(l1_index);
  const uint64_t entry_bytes = geometry_.l2_entry_bytes();
  // Contiguous standard runs are coalesced before they reach the sink.
  std::optional<Run> pending;
  auto add_run = [&](const Run& run) -> Status {
    if (pending && !run.compressed && !pending->compressed &&
        pending->host_end() == run.host_offset &&
        pending->guest_offset + pending->length == run.guest_offset) {
      pending->length += run.length;
      return Status::Ok();
    }
    if (pending) {
      const Run done = *pending;
      pending.reset();
      CDI_RETURN_IF_ERROR(sink.MapRun(done));
    }
    pending = run;
    return Status::Ok();
  };

  for (uint64_t i = 0; i < geometry_.l2_entries(); ++i) {
    const uint64_t guest_offset = first_guest + i * cluster;
    if (guest_offset >= header_.virtual_size) break;
    const uint64_t guest_length = std::min(cluster, header_.virtual_size - guest_offset);
    const uint8_t* raw = table.data() + i * entry_bytes;
    const uint64_t entry = LoadBE64(raw);
    const uint64_t bitmap = geometry_.extended_l2 ? LoadBE64(raw + 8) : 0;
    auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
      return CorruptImageError("qcow2: L2 entry " + std::to_string(i) + " (" + Hex(entry) +
                               ") of the L2 table at " + Hex(l2_offset) + " (guest offset " +
                               Hex(guest_offset) + ") " + what + advice);
    };

    if (entry & kL2EntryCompressed) {
      // "Compressed Clusters Descriptor"; compressed clusters "don't have
      // subclusters" and are never marked as having a refcount of one.
      if (bitmap != 0) return bad("is compressed but has a subcluster bitmap");
      if (entry & kL2EntryCopied) return bad("is compressed but has the copied flag set");
      CompressedRange range = DecodeCompressedEntry(entry, geometry_);
      if (range.host_offset >= kMaxHostOffset) {
        return bad("has a compressed offset beyond 2^56");
      }
      if (range.host_offset < cluster) return bad("points into the header cluster");
      if (container_size_ &&
          range.host_offset + range.length > AlignUp(*container_size_, kSectorSize)) {
        return bad("has compressed data extending past the end of the image (" +
                       std::to_string(*container_size_) + " bytes)",
                   kPastEndAdvice);
      }
      Run run;
      run.host_offset = range.host_offset;
      run.guest_offset = guest_offset;
      run.length = range.length;
      run.guest_length = static_cast<uint32_t>(guest_length);
      run.compressed = true;
      CDI_RETURN_IF_ERROR(add_run(run));
      continue;
    }

    // "Standard Cluster Descriptor".
    if (entry & kL2EntryReservedMask) return bad("has reserved bits set");
    const bool zero_flag = (entry & kL2EntryZero) != 0;
    if (zero_flag && (header_.version < 3 || geometry_.extended_l2)) {
      return bad(header_.version < 3 ? "has the zero flag, which version 2 images lack"
                                     : "has bit 0 set, reserved with extended L2 entries");
    }
    const uint64_t host_offset = entry & kL2EntryOffsetMask;
    if (geometry_.offset_into_cluster(host_offset) != 0) {
      return bad("points to host offset " + Hex(host_offset) + ", not aligned to a cluster");
    }
    // The bytes read must lie inside the image. With subclusters, a cluster
    // at the end of the file may be there only up to its last allocated
    // subcluster.
    auto check_host = [&](uint64_t host_end) -> Status {
      if (container_size_ && host_end > *container_size_) {
        return bad("points to host offset " + Hex(host_offset) + ", past the end of the image (" +
                       std::to_string(*container_size_) + " bytes)",
                   kPastEndAdvice);
      }
      return Status::Ok();
    };

    if (!geometry_.extended_l2) {
      // Bit 0 "reads as all zeros" (a host offset then only describes a
      // preallocation); offset 0 is unallocated, which without a backing
      // file reads as zeros too. Like qemu, the copied flag does not matter here.
      if (zero_flag || host_offset == 0) {
        CDI_RETURN_IF_ERROR(sink.MapZero(guest_offset, guest_length));
        continue;
      }
      CDI_RETURN_IF_ERROR(check_host(host_offset + guest_length));
      CDI_RETURN_IF_ERROR(add_run({host_offset, guest_offset, guest_length, 0, false}));
      continue;
    }

    // Subcluster Allocation Bitmap: bit x allocated, bit 32+x reads as zeros.
    const uint64_t allocated = bitmap & kSubclusterAllocMask;
    const uint64_t zeroes = bitmap >> kSubclusterZeroShift;
    if (allocated & zeroes) {
      return bad("marks subclusters both allocated and zero (bitmap " + Hex(bitmap) + ")");
    }
    if (allocated != 0 && host_offset == 0) {
      return bad("has allocated subclusters (bitmap " + Hex(bitmap) + ") but no host offset");
    }
    const uint64_t subcluster = geometry_.subcluster_size();
    for (uint32_t s = 0; s < kSubclustersPerCluster; ++s) {
      const uint64_t sub_guest = guest_offset + s * subcluster;
      if (sub_guest >= guest_offset + guest_length) break;
      const uint64_t sub_length = std::min(subcluster, guest_offset + guest_length - sub_guest);
      if (allocated & (uint64_t{1} << s)) {
        CDI_RETURN_IF_ERROR(check_host(host_offset + s * subcluster + sub_length));
        CDI_RETURN_IF_ERROR(
            add_run({host_offset + s * subcluster, sub_guest, sub_length, 0, false}));
      } else {
        // Zero, or unallocated, which reads as zeros without a backing file.
        CDI_RETURN_IF_ERROR(sink.MapZero(sub_guest, sub_length));
      }
    }
  }
  if (pending) return sink.MapRun(*pending);
  return Status::Ok();
}

Result<uint64_t> TableReader::ReadRefcountTableEntry(uint64_t index, uint64_t entry) const {
  auto bad = [&](const std::string& what, const char* advice = kCheckAdvice) {
    return CorruptImageError("qcow2: refcount table entry " + std::to_string(index) + " (" +
                             Hex(entry) + ") " + what + advice);
  };
  if (entry & kRefcountTableEntryReservedMask) return bad("has reserved bits set");
  const uint64_t block = entry & kRefcountTableEntryOffsetMask;
  if (block == 0) return uint64_t{0};
  if (geometry_.offset_into_cluster(block) != 0) return bad("is not aligned to a cluster");
  if (block >= kMaxHostOffset ||
      (container_size_ && block + geometry_.cluster_size() > *container_size_)) {
    return bad("points past the end of the image", kPastEndAdvice);
  }
  return block;
}

void TableReader::ReadRefcountBlock(uint64_t table_index, std::span<const uint8_t> block,
                                    const std::function<void(uint64_t, uint64_t)>& on_free) const {
  const uint64_t entries = header_.refcount_block_entries();
  const uint32_t bits = 1u << header_.refcount_order;
  const uint64_t max_cluster = kMaxHostOffset >> geometry_.cluster_bits;
  uint64_t free_first = 0;
  uint64_t free_count = 0;
  for (uint64_t j = 0; j < entries; ++j) {
    // Whether refcount entry j is 0: metadata being parsed, not guest data.
    bool zero;
    if (bits >= 8) {
      zero = IsAllZero(block.subspan(static_cast<size_t>(j * bits / 8), bits / 8));
    } else {
      uint8_t byte = block[static_cast<size_t>(j * bits / 8)];
      zero = ((byte >> ((j * bits) % 8)) & ((1u << bits) - 1)) == 0;
    }
    uint64_t host_cluster = table_index * entries + j;
    if (host_cluster >= max_cluster) break;
    if (zero && free_count > 0 && free_first + free_count == host_cluster) {
      ++free_count;
      continue;
    }
    if (free_count > 0) on_free(free_first, free_count);
    free_count = 0;
    if (zero) {
      free_first = host_cluster;
      free_count = 1;
    }
  }
  if (free_count > 0) on_free(free_first, free_count);
}

}  // namespace cdi::formats::qcow2
