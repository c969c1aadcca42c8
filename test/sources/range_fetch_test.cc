// Fetching an image over several connections (ranged GETs in parallel, fed
// in order): byte-identical imports with 1, 2, 4 and 8 connections from
// nginx (raw, and qcow2 against qemu-img), the fall-backs to one GET, a part
// dropped mid-way that resumes on its own, a changed image that fails with
// nothing left, the bytes the server sent adding up to the image once, and
// the adaptive start: one GET while the reader is the bound, the parts once
// that one connection is.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cdi/import.h"
#include "sources/http/http_source.h"
#include "sources/http/range_fetch.h"
#include "sources/source.h"
#include "test/sources/source_test_util.h"
#include "test/support/files.h"
#include "test/support/http_server.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::importer {
namespace {

using std::chrono::milliseconds;
using test::FaultServer;
using test::NginxServer;
using testing::Fetch;
using testing::LogCapture;

constexpr size_t kImageSize = 3 * 1024 * 1024 + 4321;
// Parts of at most 1.5 MiB (64 KiB at least): every image here has several.
constexpr uint64_t kConnectionMemory = 1024 * 1024;

const std::string& ImageBytes() {
  static const std::string bytes = test::RandomBytes(kImageSize, 1601);
  return bytes;
}

SourceSpec Spec(const std::string& url, int connections) {
  SourceSpec spec;
  spec.url = url;
  spec.network.connections = connections;
  spec.network.connection_memory = kConnectionMemory;
  // The parts start after the first one, whoever is the bound (the adaptive
  // start has tests of its own below).
  spec.network.adaptive_connections = false;
  spec.network.retry_initial_delay = milliseconds(10);
  spec.network.retry_max_delay = milliseconds(40);
  spec.network.stall_window = std::chrono::seconds(2);
  return spec;
}

// The plan for an image of `size` bytes over `connections` at this file's
// memory (the first GET cut after its first bytes).
RangePlan PlanFor(int connections, uint64_t size = kImageSize) {
  const ImageIdentity identity{.length = size, .etag = "\"a\"", .accept_ranges = "bytes"};
  return *PlanRanges(Spec("http://127.0.0.1/", connections).network, size, identity);
}

// The ranged GETs of that plan.
size_t RangedParts(int connections, uint64_t size = kImageSize) {
  return connections == 1 ? 0 : PartBounds(PlanFor(connections, size)).size() - 1;
}

class RangeFetchTest : public ::testing::Test {
 protected:
  void SetUp() override { test::WriteFile(www_.File("disk.raw"), ImageBytes()); }

  // Imports `url` into a new file; the result and the file's path.
  Result<ImportResult> ImportTo(const SourceSpec& source, const std::string& name) {
    ImportSpec spec;
    spec.source = source;
    spec.targets.push_back({.path = out_.File(name)});
    return cdi::Import(spec);
  }

  test::TempDir www_;
  test::TempDir out_;
};

// ---------------------------------------------------------------------------
// The plan: when several connections are used, and the parts' size

TEST(PlanRangesTest, SeveralConnectionsOnlyForALargeImageWithRangesAndAValidator) {
  NetworkSettings network;  // 4 connections, 16 MiB
  const ImageIdentity good{.length = 100 << 20, .etag = "\"a\"", .accept_ranges = "bytes"};
  std::optional<RangePlan> plan = PlanRanges(network, 100 << 20, good);
  ASSERT_TRUE(plan.has_value());
  // The part being read may hold a sixteenth of the memory, the parts
  // ahead of it the rest; parts of 1.5 x that / 3, as the 3 parts ahead
  // hold about half of theirs in the steady state.
  EXPECT_EQ(plan->lead, 1u << 20);
  EXPECT_EQ(plan->ahead, 15u << 20);
  EXPECT_EQ(plan->part, (15u << 20) / 2);
  // The first GET goes on for a quarter of a part; the parts that start
  // with it are 2/4, 3/4 and 4/4 of a part, so the 4 connections end their
  // parts a quarter of a part apart; then parts of that size; the last
  // stretch (no more than 4 parts' worth) in 8, so that they end together.
  EXPECT_EQ(plan->first, plan->part / 4);
  const std::vector<uint64_t> bounds = PartBounds(*plan);
  ASSERT_GE(bounds.size(), 13u);
  EXPECT_EQ(bounds.front(), plan->first);
  EXPECT_EQ(bounds.back(), 100u << 20);
  for (uint64_t k = 2; k <= 4; ++k) EXPECT_EQ(bounds[k - 1] - bounds[k - 2], plan->part * k / 4);
  const size_t whole_end = bounds.size() - 1 - 8;
  for (size_t i = 4; i <= whole_end; ++i) EXPECT_EQ(bounds[i] - bounds[i - 1], plan->part) << i;
  const uint64_t last = bounds.back() - bounds[whole_end];
  EXPECT_LE(last, 4 * plan->part);
  EXPECT_GT(last, 3 * plan->part);
  for (size_t i = whole_end + 1; i < bounds.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(bounds[i] - bounds[i - 1]), last / 8.0, 1.0) << i;
  }
  EXPECT_EQ(plan->end, 100u << 20);
  EXPECT_EQ(plan->connections, 4);

