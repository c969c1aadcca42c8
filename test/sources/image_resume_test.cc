// Resume decisions without a server: which request continues a download, and
// which responses to it provably continue the same image. The transfers
// themselves are in http_resume_test.cc.
#include <gtest/gtest.h>

#include <string>

#include "sources/http/http_response.h"
#include "sources/http/resume.h"

namespace cdi::importer {
namespace {

constexpr const char* kImage = "https://host/disk.img";
constexpr const char* kMirror = "https://mirror/disk.img";

ResponseHeaders Response(int status, std::string etag = "", std::string last_modified = "",
                         std::string content_range = "") {
  ResponseHeaders response;
  response.status = status;
  response.etag = std::move(etag);
  response.last_modified = std::move(last_modified);
  response.content_range = std::move(content_range);
  return response;
}

ImageResume Remembered(std::optional<uint64_t> length, std::string etag = "",
                       std::string last_modified = "", std::string accept_ranges = "") {
  ImageResume resume(kImage);
  ResponseHeaders first = Response(200, std::move(etag), std::move(last_modified));
  first.accept_ranges = std::move(accept_ranges);
  resume.Remember(first, length);
  return resume;
}

std::string ChangedMessage(const std::string& what, uint64_t received) {
  return std::string("the image at ") + kImage + " changed while it was being downloaded (" + what +
         ") after " + std::to_string(received) + " bytes; import it again";
}

TEST(ReceivedTextTest, WithAndWithoutALength) {
  EXPECT_EQ(ReceivedText({10, 100}), "after 10 of 100 bytes");
  EXPECT_EQ(ReceivedText({10, std::nullopt}), "after 10 bytes");
}

TEST(ImageResumeTest, RemembersTheFirstResponse) {
  ImageResume resume = Remembered(100, "\"e\"", "Mon", "bytes");
  EXPECT_EQ(resume.identity().length, 100u);
  EXPECT_EQ(resume.identity().etag, "\"e\"");
  EXPECT_EQ(resume.identity().last_modified, "Mon");
  EXPECT_EQ(resume.identity().accept_ranges, "bytes");
}

TEST(ImageResumeTest, TheNextRequest) {
  EXPECT_EQ(Remembered(100).NextRequest(0), RequestKind::kWhole);
  EXPECT_EQ(Remembered(100).NextRequest(10), RequestKind::kRange);
  EXPECT_EQ(Remembered(100, "", "", "bytes").NextRequest(10), RequestKind::kRange);
  EXPECT_EQ(Remembered(100, "", "", "None").NextRequest(10), RequestKind::kWholeAndSkip);
  EXPECT_EQ(Remembered(100, "", "", "none").NextRequest(0), RequestKind::kWhole);
}

TEST(ImageResumeTest, IfRangePrefersAStrongEtag) {
  EXPECT_EQ(Remembered(100, "\"e\"", "Mon").IfRangeValidator(), "\"e\"");
  EXPECT_EQ(Remembered(100, "W/\"e\"", "Mon").IfRangeValidator(), "Mon");
  EXPECT_EQ(Remembered(100, "W/\"e\"").IfRangeValidator(), "");
  EXPECT_EQ(Remembered(100).IfRangeValidator(), "");
  EXPECT_TRUE(Remembered(100, "W/\"e\"").HasValidator());
  EXPECT_TRUE(Remembered(100, "", "Mon").HasValidator());
  EXPECT_FALSE(Remembered(100).HasValidator());
}

TEST(ImageResumeTest, AWholeResponseAgainMustKeepTheLength) {
  EXPECT_TRUE(Remembered(100).CheckWholeAgain(100, 0).ok());
  EXPECT_TRUE(Remembered(std::nullopt).CheckWholeAgain(std::nullopt, 0).ok());
  Status status = Remembered(100).CheckWholeAgain(90, 0);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), ChangedMessage("its length was 100 bytes, now 90 bytes", 0));
  EXPECT_EQ(Remembered(std::nullopt).CheckWholeAgain(90, 0).message(),
            ChangedMessage("its length was unknown, now 90 bytes", 0));
  EXPECT_EQ(Remembered(100).CheckWholeAgain(std::nullopt, 0).message(),
            ChangedMessage("its length was 100 bytes, now unknown", 0));
}

TEST(ImageResumeTest, TheRestOfTheSameImage) {
  ImageResume resume = Remembered(100, "\"e\"", "Mon");
  Result<ContentRange> range = resume.CheckRest(Response(206, "\"e\"", "Mon", "bytes 40-99/100"),
                                                std::optional<uint64_t>(60), {40, 100}, kMirror);
  ASSERT_TRUE(range.ok()) << range.status().ToString();
  EXPECT_EQ(range->first, 40u);
  EXPECT_EQ(range->last, 99u);
  EXPECT_EQ(range->complete, 100u);
  // Validators the response does not repeat, a length it does not declare,
  // an unknown total: nothing contradicts.
  EXPECT_TRUE(resume
                  .CheckRest(Response(206, "", "", "bytes 40-99/*"), std::optional<uint64_t>(),
                             {40, 100}, kMirror)
                  .ok());
  EXPECT_TRUE(Remembered(std::nullopt)
                  .CheckRest(Response(206, "", "", "bytes 40-99/100"), std::optional<uint64_t>(),
                             {40, std::nullopt}, kMirror)
                  .ok());
}

