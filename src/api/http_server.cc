#include "claimfs/api/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "claimfs/common/log.h"

namespace claimfs::api::http {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool FillAddress(const std::string& path, sockaddr_un* addr) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

// Whether a server accepts connections on the socket file at `path`: Ok(true) when one does,
// Ok(false) when the file is stale (ECONNREFUSED).
Result<bool> SocketIsLive(const std::string& path) {
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) return Status::Invalid("socket path " + path + " is too long");
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return Status::FromErrno("cannot create a socket to probe " + path, errno);
  int rv = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(probe);
  if (rv == 0) return true;
  if (err == ECONNREFUSED) return false;
  return Status::FromErrno("cannot probe socket " + path, err);
}

// The supplementary groups of the process that connected (as they were at connect time).
std::vector<gid_t> PeerGroups(int fd) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) break;
    groups.resize(len / sizeof(gid_t) + 1);
  }
  return {};
}

}  // namespace

const std::string* Request::Header(std::string_view name) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? nullptr : &it->second;
}

std::string Request::Query(std::string_view name, std::string_view fallback) const {
  auto it = query.find(std::string(name));
  return it == query.end() ? std::string(fallback) : it->second;
}

bool Request::HasQuery(std::string_view name) const { return query.count(std::string(name)) > 0; }

std::string Request::MediaType() const {
  const std::string* value = Header("content-type");
  if (!value) return "";
  std::string type = value->substr(0, value->find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  size_t start = type.find_first_not_of(" \t");
  return start == std::string::npos ? "" : Lower(type.substr(start));
}

Response Response::Json(int status, const nlohmann::json& body) {
  Response response;
  response.status = status;
  response.content_type = "application/json";
  // Replace invalid UTF-8 rather than throw: a message may quote what a client sent.
  response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return response;
}

Response Response::Text(int status, std::string body, std::string content_type) {
  Response response;
  response.status = status;
  response.content_type = std::move(content_type);
  response.body = std::move(body);
  return response;
}

Result<int> BindUnixSocket(const std::string& path, mode_t mode, std::optional<gid_t> group) {
  if (path.empty()) return Status::Invalid("the API socket path is empty");
  sockaddr_un addr;
  if (!FillAddress(path, &addr)) {
    return Status::Invalid("socket path " + path + " is too long (at most " +
                           std::to_string(sizeof(addr.sun_path) - 1) + " bytes)");
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::AlreadyExists("cannot listen on " + path +
                                   ": the path exists and is not a socket");
    }
    Result<bool> live = SocketIsLive(path);
    if (!live.ok()) return live.status();
    if (*live) {
      return Status::Unavailable("cannot listen on " + path +
                                 ": another server is already listening on it");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno("cannot remove stale socket " + path, errno);
    }
    log::Info("removed stale socket {}", path);
  } else if (errno != ENOENT) {
    return Status::FromErrno("cannot stat " + path, errno);
  }

  // Bind under a temporary name, set mode and group, then rename into place: the socket is
  // never reachable at `path` with the umask's permissions.
  std::filesystem::path target(path);
  std::string temp = (target.parent_path() / ("." + target.filename().string() + "." +
                                              std::to_string(::getpid()) + ".tmp"))
                         .string();
  sockaddr_un temp_addr;
  if (!FillAddress(temp, &temp_addr)) {
    temp = path;  // no room for a longer name; bind in place
    temp_addr = addr;
  }
  if (temp != path) ::unlink(temp.c_str());

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::FromErrno("cannot create socket for " + path, errno);
  auto fail = [&](const std::string& what, bool bound) -> Status {
    Status status = Status::FromErrno(what, errno);
    ::close(fd);
    if (bound) ::unlink(temp.c_str());
    return status;
  };
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&temp_addr), sizeof(temp_addr)) != 0) {
    return fail("cannot bind socket " + path, false);
  }
  if (group && ::chown(temp.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return fail("cannot set group " + std::to_string(*group) + " on socket " + path, true);
  }
  if (::chmod(temp.c_str(), mode) != 0) {
    return fail("cannot set mode on socket " + path, true);
  }
  if (::listen(fd, SOMAXCONN) != 0) return fail("cannot listen on socket " + path, true);
  if (temp != path && ::rename(temp.c_str(), path.c_str()) != 0) {
    return fail("cannot move socket " + temp + " to " + path, true);
  }
  return fd;
}

