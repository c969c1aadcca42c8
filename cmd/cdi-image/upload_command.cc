#include "cmd/cdi-image/upload_command.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cdi/import.h"
#include "cdi/text.h"
#include "cmd/cli/exit_codes.h"
#include "cmd/cli/progress_view.h"
#include "cmd/cli/signals.h"
#include "uploadserver/upload_client.h"

namespace cdi::upload {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kMaxRetryDelay = 30;

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

// The server's refusal as an error whose code says what to do.
Status Refusal(const uploadserver::UploadExchange& exchange, const std::string& url) {
  const std::string answer = Trimmed(exchange.answer);
  const std::string text = "the upload server (" + url + ") answered HTTP " +
                           std::to_string(exchange.status) +
                           (answer.empty() ? std::string() : ": " + answer);
  switch (exchange.status) {
    case 400:
      if (answer.find("checksum mismatch") != std::string::npos) {
        return Status(ErrorCode::kChecksumMismatch, text);
      }
      if (answer.find("available storage") != std::string::npos) {
        return Status(ErrorCode::kTooSmall, text + "; a larger volume is needed");
      }
      return InvalidArgumentError(text);
    case 401:
    case 403:
      return InvalidArgumentError(text + "; check --token (CDI's upload proxy) or --client-cert "
                                         "and --client-key (an upload server)");
    case 404:
      return InvalidArgumentError(text + "; the URL's path is /v1beta1/upload (or upload-async)");
    case 409:
      return InvalidArgumentError(text + "; the volume already received its upload");
    default:
      return NetworkError(text);
  }
}

Result<std::string> ReadToken(const UploadOptions& options) {
  if (!options.token.empty() && !options.token_file.empty()) {
    return InvalidArgumentError("--token and --token-file: give one of them");
  }
  if (options.token_file.empty()) return options.token;
  std::ifstream in(options.token_file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return InvalidArgumentError("cannot read the token from " + options.token_file);
  }
  return Trimmed(line);
}

}  // namespace

