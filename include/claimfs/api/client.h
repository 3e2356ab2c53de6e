// The client side of claimfsd's HTTP/1.1+JSON API over its Unix socket (what claimctl links).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::api {

inline constexpr char kDefaultSocketPath[] = "/run/claimfs/claimfsd.sock";

// One HTTP exchange as the daemon answered it, whatever its status.
struct HttpResponse {
  long status = 0;           // HTTP status code
  std::string content_type;  // as sent, e.g. "application/json"
  std::string body;
};

// $CLAIMFS_SOCKET when set and not empty, else kDefaultSocketPath.
std::string DefaultSocketPath();

// A connection to claimfsd at one socket path. Each request opens its own connection, so a Client
// may be used for any number of requests; one Client must not be used by two threads at once.
class Client {
 public:
  explicit Client(std::string socket_path);

  const std::string& socket_path() const { return socket_path_; }

  // Headers ("Name: value") sent with every request, e.g. SudoImpersonationHeaders().
  void set_extra_headers(std::vector<std::string> headers) { extra_headers_ = std::move(headers); }

  // Sends `method target` (target is the path with its query, e.g. "/api/v1/persistentvolumes")
  // with `body` (sent with `content_type` when not empty) and returns the response, including
  // non-2xx ones. When the daemon cannot be reached the result is kUnavailable with exactly
  // "cannot connect to claimfsd at PATH: <strerror of the connect failure> (is claimfsd
  // running?)"; any other transport failure is kUnavailable naming the request and the cause.
  Result<HttpResponse> Request(std::string_view method, std::string_view target,
                               std::string_view body = "",
                               std::string_view content_type = "application/json");

  // Request, then the response body as JSON for a 2xx status (null for an empty body), or the
  // failure StatusFromResponse() makes of a non-2xx one. A 2xx body that is not JSON is kInternal.
  Result<nlohmann::json> Call(std::string_view method, std::string_view target,
                              const nlohmann::json* body = nullptr,
                              std::string_view content_type = "application/json");

 private:
  std::string socket_path_;
  std::vector<std::string> extra_headers_;
};

// When this process runs as root through sudo (SUDO_UID, SUDO_GID, SUDO_USER), Kubernetes'
// impersonation headers asking claimfsd to act for the user who ran sudo (Impersonate-User,
// Impersonate-Uid, Impersonate-Group): what that user creates belongs to them. Empty otherwise.
std::vector<std::string> SudoImpersonationHeaders();

// The Status a response stands for: Ok for 2xx; otherwise the "message" of the Kubernetes Status
// object in the body (or a description of the response when the body is not one), with a code
// chosen by HTTP status: 404 kNotFound, 409 kAlreadyExists when reason is "AlreadyExists" else
// kConflict, 400 and 422 kInvalid, 403 kForbidden, 503 kUnavailable, anything else kInternal.
Status StatusFromResponse(const HttpResponse& response);

// The "reason" of the Kubernetes Status object in a response body ("NotFound", "Invalid", ...),
// or the reason Kubernetes uses for the response's HTTP status when the body has none.
std::string ReasonFromResponse(const HttpResponse& response);

}  // namespace claimfs::api
