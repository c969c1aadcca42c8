#include "sources/http/range_fetch.h"

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "common/text.h"
#include "sources/http/http_response.h"
#include "sources/http/http_transfer.h"
#include "sources/http/proxy.h"
#include "tls/tls_config.h"

namespace cdi::importer {

std::optional<RangePlan> PlanRanges(const NetworkSettings& network, std::optional<uint64_t> size,
                                    const ImageIdentity& identity) {
  if (network.connections <= 1 || !size.has_value()) return std::nullopt;
  if (AsciiLower(identity.accept_ranges) != "bytes") return std::nullopt;
  const bool strong_etag = !identity.etag.empty() && !IsWeakEtag(identity.etag);
  if (!strong_etag && identity.last_modified.empty()) return std::nullopt;
  const uint64_t memory =
      network.connection_memory != 0 ? network.connection_memory : kDefaultConnectionMemory;
  if (*size <= memory) return std::nullopt;
  const int connections = std::min(network.connections, kMaxConnections);
  RangePlan plan;
  // The parts being fetched and the one being read: connections + 1
  // buffers within the memory.
  plan.part = std::max(kMinRangePart, memory / static_cast<uint64_t>(connections + 1));
  plan.first = plan.part;
  plan.end = *size;
  plan.connections = connections;
  return plan;
}

// One connection: its transfer, and the part buffer it writes into.
struct RangeFetch::Worker {
  TransferBuffer idle{1};  // where the transfer points before its first part
  std::unique_ptr<HttpTransfer> transfer;
  std::shared_ptr<TransferBuffer> held;  // the part being fetched, kept alive for Stop()
  std::thread thread;
};

RangeFetch::RangeFetch(const SourceSpec& spec, HttpUrl url, HttpUrl from, ImageIdentity identity,
                       const CancelToken* cancel, HttpSourceOptions options, RangePlan plan)
    : spec_(spec),
      url_(std::move(url)),
      from_(std::move(from)),
      identity_(std::move(identity)),
      cancel_(cancel),
      options_(std::move(options)),
      plan_(plan),
      parts_(static_cast<size_t>((plan.end - plan.first + plan.part - 1) / plan.part)) {}

RangeFetch::~RangeFetch() {
  Stop();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

uint64_t RangeFetch::PartEnd(size_t index) const {
  return std::min(plan_.end, PartStart(index) + plan_.part);
}

std::shared_ptr<TransferBuffer> RangeFetch::BufferFor(size_t index) {
  const auto size = static_cast<size_t>(PartEnd(index) - PartStart(index));
  for (auto& spare : spare_) {
    // Only spare_ holds it: the reader and the workers are done with it.
    if (spare && spare.use_count() == 1 && spare->capacity() == size) {
      std::shared_ptr<TransferBuffer> reused = std::move(spare);
      reused->Reset();
      return reused;
    }
  }
  return std::make_shared<TransferBuffer>(size);
}

Status RangeFetch::Start() {
  CDI_ASSIGN_OR_RETURN(ProxyConfig proxies, ResolveProxyConfig(spec_.network.proxy));
  const size_t count = std::min<size_t>(static_cast<size_t>(plan_.connections), parts_);
  for (size_t i = 0; i < count; ++i) {
    auto worker = std::make_unique<Worker>();
    CDI_ASSIGN_OR_RETURN(std::unique_ptr<tls::CurlTls> tls, tls::CurlTls::Create(spec_.tls));
    worker->transfer = std::make_unique<HttpTransfer>(
        spec_, url_, std::move(tls), proxies, cancel_, worker->idle,
        [](std::optional<uint64_t>) {}, options_);
    CDI_RETURN_IF_ERROR(worker->transfer->Configure());
    workers_.push_back(std::move(worker));
  }
  Logger()->info("Fetching {} over {} connections from byte {} on: {} parts of {} bytes",
                 from_.redacted, plan_.connections, plan_.first, parts_, plan_.part);
  for (auto& worker : workers_) {
    Worker* raw = worker.get();
    worker->thread = std::thread([this, raw] { Work(*raw); });
  }
  return Status::Ok();
}

void RangeFetch::Work(Worker& worker) {
  while (true) {
    size_t index = 0;
    std::shared_ptr<TransferBuffer> buffer;
    {
      std::unique_lock lock(mutex_);
      window_cv_.wait(lock, [this] {
        return stopped_ || failed_ || next_ >= parts_ ||
               next_ + 1 < reading_ + static_cast<size_t>(plan_.connections);
      });
      if (stopped_ || failed_ || next_ >= parts_) return;
      index = next_++;
      worker.held.reset();  // its last part's buffer may serve again
      buffer = BufferFor(index);
      buffers_[index] = buffer;
      // Under the lock: Stop() closes whichever buffer the transfer points to.
      worker.transfer->FetchPart(*buffer, PartStart(index), PartEnd(index), identity_, from_);
      worker.held = buffer;
    }
    part_cv_.notify_all();
    Status status = worker.transfer->Download();
    const bool ok = status.ok();
    buffer->Finish(std::move(status));
    if (!ok) {
      {
        std::lock_guard lock(mutex_);
        failed_ = true;
      }
      window_cv_.notify_all();
      return;
    }
  }
}

std::shared_ptr<TransferBuffer> RangeFetch::Part(size_t index, std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  if (index + 1 > reading_) {
    reading_ = index + 1;
    const auto read = buffers_.lower_bound(index);
    std::erase_if(spare_, [](const auto& spare) { return spare == nullptr; });
    for (auto it = buffers_.begin(); it != read; ++it) spare_.push_back(it->second);
    buffers_.erase(buffers_.begin(), read);
    // What the parts hold stays within connections + 1 buffers.
    const size_t most = static_cast<size_t>(plan_.connections) + 1;
    spare_.resize(std::min(spare_.size(), most > buffers_.size() ? most - buffers_.size() : 0));
    window_cv_.notify_all();
  }
  part_cv_.wait_for(lock, wait, [&] { return stopped_ || buffers_.count(index) > 0; });
  auto found = buffers_.find(index);
  return found == buffers_.end() ? nullptr : found->second;
}

void RangeFetch::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (auto& worker : workers_) worker->transfer->Stop();
  }
  window_cv_.notify_all();
  part_cv_.notify_all();
}

}  // namespace cdi::importer