Result<int> BindTcpSocket(const std::string& host, uint16_t port, uint16_t* bound_port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(*v6);
  } else {
    return Status::Invalid("cannot listen on " + host + ": not a numeric IP address");
  }
  std::string where = host + ":" + std::to_string(port);
  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::FromErrno("cannot create a socket for " + where, errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (storage.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&storage), length) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EADDRINUSE) {
      return Status::Unavailable("cannot listen on " + where + ": the address is already in use");
    }
    return Status::FromErrno("cannot listen on " + where, err);
  }
  sockaddr_storage actual{};
  socklen_t actual_length = sizeof(actual);
  if (bound_port && ::getsockname(fd, reinterpret_cast<sockaddr*>(&actual), &actual_length) == 0) {
    *bound_port =
        ntohs(actual.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&actual)->sin_port
                                          : reinterpret_cast<sockaddr_in6*>(&actual)->sin6_port);
  }
  return fd;
}

// ---------------------------------------------------------------------------------------------
// Server

namespace {

// One per connection (MHD's socket context). Fields below `peer` are GUARDED_BY(Impl::mu_).
struct ConnectionState {
  int fd = -1;
  std::optional<PeerCredentials> peer;
  Clock::time_point deadline;  // when the request being received must be complete
  bool receiving = true;       // between requests or receiving one (not handling or sending)
  bool shut_down = false;      // the watchdog gave up on it
};

// One per request (MHD's con_cls).
struct RequestState {
  Request request;
  bool responded = false;
};

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)) {
    if (!options_.error_responder) {
      options_.error_responder = [](int status, const std::string& message) {
        return Response::Text(status, message + "\n");
      };
    }
    if (options_.request_timeout_seconds <= 0) options_.request_timeout_seconds = 10;
    if (options_.threads == 0) options_.threads = 1;
    options_.max_connections = std::max(options_.max_connections, options_.threads);
  }

  Status Start() {
    Result<int> fd = options_.tls ? BindTcpSocket(options_.tls->host, options_.tls->port, &port_)
                                  : BindUnixSocket(options_.socket_path, options_.socket_mode,
                                                   options_.socket_group);
    if (!fd.ok()) return fd.status();
    struct stat st;
    if (!options_.tls && ::stat(options_.socket_path.c_str(), &st) == 0) {
      socket_dev_ = st.st_dev;
      socket_ino_ = st.st_ino;
    }
    watchdog_ = std::thread([this] { Watchdog(); });
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    std::vector<MHD_OptionItem> extra;
    if (options_.thread_per_connection) {
      flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    } else {
      flags |= MHD_USE_EPOLL;
      extra.push_back(
          {MHD_OPTION_THREAD_POOL_SIZE, static_cast<intptr_t>(options_.threads), nullptr});
    }
    if (options_.tls) {
      flags |= MHD_USE_TLS;
      extra.push_back(
          {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(options_.tls->certificate_pem.c_str())});
      extra.push_back(
          {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(options_.tls->key_pem.c_str())});
      extra.push_back({MHD_OPTION_HTTPS_PRIORITIES, 0,
                       const_cast<char*>("NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2")});
    }
    extra.push_back({MHD_OPTION_END, 0, nullptr});
    daemon_ = MHD_start_daemon(
        flags, 0, nullptr, nullptr, &Impl::OnRequest, this,      //
        MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(*fd),  //
        MHD_OPTION_CONNECTION_TIMEOUT,
        static_cast<unsigned int>(options_.request_timeout_seconds),                       //
        MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(options_.max_connections),  //
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(options_.connection_memory_limit),
        MHD_OPTION_NOTIFY_COMPLETED, &Impl::OnCompleted, this,    //
        MHD_OPTION_NOTIFY_CONNECTION, &Impl::OnConnection, this,  //
        MHD_OPTION_EXTERNAL_LOGGER, &Impl::OnLog, this,           //
        MHD_OPTION_UNESCAPE_CALLBACK, &Impl::Unescape, this,      //
        MHD_OPTION_ARRAY, extra.data(),                           //
        MHD_OPTION_END);
    if (!daemon_) {
      ::close(*fd);
      RemoveSocketFile();
      StopWatchdog();
      return Status::Internal("cannot start the HTTP server on " + Where() +
                              " (libmicrohttpd refused its options)");
    }
    log::Debug("{}: serving on {}", options_.name, Where());  // the owner says more
    return Status::Ok();
  }

  std::string Where() const {
    if (!options_.tls) return options_.socket_path;
    const std::string& host = options_.tls->host;
    return "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port_);
  }

  uint16_t port() const { return port_; }

  void Stop() {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    if (!daemon_) return;
    MHD_socket listen_fd = MHD_quiesce_daemon(daemon_);
    if (listen_fd != MHD_INVALID_SOCKET) ::close(listen_fd);
    RemoveSocketFile();
    {
      // Requests already being received or handled get to finish.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(options_.request_timeout_seconds),
                   [this] { return active_requests_ == 0; });
    }
    MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
    StopWatchdog();
    log::Info("{}: stopped serving on {}", options_.name, Where());
  }

  const std::string& socket_path() const { return options_.socket_path; }

 private:
  // ---- libmicrohttpd callbacks: never let an exception through.

  // Percent-decodes the URL and query arguments in place, as libmicrohttpd does, except %00:
  // the URL reaches handlers as a C string, where a decoded NUL would cut a name short
  // ("nul%00x" would name the claim "nul"). Kept as "%00", it fails name validation.
  static size_t Unescape(void*, MHD_Connection*, char* s) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    char* out = s;
    for (const char* in = s; *in != '\0';) {
      if (in[0] == '%' && hex(in[1]) >= 0 && hex(in[2]) >= 0) {
        int value = hex(in[1]) * 16 + hex(in[2]);
        if (value != 0) {
          *out++ = static_cast<char>(value);
          in += 3;
          continue;
        }
      }
      *out++ = *in++;
    }
    *out = '\0';
    return static_cast<size_t>(out - s);
  }

  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url,
                              const char* method, const char* /*version*/, const char* upload_data,
                              size_t* upload_data_size, void** con_cls) {
    auto* self = static_cast<Impl*>(cls);
    try {
      return self->HandleRequest(connection, url, method, upload_data, upload_data_size, con_cls);
    } catch (...) {
      return MHD_NO;  // closes the connection
    }
  }

  static void OnCompleted(void* cls, MHD_Connection* connection, void** con_cls,
                          MHD_RequestTerminationCode /*code*/) {
    auto* self = static_cast<Impl*>(cls);
    auto* state = static_cast<RequestState*>(*con_cls);
    *con_cls = nullptr;
    delete state;
    ConnectionState* conn = ConnectionOf(connection);
    std::lock_guard<std::mutex> lock(self->mu_);
    if (state) --self->active_requests_;
    if (conn) {
      conn->receiving = true;
      conn->deadline = Clock::now() + self->Timeout();
    }
    self->cv_.notify_all();
  }

  static void OnConnection(void* cls, MHD_Connection* connection, void** socket_context,
                           MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      ConnectionState* conn = nullptr;
      try {
        conn = new ConnectionState;
      } catch (...) {
        return;  // no deadline for this one; MHD's idle timeout still applies
      }
      const MHD_ConnectionInfo* info =
          MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      if (info) conn->fd = info->connect_fd;
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (conn->fd >= 0 && ::getsockopt(conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        conn->peer = PeerCredentials{cred.pid, cred.uid, cred.gid, PeerGroups(conn->fd)};
      }
      std::lock_guard<std::mutex> lock(self->mu_);
      conn->deadline = Clock::now() + self->Timeout();
      self->connections_.insert(conn);
      *socket_context = conn;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
      // Called before MHD closes the fd: once the entry is gone under mu_, the watchdog cannot
      // shut down a reused descriptor.
      auto* conn = static_cast<ConnectionState*>(*socket_context);
      *socket_context = nullptr;
      if (!conn) return;
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        self->connections_.erase(conn);
      }
      delete conn;
    }
  }

  static void OnLog(void* cls, const char* format, va_list args) {
    auto* self = static_cast<Impl*>(cls);
    char buffer[512];
    std::vsnprintf(buffer, sizeof(buffer), format, args);
    std::string_view text(buffer);
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    log::Debug("{}: libmicrohttpd: {}", self->options_.name, text);
  }

  static ConnectionState* ConnectionOf(MHD_Connection* connection) {
    const MHD_ConnectionInfo* info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? static_cast<ConnectionState*>(info->socket_context) : nullptr;
  }

  // ---- request handling

  MHD_Result HandleRequest(MHD_Connection* connection, const char* url, const char* method,
                           const char* upload_data, size_t* upload_data_size, void** con_cls) {
    auto* state = static_cast<RequestState*>(*con_cls);
    if (!state) {
      // Headers are in; the body (if any) follows in later calls.
      state = new RequestState;
      *con_cls = state;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++active_requests_;
      }
      Request& request = state->request;
      request.method = method ? method : "";
      request.path = url ? url : "";
      MHD_get_connection_values(connection, MHD_HEADER_KIND, &Impl::CollectHeader,
                                &request.headers);
      MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &Impl::CollectQuery,
                                &request.query);
      if (ConnectionState* conn = ConnectionOf(connection)) request.peer = conn->peer;
      if (const std::string* length = request.Header("content-length")) {
        uint64_t bytes = 0;
        auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), bytes);
        if (ec == std::errc() && bytes > options_.max_request_bytes) {
          // Answer before reading the body: MHD then closes the connection unread.
          return Respond(connection, state, TooLarge());
        }
        if (ec == std::errc()) request.body.reserve(static_cast<size_t>(bytes));
      }
      return MHD_YES;
    }
    if (*upload_data_size > 0) {
      if (state->responded) {
        *upload_data_size = 0;
        return MHD_YES;
      }
      if (state->request.body.size() + *upload_data_size > options_.max_request_bytes) {
        log::Debug("{}: {} {}: chunked body over {} bytes, closing the connection", options_.name,
                   state->request.method, state->request.path, options_.max_request_bytes);
        return MHD_NO;
      }
      state->request.body.append(upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (state->responded) return MHD_YES;
    if (ConnectionState* conn = ConnectionOf(connection)) {
      std::lock_guard<std::mutex> lock(mu_);
      conn->receiving = false;
    }
    return Respond(connection, state, Run(state->request));
  }

  Response Run(const Request& request) {
    try {
      return handler_(request);
    } catch (const std::bad_alloc&) {
      return Error(500, "out of memory handling " + request.method + " " + request.path);
    } catch (const std::exception& e) {
      log::Error("{}: {} {} failed: {}", options_.name, request.method, request.path, e.what());
      return Error(500, std::string("internal error: ") + e.what());
    } catch (...) {
      log::Error("{}: {} {} failed with an unknown exception", options_.name, request.method,
                 request.path);
      return Error(500, "internal error");
    }
  }

  Response Error(int status, const std::string& message) {
    try {
      return options_.error_responder(status, message);
    } catch (...) {
      return Response::Text(status, message + "\n");
    }
  }

  Response TooLarge() {
    return Error(
        413, "Request entity too large: limit is " + std::to_string(options_.max_request_bytes));
  }

  MHD_Result Respond(MHD_Connection* connection, RequestState* state, const Response& response) {
    state->responded = true;
    const Request& request = state->request;
    if (request.peer) {
      log::Debug("{}: {} {} -> {} (pid {} uid {})", options_.name, request.method, request.path,
                 response.status, request.peer->pid, request.peer->uid);
    } else {
      log::Debug("{}: {} {} -> {}", options_.name, request.method, request.path, response.status);
    }
    if (options_.on_response) {
      try {
        options_.on_response(request, response);
      } catch (...) {
        // Metrics must not break answering.
      }
    }
    MHD_Response* mhd = nullptr;
    if (response.stream && options_.thread_per_connection) {
      auto* stream = new StreamState{response.body, 0, response.stream};
      mhd = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 << 10, &Impl::ReadStream, stream,
                                              &Impl::FreeStream);
      if (!mhd) delete stream;
    } else {
      mhd = MHD_create_response_from_buffer(
          response.body.size(), const_cast<char*>(response.body.data()), MHD_RESPMEM_MUST_COPY);
    }
    if (!mhd) return MHD_NO;
    if (!response.content_type.empty()) {
      MHD_add_response_header(mhd, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
    }
    for (const auto& [name, value] : response.headers) {
      MHD_add_response_header(mhd, name.c_str(), value.c_str());
    }
    MHD_Result result =
        MHD_queue_response(connection, static_cast<unsigned int>(response.status), mhd);
    MHD_destroy_response(mhd);
    return result;
  }

  // A streamed body: what is left of the last chunk, and where the next ones come from.
  struct StreamState {
    std::string pending;
    size_t offset = 0;
    std::function<bool(std::string*)> next;
  };

  static ssize_t ReadStream(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
    auto* stream = static_cast<StreamState*>(cls);
    try {
      while (stream->offset >= stream->pending.size()) {
        stream->pending.clear();
        stream->offset = 0;
        if (!stream->next(&stream->pending)) return MHD_CONTENT_READER_END_OF_STREAM;
      }
    } catch (...) {
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = std::min(max, stream->pending.size() - stream->offset);
    std::memcpy(buf, stream->pending.data() + stream->offset, n);
    stream->offset += n;
    return static_cast<ssize_t>(n);
  }

  static void FreeStream(void* cls) { delete static_cast<StreamState*>(cls); }

  static MHD_Result CollectHeader(void* cls, MHD_ValueKind /*kind*/, const char* key,
                                  const char* value) {
    auto* headers = static_cast<std::map<std::string, std::string>*>(cls);
    if (!key) return MHD_YES;
    // A repeated header is one comma-separated list (RFC 9110 5.3), e.g. Impersonate-Group.
    auto [it, inserted] = headers->emplace(Lower(key), value ? value : "");
    if (!inserted) it->second += std::string(",") + (value ? value : "");
    return MHD_YES;
  }

  static MHD_Result CollectQuery(void* cls, MHD_ValueKind /*kind*/, const char* key,
                                 const char* value) {
    auto* query = static_cast<std::map<std::string, std::string>*>(cls);
    if (key) query->emplace(key, value ? value : "");
    return MHD_YES;
  }

  // ---- the deadline: MHD's timeout only counts idle time, so a client trickling a byte at a
  // time would hold a connection forever. The watchdog shuts down connections whose request has
  // not arrived in full by its deadline; MHD then sees the hang-up and closes them.

  std::chrono::seconds Timeout() const {
    return std::chrono::seconds(options_.request_timeout_seconds);
  }

  void Watchdog() {
    auto tick = std::min<Clock::duration>(std::chrono::milliseconds(250), Timeout() / 4);
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_watchdog_) {
      watchdog_cv_.wait_for(lock, tick);
      Clock::time_point now = Clock::now();
      for (ConnectionState* conn : connections_) {
        if (conn->receiving && !conn->shut_down && conn->fd >= 0 && now >= conn->deadline) {
          ::shutdown(conn->fd, SHUT_RDWR);
          conn->shut_down = true;
          if (conn->peer) {
            log::Debug("{}: dropped a connection from pid {} uid {}: no complete request in {}s",
                       options_.name, conn->peer->pid, conn->peer->uid,
                       options_.request_timeout_seconds);
          } else {
            log::Debug("{}: dropped a connection: no complete request in {}s", options_.name,
                       options_.request_timeout_seconds);
          }
        }
      }
    }
  }

  void StopWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_watchdog_ = true;
    }
    watchdog_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  void RemoveSocketFile() {
    if (options_.tls) return;
    struct stat st;
    if (::lstat(options_.socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
        st.st_ino == socket_ino_) {
      ::unlink(options_.socket_path.c_str());
    }
  }

  ServerOptions options_;
  const Handler handler_;
  uint16_t port_ = 0;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;

  std::mutex stop_mu_;            // serialises Stop(); taken before mu_, never inside it
  MHD_Daemon* daemon_ = nullptr;  // GUARDED_BY(stop_mu_) after Start()

  std::mutex mu_;               // guards the fields below and ConnectionState's
  std::condition_variable cv_;  // active_requests_ changed
  std::condition_variable watchdog_cv_;
  std::set<ConnectionState*> connections_;
  int active_requests_ = 0;
  bool stop_watchdog_ = false;
  std::thread watchdog_;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler handler) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
  Status status = impl->Start();
  if (!status.ok()) return status;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  if (impl_) impl_->Stop();
}

