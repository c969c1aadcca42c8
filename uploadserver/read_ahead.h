// An upload's bytes read ahead on a thread of their own: the connection is
// received (TLS decrypted, the body's framing removed, the session's offset
// counted) while the pipeline decodes what arrived before, instead of one
// thread doing both in turns. The bytes wait in a TransferBuffer of fixed
// capacity, lent to the pipeline without a copy (ReadView).
//
// The reading thread starts at construction. Errors of the source reach the
// reader after the bytes before them, as they would have without the thread.
// When the reader stops early (the pipeline failed), the destructor calls
// `stop` (it must make a read that waits return soon, e.g. by giving up the
// connection's reads) and joins the thread: the source is not used once the
// destructor returns, and the thread never touches it after the end or an
// error it handed on.
//
// Thread-safety: one consumer thread (ByteSource's contract); the source is
// read only by the thread inside, and its size() and Describe() are called
// from the consumer's.
#ifndef CDI_UPLOADSERVER_READ_AHEAD_H_
#define CDI_UPLOADSERVER_READ_AHEAD_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "cdi/status.h"
#include "sources/source.h"
#include "sources/transfer_buffer.h"

namespace cdi::uploadserver {

class ReadAheadSource final : public importer::ByteSource {
 public:
  // `capacity`: bytes held ahead at most; `chunk`: the largest read of
  // `source` (its own buffer, part of the memory held).
  ReadAheadSource(std::unique_ptr<importer::ByteSource> source, size_t capacity, size_t chunk,
                  std::function<void()> stop);
  ~ReadAheadSource() override;
  ReadAheadSource(const ReadAheadSource&) = delete;
  ReadAheadSource& operator=(const ReadAheadSource&) = delete;

  Result<size_t> Read(std::span<uint8_t> buffer) override;
  Result<std::span<const uint8_t>> ReadView(size_t max) override;
  // The source's (its size() and Describe() may be called from any thread).
  std::optional<uint64_t> size() const override { return source_->size(); }
  std::string Describe() const override { return source_->Describe(); }

 private:
  void Fill(size_t chunk);
  // Joins the reading thread once it handed on the end or an error.
  void Joined();

  std::unique_ptr<importer::ByteSource> source_;
  std::function<void()> stop_;
  importer::TransferBuffer buffer_;
  size_t lent_ = 0;  // bytes of the last view, released on the next call
  std::thread thread_;
};

}  // namespace cdi::uploadserver

#endif  // CDI_UPLOADSERVER_READ_AHEAD_H_
