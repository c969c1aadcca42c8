// Several cdi::Import calls at once in one process (as `cdi-image apply
// --max-parallel` runs them): each with its own faults, retries and resumes,
// each byte-identical. Run under the sanitizers with the module suites.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cdi/import.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/temp_dir.h"

namespace cdi {
namespace {

TEST(ConcurrentImportTest, ParallelImportsWithFaultsAreEachByteIdentical) {
  test::TempDir www;
  test::TempDir out;
  constexpr int kImports = 6;
  std::vector<std::string> images;
  for (int i = 0; i < kImports; ++i) {
    images.push_back(test::RandomBytes(3 * 1024 * 1024 + 1000 * i, 100 + i));
    test::WriteFile(www.File("disk" + std::to_string(i) + ".raw"), images.back());
  }
  // A different trouble for each: drops, resets, a stall, refusals, all at once.
  test::FaultServer server(www.path(), R"({
      "/0": {"file": "disk0.raw", "close_every": 700000},
      "/1": {"file": "disk1.raw", "reset_after": 1000000, "times": 1},
      "/2": {"file": "disk2.raw", "stall_after": 1500000, "times": 1},
      "/3": {"file": "disk3.raw", "status": 503, "times": 2},
      "/4": {"file": "disk4.raw", "ranges": false, "close_after": 2000000, "times": 1,
             "then": {"file": "disk4.raw", "ranges": false}},
      "/5": {"file": "disk5.raw"}})");

  std::vector<Result<ImportResult>> results(kImports, Status(ErrorCode::kInternal, "not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kImports; ++i) {
    threads.emplace_back([&, i] {
      ImportSpec spec;
      spec.source.url = server.Url("/" + std::to_string(i));
      spec.source.network.retry_initial_delay = std::chrono::milliseconds(10);
      spec.source.network.stall_window = std::chrono::seconds(1);
      spec.targets.push_back({.path = out.File("disk" + std::to_string(i) + ".img")});
      results[i] = Import(spec);
    });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kImports; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status().ToString();
    EXPECT_EQ(results[i]->bytes_read, images[i].size()) << i;
    EXPECT_EQ(test::Sha256File(out.File("disk" + std::to_string(i) + ".img")),
              test::Sha256Bytes(images[i]))
        << i;
  }
  EXPECT_GE(server.RequestsFor("/0").size(), 5u);
  EXPECT_EQ(server.RequestsFor("/3").size(), 3u);
  EXPECT_EQ(server.RequestsFor("/5").size(), 1u);
}

}  // namespace
}  // namespace cdi