  EXPECT_FALSE(PlanRanges(network, std::nullopt, good).has_value());  // length unknown
  EXPECT_FALSE(PlanRanges(network, 16 << 20, good).has_value());      // within the memory
  ImageIdentity no_ranges = good;
  no_ranges.accept_ranges = "none";
  EXPECT_FALSE(PlanRanges(network, 100 << 20, no_ranges).has_value());
  no_ranges.accept_ranges = "";
  EXPECT_FALSE(PlanRanges(network, 100 << 20, no_ranges).has_value());
  ImageIdentity weak = good;
  weak.etag = "W/\"a\"";
  EXPECT_FALSE(PlanRanges(network, 100 << 20, weak).has_value());
  weak.last_modified = "Sat, 05 Dec 2026 10:00:00 GMT";
  EXPECT_TRUE(PlanRanges(network, 100 << 20, weak).has_value());
  NetworkSettings one = network;
  one.connections = 1;
  EXPECT_FALSE(PlanRanges(one, 100 << 20, good).has_value());
  NetworkSettings small = network;
  small.connections = 64;
  small.connection_memory = 1 << 20;
  ASSERT_TRUE(PlanRanges(small, 100 << 20, good).has_value());
  EXPECT_EQ(PlanRanges(small, 100 << 20, good)->part, kMinRangePart);
}

// ---------------------------------------------------------------------------
// Byte-identical whatever the number of connections

TEST_F(RangeFetchTest, RawAndQcow2AreByteIdenticalOverOneTwoFourAndEightConnections) {
  // A qcow2 of 6 MiB virtual with data here and there, and qemu-img's own
  // reading of it.
  std::string guest(6 * 1024 * 1024, '\0');
  for (size_t at = 0; at < guest.size(); at += 640 * 1024) {
    guest.replace(at, 300 * 1024, test::RandomBytes(300 * 1024, static_cast<uint32_t>(at)));
  }
  test::WriteFile(out_.File("guest.raw"), guest);
  ASSERT_EQ(test::Run({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", out_.File("guest.raw"),
                       www_.File("disk.qcow2")})
                .exit_code,
            0);
  ASSERT_GT(test::FileSize(www_.File("disk.qcow2")), 2 * kConnectionMemory);
  const std::string expected_raw = test::Sha256Bytes(ImageBytes());
  const std::string expected_qcow2 = test::Sha256Bytes(guest);

  const uint64_t qcow2_size = test::FileSize(www_.File("disk.qcow2"));
  for (int connections : {1, 2, 4, 8}) {
    SCOPED_TRACE(connections);
    NginxServer server({.root = www_.path()});
    LogCapture log;
    Result<ImportResult> raw = ImportTo(Spec(server.Url("/disk.raw"), connections), "raw");
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    EXPECT_EQ(test::Sha256File(out_.File("raw")), expected_raw);
    Result<ImportResult> qcow2 = ImportTo(Spec(server.Url("/disk.qcow2"), connections), "qcow2");
    ASSERT_TRUE(qcow2.ok()) << qcow2.status().ToString();
    EXPECT_EQ(test::Sha256File(out_.File("qcow2")), expected_qcow2);
    test::Sh("rm -f " + out_.File("raw") + " " + out_.File("qcow2"));

    // One GET with one connection; with more, the first GET and a range for
    // each part after its first.
    const size_t raw_parts = RangedParts(connections);
    const size_t qcow2_parts = RangedParts(connections, qcow2_size);
    size_t raw_ranges = 0;
    size_t qcow2_ranges = 0;
    for (const auto& entry : server.WaitForRequests(2 + raw_parts + qcow2_parts)) {
      if (entry.range.empty()) continue;
      EXPECT_EQ(entry.status, 206);
      ++(entry.uri == "/disk.raw" ? raw_ranges : qcow2_ranges);
    }
    EXPECT_EQ(raw_ranges, raw_parts);
    EXPECT_EQ(qcow2_ranges, qcow2_parts);
    EXPECT_EQ(log.text().find("over " + std::to_string(connections) + " connections") !=
                  std::string::npos,
              connections > 1)
        << log.text();
  }
}

