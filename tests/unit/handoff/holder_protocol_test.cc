#include "claimfs/handoff/holder_protocol.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace claimfs::handoff {
namespace {

int CountOpenFds() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory's own fd
}

std::string Header(uint16_t version, uint16_t op, uint32_t name_len, int32_t result = 0,
                   uint32_t reserved = 0) {
  WireHeader header{version, op, name_len, result, reserved};
  return std::string(reinterpret_cast<const char*>(&header), sizeof(header));
}

struct Pair {
  UniqueFd a, b;
};
Pair SeqPacketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST(HolderProtocol, EncodeDecodeRoundTrip) {
  for (Op op :
       {Op::kHello, Op::kPut, Op::kTake, Op::kDrop, Op::kDropPrefix, Op::kList, Op::kShutdown}) {
    Message m;
    m.op = op;
    m.name = "claimfs.1.pv.conn";
    auto bytes = EncodeMessage(m);
    ASSERT_TRUE(bytes.ok());
    auto back = DecodeMessage(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->op, op);
    EXPECT_EQ(back->name, m.name);
    EXPECT_EQ(back->version, kHolderProtocolVersion);
  }
  Message reply;
  reply.op = Op::kReply;
  reply.result = ENOENT;
  reply.name = "not held";
  auto back = DecodeMessage(*EncodeMessage(reply));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->result, ENOENT);
}

