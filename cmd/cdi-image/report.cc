#include "cmd/cdi-image/report.h"

#include <algorithm>
#include <cstdio>

#include "cmd/cli/exit_codes.h"
#include "cdi/text.h"

namespace cdi::apply {
namespace {


std::string Chain(const std::vector<std::string>& chain) {
  std::string text;
  for (const auto& layer : chain) text += (text.empty() ? "" : " > ") + layer;
  return text;
}

// Left-aligned columns, two spaces apart, no trailing spaces.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string text;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(widths[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line + "\n";
  }
  return text;
}

const char* ModeName(VolumeMode mode) {
  return mode == VolumeMode::kBlock ? "Block" : "Filesystem";
}

const char* RuleName(SizeRule rule) {
  switch (rule) {
    case SizeRule::kPvc:
      return "pvc";
    case SizeRule::kStorage:
      return "storage";
    case SizeRule::kStorageImage:
      return "storage-image";
  }
  return "unknown";
}

std::string OptionalBytes(const std::optional<uint64_t>& bytes) {
  return bytes ? HumanBytes(*bytes) : "-";
}

std::string JsonBytes(const std::optional<uint64_t>& bytes) {
  return bytes ? std::to_string(*bytes) : "null";
}

std::string Seconds(std::chrono::nanoseconds elapsed) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", std::chrono::duration<double>(elapsed).count());
  return text;
}

std::string Decimal(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

std::string Declared(const DataVolumePlan& dv) {
  std::string text = dv.declared_in.ToString();
  if (!dv.field.empty()) text += " " + dv.field;
  return text + " (" + dv.declared_in.file + ":" + std::to_string(dv.line) + ")";
}

}  // namespace

std::string PlanText(const Plan& plan) {
  std::string text = std::to_string(plan.data_volumes.size()) +
                     (plan.data_volumes.size() == 1 ? " DataVolume" : " DataVolumes") + " from " +
                     std::to_string(plan.downloads.size()) +
                     (plan.downloads.size() == 1 ? " download" : " downloads") + "\n";
  for (size_t d = 0; d < plan.downloads.size(); ++d) {
    const DownloadPlan& download = plan.downloads[d];
    text += "\ndownload #" + std::to_string(d + 1) + ": " + download.display_url + "\n";
    text += "  declared by " + download.origin + "\n";
    for (const std::string& line : download.security) text += "  tls: " + line + "\n";
    if (!download.checksum.empty()) text += "  checksum: " + download.checksum + "\n";
    text += "  into " + std::to_string(download.data_volumes.size()) +
            (download.data_volumes.size() == 1 ? " DataVolume" : " DataVolumes") + ", read once\n";
  }
  std::vector<std::vector<std::string>> rows = {
      {"DATAVOLUME", "DOWNLOAD", "MODE", "TARGET", "REQUESTED", "PVC", "USABLE", "DECLARED IN"}};
  for (const DataVolumePlan& dv : plan.data_volumes) {
    rows.push_back(
        {dv.QualifiedName(), "#" + std::to_string(dv.download + 1), ModeName(dv.volume_mode),
         dv.target, OptionalBytes(dv.requested) + " (" + RuleName(dv.size_rule) + ")",
         OptionalBytes(dv.pvc_size),
         dv.usable_size ? HumanBytes(*dv.usable_size)
                        : std::string(dv.size_rule == SizeRule::kStorageImage ? "image size" : "-"),
         Declared(dv)});
  }
  return text + "\n" + Table(rows);
}

std::string SummaryTable(const Plan& plan, const std::vector<Outcome>& outcomes) {
  std::vector<std::vector<std::string>> rows = {
      {"DATAVOLUME", "PVC PATH", "IMAGE", "VIRTUAL SIZE", "WRITTEN", "TIME", "RESULT"}};
  std::string failures;
  for (size_t i = 0; i < plan.data_volumes.size() && i < outcomes.size(); ++i) {
    const DataVolumePlan& dv = plan.data_volumes[i];
    const Outcome& outcome = outcomes[i];
    const double seconds = std::chrono::duration<double>(outcome.elapsed).count();
    if (outcome.status.ok() && outcome.result) {
      rows.push_back({dv.QualifiedName(), dv.target, Chain(outcome.result->format_chain),
                      HumanBytes(outcome.result->virtual_size),
                      HumanBytes(outcome.result->bytes_written), HumanDuration(seconds),
                      "ok"});
      continue;
    }
    const std::string code(ErrorCodeName(outcome.status.code()));
    rows.push_back({dv.QualifiedName(), dv.target, "-", "-", "-",
                    outcome.attempted ? HumanDuration(seconds) : "-",
                    "failed (" + code + ")"});
    failures += dv.QualifiedName() + ": " + outcome.status.message() + "\n";
  }
  std::string text = Table(rows);
  if (!failures.empty()) text += "\n" + failures;
  return text;
}

