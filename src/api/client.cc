// claimfsd's API client: libcurl over the daemon's Unix socket.
#include "claimfs/api/client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

namespace claimfs::api {
namespace {

// curl_global_init is not thread-safe; run it once for the process.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::string ConnectFailure(const std::string& path, int err) {
  return "cannot connect to claimfsd at " + path + ": " + std::strerror(err) +
         " (is claimfsd running?)";
}

// The reason Kubernetes gives a failure of this HTTP status.
std::string ReasonForHttpStatus(long status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";
  }
}

// The body as a Status object, or null when it is not one.
nlohmann::json ParseStatusBody(const std::string& body) {
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return nlohmann::json();
  return json;
}

}  // namespace

std::string DefaultSocketPath() {
  const char* env = std::getenv("CLAIMFS_SOCKET");
  if (env != nullptr && *env != '\0') return env;
  return kDefaultSocketPath;
}

std::vector<std::string> SudoImpersonationHeaders() {
  if (::geteuid() != 0) return {};
  auto numeric = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    if (!value || !*value || std::strspn(value, "0123456789") != std::strlen(value)) return "";
    return value;
  };
  std::string uid = numeric("SUDO_UID"), gid = numeric("SUDO_GID");
  if (uid.empty() || uid == "0") return {};
  const char* user = std::getenv("SUDO_USER");
  std::string name = user && *user && !std::strpbrk(user, "\r\n") ? user : uid;
  std::vector<std::string> headers = {"Impersonate-User: " + name, "Impersonate-Uid: " + uid};
  if (!gid.empty()) headers.push_back("Impersonate-Group: " + gid);
  return headers;
}

Client::Client(std::string socket_path) : socket_path_(std::move(socket_path)) {}

Result<HttpResponse> Client::Request(std::string_view method, std::string_view target,
                                     std::string_view body, std::string_view content_type) {
  InitCurlOnce();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::Internal("cannot initialise libcurl");
  CURL* h = curl.get();

  const std::string url = "http://localhost" + std::string(target);
  const std::string verb(method);
  HttpResponse response;
  char error_buffer[CURL_ERROR_SIZE] = {0};

  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&headers](const std::string& header) {
    headers.reset(curl_slist_append(headers.release(), header.c_str()));
  };
  add_header("Accept: application/json");
  add_header("Expect:");  // no 100-continue round trip for larger bodies
  if (!body.empty()) add_header("Content-Type: " + std::string(content_type));
  for (const std::string& header : extra_headers_) add_header(header);

  curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, verb.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
  if (!body.empty() || verb == "POST" || verb == "PUT" || verb == "PATCH") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  if (verb == "HEAD") curl_easy_setopt(h, CURLOPT_NOBODY, 1L);

  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    long os_errno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) {
      return Status::Unavailable(
          ConnectFailure(socket_path_, os_errno != 0 ? static_cast<int>(os_errno) : ECONNREFUSED));
    }
    std::string cause = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    return Status::Unavailable(verb + " " + std::string(target) + " to claimfsd at " +
                               socket_path_ + " failed: " + cause);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  char* type = nullptr;
  if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != nullptr) {
    response.content_type = type;
  }
  return response;
}

Result<nlohmann::json> Client::Call(std::string_view method, std::string_view target,
                                    const nlohmann::json* body, std::string_view content_type) {
  std::string text = body != nullptr ? body->dump() : std::string();
  Result<HttpResponse> response = Request(method, target, text, content_type);
  if (!response.ok()) return response.status();
  Status status = StatusFromResponse(*response);
  if (!status.ok()) return status;
  if (response->body.empty()) return nlohmann::json();
  nlohmann::json json = nlohmann::json::parse(response->body, nullptr, false);
  if (json.is_discarded()) {
    return Status::Internal(std::string(method) + " " + std::string(target) +
                            ": claimfsd answered with a body that is not JSON");
  }
  return json;
}

Status StatusFromResponse(const HttpResponse& response) {
  if (response.status >= 200 && response.status < 300) return Status::Ok();
  nlohmann::json json = ParseStatusBody(response.body);
  std::string message;
  if (json.is_object() && json.contains("message") && json["message"].is_string()) {
    message = json["message"].get<std::string>();
  }
  std::string reason = ReasonFromResponse(response);
  if (message.empty()) {
    std::string body = response.body.substr(0, 200);
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    message = "claimfsd answered HTTP " + std::to_string(response.status);
    if (!body.empty()) message += ": " + body;
  }
  switch (response.status) {
    case 404:
      return Status::NotFound(std::move(message));
    case 409:
      return reason == "AlreadyExists" ? Status::AlreadyExists(std::move(message))
                                       : Status::Conflict(std::move(message));
    case 400:
    case 422:
      return Status::Invalid(std::move(message));
    case 403:
      return Status::Forbidden(std::move(message));
    case 503:
      return Status::Unavailable(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

std::string ReasonFromResponse(const HttpResponse& response) {
  nlohmann::json json = ParseStatusBody(response.body);
  if (json.is_object() && json.contains("reason") && json["reason"].is_string()) {
    std::string reason = json["reason"].get<std::string>();
    if (!reason.empty()) return reason;
  }
  return ReasonForHttpStatus(response.status);
}

}  // namespace claimfs::api
