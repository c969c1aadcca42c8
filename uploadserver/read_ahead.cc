#include "uploadserver/read_ahead.h"

#include <chrono>
#include <utility>
#include <vector>

namespace cdi::uploadserver {
namespace {

// How long the reader waits for bytes before looking again: the wait ends
// early as soon as a quarter of the buffer (or what it asked for) arrived.
constexpr auto kTakeWait = std::chrono::milliseconds(100);

}  // namespace

ReadAheadSource::ReadAheadSource(std::unique_ptr<importer::ByteSource> source, size_t capacity,
                                 size_t chunk, std::function<void()> stop)
    : source_(std::move(source)), stop_(std::move(stop)), buffer_(capacity) {
  thread_ = std::thread([this, chunk] { Fill(chunk); });
}

ReadAheadSource::~ReadAheadSource() {
  buffer_.Close();
  if (thread_.joinable()) {
    if (stop_) stop_();
    thread_.join();
  }
}

void ReadAheadSource::Fill(size_t chunk) {
  std::vector<uint8_t> bytes(chunk);
  while (true) {
    Result<size_t> n = source_->Read(bytes);
    if (!n.ok()) {
      buffer_.Finish(n.status());
      return;
    }
    if (*n == 0) {
      buffer_.Finish(Status::Ok());
      return;
    }
    if (!buffer_.Put(std::span<const uint8_t>(bytes.data(), *n))) return;
  }
}

void ReadAheadSource::Joined() {
  if (thread_.joinable()) thread_.join();
}

Result<std::span<const uint8_t>> ReadAheadSource::ReadView(size_t max) {
  buffer_.Release(lent_);
  lent_ = 0;
  while (true) {
    std::optional<Result<std::span<const uint8_t>>> view = buffer_.Peek(max, kTakeWait);
    if (!view.has_value()) continue;
    if (!view->ok() || (*view)->empty()) {
      // The reading thread is done with the source.
      Joined();
      return std::move(*view);
    }
    lent_ = (*view)->size();
    return std::move(*view);
  }
}

Result<size_t> ReadAheadSource::Read(std::span<uint8_t> buffer) {
  if (buffer.empty()) return size_t{0};
  buffer_.Release(lent_);
  lent_ = 0;
  while (true) {
    std::optional<Result<size_t>> n = buffer_.Take(buffer, kTakeWait);
    if (!n.has_value()) continue;
    if (!n->ok() || **n == 0) Joined();
    return std::move(*n);
  }
}

}  // namespace cdi::uploadserver
