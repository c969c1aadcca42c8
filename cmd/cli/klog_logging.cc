#include "cmd/cli/klog_logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "cdi/spdlog.h"
#include "cmd/cli/exit_codes.h"

namespace cdi::cli {

void ConfigureKlogLogging(const std::string& name, int verbosity) {
  auto logger =
      std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%L%m%d %H:%M:%S.%f %7P " + name + "] %v");
  const spdlog::level::level_enum level = verbosity >= 3 ? spdlog::level::debug : spdlog::level::info;
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  ForwardLogsToSpdlog(level);
}

std::optional<int> ParsePodArguments(CLI::App& app, std::vector<std::string> arguments) {
  std::reverse(arguments.begin(), arguments.end());  // CLI11 takes a vector back to front
  try {
    app.parse(arguments);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace cdi::cli