TEST_F(RangeFetchTest, ThePartsHoldNoMoreThanTheirMemoryWhileTheReaderIsSlow) {
  // nginx on 127.0.0.1 sends faster than this reader takes: the parts ahead
  // fill the memory and wait for it, several times the memory in all.
  NginxServer server({.root = www_.path()});
  LogCapture log;
  Result<std::unique_ptr<ByteSource>> source = OpenSource(Spec(server.Url("/disk.raw"), 4), nullptr);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  std::string body;
  std::vector<uint8_t> buffer(64 * 1024);
  while (true) {
    Result<size_t> n = (*source)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    body.append(reinterpret_cast<const char*>(buffer.data()), *n);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  source->reset();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  const std::string text = log.text();
  const size_t at = text.find("The parts held at most ");
  ASSERT_NE(at, std::string::npos) << text;
  const uint64_t peak = std::stoull(text.substr(at + 23));
  EXPECT_LE(peak, kConnectionMemory);
  EXPECT_GE(peak, kConnectionMemory - kConnectionMemory / 16);  // they did fill it
}

// ---------------------------------------------------------------------------
// Fall-backs to one GET

TEST_F(RangeFetchTest, AServerWithoutRangesGetsOneGet) {
  FaultServer server(www_.path(), R"({"/disk.raw": {"ranges": false}})");
  std::string body;
  ASSERT_TRUE(Fetch(Spec(server.Url("/disk.raw"), 4), &body).ok());
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].HasHeader("range"));
}

TEST_F(RangeFetchTest, AnImageWithoutValidatorOrLengthGetsOneGet) {
  FaultServer server(www_.path(), R"({"/plain": {"file": "disk.raw", "etag": false,
                                                 "last_modified": false},
                                      "/weak": {"file": "disk.raw", "etag": "W/\"w\"",
                                                "last_modified": false},
                                      "/chunked": {"file": "disk.raw", "chunked": true}})");
  for (const char* path : {"/plain", "/weak", "/chunked"}) {
    SCOPED_TRACE(path);
    std::string body;
    ASSERT_TRUE(Fetch(Spec(server.Url(path), 4), &body).ok());
    EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
    EXPECT_EQ(server.RequestsFor(path).size(), 1u);
  }
}

TEST_F(RangeFetchTest, AnImageWithinTheConnectionsMemoryGetsOneGet) {
  FaultServer server(www_.path());
  SourceSpec spec = Spec(server.Url("/disk.raw"), 4);
  spec.network.connection_memory = 4 * 1024 * 1024;
  std::string body;
  ASSERT_TRUE(Fetch(spec, &body).ok());
  EXPECT_EQ(body.size(), kImageSize);
  EXPECT_EQ(server.RequestsFor("/disk.raw").size(), 1u);
}

