#include "formats/tar/tar_reader.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/zero.h"
#include "formats/tar/tar_header.h"

namespace cdi::formats::tar {
namespace {

class TarReader final : public ByteSink {
 public:
  TarReader(EntryWriter* writer, OtherEntries others) : writer_(writer), others_(others) {}

  Status Feed(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      size_t used = 0;
      switch (state_) {
        case State::kHeader:
          if (block_fill_ == 0) block_offset_ = offset_;
          used = std::min(bytes.size(), kBlockSize - block_fill_);
          std::copy_n(bytes.begin(), used, block_.begin() + static_cast<ptrdiff_t>(block_fill_));
          block_fill_ += used;
          if (block_fill_ == kBlockSize) {
            block_fill_ = 0;
            CDI_RETURN_IF_ERROR(OnHeader());
          }
          break;
        case State::kSparseMap:
          used = std::min(bytes.size(), kBlockSize - block_fill_);
          std::copy_n(bytes.begin(), used, block_.begin() + static_cast<ptrdiff_t>(block_fill_));
          block_fill_ += used;
          if (block_fill_ == kBlockSize) {
            block_fill_ = 0;
            CDI_RETURN_IF_ERROR(OnSparseExtension());
          }
          break;
        case State::kFileData:
          used = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
          if (sparse_) {
            CDI_RETURN_IF_ERROR(SparseData(bytes.first(used)));
          } else {
            CDI_RETURN_IF_ERROR(writer_->Data(bytes.first(used)));
          }
          remaining_ -= used;
          if (remaining_ == 0) {
            CDI_RETURN_IF_ERROR(EndFileEntry());
            AfterMember();
          }
          break;
        case State::kSkipData:
          used = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
          remaining_ -= used;
          if (remaining_ == 0) AfterMember();
          break;
        case State::kMetadata:
          used = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
          metadata_.append(reinterpret_cast<const char*>(bytes.data()), used);
          remaining_ -= used;
          if (remaining_ == 0) {
            CDI_RETURN_IF_ERROR(OnMetadata());
            AfterMember();
          }
          break;
        case State::kPadding:
          used = static_cast<size_t>(std::min<uint64_t>(padding_, bytes.size()));
          padding_ -= used;
          if (padding_ == 0) state_ = State::kHeader;
          break;
        case State::kEnd: {
          auto nonzero = std::find_if(bytes.begin(), bytes.end(), [](uint8_t b) { return b != 0; });
          if (nonzero != bytes.end()) {
            return CorruptImageError(
                "data follows the tar archive's end-of-archive marker" +
                AtOffset(offset_ + static_cast<uint64_t>(nonzero - bytes.begin())) +
                "; archives joined with cat are not read past the first one: make one archive "
                "with all the files");
          }
          used = bytes.size();
          break;
        }
      }
      offset_ += used;
      bytes = bytes.subspan(used);
    }
    return Status::Ok();
  }

  Status Finish() override {
    if (state_ == State::kEnd) return Status::Ok();
    if (offset_ == 0) return CorruptImageError("the archive is empty: it holds no tar header");
    if (state_ == State::kHeader) {
      if (block_fill_ == 0 && pending_.empty() && !gnu_long_name_) {
        return CorruptImageError(
            "the tar archive ends without its end-of-archive marker (zero blocks)" +
            AtOffset(offset_) + ": it is truncated");
      }
      return CorruptImageError("the tar archive is truncated inside a header" + AtOffset(offset_));
    }
    return CorruptImageError("the tar archive is truncated" + AtOffset(offset_) + " inside entry " +
                             Quote(entry_name_));
  }

 private:
  enum class State { kHeader, kSparseMap, kFileData, kSkipData, kMetadata, kPadding, kEnd };
  enum class MetadataKind { kPax, kPaxGlobal, kGnuLongName, kGnuLongLink };

  // Metadata that applies to the next real entry.
  struct Pending {
    std::optional<std::string> path;
    std::optional<std::string> linkpath;
    std::optional<uint64_t> size;
    std::optional<int64_t> mtime;
    bool sparse = false;  // pax GNU.sparse.* records (OtherEntries::kReport only)
    bool empty() const { return !path && !linkpath && !size && !mtime && !sparse; }
  };

