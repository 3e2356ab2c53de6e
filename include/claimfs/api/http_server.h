// A small HTTP/1.1 server on a Unix socket (libmicrohttpd underneath) with a path router: the
// layer the Kubernetes-shaped API and the Docker volume-plugin socket are both built on.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::api::http {

// Who is on the other end of the socket (SO_PEERCRED and SO_PEERGROUPS at connect time).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups; empty when the kernel would not say
};

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // URL-decoded, without the query string
  std::map<std::string, std::string> query;    // first value of each argument; "" when none
  std::map<std::string, std::string> headers;  // names lower-cased; repeats joined with ','
  std::string body;
  std::optional<PeerCredentials> peer;  // nullopt when the kernel would not say

  // The header's value, or null. `name` in lower case.
  const std::string* Header(std::string_view name) const;
  // The query argument's value, or `fallback` when it is absent.
  std::string Query(std::string_view name, std::string_view fallback = "") const;
  bool HasQuery(std::string_view name) const;
  // The media type of Content-Type, lower-cased, without parameters ("application/json"); "" when
  // absent.
  std::string MediaType() const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // When set, `body` is sent first and then whatever this returns, chunk by chunk (chunked
  // transfer encoding), until it returns false. Called on the connection's own thread; it may
  // block waiting for data, so only a server with `thread_per_connection` may answer with one.
  std::function<bool(std::string* chunk)> stream;

  static Response Json(int status, const nlohmann::json& body);
  static Response Text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
};

// Answers one request. Called on server threads, concurrently; must be thread-safe. An exception
// escaping it becomes a 500 (it never reaches libmicrohttpd).
using Handler = std::function<Response(const Request&)>;
// Formats the errors the server or the router answer on its own (404, 405, 413, 500), so each
// socket speaks its protocol's error shape.
using ErrorResponder = std::function<Response(int status, const std::string& message)>;

// HTTPS on a TCP address instead of the Unix socket. The peer has no credentials then
// (Request::peer is nullopt): the handler must authenticate the request itself.
struct TlsListener {
  std::string host;  // a numeric IPv4 or IPv6 address
  uint16_t port = 0;
  std::string certificate_pem;  // the server's certificate (then its issuers), PEM
  std::string key_pem;          // its private key, PEM
};

struct ServerOptions {
  std::string socket_path;
  std::optional<TlsListener> tls;  // when set, served instead of socket_path
  // One thread per connection instead of a pool (needed for streamed responses).
  bool thread_per_connection = false;
  mode_t socket_mode = 0660;
  std::optional<gid_t> socket_group;
  // Bodies larger than this are refused with 413 before they are read (Content-Length), or the
  // connection is closed as soon as a chunked body passes it; never buffered.
  size_t max_request_bytes = 4 << 20;
  // A request must arrive in full within this many seconds of the connection opening (or of the
  // previous response on it); an idle connection is closed after it too.
  int request_timeout_seconds = 10;
  unsigned threads = 4;
  unsigned max_connections = 128;
  size_t connection_memory_limit = 64 << 10;  // per connection: request line and headers
  std::string name = "http";                  // in log lines
  ErrorResponder error_responder;             // default: text/plain
  // Called after every answered request (handler's or server's own error), e.g. for metrics.
  std::function<void(const Request&, const Response&)> on_response;
};

// Binds `path` as a listening Unix socket with `mode` and `group`: a stale socket file (nothing
// listening) is replaced; a live one fails with kUnavailable; anything else at the path fails
// with kAlreadyExists. The socket is created under a temporary name and renamed into place once
// its mode and group are set, so it is never reachable with looser permissions. Returns the fd
// (non-blocking, close-on-exec).
Result<int> BindUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group);

// Binds and listens on host:port over TCP (host numeric). Fails with kInvalid for a host that
// is not a numeric address, kUnavailable when the address is in use. Returns the fd
// (non-blocking, close-on-exec); `bound_port` gets the port (useful with port 0).
Result<int> BindTcpSocket(const std::string& host, uint16_t port, uint16_t* bound_port);

class Server {
 public:
  // Binds the socket (see BindUnixSocket) and starts serving with `handler` on a pool of
  // `threads` threads. Fails with what BindUnixSocket gives, or kInternal when libmicrohttpd
  // refuses to start.
  static Result<std::unique_ptr<Server>> Start(ServerOptions options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting, lets requests already being handled finish (up to the request timeout),
  // closes every connection and removes the socket file (when it is still ours). Idempotent;
  // thread-safe, but not to be called from a handler.
  void Stop();

  const std::string& socket_path() const;
  // The TCP port served (with TlsListener; 0 otherwise).
  uint16_t port() const;

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Path parameters a route's pattern captured: {"namespace": "default", "name": "data"}.
using PathParams = std::map<std::string, std::string>;
using RouteHandler = std::function<Response(const Request&, const PathParams&)>;

// Dispatches on method and path. Patterns are absolute paths whose segments are literals or
// {param} (one non-empty segment); a trailing slash on the request is ignored. A path no pattern
// matches gets 404; one that matches only with other methods gets 405 with an Allow header. HEAD
// falls back to GET. Add() all routes before serving; dispatching is then thread-safe.
class Router {
 public:
  explicit Router(ErrorResponder errors);
  void Add(std::string method, std::string_view pattern, RouteHandler handler);
  Response Dispatch(const Request& request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    RouteHandler handler;
  };
  ErrorResponder errors_;
  std::vector<Route> routes_;
};

// Splits "a/b//c/" into {"a","b","c"}.
std::vector<std::string> SplitPath(std::string_view path);

}  // namespace claimfs::api::http