TEST_F(RangeFetchTest, AServerAnsweringAPartWithTheWholeImageFailsClearly) {
  // Accept-Ranges announced, ranges not served.
  FaultServer server(www_.path(), R"({"/disk.raw": {"ranges": false,
                                                    "headers": {"Accept-Ranges": "bytes"}}})");
  std::string body;
  Status status = Fetch(Spec(server.Url("/disk.raw"), 4), &body);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_NE(status.message().find("with the whole image"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("--connections 1"), std::string::npos) << status.message();
}

TEST_F(RangeFetchTest, ConnectionsOutsideOneToSixtyFourAreRefused) {
  for (int connections : {0, -1, 65}) {
    Status status = Fetch(Spec("http://127.0.0.1:9/disk.raw", connections));
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << connections;
    EXPECT_NE(status.message().find("connections"), std::string::npos) << status.message();
  }
}

// ---------------------------------------------------------------------------
// Faults within parts

TEST_F(RangeFetchTest, DroppedPartsResumeOnTheirOwnAndNothingIsFetchedTwice) {
  // Every response closes after 100000 bytes: each part of 384 KiB (an
  // eighth of the image) takes four requests, each resuming where the last
  // stopped.
  FaultServer server(www_.path(), R"({"/disk.raw": {"etag": "\"v1\"", "close_every": 100000}})");
  LogCapture log;
  std::string body;
  Status status = Fetch(Spec(server.Url("/disk.raw"), 4), &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));

  const RangePlan plan = PlanFor(4);
  ASSERT_EQ(plan.part, kImageSize / 8);
  const std::vector<uint64_t> bounds = PartBounds(plan);
  std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
  size_t resumed_parts = 0;
  for (size_t i = 1; i < requests.size(); ++i) {
    const std::string range = requests[i].Header("range");
    ASSERT_FALSE(range.empty());
    EXPECT_EQ(requests[i].Header("if-range"), "\"v1\"");
    // "bytes=A-B": B + 1 is a part's end (or, for the first GET's resumes,
    // the range is open).
    const size_t dash = range.find('-');
    const std::string last = range.substr(dash + 1);
    if (last.empty()) continue;
    const uint64_t end = std::stoull(last) + 1;
    EXPECT_TRUE(std::binary_search(bounds.begin() + 1, bounds.end(), end)) << range;
    const uint64_t first = std::stoull(range.substr(6, dash - 6));
    if (!std::binary_search(bounds.begin(), bounds.end(), first)) ++resumed_parts;
  }
  // Each part of more than 100000 bytes resumed at least once.
  size_t long_parts = 0;
  for (size_t i = 1; i < bounds.size(); ++i) long_parts += bounds[i] - bounds[i - 1] > 100000;
  EXPECT_GE(long_parts, 4u);
  EXPECT_GE(resumed_parts, long_parts);
  // Every body byte the server sent: the image once, and at most what the
  // cut first GET sent past its part (one response of 100000 bytes).
  const uint64_t sent = server.BytesSent("/disk.raw", requests.size());
  EXPECT_GE(sent, kImageSize);
  EXPECT_LE(sent, kImageSize + 100000);
}

TEST_F(RangeFetchTest, ImageChangingBetweenPartsFailsWithNothingLeft) {
  // The first GET and one part see ETag v1; later parts ask If-Range v1 of
  // an image now tagged v2 and get the whole new image.
  FaultServer server(www_.path(), R"({"/disk.raw": {"etag": "\"v1\"", "times": 2,
                                                    "then": {"etag": "\"v2\""}}})");
  Result<ImportResult> result = ImportTo(Spec(server.Url("/disk.raw"), 4), "disk.img");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), ErrorCode::kNetwork);
  EXPECT_NE(result.status().message().find("changed while it was being downloaded"),
            std::string::npos)
      << result.status().message();
  EXPECT_NE(result.status().message().find("\"v2\""), std::string::npos)
      << result.status().message();
  EXPECT_TRUE(test::ListDir(out_.path()).empty());
}

