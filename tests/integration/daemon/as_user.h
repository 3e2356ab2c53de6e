// Test helpers for requests and file access as other local users: forked children that switch to
// uids/gids like 1001 with setresuid/setgroups (no accounts needed), and raw HTTP on a Unix
// socket so that the daemon sees the child's peer credentials.
#pragma once

#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace claimfs::it {

struct Identity {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;  // supplementary
};

// Runs `fn` in a forked child as `who`; returns what fn returned (through a pipe), or a
// description of how the child failed.
inline std::string RunAs(const Identity& who, const std::function<std::string()>& fn) {
  int fds[2];
  if (pipe(fds) != 0) return std::string("pipe: ") + strerror(errno);
  pid_t pid = fork();
  if (pid < 0) return std::string("fork: ") + strerror(errno);
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    if (setgroups(who.groups.size(), who.groups.data()) != 0 ||
        setresgid(who.gid, who.gid, who.gid) != 0 || setresuid(who.uid, who.uid, who.uid) != 0) {
      out = std::string("cannot switch user: ") + strerror(errno);
    } else {
      out = fn();
    }
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "child died: status " + std::to_string(status) + "; " + out;
  return out;
}

// "ok" or the errno name of a failed call.
inline std::string Errno(int rv) {
  if (rv >= 0) return "ok";
  return errno == EACCES ? "EACCES" : errno == EPERM ? "EPERM" : strerror(errno);
}

// One HTTP/1.1 request on a Unix socket with extra headers; "<status> <body>", or what failed.
inline std::string RawHttp(const std::string& socket_path, const std::string& method,
                           const std::string& target, const std::string& body,
                           const std::vector<std::string>& headers = {},
                           const std::string& content_type = "application/json") {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + strerror(errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string err = std::string("connect: ") + strerror(errno);
    close(fd);
    return err;
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: claimfsd\r\n" +
                        "Connection: close\r\nContent-Type: " + content_type + "\r\n" +
                        "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const std::string& header : headers) request += header + "\r\n";
  request += "\r\n" + body;
  size_t done = 0;
  while (done < request.size()) {
    ssize_t n = write(fd, request.data() + done, request.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  // "HTTP/1.1 201 Created\r\n...\r\n\r\nBODY"
  size_t space = response.find(' ');
  size_t split = response.find("\r\n\r\n");
  if (space == std::string::npos || split == std::string::npos) return "bad response: " + response;
  std::string out = response.substr(space + 1, 3) + " " + response.substr(split + 4);
  // A chunked body: keep it readable enough for find().
  return out;
}

inline int StatusOf(const std::string& raw) { return std::atoi(raw.substr(0, 3).c_str()); }

// The message of the Status object in a RawHttp answer; "" when it has none.
inline std::string MessageOf(const std::string& raw) {
  nlohmann::json body = nlohmann::json::parse(raw.size() > 4 ? raw.substr(4) : "", nullptr, false);
  return body.is_object() ? body.value("message", "") : "";
}

}  // namespace claimfs::it
