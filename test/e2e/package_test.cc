// The installed library, as an operator author uses it: `cmake --install`,
// then find_package(CdiImporter) from a separate project that imports an image.
#include <gtest/gtest.h>

#include "test/e2e/e2e_util.h"
#include "test/support/temp_dir.h"

namespace cdi::test {
namespace {

TEST(PackageTest, OperatorProjectFindsLinksAndImports) {
  TempDir dir;
  const std::string prefix = dir.File("prefix");
  Sh("cmake --install " + std::string(CDI_BINARY_DIR) + " --prefix " + prefix + " >/dev/null");

  const std::string project = dir.File("operator");
  Sh("mkdir -p " + project);
  WriteFile(project + "/CMakeLists.txt", R"(cmake_minimum_required(VERSION 3.25)
project(operator LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(CdiImporter 0.1 REQUIRED)
add_executable(operator main.cc)
target_link_libraries(operator PRIVATE CdiImporter::cdi_importer)
)");
  WriteFile(project + "/main.cc", R"(#include <cstdio>
#include "cdi/import.h"
int main(int argc, char** argv) {
  cdi::ImportSpec spec;
  spec.source.url = argv[1];
  auto size = cdi::ParseQuantity("8Mi");
  if (!size.ok()) return 3;
  spec.targets.push_back({.path = argv[2], .requested_size = *size});
  cdi::Result<cdi::ImportResult> result = cdi::Import(spec);
  if (!result.ok()) {
    std::printf("error %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("imported %s %llu %llu\n", result->format_chain.back().c_str(),
              static_cast<unsigned long long>(result->virtual_size),
              static_cast<unsigned long long>(result->bytes_written));
  return 0;
}
)");
  Sh("cmake -S " + project + " -B " + project + "/build -DCMAKE_PREFIX_PATH=" + prefix +
     " >/dev/null && cmake --build " + project + "/build >/dev/null");

  const std::string image = MakeRawImage(16, 2, 5);  // 1 MiB, half zero
  WriteFile(dir.File("disk.raw"), image);
  Sh("xz -0 -k " + dir.File("disk.raw"));
  RunResult r = test::Run({project + "/build/operator", dir.File("disk.raw.xz"), dir.File("disk.img")});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "imported raw 1048576 524288\n");
  EXPECT_EQ(Sha256File(dir.File("disk.img"), image.size()), Sha256Bytes(image));
  EXPECT_EQ(FileSize(dir.File("disk.img")), 8u << 20);

  // The shared library exports the public API and nothing else: no curl,
  // OpenSSL, spdlog or internal module symbols for an operator to collide with.
  std::string symbols = Sh("nm -D --defined-only -C " + prefix + "/lib/libcdi-importer.so.0");
  EXPECT_NE(symbols.find("cdi::Import(cdi::ImportSpec const&, cdi::ImportHooks const&)"),
            std::string::npos)
      << symbols;
  for (const char* internal : {"curl_", "spdlog::", "cdi::formats::", "cdi::pvc::", "cdi::tls::",
                               "cdi::importer::", "fmt::"}) {
    EXPECT_EQ(symbols.find(internal), std::string::npos) << internal << " exported:\n" << symbols;
  }
  // The public headers pull in nothing of the internals. cdi/spdlog.h, the
  // optional bridge for hosts that log with spdlog, is the one header that
  // names spdlog, and no other header includes it.
  std::string headers =
      Sh("ls " + prefix + "/include/cdi/*.h | grep -v '/spdlog\\.h$' | xargs cat");
  ASSERT_NE(headers.find("namespace cdi"), std::string::npos) << headers;
  for (const char* foreign : {"curl", "openssl", "spdlog"}) {
    EXPECT_EQ(headers.find(std::string("#include <") + foreign), std::string::npos) << foreign;
  }
  EXPECT_EQ(headers.find("cdi/spdlog.h"), std::string::npos);
  EXPECT_TRUE(FileExists(prefix + "/include/cdi/spdlog.h"));
}

}  // namespace
}  // namespace cdi::test
