// A volume server for the adoption tests, in a process of its own so a test can SIGKILL it:
//   adopt_server mount SOURCE MOUNTPOINT SOCK [CAPACITY]
//     mounts SOURCE on MOUNTPOINT, serves it with a ServerPool and sends the bundle (dups of
//     the connection and arena fds, SCM_RIGHTS) over the socket SOCK with the byte 'M';
//   adopt_server adopt SOURCE MOUNTPOINT SOCK CONN ARENA [CAPACITY]
//     adopts the connection CONN with arena ARENA (inherited fds) and sends 'A'.
//   Anywhere: --orphan=SLOT:GEN:FD adds an inherited fd to the bundle as a kept orphan.
// Orphans (files unlinked while open) are kept by the test: the server sends 'O' "SLOT GEN"
// with the fd when it keeps one and 'F' "SLOT GEN" when it forgets one.
// Then it serves until the socket says 'R' (Release(), answer 'r', exit 0) or ends (Stop()).
// A failure is answered 'E' followed by the message, exit 1.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "claimfs/fs/server_pool.h"
#include "claimfs/fs/volume.h"

namespace {

using claimfs::fs::OrphanKeeper;
using claimfs::fs::ServerPool;
using claimfs::fs::Volume;
using claimfs::fs::VolumeBundle;
using claimfs::fs::VolumeOptions;

void Send(int sock, char tag, const std::string& text, const int* fds, int nfds) {
  std::string payload = std::string(1, tag) + text;
  iovec iov{payload.data(), payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  sendmsg(sock, &msg, MSG_NOSIGNAL);
}

int Fail(int sock, const std::string& why) {
  Send(sock, 'E', why, nullptr, 0);
  return 1;
}

// Keeps orphans with the test, over the socket (one message each, so no lock is needed).
class TestKeeper : public OrphanKeeper {
 public:
  explicit TestKeeper(int sock) : sock_(sock) {}
  int Keep(uint32_t slot, uint32_t generation, int fd) override {
    Send(sock_, 'O', Name(slot, generation), &fd, 1);
    return 0;
  }
  void Forget(uint32_t slot, uint32_t generation) override {
    Send(sock_, 'F', Name(slot, generation), nullptr, 0);
  }

 private:
  static std::string Name(uint32_t slot, uint32_t generation) {
    return std::to_string(slot) + " " + std::to_string(generation);
  }
  int sock_;
};

}  // namespace

int main(int raw_argc, char** raw_argv) {
  std::vector<char*> args;
  std::vector<VolumeBundle::Orphan> orphans;
  for (int i = 0; i < raw_argc; ++i) {
    VolumeBundle::Orphan o;
    if (std::sscanf(raw_argv[i], "--orphan=%u:%u:%d", &o.slot, &o.generation, &o.fd) == 3) {
      orphans.push_back(o);
    } else {
      args.push_back(raw_argv[i]);
    }
  }
  int argc = static_cast<int>(args.size());
  char** argv = args.data();
  if (argc < 5) return 2;
  std::string mode = argv[1];
  VolumeOptions o;
  o.source = argv[2];
  o.mountpoint = argv[3];
  int sock = std::atoi(argv[4]);
  o.orphan_keeper = std::make_shared<TestKeeper>(sock);
  int capacity_arg = mode == "mount" ? 5 : 7;
  if (argc > capacity_arg) o.capacity_bytes = std::strtoull(argv[capacity_arg], nullptr, 10);

  auto pool = ServerPool::Create(4);
  if (!pool.ok()) return Fail(sock, pool.status().ToString());
  std::unique_ptr<Volume> volume;
  if (mode == "mount") {
    auto v = Volume::Mount(o);
    if (!v.ok()) return Fail(sock, v.status().ToString());
    volume = std::move(*v);
  } else if (mode == "adopt" && argc >= 7) {
    VolumeBundle b;
    b.connection_fd = std::atoi(argv[5]);
    b.arena_fd = std::atoi(argv[6]);
    b.orphans = orphans;
    auto v = Volume::Adopt(o, b);
    if (!v.ok()) return Fail(sock, v.status().ToString());
    volume = std::move(*v);
  } else {
    return 2;
  }
  auto started = volume->Start(pool->get());
  if (!started.ok()) return Fail(sock, started.ToString());
  if (mode == "mount") {
    auto bundle = volume->Bundle();
    if (!bundle.ok()) return Fail(sock, bundle.status().ToString());
    int fds[2] = {bundle->connection_fd, bundle->arena_fd};
    Send(sock, 'M', "", fds, 2);
    close(fds[0]);
    close(fds[1]);
  } else {
    Send(sock, 'A', "", nullptr, 0);
  }
  char command = 0;
  while (read(sock, &command, 1) == 1) {
    if (command == 'R') {
      volume->Release();
      Send(sock, 'r', "", nullptr, 0);
      return 0;
    }
  }
  volume->Stop();
  return 0;
}