  // An entry that is not a regular file or directory, or whose name is
  // unsafe, in OtherEntries::kReport mode: reported as kOther, data skipped.
  Status ReportOther(std::string_view raw_name) {
    Entry entry;
    std::string_view name = raw_name;
    while (name.starts_with("./")) name.remove_prefix(2);
    entry.path = std::string(name);
    entry.type = EntryType::kOther;
    CDI_RETURN_IF_ERROR(writer_->Begin(entry));
    CDI_RETURN_IF_ERROR(writer_->End());
    return SkipMember();
  }

  // After a member's data: skip the padding to the next block boundary.
  void AfterMember() {
    padding_ = (kBlockSize - member_size_ % kBlockSize) % kBlockSize;
    state_ = padding_ > 0 ? State::kPadding : State::kHeader;
  }

  Status OnHeader() {
    const uint64_t header_offset = block_offset_;
    if (IsZeroBlock(block_)) {
      if (!pending_.empty()) {
        return CorruptImageError("the tar archive ends right after an extended header" +
                                 AtOffset(header_offset) + ": it is damaged");
      }
      state_ = State::kEnd;
      return Status::Ok();
    }
    if (!ChecksumMatches(block_)) {
      if (header_offset == 0) {
        return CorruptImageError(
            "the content is not a tar archive (its first 512 bytes are not a valid tar header); "
            "archive content must be a tar file, optionally compressed with gzip, xz or zstd");
      }
      return CorruptImageError("the tar header" + AtOffset(header_offset) +
                               " has a wrong checksum: the archive is damaged");
    }

    const char typeflag = static_cast<char>(block_[kTypeflagOffset]);
    std::optional<uint64_t> header_size = ParseNumber(FieldBytes(block_, kSize));
    if (!header_size) {
      return CorruptImageError("the tar header" + AtOffset(header_offset) +
                               " has a malformed size field");
    }
    member_size_ = *header_size;
    remaining_ = member_size_;
    entry_name_ = HeaderName();

    switch (typeflag) {
      case 'x':
        return StartMetadata(MetadataKind::kPax, header_offset);
      case 'g':
        return StartMetadata(MetadataKind::kPaxGlobal, header_offset);
      case 'L':
        return StartMetadata(MetadataKind::kGnuLongName, header_offset);
      case 'K':
        return StartMetadata(MetadataKind::kGnuLongLink, header_offset);
      case 'V':  // a GNU volume label: no file
        pending_ = {};
        return SkipMember();
      default:
        break;
    }

    // A real entry: pending metadata applies to it, then is spent.
    Pending pending = std::move(pending_);
    pending_ = {};
    std::string raw_name = pending.path ? *pending.path : entry_name_;
    entry_name_ = raw_name;
    if (pending.size) {
      member_size_ = *pending.size;
      remaining_ = member_size_;
    }

    EntryType type = EntryType::kOther;
    if (pending.sparse) return ReportOther(raw_name);
    switch (typeflag) {
      case '0':
      case '\0':
      case '7':  // contiguous file: a regular file to everyone but one 1980s system
        // V7 tar marked directories only by a trailing slash.
        type =
            !raw_name.empty() && raw_name.back() == '/' ? EntryType::kDirectory : EntryType::kFile;
        break;
      case '5':
      case 'D':  // GNU dumpdir: a directory whose data lists its contents
        type = EntryType::kDirectory;
        break;
      case 'S':  // GNU sparse file: its data regions, then its size
        type = EntryType::kFile;
        break;
      default: {
        if (others_ == OtherEntries::kReport) return ReportOther(raw_name);
        std::string message =
            "archive entry " + Quote(raw_name) + " is " + RefusedTypeName(typeflag);
        if (typeflag == '1' || typeflag == '2') {
          std::string target =
              pending.linkpath ? *pending.linkpath : FieldString(block_, kLinkname);
          message += " (to " + Quote(target) + ")";
        }
        message += "; only regular files and directories are extracted from archives: refused";
        return UnsupportedError(message);
      }
    }

    Result<std::string> path = NormalizeEntryPath(raw_name);
    if (!path.ok() && others_ == OtherEntries::kReport) return ReportOther(raw_name);
    if (!path.ok()) return path.status().Annotate("archive entry " + Quote(raw_name));

    std::optional<uint64_t> mode = ParseNumber(FieldBytes(block_, kMode));
    Entry entry;
    entry.path = std::move(path).value();
    entry.type = type;
    entry.size = type == EntryType::kFile ? member_size_ : 0;
    entry.mode =
        static_cast<uint32_t>(mode.value_or(type == EntryType::kFile ? 0644 : 0755) & 07777);
    if (pending.mtime) {
      entry.mtime = pending.mtime;
    } else if (std::optional<uint64_t> mtime = ParseNumber(FieldBytes(block_, kMtime));
               mtime && *mtime <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      entry.mtime = static_cast<int64_t>(*mtime);
    }

    if (entry.path.empty()) {
      if (type == EntryType::kDirectory) return SkipMember();  // "./": the root itself
      return InvalidArgumentError("archive entry " + Quote(raw_name) +
                                  " is a file without a name: refused");
    }
    sparse_ = typeflag == 'S';
    if (sparse_) {
      std::optional<uint64_t> real_size = ParseNumber(FieldBytes(block_, kSparseRealSize));
      if (!real_size) {
        return CorruptImageError("the sparse file " + Quote(raw_name) + AtOffset(header_offset) +
                                 " has a malformed real size");
      }
      regions_.clear();
      region_index_ = 0;
      region_done_ = 0;
      logical_ = 0;
      real_size_ = *real_size;
      entry.size = real_size_;
      CDI_RETURN_IF_ERROR(AddSparseEntries(kSparseMapOffset, kSparseHeaderEntries));
      CDI_RETURN_IF_ERROR(writer_->Begin(entry));
      if (block_[kSparseIsExtendedOffset] != 0) {
        state_ = State::kSparseMap;
        return Status::Ok();
      }
      return StartSparseData();
    }
    CDI_RETURN_IF_ERROR(writer_->Begin(entry));
    if (type == EntryType::kDirectory || member_size_ == 0) {
      CDI_RETURN_IF_ERROR(writer_->End());
      return SkipMember();
    }
    state_ = State::kFileData;
    return Status::Ok();
  }