const std::string& Server::socket_path() const { return impl_->socket_path(); }

uint16_t Server::port() const { return impl_->port(); }

// ---------------------------------------------------------------------------------------------
// Router

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

Router::Router(ErrorResponder errors) : errors_(std::move(errors)) {}

void Router::Add(std::string method, std::string_view pattern, RouteHandler handler) {
  routes_.push_back(Route{std::move(method), SplitPath(pattern), std::move(handler)});
}

namespace {

bool Match(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
           PathParams* params) {
  if (pattern.size() != path.size()) return false;
  PathParams captured;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const std::string& segment = pattern[i];
    if (segment.size() > 2 && segment.front() == '{' && segment.back() == '}') {
      captured[segment.substr(1, segment.size() - 2)] = path[i];
    } else if (segment != path[i]) {
      return false;
    }
  }
  *params = std::move(captured);
  return true;
}

}  // namespace

Response Router::Dispatch(const Request& request) const {
  std::vector<std::string> path = SplitPath(request.path);
  std::set<std::string> allowed;
  PathParams params;
  for (const std::string& method :
       {request.method, std::string(request.method == "HEAD" ? "GET" : "")}) {
    if (method.empty()) continue;
    for (const Route& route : routes_) {
      if (!Match(route.segments, path, &params)) continue;
      if (route.method == method) return route.handler(request, params);
      allowed.insert(route.method);
    }
  }
  if (!allowed.empty()) {
    Response response =
        errors_(405, "the server does not allow this method on the requested resource");
    std::string allow;
    for (const std::string& method : allowed) allow += (allow.empty() ? "" : ", ") + method;
    response.headers.emplace_back("Allow", allow);
    return response;
  }
  return errors_(404, "the server could not find the requested resource");
}

}  // namespace claimfs::api::http
