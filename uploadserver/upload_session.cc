#include "uploadserver/upload_session.h"

#include <utility>

#include "common/log.h"

namespace cdi::uploadserver {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kCancelPoll = std::chrono::milliseconds(200);

std::string OffsetHeaders(uint64_t offset, std::optional<uint64_t> total) {
  std::string headers = "Upload-Offset: " + std::to_string(offset) + "\r\n";
  if (total) headers += "Upload-Length: " + std::to_string(*total) + "\r\n";
  return headers;
}

}  // namespace

class UploadSession::BodySource final : public importer::ByteSource {
 public:
  explicit BodySource(UploadSession& session) : session_(session) {}
  Result<size_t> Read(std::span<uint8_t> buffer) override { return session_.Read(buffer); }
  std::optional<uint64_t> size() const override { return session_.total(); }
  std::string Describe() const override { return "the upload"; }

 private:
  UploadSession& session_;
};

UploadSession::UploadSession(std::shared_ptr<UploadPart> first, bool resumable,
                             std::chrono::milliseconds resume_wait, const CancelToken* cancel)
    : resumable_(resumable), resume_wait_(resume_wait), cancel_(cancel) {
  total_ = first->total;
  current_ = std::move(first);
}

UploadSession::~UploadSession() { Close(); }

std::unique_ptr<importer::ByteSource> UploadSession::Source() {
  return std::make_unique<BodySource>(*this);
}

uint64_t UploadSession::offset() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return offset_;
}

std::optional<uint64_t> UploadSession::total() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total_;
}

bool UploadSession::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_ == nullptr && !ended_ && !closed_;
}

void UploadSession::ReleaseLocked(int code, const std::string& headers, const std::string& body,
                                  bool linger) {
  if (current_ == nullptr) return;
  // The part's handler waits for `released`: it answers nothing itself, and
  // its connection stays open until then.
  if (code != 0 && current_->answer) current_->answer(code, headers, body, linger);
  current_->released = true;
  current_.reset();
  changed_.notify_all();
}

Result<size_t> UploadSession::Read(std::span<uint8_t> out) {
  while (true) {
    std::shared_ptr<UploadPart> part;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (ended_) return size_t{0};
      const Clock::time_point until = Clock::now() + resume_wait_;
      while (current_ == nullptr) {
        if (abandoned_ || closed_) {
          return CancelledError("the upload was given up after " + std::to_string(offset_) +
                                " bytes: a new upload replaced it");
        }
        if (cancel_ != nullptr && cancel_->cancelled()) return CancelledError("upload cancelled");
        if (Clock::now() >= until) {
          return NetworkError(
              (dropped_ ? dropped_->message() : std::string("the upload's connection ended")) +
              "; no request continued it within " +
              std::to_string(std::chrono::duration_cast<std::chrono::seconds>(resume_wait_).count()) +
              " s");
        }
        changed_.wait_for(lock, std::min<Clock::duration>(kCancelPoll, until - Clock::now()));
      }
      part = current_;
    }
    Result<size_t> n = part->body->Read(out);
    std::lock_guard<std::mutex> lock(mutex_);
    if (n.ok() && *n > 0) {
      offset_ += *n;
      return n;
    }
    if (n.ok()) {
      if (part->whole || (total_ && offset_ >= *total_)) {
        ended_ = true;
        if (!total_) total_ = offset_;
        return size_t{0};
      }
      // A part that carried less than the rest: the client sends the next.
      Logger()->info("A part of the upload ended at byte {} of {}", offset_,
                     total_ ? std::to_string(*total_) : std::string("?"));
      ReleaseLocked(204, OffsetHeaders(offset_, total_), "", false);
      continue;
    }
    if (!resumable_ || n.status().code() != ErrorCode::kNetwork) return n.status();
    Logger()->warn("{}; the upload waits {} s for a request that continues it at byte {} "
                   "(PATCH with Content-Range: bytes {}-...)",
                   n.status().message(),
                   std::chrono::duration_cast<std::chrono::seconds>(resume_wait_).count(), offset_,
                   offset_);
    dropped_ = n.status();
    if (current_ == part) ReleaseLocked(0, "", "", false);
  }
}

std::optional<UploadSession::Refusal> UploadSession::Continue(
    const std::shared_ptr<UploadPart>& part) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto refusal = [&]() -> std::optional<Refusal> {
    if (closed_ || abandoned_) {
      return Refusal{404, "no upload is waiting to be continued; send the whole image with POST"};
    }
    if (ended_) {
      return Refusal{409, "the upload already received all its " + std::to_string(offset_) +
                              " bytes and is being written; wait for its answer"};
    }
    return std::nullopt;
  };
  if (auto refused = refusal()) return refused;
  if (current_ != nullptr) {
    // The client continues: its older connection is gone, even when this
    // side has not noticed yet.
    Logger()->info("A request continues the upload: ending the part still open");
    if (current_->interrupt) current_->interrupt();
    const Clock::time_point until = Clock::now() + resume_wait_;
    while (current_ != nullptr && !ended_ && !closed_ && Clock::now() < until) {
      changed_.wait_for(lock, kCancelPoll);
    }
    if (auto refused = refusal()) return refused;
    if (current_ != nullptr) {
      return Refusal{503, "the upload's current request did not end; try again"};
    }
  }
  if (part->first != offset_) {
    return Refusal{416, "the upload continues at byte " + std::to_string(offset_) +
                            ", and this request's Content-Range starts at byte " +
                            std::to_string(part->first) +
                            ": ask HEAD for Upload-Offset and send from there"};
  }
  if (total_ && part->total && *part->total != *total_) {
    return Refusal{400, "the upload is " + std::to_string(*total_) +
                            " bytes long, and this request's Content-Range says " +
                            std::to_string(*part->total)};
  }
  if (!total_) total_ = part->total;
  if (part->accepted) part->accepted();
  Logger()->info("The upload continues at byte {}", offset_);
  current_ = part;
  dropped_.reset();
  changed_.notify_all();
  changed_.wait(lock, [&] { return part->released; });
  return std::nullopt;
}

bool UploadSession::Answer(int code, const std::string& body, bool linger) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (current_ == nullptr) return false;
  ReleaseLocked(code, OffsetHeaders(offset_, total_), body, linger);
  return true;
}

void UploadSession::Abandon() {
  std::lock_guard<std::mutex> lock(mutex_);
  abandoned_ = true;
  changed_.notify_all();
}

void UploadSession::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  ReleaseLocked(0, "", "", false);
  changed_.notify_all();
}

}  // namespace cdi::uploadserver