  // The map entries of block_ from `offset`, up to `count` or the first
  // empty one.
  Status AddSparseEntries(size_t offset, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const size_t at = offset + i * 2 * kSparseNumberLength;
      if (block_[at] == 0) break;
      std::optional<uint64_t> start = ParseNumber(FieldBytes(block_, {at, kSparseNumberLength}));
      std::optional<uint64_t> length =
          ParseNumber(FieldBytes(block_, {at + kSparseNumberLength, kSparseNumberLength}));
      if (!start || !length) {
        return CorruptImageError("the sparse map of " + Quote(entry_name_) + AtOffset(offset_) +
                                 " holds a malformed number");
      }
      if (regions_.size() >= kMaxSparseRegions) {
        return CorruptImageError("the sparse map of " + Quote(entry_name_) + " has more than " +
                                 std::to_string(kMaxSparseRegions) + " regions: refused");
      }
      regions_.emplace_back(*start, *length);
    }
    return Status::Ok();
  }

  Status OnSparseExtension() {
    CDI_RETURN_IF_ERROR(AddSparseEntries(0, kSparseExtensionEntries));
    if (block_[kSparseExtensionFlagOffset] != 0) return Status::Ok();  // another block follows
    return StartSparseData();
  }

  // The map is whole: checks it against the sizes, then reads the data.
  Status StartSparseData() {
    uint64_t end = 0;
    uint64_t stored = 0;
    for (const auto& [start, length] : regions_) {
      if (start < end || length > real_size_ || start > real_size_ - length) {
        return CorruptImageError("the sparse map of " + Quote(entry_name_) +
                                 " has regions out of order or past the file's size " +
                                 std::to_string(real_size_) + ": the archive is damaged");
      }
      end = start + length;
      stored += length;
    }
    if (stored != member_size_) {
      return CorruptImageError("the sparse map of " + Quote(entry_name_) + " covers " +
                               std::to_string(stored) + " bytes, and the entry stores " +
                               std::to_string(member_size_) + ": the archive is damaged");
    }
    if (member_size_ > 0) {
      state_ = State::kFileData;
      return Status::Ok();
    }
    CDI_RETURN_IF_ERROR(EndFileEntry());
    AfterMember();
    return Status::Ok();
  }

