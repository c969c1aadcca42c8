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
  // sixteenth of the memory; the parts ahead share the rest. In the steady
  // state those parts hold about half of theirs (the
  // n - 1 parts ahead of the one being read are 1/n, 2/n, ... in), so parts
  // of 1.5 x ahead / (n - 1) leave a margin for uneven connections; much
  // larger ones pause connections on the memory and lose more than their
  // fewer round trips save.
  plan.lead = std::max(kMinRangePart, memory / 16);
  plan.ahead = std::max(kMinRangePart, memory - std::min(memory, plan.lead));
  plan.part = std::max(kMinRangePart,
                       plan.ahead * 3 / (2 * static_cast<uint64_t>(std::max(connections - 1, 1))));
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
      parts_(static_cast<size_t>((plan.end - plan.first + plan.part - 1) / plan.part)),
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
