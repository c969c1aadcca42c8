#include "pod/kube_client.h"

#include <curl/curl.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/text.h"

namespace cdi::pod {
namespace {

size_t Collect(char* data, size_t size, size_t count, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() > (8 << 20)) return 0;  // an object is far smaller
  body->append(data, size * count);
  return size * count;
}

// The API server's own words: a Status object's message.
std::string ApiMessage(const std::string& body) {
  nlohmann::json status = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_object()) {
    auto message = status.find("message");
    if (message != status.end() && message->is_string()) return message->get<std::string>();
  }
  return body.substr(0, 200);
}

}  // namespace

Result<KubeConfig> InClusterConfig(const Environment& env, const std::string& service_account_dir) {
  const std::string host = env.GetOr("KUBERNETES_SERVICE_HOST");
  const std::string port = env.GetOr("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return InvalidArgumentError(
        "not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset");
  }
  KubeConfig config;
  const bool ipv6 = host.find(':') != std::string::npos;
  config.api_url = "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port;
  std::ifstream token(service_account_dir + "/token");
  if (!token) {
    return InvalidArgumentError("cannot read the service account's token " + service_account_dir +
                                "/token");
  }
  std::ostringstream text;
  text << token.rdbuf();
  config.token = std::string(TrimSpace(text.str()));
  config.ca_file = service_account_dir + "/ca.crt";
  return config;
}

Result<std::string> KubeClient::Get(const std::string& path) const {
  return Request("GET", path, "");
}

Status KubeClient::JsonPatch(const std::string& path, const std::string& patch) const {
  return Request("PATCH", path, patch).status();
}

Result<std::string> KubeClient::Request(const std::string& method, const std::string& path,
                                        const std::string& body) const {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return InternalError("cannot create a libcurl handle");
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(nullptr, curl_slist_free_all);
  auto add = [&headers](const std::string& line) {
    curl_slist* list = curl_slist_append(headers.get(), line.c_str());
    if (list != nullptr) {
      headers.release();
      headers.reset(list);
    }
  };
  add("Authorization: Bearer " + config_.token);
  add("Accept: application/json");
  if (method == "PATCH") add("Content-Type: application/json-patch+json");
  const std::string url = config_.api_url + path;
  std::string answer;
  char error[CURL_ERROR_SIZE] = {};
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
  if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));  // NOLINT
  }
  const CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) {
    return NetworkError(method + " " + url + ": " + (error[0] ? error : curl_easy_strerror(code)),
                        Retryable::kYes);
  }
  long status = 0;  // NOLINT(google-runtime-int): curl's type
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    return NetworkError(method + " " + url + ": HTTP " + std::to_string(status) + ": " +
                        ApiMessage(answer));
  }
  return answer;
}

}  // namespace cdi::pod
