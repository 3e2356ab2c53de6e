// The service's main process in the fake systemd tests: uses the real fd store client
// (src/handoff/fd_store.*) on the notify socket it was given.
//   store NAME TEXT   memfd holding TEXT pushed as NAME, then waits to be killed
//   pipe NAME TEXT    a pipe with TEXT in it, both ends pushed (NAME.r, NAME.w), then waits
//   pipe-read NAME    only a pipe's read end pushed; the write end closes at once
//   remove NAME       FDSTOREREMOVE NAME, then waits
//   read              prints "NAME=TEXT" per fd passed, then "env=unset|set", exits 0
//   read-fds          prints the names passed (or the error), then which fds 3..15 are open
#include <fcntl.h>
#include <sys/mman.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "claimfs/handoff/fd_store.h"

using claimfs::handoff::FdStorePush;
using claimfs::handoff::FdStoreRemove;

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "fd_store_child: %s\n", what.c_str());
  return 1;
}

void Stay() {
  std::printf("done\n");
  std::fflush(stdout);
  while (true) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "store" && argc == 4) {
    int fd = ::memfd_create("fd-store-test", MFD_CLOEXEC);
    if (fd < 0 || ::write(fd, argv[3], std::strlen(argv[3])) < 0) return Fail("memfd");
    claimfs::Status s = FdStorePush(argv[2], fd);
    if (!s.ok()) return Fail(s.message());
    ::close(fd);
    Stay();
  }
  if ((mode == "pipe" || mode == "pipe-read") && argc >= 3) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Fail("pipe");
    if (argc == 4 && ::write(p[1], argv[3], std::strlen(argv[3])) < 0) return Fail("write");
    std::string name = argv[2];
    claimfs::Status s = FdStorePush(mode == "pipe" ? name + ".r" : name, p[0]);
    if (s.ok() && mode == "pipe") s = FdStorePush(name + ".w", p[1]);
    if (!s.ok()) return Fail(s.message());
    ::close(p[0]);
    ::close(p[1]);
    Stay();
  }
  if (mode == "remove" && argc == 3) {
    claimfs::Status s = FdStoreRemove(argv[2]);
    if (!s.ok()) return Fail(s.message());
    Stay();
  }
  if (mode == "read") {
    auto fds = claimfs::handoff::TakeListenFds();
    if (!fds.ok()) return Fail(fds.status().message());
    for (auto& named : *fds) {
      char buf[256];
      ::fcntl(named.fd.get(), F_SETFL, O_NONBLOCK);
      ssize_t n = ::pread(named.fd.get(), buf, sizeof(buf), 0);
      if (n < 0 && errno == ESPIPE) n = ::read(named.fd.get(), buf, sizeof(buf));
      if (n < 0) n = 0;
      bool cloexec = ::fcntl(named.fd.get(), F_GETFD) & FD_CLOEXEC;
      std::printf("%s=%.*s%s\n", named.name.c_str(), static_cast<int>(n), buf,
                  cloexec ? "" : " (not cloexec)");
    }
    bool unset = std::getenv("LISTEN_FDS") == nullptr && std::getenv("LISTEN_PID") == nullptr &&
                 std::getenv("LISTEN_FDNAMES") == nullptr;
    std::printf("env=%s\n", unset ? "unset" : "set");
    return 0;
  }
  if (mode == "read-fds") {
    auto fds = claimfs::handoff::TakeListenFds();
    if (fds.ok()) {
      for (auto& named : *fds) std::printf("%s ", named.name.c_str());
    } else {
      std::printf("error: %s ", fds.status().message().c_str());
    }
    // Which of systemd's fd numbers are still open once TakeListenFds is done with them.
    std::printf("| open:");
    for (int fd = 3; fd < 16; ++fd) {
      if (::fcntl(fd, F_GETFD) >= 0) std::printf(" %d", fd);
    }
    std::printf("\n");
    return 0;
  }
  return Fail(
      "usage: store NAME TEXT | pipe NAME TEXT | pipe-read NAME | remove NAME | read | read-fds");
}
