// The library logs through a logger of its own: a host program that links it
// and uses spdlog keeps its default logger, its registry and its level.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "cdi/import.h"
#include "cdi/spdlog.h"
#include "test/support/temp_dir.h"

namespace cdi {
namespace {

class HostLogger {
 public:
  HostLogger() : previous_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>(
        "host", std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_));
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~HostLogger() { spdlog::set_default_logger(previous_); }
  std::string text() const { return stream_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
};

Result<ImportResult> ImportSmallFile(const test::TempDir& dir) {
  {
    std::ofstream image(dir.File("image.raw"), std::ios::binary);
    image << std::string(1 << 20, 'x');
  }
  ImportSpec spec;
  spec.source.url = dir.File("image.raw");
  spec.targets.push_back({.path = dir.File("disk.img")});
  return Import(spec);
}

TEST(LoggerTest, TheHostDefaultLoggerIsLeftAlone) {
  HostLogger host;
  std::mutex mutex;
  std::vector<std::string> lines;
  SetLogHandler(
      [&](LogLevel, std::string_view line) {
        std::lock_guard<std::mutex> lock(mutex);
        lines.emplace_back(line);
      },
      LogLevel::kDebug);
  test::TempDir dir;
  auto result = ImportSmallFile(dir);
  SetLogHandler(nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();

  // The library's lines reached the handler...
  bool importing = false;
  for (const auto& line : lines) importing |= line.find("Importing") != std::string::npos;
  EXPECT_TRUE(importing) << "no \"Importing\" line among " << lines.size() << " lines";
  // ...and nothing reached the host's logger, which is still the default.
  EXPECT_EQ(host.text(), "");
  EXPECT_EQ(spdlog::default_logger()->name(), "host");
  // The library registers no logger of its own with spdlog.
  EXPECT_EQ(spdlog::get("cdi"), nullptr);
}

TEST(LoggerTest, WithoutAHandlerTheHostLoggerStillHearsNothing) {
  HostLogger host;
  test::TempDir dir;
  testing::internal::CaptureStderr();
  auto result = ImportSmallFile(dir);
  std::string standard_error = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(host.text(), "");
  // The library's own default goes to standard error, marked as its own.
  EXPECT_NE(standard_error.find("[cdi] [info] Importing"), std::string::npos) << standard_error;
}

TEST(LoggerTest, ForwardedLinesReachTheHostLoggerAtTheirLevel) {
  HostLogger host;
  ForwardLogsToSpdlog(spdlog::level::info);
  test::TempDir dir;
  auto result = ImportSmallFile(dir);
  SetLogHandler(nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // The host's logger prints "[level] line" (HostLogger's pattern is spdlog's
  // default, which names the level): the import's info lines arrive as info.
  EXPECT_NE(host.text().find("[info] Importing"), std::string::npos) << host.text();
  // Debug lines stay below the level asked for.
  EXPECT_EQ(host.text().find("[debug]"), std::string::npos) << host.text();
}

TEST(LoggerTest, LevelsMapBothWays) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    EXPECT_EQ(FromSpdlogLevel(ToSpdlogLevel(level)), level);
  }
  EXPECT_EQ(FromSpdlogLevel(spdlog::level::trace), LogLevel::kDebug);
  EXPECT_EQ(FromSpdlogLevel(spdlog::level::critical), LogLevel::kError);
}

}  // namespace
}  // namespace cdi
