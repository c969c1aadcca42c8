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
  // The part being read holds little (its bytes go as they arrive): a
  // sixteenth of the memory; the parts ahead share the rest. With the
  // connections ending their parts 1/n of a part apart (PartBounds), the
  // n - 1 parts ahead of the one being read are 1/n, 2/n, ... in, about
  // half of their bytes together: parts of 1.5 x ahead / (n - 1) fit with a
  // margin for uneven connections. Each part costs its connection a round
  // trip, so the larger the better while the memory holds them.
  plan.lead = std::max(kMinRangePart, memory / 16);
  plan.ahead = std::max(kMinRangePart, memory - std::min(memory, plan.lead));
  // An image of a few such parts gets smaller ones, two a connection, so
  // that every connection has its share.
  const auto n = static_cast<uint64_t>(connections);
  plan.part = std::max(kMinRangePart,
                       std::min(plan.ahead * 3 / (2 * std::max<uint64_t>(n - 1, 1)),
                                *size / (2 * n)));
  // The first GET goes on for 1/n of a part: see PartBounds.
  plan.first = std::max(kMinRangePart, plan.part / n);
  plan.end = *size;
  plan.connections = connections;
  return plan;
}

std::vector<uint64_t> PartBounds(const RangePlan& plan) {
  std::vector<uint64_t> bounds;
  const auto n = static_cast<uint64_t>(plan.connections);
  uint64_t at = plan.first;
  // The first parts, which start together with the first GET's last 1/n of
  // a part, are 2/n, 3/n, ... of a part, so the connections end a part
  // 1/n apart from then on, not all at once, and the parts ahead of the
  // reader fill the memory evenly.
  for (uint64_t k = 2; k <= n && at < plan.end && plan.end - at > n * plan.part; ++k) {
    bounds.push_back(at);
    at += std::max(kMinRangePart, plan.part * k / n);
  }
  while (at < plan.end && plan.end - at > n * plan.part) {
    bounds.push_back(at);
    at += plan.part;
  }
  if (at < plan.end) {
    const uint64_t last = plan.end - at;
    const uint64_t count = std::clamp<uint64_t>(last / kMinRangePart, 1, 2 * n);
    for (uint64_t i = 0; i < count; ++i) bounds.push_back(at + last * i / count);
  }
  bounds.push_back(plan.end);
  return bounds;
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
      bounds_(PartBounds(plan)),
      parts_(bounds_.size() - 1),
      budget_(static_cast<size_t>(plan.ahead), static_cast<size_t>(plan.lead)) {}

RangeFetch::~RangeFetch() {
  Stop();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  Logger()->debug("The parts held at most {} bytes at once ({} for those ahead of the reader, {} "
                  "more for the one it read)",
                  budget_.peak(), plan_.ahead, plan_.lead);
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
  return std::make_shared<TransferBuffer>(size, &budget_);
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

size_t RangeFetch::Window() const {
  // While the first GET runs it is one of the connections. Then parts may
  // run up to twice the connections ahead (the workers are the
  // connections): a short part's connection need not wait for a long one
  // before it to be read; the budget holds what they fetch.
  const auto connections = static_cast<size_t>(plan_.connections);
  return reading_ == 0 ? connections : 2 * connections;
}

void RangeFetch::Work(Worker& worker) {
  while (true) {
    size_t index = 0;
    std::shared_ptr<TransferBuffer> buffer;
    {
      std::unique_lock lock(mutex_);
      window_cv_.wait(lock, [this] {
        return stopped_ || failed_ || next_ >= parts_ ||
               next_ + 1 < reading_ + Window();
      });
      if (stopped_ || failed_ || next_ >= parts_) return;
      index = next_++;
      worker.held.reset();  // its last part's buffer may serve again
      buffer = BufferFor(index);
      if (index + 1 == reading_) buffer->SetLead();  // the reader waits for it
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
    // Spares for the parts to come: connections + 1 buffers at most.
    const size_t most = static_cast<size_t>(plan_.connections) + 1;
    spare_.resize(std::min(spare_.size(), most > buffers_.size() ? most - buffers_.size() : 0));
    window_cv_.notify_all();
  }
  part_cv_.wait_for(lock, wait, [&] { return stopped_ || buffers_.count(index) > 0; });
  auto found = buffers_.find(index);
  if (found == buffers_.end()) return nullptr;
  found->second->SetLead();
  return found->second;
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