  // Stored bytes of a sparse file: each region's, after the hole before it.
  Status SparseData(std::span<const uint8_t> data) {
    while (!data.empty()) {
      while (region_index_ < regions_.size() && regions_[region_index_].second == 0) {
        ++region_index_;
      }
      if (region_index_ >= regions_.size()) {
        return CorruptImageError("the sparse file " + Quote(entry_name_) +
                                 " stores more than its map says: the archive is damaged");
      }
      const auto& [start, length] = regions_[region_index_];
      if (region_done_ == 0 && logical_ < start) {
        CDI_RETURN_IF_ERROR(writer_->Skip(start - logical_));
        logical_ = start;
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), length - region_done_));
      CDI_RETURN_IF_ERROR(writer_->Data(data.first(n)));
      logical_ += n;
      region_done_ += n;
      data = data.subspan(n);
      if (region_done_ == length) {
        ++region_index_;
        region_done_ = 0;
      }
    }
    return Status::Ok();
  }

  // A file's data is in: a sparse file's last hole, then the end.
  Status EndFileEntry() {
    if (sparse_ && logical_ < real_size_) {
      CDI_RETURN_IF_ERROR(writer_->Skip(real_size_ - logical_));
      logical_ = real_size_;
    }
    sparse_ = false;
    return writer_->End();
  }

  // The name from the header alone: a GNU long name if one came before,
  // else the ustar prefix and name.
  std::string HeaderName() {
    if (gnu_long_name_) {
      std::string name = std::move(*gnu_long_name_);
      gnu_long_name_.reset();
      return name;
    }
    std::string name = FieldString(block_, kName);
    if (FieldBytes(block_, kMagic) == std::string_view("ustar\0", 6)) {
      std::string prefix = FieldString(block_, kPrefix);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    return name;
  }

  Status SkipMember() {
    if (remaining_ == 0) {
      AfterMember();
    } else {
      state_ = State::kSkipData;
    }
    return Status::Ok();
  }

  Status StartMetadata(MetadataKind kind, uint64_t header_offset) {
    if (member_size_ > kMaxMetadataBytes) {
      return CorruptImageError("the tar header" + AtOffset(header_offset) + " announces " +
                               std::to_string(member_size_) +
                               " bytes of extended header or long name, more than the " +
                               std::to_string(kMaxMetadataBytes) + " accepted: refused");
    }
    metadata_kind_ = kind;
    metadata_offset_ = header_offset;
    metadata_.clear();
    if (member_size_ == 0) return OnMetadata();
    state_ = State::kMetadata;
    return Status::Ok();
  }

  Status OnMetadata() {
    std::string data = std::move(metadata_);
    metadata_.clear();
    switch (metadata_kind_) {
      case MetadataKind::kGnuLongName:
        gnu_long_name_ = data.substr(0, data.find('\0'));
        return Status::Ok();
      case MetadataKind::kGnuLongLink:
        pending_.linkpath = data.substr(0, data.find('\0'));
        return Status::Ok();
      case MetadataKind::kPax:
      case MetadataKind::kPaxGlobal:
        return ParsePax(data, metadata_kind_ == MetadataKind::kPaxGlobal);
    }
    return Status::Ok();
  }

  // Records are "<length> <key>=<value>\n", the length counting the whole record.
  Status ParsePax(std::string_view data, bool global) {
    auto malformed = [&](std::string_view why) {
      return CorruptImageError("the pax extended header" + AtOffset(metadata_offset_) +
                               " is malformed: " + std::string(why));
    };
    while (!data.empty()) {
      size_t space = data.find(' ');
      if (space == std::string_view::npos) return malformed("a record has no length");
      std::optional<uint64_t> length = ParseDecimal(data.substr(0, space));
      if (!length || *length <= space + 1 || *length > data.size()) {
        return malformed("a record's length is wrong");
      }
      std::string_view record = data.substr(space + 1, *length - space - 1);
      data.remove_prefix(*length);
      if (record.empty() || record.back() != '\n') return malformed("a record does not end a line");
      record.remove_suffix(1);
      size_t equals = record.find('=');
      if (equals == std::string_view::npos) return malformed("a record has no '='");
      std::string_view key = record.substr(0, equals);
      std::string_view value = record.substr(equals + 1);
      if (key.starts_with("GNU.sparse.")) {
        if (others_ == OtherEntries::kReport) {
          if (!global) pending_.sparse = true;
          continue;
        }
        return UnsupportedError("archive entry" + AtOffset(metadata_offset_) +
                                " is a GNU sparse file (pax " + std::string(key) +
                                "); only regular files and directories are extracted from "
                                "archives: refused");
      }
      // Global records would apply to every later entry; none of those tar
      // writers emit (git archive's comment) changes what is extracted.
      if (global) continue;
      if (key == "path") {
        pending_.path = std::string(value);
      } else if (key == "linkpath") {
        pending_.linkpath = std::string(value);
      } else if (key == "size") {
        std::optional<uint64_t> size = ParseDecimal(value);
        if (!size) return malformed("the size record is not a number");
        pending_.size = size;
      } else if (key == "mtime") {
        pending_.mtime = ParsePaxTime(value);
      }
    }
    return Status::Ok();
  }

  EntryWriter* writer_;
  const OtherEntries others_;
  State state_ = State::kHeader;
  Block block_{};
  size_t block_fill_ = 0;
  uint64_t offset_ = 0;        // archive bytes consumed
  uint64_t block_offset_ = 0;  // where the header being filled starts
  uint64_t member_size_ = 0;   // data bytes of the current member
  uint64_t remaining_ = 0;     // of them, still to come
  uint64_t padding_ = 0;       // padding bytes still to skip
  std::string entry_name_;     // raw name of the current entry, for messages
  MetadataKind metadata_kind_ = MetadataKind::kPax;
  uint64_t metadata_offset_ = 0;
  std::string metadata_;
  Pending pending_;
  std::optional<std::string> gnu_long_name_;
  // The GNU sparse file being read: its map (offset, length), where its data
  // stands, its real size.
  bool sparse_ = false;
  std::vector<std::pair<uint64_t, uint64_t>> regions_;
  size_t region_index_ = 0;
  uint64_t region_done_ = 0;
  uint64_t logical_ = 0;
  uint64_t real_size_ = 0;
};

}  // namespace