TEST_F(RangeFetchTest, BytesSentByNginxAddUpToTheImage) {
  NginxServer server({.root = www_.path()});
  std::string body;
  ASSERT_TRUE(Fetch(Spec(server.Url("/disk.raw"), 4), &body).ok());
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  const uint64_t first_part = PlanFor(4).first;
  const size_t requests = 1 + RangedParts(4);
  uint64_t ranged = 0;
  uint64_t first = 0;
  for (const auto& entry : server.WaitForRequests(requests)) {
    if (entry.range.empty()) {
      first += entry.body_bytes;
    } else {
      EXPECT_EQ(entry.status, 206);
      ranged += entry.body_bytes;
    }
  }
  // The parts: the image after the first part, once.
  EXPECT_EQ(ranged, kImageSize - first_part);
  // The cut first GET: its part, and what was in flight when it was cut
  // (over loopback the socket buffers hold all of a small image; over a
  // network, the TCP window), never more than the image.
  EXPECT_GE(first, first_part);
  EXPECT_LE(first, kImageSize);
}

// ---------------------------------------------------------------------------
// The adaptive start (the default)

TEST_F(RangeFetchTest, AdaptiveStaysOnOneGetWhileTheReaderIsTheBound) {
  // 12 MiB, three times the HTTP buffer, read slower than nginx on
  // 127.0.0.1 sends it: the one GET keeps waiting for the reader.
  const std::string big = test::RandomBytes(12 * 1024 * 1024 + 5, 1603);
  test::WriteFile(www_.File("big.raw"), big);
  NginxServer server({.root = www_.path()});
  SourceSpec spec = Spec(server.Url("/big.raw"), 4);
  spec.network.adaptive_connections = true;
  LogCapture log;
  Result<std::unique_ptr<ByteSource>> source = OpenSource(spec, nullptr);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  std::string body;
  std::vector<uint8_t> buffer(256 * 1024);
  while (true) {
    Result<size_t> n = (*source)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    body.append(reinterpret_cast<const char*>(buffer.data()), *n);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(big));
  std::vector<test::AccessLogEntry> requests = server.WaitForRequests(1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].range.empty());
  EXPECT_EQ(log.text().find("connections"), std::string::npos) << log.text();
}

TEST_F(RangeFetchTest, AdaptiveFetchesTheRestInPartsOnceOneConnectionIsTheBound) {
  // The first GET trickles (about 3 MB/s), the ranged parts do not: the
  // reader waits on that one connection, so the rest comes in parts, each
  // byte of the image once.
  FaultServer server(www_.path(), R"({"/disk.raw": {"etag": "\"v1\"", "times": 1,
      "trickle": {"bytes": 16384, "interval": 0.005}, "then": {"etag": "\"v1\""}}})");
  SourceSpec spec = Spec(server.Url("/disk.raw"), 4);
  spec.network.adaptive_connections = true;
  LogCapture log;
  std::string body;
  Status status = Fetch(spec, &body);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(test::Sha256Bytes(body), test::Sha256Bytes(ImageBytes()));
  EXPECT_NE(log.text().find("One connection was the bound: "), std::string::npos)
      << log.text();
  EXPECT_NE(log.text().find("over 4 connections"), std::string::npos) << log.text();

  // The parts: contiguous ranges from where the first GET was cut to the
  // image's end, each asked once with If-Range.
  std::vector<test::RecordedRequest> requests = server.RequestsFor("/disk.raw");
  ASSERT_GE(requests.size(), 3u);
  EXPECT_TRUE(requests[0].Header("range").empty());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t i = 1; i < requests.size(); ++i) {
    const std::string range = requests[i].Header("range");
    ASSERT_EQ(range.rfind("bytes=", 0), 0u) << range;
    EXPECT_EQ(requests[i].Header("if-range"), "\"v1\"");
    const size_t dash = range.find('-');
    ranges.emplace_back(std::stoull(range.substr(6, dash - 6)),
                        std::stoull(range.substr(dash + 1)) + 1);
  }
  std::sort(ranges.begin(), ranges.end());
  EXPECT_GT(ranges.front().first, 0u);
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_EQ(ranges[i].first, ranges[i - 1].second);
  EXPECT_EQ(ranges.back().second, kImageSize);
}

}  // namespace
}  // namespace cdi::importer
