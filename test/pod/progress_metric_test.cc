// The progress metric and its HTTPS endpoint, read the way CDI's controller
// reads it.
#include "pod/progress_metric.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pod/metrics_server.h"
#include "test/support/controller_scrape.h"
#include "test/support/files.h"
#include "test/support/process.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

using pod::FormatPercent;
using pod::ProgressMetric;

std::string Scrape(const std::string& body, const std::string& owner_uid) {
  return ControllerProgress(body, owner_uid);
}

TEST(ProgressMetric, ValuesAreFixedPointDecimals) {
  EXPECT_EQ(FormatPercent(0), "0");
  EXPECT_EQ(FormatPercent(-3), "0");
  EXPECT_EQ(FormatPercent(12.5), "12.5");
  EXPECT_EQ(FormatPercent(100), "100");
  EXPECT_EQ(FormatPercent(100.0 / 3), "33.333333333333336");
  // Go would print 1e-05, which the controller reads as "1".
  EXPECT_EQ(FormatPercent(0.00001), "0.00001");
}

TEST(ProgressMetric, ExpositionIsWhatTheControllerMatches) {
  ProgressMetric metric("6a8f7c2e-1b2d-4e5f-9a0b-123456789abc");
  EXPECT_EQ(metric.Exposition(),
            "# HELP kubevirt_cdi_import_progress_total The import progress in percentage\n"
            "# TYPE kubevirt_cdi_import_progress_total counter\n"
            "kubevirt_cdi_import_progress_total{ownerUID=\"6a8f7c2e-1b2d-4e5f-9a0b-123456789abc\"}"
            " 0\n");
  metric.Update(0.4567);
  EXPECT_EQ(Scrape(metric.Exposition(), "6a8f7c2e-1b2d-4e5f-9a0b-123456789abc"), "45.67");
}

TEST(ProgressMetric, NeverGoesBackNorPast100) {
  ProgressMetric metric("uid");
  metric.Update(0.5);
  metric.Update(0.25);
  metric.Update(std::nullopt);
  EXPECT_DOUBLE_EQ(metric.percent(), 50);
  metric.Update(7.0);
  EXPECT_DOUBLE_EQ(metric.percent(), 100);
}

TEST(ProgressMetric, LabelValuesAreEscaped) {
  ProgressMetric metric("a\"b\\c\nd");
  EXPECT_NE(metric.Exposition().find("{ownerUID=\"a\\\"b\\\\c\\nd\"}"), std::string::npos);
}

TEST(ListenAddress, Forms) {
  auto any = pod::ParseListenAddress(":8443");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->host, "");
  EXPECT_EQ(any->port, 8443);
  auto v4 = pod::ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  auto v6 = pod::ParseListenAddress("[::1]:9");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"8443", "host:", "host:http", ":70000", "::1:80"}) {
    auto parsed = pod::ParseListenAddress(bad);
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("expected host:port"), std::string::npos);
  }
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = pod::MetricsServer::Start("127.0.0.1:0", [this] { return metric_.Exposition(); });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    base_ = "https://127.0.0.1:" + std::to_string(server_->port());
  }
  RunResult Curl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"curl", "-sS", "-k", "--max-time", "20"};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::Run(argv);
  }
  ProgressMetric metric_{"owner-1"};
  std::unique_ptr<pod::MetricsServer> server_;
  std::string base_;
};

