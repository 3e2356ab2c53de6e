// The holder's wire protocol: one SOCK_SEQPACKET message per request and per reply, a fixed
// header, then `name_len` bytes (a name in requests, a body in replies), fds by SCM_RIGHTS.
// Both ends are on one machine, so fields are in host byte order. Nothing else in claimfs
// frames these messages: the holder, its client and (later) the server control socket share
// EncodeMessage/DecodeMessage and SendMessage/ReceiveMessage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/handoff/unique_fd.h"

namespace claimfs::handoff {

inline constexpr uint16_t kHolderProtocolVersion = 1;
// The largest name or body: LIST pages its answer to stay below it.
inline constexpr size_t kMaxBody = 64 * 1024;
// The most fds one message may carry; more is refused and every one of them closed.
inline constexpr size_t kMaxFdsPerMessage = 1;

enum class Op : uint16_t {
  kHello = 1,       // name: the client's build id. Reply body: the holder's build id.
  kPut = 2,         // name + exactly one fd. The holder keeps it; EEXIST if the name is held.
  kTake = 3,        // name. Reply: one fd, a dup of the holder's (which it keeps).
  kDrop = 4,        // name. ENOENT if not held.
  kDropPrefix = 5,  // "claimfs.1.<pv>.": drops PV <pv>'s names (not PV <pv>.x's). Reply
                    // body: the count dropped, in decimal.
  kList = 6,        // name: "" or the last name of the previous page. Reply body: the next
                    // names in order, each followed by '\n'; an empty body ends the list.
  kShutdown = 7,    // the holder closes everything it holds and exits after replying.
  kReply = 0x8000,  // every reply; `result` is 0 or a positive errno with a message as body.
};

struct WireHeader {
  uint16_t version;
  uint16_t op;
  uint32_t name_len;  // bytes after the header; must be exactly the rest of the message
  int32_t result;     // replies: 0 or a positive errno; requests: 0
  uint32_t reserved;  // 0
};
static_assert(sizeof(WireHeader) == 16);
inline constexpr size_t kMaxMessage = sizeof(WireHeader) + kMaxBody;

struct Message {
  uint16_t version = kHolderProtocolVersion;
  Op op = Op::kHello;
  int32_t result = 0;
  std::string name;  // or body
  std::vector<UniqueFd> fds;
};

// Header and name as they go on the wire; Invalid if the name is longer than kMaxBody.
Result<std::string> EncodeMessage(const Message& message);

// Checks a received datagram's size, header and name. `fds` are not involved. Returns Invalid
// with a message for a short or oversized message, a name_len that is not the rest of the
// message, non-zero reserved bits, a NUL in the name, or an unknown op. The version is not
// checked here (a HELLO of another version deserves an answer).
Result<Message> DecodeMessage(std::string_view bytes);

// Sends one message with its fds (not consumed: they stay open in the caller). -errno or 0.
int SendMessage(int socket, const Message& message);
int SendMessage(int socket, const Message& message, const std::vector<int>& fds);

// Receives one message, fds marked close-on-exec. Always closes the fds it cannot hand over.
// Errors: -ECONNRESET at the peer's end (EOF), -EMSGSIZE for a message over kMaxMessage,
// -ETOOMANYREFS for more than kMaxFdsPerMessage fds or a truncated control message (fds that
// did arrive are closed), -EBADMSG for a malformed header (`problem` says why), or the
// recvmsg errno.
int ReceiveMessage(int socket, Message* message, std::string* problem = nullptr);

// The credentials of a connected Unix socket's peer, and whether this process trusts them:
// root, or our own uid.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
Result<PeerCredentials> GetPeerCredentials(int socket);
bool TrustedPeer(const PeerCredentials& peer);

// The name must be a bundle name of a part this fd really is: .conn a /dev/fuse character
// device, .arena a memfd, .orphan a regular file; never an O_PATH fd. Invalid says what.
Status CheckFdMatchesName(std::string_view name, int fd);

// Human name of an op for messages ("PUT").
std::string_view OpName(Op op);

}  // namespace claimfs::handoff
