#include "claimfs/handoff/holder_protocol.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "claimfs/handoff/bundle_name.h"

namespace claimfs::handoff {
namespace {

// /dev/fuse is the misc device 10:229.
constexpr unsigned kFuseMajor = 10;
constexpr unsigned kFuseMinor = 229;

// Room for more fds than we accept, so that an over-full message is seen (and its fds closed)
// rather than cut short by the kernel with the excess left unnamed.
constexpr size_t kReceiveFdRoom = 16;

bool KnownOp(uint16_t op) {
  return op == static_cast<uint16_t>(Op::kReply) ||
         (op >= static_cast<uint16_t>(Op::kHello) && op <= static_cast<uint16_t>(Op::kShutdown));
}

}  // namespace

std::string_view OpName(Op op) {
  switch (op) {
    case Op::kHello:
      return "HELLO";
    case Op::kPut:
      return "PUT";
    case Op::kTake:
      return "TAKE";
    case Op::kDrop:
      return "DROP";
    case Op::kDropPrefix:
      return "DROP_PREFIX";
    case Op::kList:
      return "LIST";
    case Op::kShutdown:
      return "SHUTDOWN";
    case Op::kReply:
      return "reply";
    default:
      return "unknown op";
  }
}

Result<std::string> EncodeMessage(const Message& message) {
  if (message.name.size() > kMaxBody) {
    return Status::Invalid("message body of " + std::to_string(message.name.size()) +
                           " bytes is over the limit of " + std::to_string(kMaxBody));
  }
  WireHeader header{};
  header.version = message.version;
  header.op = static_cast<uint16_t>(message.op);
  header.name_len = static_cast<uint32_t>(message.name.size());
  header.result = message.result;
  std::string bytes(sizeof(header) + message.name.size(), '\0');
  std::memcpy(bytes.data(), &header, sizeof(header));
  std::memcpy(bytes.data() + sizeof(header), message.name.data(), message.name.size());
  return bytes;
}

Result<Message> DecodeMessage(std::string_view bytes) {
  if (bytes.size() < sizeof(WireHeader)) {
    return Status::Invalid("short message: " + std::to_string(bytes.size()) +
                           " bytes, a header is " + std::to_string(sizeof(WireHeader)));
  }
  if (bytes.size() > kMaxMessage) {
    return Status::Invalid("message of " + std::to_string(bytes.size()) +
                           " bytes is over the limit of " + std::to_string(kMaxMessage));
  }
  WireHeader header;
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (header.name_len != bytes.size() - sizeof(header)) {
    return Status::Invalid("header says " + std::to_string(header.name_len) +
                           " name bytes, the message has " +
                           std::to_string(bytes.size() - sizeof(header)));
  }
  if (header.reserved != 0) return Status::Invalid("reserved header bits are set");
  if (!KnownOp(header.op)) return Status::Invalid("unknown op " + std::to_string(header.op));
  Message message;
  message.version = header.version;
  message.op = static_cast<Op>(header.op);
  message.result = header.result;
  message.name.assign(bytes.substr(sizeof(header)));
  bool reply = message.op == Op::kReply;
  // Names never hold a NUL; a reply's body is text too.
  if (message.name.find('\0') != std::string::npos) {
    return Status::Invalid(std::string(reply ? "reply body" : "name") + " contains a NUL byte");
  }
  if (!reply && header.result != 0) return Status::Invalid("request with a result set");
  return message;
}

int SendMessage(int socket, const Message& message) {
  std::vector<int> fds;
  fds.reserve(message.fds.size());
  for (const UniqueFd& fd : message.fds) fds.push_back(fd.get());
  return SendMessage(socket, message, fds);
}

int SendMessage(int socket, const Message& message, const std::vector<int>& fds) {
  auto bytes = EncodeMessage(message);
  if (!bytes.ok()) return -EMSGSIZE;
  iovec iov{bytes->data(), bytes->size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  while (true) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int ReceiveMessage(int socket, Message* message, std::string* problem) {
  std::string buffer(kMaxMessage, '\0');
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kReceiveFdRoom)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  std::vector<UniqueFd> fds;
  bool foreign_control = false;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
      size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
        fds.emplace_back(fd);
      }
    } else {
      foreign_control = true;
    }
  }
  auto say = [problem](std::string text) {
    if (problem != nullptr) *problem = std::move(text);
  };
  if (n == 0 && fds.empty()) {
    // SOCK_SEQPACKET: a zero-length read is the peer's close (our messages are never empty).
    say("peer closed the connection");
    return -ECONNRESET;
  }
  if (msg.msg_flags & MSG_TRUNC) {
    say("message over " + std::to_string(kMaxMessage) + " bytes");
    return -EMSGSIZE;
  }
  if ((msg.msg_flags & MSG_CTRUNC) || fds.size() > kMaxFdsPerMessage) {
    say("message carries more than " + std::to_string(kMaxFdsPerMessage) +
        " fd(s), or more than this process can open");
    return -ETOOMANYREFS;
  }
  if (foreign_control) {
    say("message carries control data other than fds");
    return -EBADMSG;
  }
  auto decoded = DecodeMessage(std::string_view(buffer.data(), static_cast<size_t>(n)));
  if (!decoded.ok()) {
    say(decoded.status().message());
    return -EBADMSG;
  }
  *message = std::move(decoded).value();
  message->fds = std::move(fds);
  return 0;
}

Result<PeerCredentials> GetPeerCredentials(int socket) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status::FromErrno("cannot read the peer's credentials (SO_PEERCRED)", errno);
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

bool TrustedPeer(const PeerCredentials& peer) { return peer.uid == 0 || peer.uid == ::getuid(); }

Status CheckFdMatchesName(std::string_view name, int fd) {
  auto parsed = ParseBundleName(name);
  if (!parsed.ok()) return parsed.status();
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return Status::FromErrno("fd for " + std::string(name), errno);
  if (flags & O_PATH) return Status::Invalid("fd for " + std::string(name) + " is an O_PATH fd");
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return Status::FromErrno("cannot stat the fd for " + std::string(name), errno);
  switch (parsed->part) {
    case BundlePart::kConnection:
      if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != kFuseMajor ||
          minor(st.st_rdev) != kFuseMinor) {
        return Status::Invalid("fd for " + std::string(name) + " is not a /dev/fuse connection");
      }
      return Status::Ok();
    case BundlePart::kArena: {
      char target[64] = {};
      std::string link = "/proc/self/fd/" + std::to_string(fd);
      ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
      if (!S_ISREG(st.st_mode) || n < 0 || std::strncmp(target, "/memfd:", 7) != 0) {
        return Status::Invalid("fd for " + std::string(name) + " is not a memfd");
      }
      return Status::Ok();
    }
    case BundlePart::kOrphan:
      if (!S_ISREG(st.st_mode)) {
        return Status::Invalid("fd for " + std::string(name) + " is not a regular file");
      }
      return Status::Ok();
  }
  return Status::Internal("unknown bundle part");
}

}  // namespace claimfs::handoff