CLI::App* AddUploadCommand(CLI::App* parent, UploadOptions* o) {
  CLI::App* app = parent->add_subcommand(
      "upload",
      "send a local image to an upload server or CDI's upload proxy, which converts it while "
      "it arrives; a dropped connection is continued where the server stands");
  app->add_option("IMAGE", o->image, "local image file, in any format the server decodes")
      ->required()
      ->check(CLI::ExistingFile);
  app->add_option("URL", o->url,
                  "the upload endpoint: https://HOST[:PORT]/v1beta1/upload (or upload-async)")
      ->required();
  app->add_option("--token", o->token,
                  "upload token of CDI's upload proxy (sent as Authorization: Bearer)")
      ->group("TLS and credentials");
  app->add_option("--token-file", o->token_file, "file holding the upload token (first line)")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_option("--ca-bundle", o->ca_bundles,
                  "PEM file of CA certificates to trust besides the system store (repeatable)")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_option("--client-cert", o->client_cert, "PEM client certificate for mutual TLS")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_option("--client-key", o->client_key, "PEM private key of --client-cert")
      ->check(CLI::ExistingFile)
      ->group("TLS and credentials");
  app->add_flag("--insecure", o->insecure, "do not verify the server's certificate")
      ->group("TLS and credentials");
  app->add_flag("--no-checksum", o->no_checksum,
                "send no Repr-Digest header (skips reading the image once before sending it)");
  app->add_option("--progress", o->progress, "progress display")
      ->check(CLI::IsMember({"auto", "bar", "plain", "json", "none"}))
      ->capture_default_str();
  app->add_option("--retries", o->retries,
                  "continuations of a dropped connection in a row before giving up; 0: none")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group("Network");
  app->add_option("--retry-delay", o->retry_delay,
                  "seconds before the first continuation, doubled for each next one (at most 30)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str()
      ->group("Network");
  app->add_option("--connect-timeout", o->connect_timeout, "seconds to wait for a connection")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group("Network");
  app->add_option("--stall-timeout", o->stall_timeout,
                  "seconds without progress (sending, or waiting for the answer) after which "
                  "the connection counts as dropped")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group("Network");
  return app;
}

int RunUpload(const UploadOptions& options) {
  const cli::ProgressStyle style =
      options.quiet ? cli::ProgressStyle::kNone : cli::ParseProgressStyle(options.progress);
  const bool json = style == cli::ProgressStyle::kJson;
  if (options.client_cert.empty() != options.client_key.empty()) {
    return cli::ReportError(
        InvalidArgumentError("--client-cert and --client-key go together; give both"), json);
  }
  Result<std::string> token = ReadToken(options);
  if (!token.ok()) return cli::ReportError(token.status(), json);
  static CancelToken cancel;
  cli::CancelOnSignals(&cancel);
  uploadserver::UploadClientOptions client_options;
  client_options.image = options.image;
  client_options.url = options.url;
  client_options.token = *token;
  client_options.tls.verify = options.insecure ? TlsVerify::kOff : TlsVerify::kOn;
  client_options.tls.ca_files = options.ca_bundles;
  client_options.tls.client_cert_file = options.client_cert;
  client_options.tls.client_key_file = options.client_key;
  client_options.connect_timeout = options.connect_timeout;
  client_options.stall_timeout = options.stall_timeout;
  Result<std::unique_ptr<uploadserver::UploadClient>> opened =
      uploadserver::UploadClient::Open(client_options, cancel);
  if (!opened.ok()) return cli::ReportError(opened.status(), json);
  uploadserver::UploadClient& client = **opened;
  const uint64_t size = client.size();
  std::string digest;
  if (!options.no_checksum) {
    Result<std::string> computed = client.ReprDigest();
    if (!computed.ok()) return cli::ReportError(computed.status(), json);
    digest = *computed;
    client.set_digest(digest);
    spdlog::info("Repr-Digest: {}", digest);
  }

  cli::ProgressView view(style, stderr, stdout);
  const Clock::time_point started = Clock::now();
  uint64_t offset = 0;
  int failures = 0;
  int continuations = 0;
  std::optional<Status> failed;
  bool lost_answer = false;
  auto show = [&](uint64_t reached) {
    Progress progress;
    progress.phase = Phase::kTransferring;
    progress.source_bytes = reached;
    progress.source_size = size;
    progress.elapsed = Clock::now() - started;
    view.Update(progress);
  };
  while (!failed) {
    Result<uploadserver::UploadExchange> sent = client.Send(offset, show);
    if (!sent.ok()) {
      failed = sent.status();
      break;
    }
    if (sent->completed && sent->status == 200) break;
    if (sent->completed && sent->status != 204 && sent->status != 416) {
      failed = Refusal(*sent, options.url);
      break;
    }
    if (!sent->completed && !sent->transient) {
      failed = NetworkError("the upload to " + options.url + " failed: " + sent->failure);
      break;
    }
    // 204: the server took a part and waits for the rest. Otherwise the
    // connection dropped, or the server stands elsewhere (416): ask it.
    if (sent->completed && sent->status == 204 && sent->upload_offset) {
      offset = *sent->upload_offset;
      continue;
    }
    if (sent->sent > 0 && !sent->completed) failures = 0;  // it moved on
    if (++failures > options.retries) {
      failed = NetworkError("the upload to " + options.url + " failed " +
                            std::to_string(failures) + " times in a row; the last: " +
                            (!sent->completed ? sent->failure
                                                    : "HTTP " + std::to_string(sent->status) +
                                                          " " + Trimmed(sent->answer)));
      break;
    }
    const double delay =
        std::min(kMaxRetryDelay, options.retry_delay * static_cast<double>(1 << std::min(failures - 1, 5)));
    spdlog::warn("the upload stopped after {} bytes ({}); asking the server where it stands in "
                 "{:.1f} s",
                 offset + sent->sent,
                 !sent->completed ? sent->failure
                                        : "HTTP " + std::to_string(sent->status),
                 delay);
    const auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(delay * 1000));
    while (Clock::now() < until && !cancel.cancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Result<uploadserver::UploadExchange> where = client.Ask();
    if (!where.ok()) {
      failed = where.status();
      break;
    }
    if (!where->completed || where->status != 200) {
      offset = 0;  // not reachable now: the next try tells
      continue;
    }
    // A server that cannot continue an upload says no offset: start over.
    offset = where->upload_offset.value_or(0);
    if (offset >= size) {
      // Every byte arrived; the answer to the last one did not.
      lost_answer = true;
      break;
    }
    ++continuations;
    spdlog::warn("the server has {} of {} bytes: {}", offset, size,
                 offset > 0 ? "sending the rest" : "sending the image again from its start");
  }
  if (!failed) show(size);
  view.Finish();
  if (failed) return cli::ReportError(*failed, json);
  if (lost_answer) {
    spdlog::warn("the server received all {} bytes, and its answer was lost with the connection: "
                 "check the volume's upload status (CDI: the PVC's upload phase)",
                 size);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (json) {
    std::printf("{\"event\":\"result\",\"image\":%s,\"bytes\":%llu,\"continuations\":%d,"
                "\"checksum\":%s,\"elapsed_seconds\":%.3f}\n",
                JsonString(options.image).c_str(), static_cast<unsigned long long>(size),
                continuations, JsonString(digest).c_str(), seconds);
  } else if (!options.quiet) {
    std::printf("Uploaded %s (%s) in %s%s\n", options.image.c_str(), HumanBytes(size).c_str(),
                HumanDuration(seconds).c_str(),
                continuations > 0
                    ? (", continued " + std::to_string(continuations) + " time(s)").c_str()
                    : "");
  }
  std::fflush(stdout);
  return cli::kExitOk;
}

}  // namespace cdi::upload