Status EntryWriter::Skip(uint64_t bytes) {
  static const std::array<uint8_t, 64 * 1024> kZeros{};
  while (bytes > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes, kZeros.size()));
    CDI_RETURN_IF_ERROR(Data(std::span<const uint8_t>(kZeros.data(), n)));
    bytes -= n;
  }
  return Status::Ok();
}

Result<std::string> NormalizeEntryPath(std::string_view path) {
  if (path.find('\0') != std::string_view::npos) {
    return InvalidArgumentError("its name holds a NUL byte: refused");
  }
  if (!path.empty() && path.front() == '/') {
    return InvalidArgumentError(
        "it has an absolute path; archive entries are extracted beneath the volume only: refused");
  }
  std::string normalized;
  size_t depth = 0;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view component = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (component.empty() || component == ".") continue;
    if (component == "..") {
      return InvalidArgumentError(
          "its path has a '..' component, which would leave the extraction directory: refused");
    }
    if (!normalized.empty()) normalized += '/';
    normalized += component;
    ++depth;
  }
  if (normalized.size() > kMaxPathBytes) {
    return InvalidArgumentError("its path is " + std::to_string(normalized.size()) +
                                " bytes long, more than the " + std::to_string(kMaxPathBytes) +
                                " a path may have: refused");
  }
  if (depth > kMaxPathDepth) {
    return InvalidArgumentError("its path is " + std::to_string(depth) +
                                " directories deep, more than the " +
                                std::to_string(kMaxPathDepth) + " accepted: refused");
  }
  return normalized;
}

std::unique_ptr<ByteSink> MakeTarReader(EntryWriter* writer, OtherEntries others) {
  return std::make_unique<TarReader>(writer, others);
}

}  // namespace cdi::formats::tar