TEST(ImageResumeTest, ARangeThatIsNotTheRestIsRefused) {
  ImageResume resume = Remembered(100);
  auto check = [&](const std::string& content_range) {
    return resume
        .CheckRest(Response(206, "", "", content_range), std::optional<uint64_t>(), {40, 100},
                   kMirror)
        .status();
  };
  EXPECT_EQ(check("").message(), std::string("the server answered the request for bytes 40- of ") +
                                     kMirror + " with no Content-Range; cannot resume");
  EXPECT_EQ(check("nonsense").message(),
            std::string("the server answered the request for bytes 40- of ") + kMirror +
                " with an invalid Content-Range 'nonsense'; cannot resume");
  for (std::string content_range : {"bytes 0-99/100", "bytes 40-98/100", "bytes 40-99/*z"}) {
    Status status = check(content_range);
    EXPECT_EQ(status.code(), ErrorCode::kNetwork) << content_range;
    EXPECT_FALSE(status.retryable());
  }
  EXPECT_EQ(check("bytes 40-98/100").message(),
            std::string("the server answered the request for bytes 40- of ") + kMirror +
                " with Content-Range 'bytes 40-98/100', not the rest of the image; cannot resume");
  // A new total: the image changed.
  EXPECT_EQ(check("bytes 40-119/120").message(),
            ChangedMessage("its length was 100 bytes, now 120", 40));
  // Without a known length, the range must still end at its own total.
  EXPECT_FALSE(Remembered(std::nullopt)
                   .CheckRest(Response(206, "", "", "bytes 40-98/100"), std::optional<uint64_t>(),
                              {40, std::nullopt}, kMirror)
                   .ok());
}

TEST(ImageResumeTest, TheRestMustMatchItsLengthAndValidators) {
  ImageResume resume = Remembered(100, "\"e\"", "Mon");
  const ResponseHeaders same = Response(206, "\"e\"", "Mon", "bytes 40-99/100");
  Status status = resume.CheckRest(same, std::optional<uint64_t>(59), {40, 100}, kMirror).status();
  EXPECT_EQ(status.message(), std::string("the server's Content-Length 59 does not match its "
                                          "Content-Range 'bytes 40-99/100' from ") +
                                  kMirror + "; cannot resume");
  // A malformed Content-Length, as DeclaredLength reports it.
  status =
      resume.CheckRest(same, NetworkError("invalid Content-Length"), {40, 100}, kMirror).status();
  EXPECT_EQ(status.message(), "invalid Content-Length");
  status = resume
               .CheckRest(Response(206, "\"f\"", "Mon", "bytes 40-99/100"),
                          std::optional<uint64_t>(60), {40, 100}, kMirror)
               .status();
  EXPECT_EQ(status.message(), ChangedMessage("its ETag was \"e\", now \"f\"", 40));
  status = resume
               .CheckRest(Response(206, "\"e\"", "Tue", "bytes 40-99/100"),
                          std::optional<uint64_t>(60), {40, 100}, kMirror)
               .status();
  EXPECT_EQ(status.message(), ChangedMessage("it was last modified Mon, now Tue", 40));
}

TEST(ImageResumeTest, AWholeResponseIsSkippedIntoOnlyWhenProvablyTheSame) {
  // A strong ETag proves it; so does an equal Last-Modified.
  EXPECT_TRUE(Remembered(100, "\"e\"")
                  .CheckWholeAndSkip(Response(200, "\"e\""), 100, {40, 100}, kMirror)
                  .ok());
  EXPECT_TRUE(Remembered(100, "W/\"e\"", "Mon")
                  .CheckWholeAndSkip(Response(200, "W/\"e\"", "Mon"), 100, {40, 100}, kMirror)
                  .ok());
  EXPECT_TRUE(
      Remembered(std::nullopt, "", "Mon")
          .CheckWholeAndSkip(Response(200, "", "Mon"), std::nullopt, {40, std::nullopt}, kMirror)
          .ok());
}

TEST(ImageResumeTest, AWholeResponseOfAChangedImageIsRefused) {
  EXPECT_EQ(Remembered(100, "\"e\"")
                .CheckWholeAndSkip(Response(200, "\"e\""), 120, {40, 100}, kMirror)
                .message(),
            ChangedMessage("its length was 100 bytes, now 120", 40));
  EXPECT_EQ(Remembered(100, "\"e\"")
                .CheckWholeAndSkip(Response(200, "\"f\""), 100, {40, 100}, kMirror)
                .message(),
            ChangedMessage("its ETag was \"e\", now \"f\"", 40));
  EXPECT_EQ(Remembered(100, "", "Mon")
                .CheckWholeAndSkip(Response(200, "", "Tue"), 100, {40, 100}, kMirror)
                .message(),
            ChangedMessage("it was last modified Mon, now Tue", 40));
}

TEST(ImageResumeTest, AWholeResponseWithoutProofIsRefused) {
  const std::string unknown = std::string("cannot resume after 40 of 100 bytes from ") + kMirror +
                              ": the server sends the whole image again (HTTP 200, it does not "
                              "serve ranges) and gives no ETag or Last-Modified to show that it "
                              "is the same image; import it again";
  EXPECT_EQ(Remembered(100).CheckWholeAndSkip(Response(200), 100, {40, 100}, kMirror).message(),
            unknown);
  // A weak ETag alone proves nothing.
  Status status = Remembered(100, "W/\"e\"")
                      .CheckWholeAndSkip(Response(200, "W/\"e\""), 100, {40, 100}, kMirror);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), unknown);
}

TEST(ImageResumeTest, RangeNotSatisfiableMeansTheImageShrank) {
  Status status = Remembered(100).RangeNotSatisfiable({40, 100}, kMirror);
  EXPECT_EQ(status.code(), ErrorCode::kNetwork);
  EXPECT_FALSE(status.retryable());
  EXPECT_EQ(status.message(), std::string("cannot resume after 40 of 100 bytes from ") + kMirror +
                                  ": the server answered HTTP 416 Range Not Satisfiable, so the "
                                  "image on the server is shorter than it was; import it again");
}

}  // namespace
}  // namespace cdi::importer
