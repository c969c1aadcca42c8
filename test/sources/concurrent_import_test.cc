// Several cdi::Import calls at once in one process (as `cdi-image apply
// --max-parallel` runs them): each with its own faults, retries and resumes,
// each byte-identical. Run under the sanitizers with the module suites.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cdi/import.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/log_capture.h"
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

// Two imports into one path in one process: the second is refused before it
// reads anything, and the first completes with its own bytes.
TEST(ConcurrentImportTest, SecondImportIntoTheSamePathIsRefused) {
  test::TempDir www;
  test::TempDir out;
  const std::string image = test::RandomBytes(4 << 20, 120);
  test::WriteFile(www.File("disk.raw"), image);
  const std::string gate = out.File("gate");
  test::FaultServer server(www.path(), R"({"/gated": {"file": "disk.raw", "gate": {"after":
                                           1048576, "file": ")" + gate + R"("}}})");
  test::TempDir volume;
  const std::string target = volume.File("disk.img");
  Result<ImportResult> first = Status(ErrorCode::kInternal, "not run");
  std::thread thread([&] {
    ImportSpec spec;
    spec.source.url = server.Url("/gated");
    spec.targets.push_back({.path = target});
    first = Import(spec);
  });
  while (server.RequestsFor("/gated").empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ImportSpec spec;
  spec.source.url = server.Url("/disk.raw");
  spec.targets.push_back({.path = target, .existing = ExistingFile::kReplace});
  Result<ImportResult> second = Import(spec);
  EXPECT_EQ(second.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(second.status().message(),
            target + " is being written by another import (it holds " +
                volume.File(".disk.img.partial") +
                "); only one import may write a target at a time: wait for that import to end, "
                "or stop it, then try again");
  EXPECT_TRUE(server.RequestsFor("/disk.raw").empty());
  test::WriteFile(gate, "");
  thread.join();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(test::Sha256File(target), test::Sha256Bytes(image));
  EXPECT_EQ(test::ListDir(volume.path()), std::vector<std::string>{"disk.img"});
}

// One download onto many targets (a pool's replicas) divides the memory
// budget among them: each gets a share of the direct I/O buffers, and every
// disk still receives the whole image.
TEST(ConcurrentImportTest, ManyTargetsShareTheMemoryBudget) {
  test::TempDir dir;
  const std::string image = test::RandomBytes(2 << 20, 121);
  test::WriteFile(dir.File("disk.raw"), image);
  ImportSpec spec;
  spec.source.url = dir.File("disk.raw");
  for (int i = 0; i < 64; ++i) {
    spec.targets.push_back({.path = dir.File("disk" + std::to_string(i) + ".img")});
  }
  test::LogCapture log("%v");
  Result<ImportResult> result = Import(spec);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // A quarter of the default 64 MiB budget, over 64 targets: 256 KiB each.
  EXPECT_NE(log.text().find("64 targets: up to 262144 bytes of direct I/O buffers and a "
                            "524288-byte writeback window each"),
            std::string::npos)
      << log.text();
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(test::Sha256File(dir.File("disk" + std::to_string(i) + ".img")),
              test::Sha256Bytes(image))
        << i;
  }
}

}  // namespace
}  // namespace cdi
