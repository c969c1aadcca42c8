// The log layout of CDI's pods (klog's): "I0102 15:04:05.000000  pid name] message",
// on standard error, for the faces CDI's controller starts as pods.
#ifndef CDI_CMD_CLI_KLOG_LOGGING_H_
#define CDI_CMD_CLI_KLOG_LOGGING_H_

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cdi::cli {

// Makes spdlog's default logger write klog's layout as `name`, at debug from
// verbosity 3 (-v=3), and forwards the library's log lines into it.
void ConfigureKlogLogging(const std::string& name, int verbosity);

// Parses a pod face's arguments (already normalized by
// pod::NormalizeVerbosityArguments) with `app`. nullopt: go on; otherwise
// the exit code (0 after --help or --version, kExitUsage for bad flags,
// which CLI11 has explained on standard error).
std::optional<int> ParsePodArguments(CLI::App& app, std::vector<std::string> arguments);

}  // namespace cdi::cli

#endif  // CDI_CMD_CLI_KLOG_LOGGING_H_