TEST_F(MetricsServerTest, ServesTheMetricOverTlsWithASelfSignedCertificate) {
  metric_.Update(0.125);
  RunResult r = Curl({"-v", base_ + "/metrics"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Scrape(r.out, "owner-1"), "12.5");
  EXPECT_NE(r.out.find("# TYPE kubevirt_cdi_import_progress_total counter\n"), std::string::npos);
  EXPECT_NE(r.err.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("subject: CN=cdi-importer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("issuer: CN=cdi-importer"), std::string::npos) << r.err;
  // Verification fails without -k: nobody trusts the certificate, as in CDI.
  RunResult verified = test::Run({"curl", "-sS", "--max-time", "20", base_ + "/metrics"});
  EXPECT_NE(verified.exit_code, 0);
  // Each scrape sees the current value.
  metric_.Update(0.75);
  EXPECT_EQ(Scrape(Curl({base_ + "/metrics"}).out, "owner-1"), "75");
}

TEST_F(MetricsServerTest, OtherPathsAndMethods) {
  RunResult r = Curl({"-o", "/dev/null", "-w", "%{http_code}", base_ + "/"});
  EXPECT_EQ(r.out, "404");
  r = Curl({"-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", base_ + "/metrics"});
  EXPECT_EQ(r.out, "405");
  r = Curl({"-I", base_ + "/metrics"});
  EXPECT_NE(r.out.find("HTTP/1.1 200 OK"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("kubevirt_cdi_import_progress_total{"), std::string::npos);
}

TEST_F(MetricsServerTest, ASilentClientDoesNotHoldOthersUp) {
  // A plain TCP client that never speaks TLS holds only its own connection
  // (until its handshake budget ends); the scrape is served meanwhile.
  TempDir dir;
  BackgroundProcess silent(
      {"python3", "-c",
       "import socket,time; s=socket.create_connection(('127.0.0.1'," +
           std::to_string(server_->port()) + ")); print('connected', flush=True); time.sleep(60)"},
      dir.File("silent.log"));
  while (ReadFile(dir.File("silent.log")).find("connected") == std::string::npos) {
    ASSERT_EQ(silent.Wait(std::chrono::milliseconds(20)), -1) << "the silent client ended";
  }
  RunResult r = Curl({base_ + "/metrics"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Scrape(r.out, "owner-1"), "0");
}

// An idle TCP connection to the endpoint, closed on destruction.
class IdleConnection {
 public:
  explicit IdleConnection(uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 &&
                 connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  }
  ~IdleConnection() {
    if (fd_ >= 0) close(fd_);
  }
  IdleConnection(const IdleConnection&) = delete;
  IdleConnection& operator=(const IdleConnection&) = delete;

  bool connected() const { return connected_; }
  // True when the server closed the connection: within `wait_ms`, or already.
  bool ClosedByServer(int wait_ms) const {
    pollfd fd{fd_, POLLIN, 0};
    if (poll(&fd, 1, wait_ms) <= 0) return false;
    char byte;
    return recv(fd_, &byte, 1, MSG_DONTWAIT) <= 0;
  }

 private:
  int fd_;
  bool connected_ = false;
};

TEST_F(MetricsServerTest, AScrapeIsServedWhileFiftyIdleConnectionsAreOpen) {
  // Served one after another, each idle connection would hold the scrape
  // back for its budget: minutes for fifty, past curl's --max-time.
  std::vector<std::unique_ptr<IdleConnection>> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(std::make_unique<IdleConnection>(server_->port()));
    ASSERT_TRUE(idle.back()->connected()) << i;
  }
  metric_.Update(0.425);
  for (int scrape = 0; scrape < 3; ++scrape) {
    RunResult r = Curl({base_ + "/metrics"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Scrape(r.out, "owner-1"), "42.5") << r.out;
  }
  // The idle connections were not dropped to serve the scrapes.
  EXPECT_FALSE(idle.front()->ClosedByServer(0));
}

TEST_F(MetricsServerTest, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  std::vector<std::unique_ptr<IdleConnection>> held;
  for (size_t i = 0; i < pod::MetricsServer::kMaxConnections; ++i) {
    held.push_back(std::make_unique<IdleConnection>(server_->port()));
    ASSERT_TRUE(held.back()->connected()) << i;
  }
  IdleConnection extra(server_->port());
  ASSERT_TRUE(extra.connected());
  // The extra one is closed without waiting for a held one's budget to end:
  // when it is, the first held connection is still open.
  EXPECT_TRUE(extra.ClosedByServer(20000));
  EXPECT_FALSE(held.front()->ClosedByServer(0));
  held.clear();
  // Once they are gone, scrapes are served again.
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    served = Curl({base_ + "/metrics"}).exit_code == 0;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(served);
}

TEST(MetricsServer, AnAddressInUseIsAnError) {
  auto first = pod::MetricsServer::Start("127.0.0.1:0", [] { return std::string(); });
  ASSERT_TRUE(first.ok());
  auto second = pod::MetricsServer::Start("127.0.0.1:" + std::to_string((*first)->port()),
                                          [] { return std::string(); });
  EXPECT_EQ(second.status().code(), ErrorCode::kIo);
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace cdi::test
