// A streaming reader of tar archives, for archive content (CDI's
// IMPORTER_CONTENTTYPE=archive): fed an archive's bytes in order, in chunks of
// any size (one byte at a time works), it reports the regular files and
// directories the archive holds to an EntryWriter. It touches no filesystem.
//
// Formats read: POSIX ustar (name and prefix fields), pax extended headers
// ('x': path, linkpath, size, mtime; other keys are ignored) and global
// headers ('g': read and ignored, as `git archive` writes them), GNU tar
// (long names 'L' and long link names 'K', base-256 numbers for sizes past
// 8 GiB), GNU sparse files as `tar -S` writes them (type 'S', the map in the
// header and its extension blocks: the data reaches the writer with its holes
// as Skip() calls), and old V7 headers without a magic (a name ending in '/'
// is a directory). Every header's checksum is verified.
//
// Refused by name (kUnsupported, the message names the entry):
//  - symbolic links, hard links, character and block devices, FIFOs: nothing
//    but regular files and directories is extracted;
//  - pax GNU sparse files (GNU.sparse.*), multi-volume parts ('M'), and
//    unknown entry types.
// Refused as unsafe (kInvalidArgument, naming the entry): absolute paths, any
// ".." component, empty names, names holding a NUL byte, paths longer than
// kMaxPathBytes or deeper than kMaxPathDepth.
// Damage (kCorruptImage, with the archive offset): a header whose checksum
// does not match (at offset 0: "not a tar archive"), a malformed number or pax
// record, metadata (pax header, GNU long name) larger than kMaxMetadataBytes,
// a stream that ends inside an entry or without the end-of-archive marker (a
// zero block), and non-zero bytes after that marker (archives joined with
// `cat` are refused rather than silently cut at the first one).
// A non-ok Status from the EntryWriter is returned unchanged. After an error
// the reader must not be fed again.
//
// Paths reach the writer normalised: relative, '/'-separated, with no empty,
// "." or ".." components ("./a//b/" becomes "a/b"). An entry naming the
// archive's root ("./") is skipped. A later entry may repeat an earlier path
// (as `tar -r` appends newer versions); what that means is the writer's call.
//
// Memory: one 512-byte block and at most kMaxMetadataBytes of pending
// metadata, whatever the archive's size. File data is handed through without
// a copy. Thread-safety: none; one thread feeds the reader, and the writer is
// called on that thread.
#ifndef CDI_FORMATS_TAR_TAR_READER_H_
#define CDI_FORMATS_TAR_TAR_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cdi/status.h"
#include "formats/decoder.h"

namespace cdi::formats::tar {

inline constexpr size_t kBlockSize = 512;
// Limits on what one entry's metadata may hold.
inline constexpr size_t kMaxMetadataBytes = 1 << 20;  // a pax header or GNU long name
inline constexpr size_t kMaxPathBytes = 4095;         // PATH_MAX without its NUL
inline constexpr size_t kMaxPathDepth = 256;          // components of one path
inline constexpr size_t kMaxSparseRegions = 1 << 20;  // data regions of one sparse file

// kOther: an entry that is neither (a link, a device, a FIFO, a pax GNU
// sparse file, a name that would leave the root), reported only with
// OtherEntries::kReport; its data, if any, is skipped.
enum class EntryType { kFile, kDirectory, kOther };

// What the reader does with entries that are not regular files or
// directories, and with unsafe names.
enum class OtherEntries {
  kRefuse,  // archive content: refused as described above
  kReport,  // container image layers: reported as kOther (path as archived,
            // without a leading "./"), never refused; links, devices and the
            // like are what a layer of a base image holds
};

struct Entry {
  std::string path;  // normalised, see above; never empty
  EntryType type = EntryType::kFile;
  uint64_t size = 0;             // kFile: the bytes of data Data() will deliver; kDirectory: 0
  uint32_t mode = 0644;          // permission bits as archived (07777)
  std::optional<int64_t> mtime;  // seconds since the epoch, when the header holds a valid one
};

// Receives the archive's entries in archive order.
//  - Begin() opens an entry; End() closes it. Entries never overlap.
//  - Between them, a kFile entry's data arrives through Data() calls, in
//    order, exactly `size` bytes in total (none for an empty file or a
//    directory). `data` is valid only during the call. The holes of a sparse
//    file arrive as Skip() calls among them, counted in `size`.
class EntryWriter {
 public:
  virtual ~EntryWriter() = default;
  virtual Status Begin(const Entry& entry) = 0;
  virtual Status Data(std::span<const uint8_t> data) = 0;
  // `bytes` zero bytes, a hole of a sparse file. By default they are passed
  // to Data() (a writer that leaves zero blocks unwritten keeps the hole).
  virtual Status Skip(uint64_t bytes);
  virtual Status End() = 0;
};

// Makes a reader feeding `writer`, which must outlive it.
std::unique_ptr<ByteSink> MakeTarReader(EntryWriter* writer,
                                        OtherEntries others = OtherEntries::kRefuse);

// Normalises an entry path as the reader does: the result, or the refusal
// (kInvalidArgument: absolute, "..", NUL, too long or deep; "" for the root).
Result<std::string> NormalizeEntryPath(std::string_view path);

}  // namespace cdi::formats::tar

#endif  // CDI_FORMATS_TAR_TAR_READER_H_