TEST(HolderProtocol, DecodeRefusesMalformedMessages) {
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const uint16_t put = static_cast<uint16_t>(Op::kPut);
  const Case cases[] = {
      {"empty", "", "short message"},
      {"short header", Header(1, put, 0).substr(0, 15), "short message"},
      {"name_len too long", Header(1, put, 5) + "abcd", "header says 5"},
      {"name_len too short", Header(1, put, 3) + "abcd", "header says 3"},
      {"name_len huge", Header(1, put, 0xffffffffu) + "abcd", "header says"},
      {"oversized", Header(1, put, kMaxBody + 1) + std::string(kMaxBody + 1, 'a'),
       "over the limit"},
      {"reserved bits", Header(1, put, 1, 0, 1) + "a", "reserved"},
      {"unknown op 0", Header(1, 0, 1) + "a", "unknown op"},
      {"unknown op 8", Header(1, 8, 1) + "a", "unknown op"},
      {"unknown op high", Header(1, 0x7fff, 1) + "a", "unknown op"},
      {"reply bit on a request op", Header(1, 0x8002, 1) + "a", "unknown op"},
      {"NUL in name", Header(1, put, 3) + std::string("a\0b", 3), "NUL"},
      {"request with result", Header(1, put, 1, 5) + "a", "result"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto decoded = DecodeMessage(c.bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_NE(decoded.status().message().find(c.message), std::string::npos)
        << decoded.status().message();
  }
  // Another version decodes (so that a HELLO of it gets an answer).
  auto other = DecodeMessage(Header(7, static_cast<uint16_t>(Op::kHello), 0));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->version, 7);
}

TEST(HolderProtocol, SendAndReceiveAnFd) {
  Pair pair = SeqPacketPair();
  int before = CountOpenFds();
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  Message m;
  m.op = Op::kPut;
  m.name = "x";
  ASSERT_EQ(SendMessage(pair.a.get(), m, {r.get()}), 0);
  Message got;
  ASSERT_EQ(ReceiveMessage(pair.b.get(), &got), 0);
  ASSERT_EQ(got.fds.size(), 1u);
  EXPECT_EQ(::fcntl(got.fds[0].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  ASSERT_EQ(::write(w.get(), "hi", 2), 2);
  char buf[2];
  ASSERT_EQ(::read(got.fds[0].get(), buf, 2), 2);
  got.fds.clear();
  r.reset();
  w.reset();
  EXPECT_EQ(CountOpenFds(), before);
}

// Hostile senders: every fd that arrived is closed whatever was wrong with the message.
TEST(HolderProtocol, ReceiveClosesTheFdsOfABadMessage) {
  Pair pair = SeqPacketPair();
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int before = CountOpenFds();
  struct Case {
    const char* what;
    std::string bytes;
    size_t fds;
    int expected;
  };
  const uint16_t put = static_cast<uint16_t>(Op::kPut);
  const Case cases[] = {
      {"two fds", Header(1, put, 1) + "a", 2, -ETOOMANYREFS},
      {"253 fds", Header(1, put, 1) + "a", 253, -ETOOMANYREFS},
      {"fd with a short message", "abc", 1, -EBADMSG},
      {"fd with no bytes", "", 1, -EBADMSG},
      {"fd with a bad header", Header(1, put, 9) + "a", 1, -EBADMSG},
      {"oversized with an fd", Header(1, put, kMaxBody + 8) + std::string(kMaxBody + 8, 'a'), 1,
       -EMSGSIZE},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    int sndbuf = 1 << 20;
    ::setsockopt(pair.a.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    std::vector<int> fds(c.fds, null.get());
    iovec iov{const_cast<char*>(c.bytes.data()), c.bytes.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    ASSERT_GE(::sendmsg(pair.a.get(), &msg, 0), 0) << std::strerror(errno);
    Message got;
    std::string problem;
    EXPECT_EQ(ReceiveMessage(pair.b.get(), &got, &problem), c.expected);
    EXPECT_FALSE(problem.empty());
    EXPECT_TRUE(got.fds.empty());
    EXPECT_EQ(CountOpenFds(), before);
  }
  pair.a.reset();
  Message got;
  EXPECT_EQ(ReceiveMessage(pair.b.get(), &got), -ECONNRESET);
}

TEST(HolderProtocol, FdMustBeWhatItsNameSays) {
  UniqueFd fuse(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  UniqueFd memfd(::memfd_create("claimfs-arena", MFD_CLOEXEC));
  char tmp[] = "/tmp/holder-protocol-XXXXXX";
  UniqueFd file(::mkostemp(tmp, O_CLOEXEC));
  ::unlink(tmp);
  UniqueFd path_fd(::open("/dev/fuse", O_PATH | O_CLOEXEC));
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd pr(p[0]), pw(p[1]);
  UniqueFd dir(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(memfd.valid() && file.valid() && path_fd.valid() && null.valid() && dir.valid());

  struct Case {
    const char* name;
    int fd;
    bool ok;
  };
  std::vector<Case> cases = {
      {"claimfs.1.pv.arena", memfd.get(), true},
      {"claimfs.1.pv.orphan.1.1", file.get(), true},
      {"claimfs.1.pv.orphan.1.1", memfd.get(), true},  // an unlinked file may be a memfd too
      {"claimfs.1.pv.conn", memfd.get(), false},
      {"claimfs.1.pv.conn", null.get(), false},  // a character device, not /dev/fuse
      {"claimfs.1.pv.conn", pr.get(), false},
      {"claimfs.1.pv.conn", path_fd.get(), false},
      {"claimfs.1.pv.arena", file.get(), false},
      {"claimfs.1.pv.arena", pw.get(), false},
      {"claimfs.1.pv.orphan.1.1", dir.get(), false},
      {"claimfs.1.pv.orphan.1.1", pr.get(), false},
      {"not-a-bundle", memfd.get(), false},
      {"claimfs.1.pv.arena", 1000000, false},  // not open
  };
  if (fuse.valid()) {
    cases.push_back({"claimfs.1.pv.conn", fuse.get(), true});
    cases.push_back({"claimfs.1.pv.arena", fuse.get(), false});
    cases.push_back({"claimfs.1.pv.orphan.1.1", fuse.get(), false});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " fd " + std::to_string(c.fd));
    Status s = CheckFdMatchesName(c.name, c.fd);
    EXPECT_EQ(s.ok(), c.ok) << s.message();
  }
}

}  // namespace
}  // namespace claimfs::handoff