std::string ReportJson(const Plan& plan, const std::vector<Outcome>& outcomes,
                       const Problems& problems, RunMode mode, int exit_code) {
  std::string json = std::string("{\"dry_run\":") + (mode == RunMode::kDryRun ? "true" : "false") +
                     ",\"exit_code\":" + std::to_string(exit_code) + ",\"downloads\":[";
  for (size_t d = 0; d < plan.downloads.size(); ++d) {
    const DownloadPlan& download = plan.downloads[d];
    json += (d ? "," : "") + std::string("{\"url\":") + JsonString(download.display_url) +
            ",\"declared_by\":" + JsonString(download.origin) + ",\"tls\":[";
    for (size_t i = 0; i < download.security.size(); ++i) {
      json += (i ? "," : "") + JsonString(download.security[i]);
    }
    json += "],\"checksum\":" + JsonString(download.checksum) + ",\"data_volumes\":[";
    for (size_t i = 0; i < download.data_volumes.size(); ++i) {
      json +=
          (i ? "," : "") + JsonString(plan.data_volumes[download.data_volumes[i]].QualifiedName());
    }
    json += "]}";
  }
  json += "],\"data_volumes\":[";
  for (size_t i = 0; i < plan.data_volumes.size(); ++i) {
    const DataVolumePlan& dv = plan.data_volumes[i];
    json += (i ? "," : "") + std::string("{\"namespace\":") + JsonString(dv.ns) +
            ",\"name\":" + JsonString(dv.name) +
            ",\"declared_in\":" + JsonString(dv.declared_in.ToString()) +
            ",\"field\":" + JsonString(dv.field) + ",\"file\":" + JsonString(dv.declared_in.file) +
            ",\"line\":" + std::to_string(dv.line) +
            ",\"replica\":" + (dv.replica >= 0 ? std::to_string(dv.replica) : "null") +
            ",\"download\":" + std::to_string(dv.download + 1) +
            ",\"volume_mode\":" + JsonString(ModeName(dv.volume_mode)) +
            ",\"size_rule\":" + JsonString(RuleName(dv.size_rule)) +
            ",\"target\":" + JsonString(dv.target) +
            ",\"requested_bytes\":" + JsonBytes(dv.requested) +
            ",\"pvc_bytes\":" + JsonBytes(dv.pvc_size) +
            ",\"filesystem_overhead\":" + Decimal(dv.filesystem_overhead) +
            ",\"usable_bytes\":" + JsonBytes(dv.usable_size);
    if (i < outcomes.size()) {
      const Outcome& outcome = outcomes[i];
      if (outcome.status.ok() && outcome.result) {
        const ImportResult& r = *outcome.result;
        json += ",\"result\":\"ok\",\"format_chain\":[";
        for (size_t c = 0; c < r.format_chain.size(); ++c) {
          json += (c ? "," : "") + JsonString(r.format_chain[c]);
        }
        json += "],\"virtual_size\":" + std::to_string(r.virtual_size) +
                ",\"target_size\":" + std::to_string(outcome.target_size) +
                ",\"bytes_read\":" + std::to_string(r.bytes_read) +
                ",\"bytes_written\":" + std::to_string(r.bytes_written) +
                ",\"bytes_zero\":" + std::to_string(r.bytes_zero) +
                ",\"checksum\":" + JsonString(r.checksum) +
                ",\"elapsed_seconds\":" + Seconds(outcome.elapsed);
      } else {
        json += ",\"result\":\"failed\",\"error\":{\"code\":" +
                JsonString(ErrorCodeName(outcome.status.code())) +
                ",\"exit_code\":" + std::to_string(cli::ExitCodeFor(outcome.status.code())) +
                ",\"message\":" + JsonString(outcome.status.message()) + "}" +
                ",\"elapsed_seconds\":" + Seconds(outcome.elapsed);
      }
    }
    json += "}";
  }
  json += "],\"problems\":[";
  for (size_t i = 0; i < problems.list().size(); ++i) {
    const Problem& p = problems.list()[i];
    json += (i ? "," : "") + std::string("{\"file\":") + JsonString(p.file) +
            ",\"line\":" + std::to_string(p.line) + ",\"object\":" + JsonString(p.object) +
            ",\"field\":" + JsonString(p.field) + ",\"message\":" + JsonString(p.message) +
            ",\"text\":" + JsonString(p.ToString()) + "}";
  }
  json += "],\"notes\":[";
  for (size_t i = 0; i < plan.notes.size(); ++i) json += (i ? "," : "") + JsonString(plan.notes[i]);
  return json + "]}";
}

int ExitCodeOf(const std::vector<Outcome>& outcomes) {
  for (const Outcome& outcome : outcomes) {
    if (!outcome.status.ok()) return cli::ExitCodeFor(outcome.status.code());
  }
  return cli::kExitOk;
}

}  // namespace cdi::apply
