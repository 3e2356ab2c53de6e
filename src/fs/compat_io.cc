#include "compat_io.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "arena.h"
#include "volume_impl.h"

namespace claimfs::fs {
namespace {

// The request this thread read last. libfuse (its own loop and ServerPool alike) processes a
// request on the thread that read it, before that thread reads the next one.
struct CurrentRequest {
  uint32_t opcode = 0;
  uint64_t unique = 0;
  bool kill_suidgid = false;
  bool resent = false;
  uint32_t init_flags = 0;  // INIT only: what the kernel offered
  Arena* journal_arena = nullptr;
  JournalRecord* journal = nullptr;  // freed when the reply is written
};
thread_local CurrentRequest current;

void ReleaseJournalRecord() {
  if (current.journal != nullptr) current.journal_arena->ReleaseJournal(current.journal);
  current.journal = nullptr;
}

template <typename T>
const T* Body(const char* request, size_t size) {
  if (size < sizeof(fuse_in_header) + sizeof(T)) return nullptr;
  return reinterpret_cast<const T*>(request + sizeof(fuse_in_header));
}

void Record(const char* request, size_t size) {
  ReleaseJournalRecord();
  current = CurrentRequest{};
  if (size < sizeof(fuse_in_header)) return;
  fuse_in_header header;
  std::memcpy(&header, request, sizeof header);
  current.opcode = header.opcode;
  current.unique = header.unique;
  current.resent = (header.unique & kResentUnique) != 0;
  switch (header.opcode) {
    case FUSE_WRITE:
      if (auto* in = Body<fuse_write_in>(request, size)) {
        current.kill_suidgid = (in->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_SETATTR:
      if (auto* in = Body<fuse_setattr_in>(request, size)) {
        current.kill_suidgid = (in->valid & FATTR_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_OPEN:
      if (auto* in = Body<fuse_open_in>(request, size)) {
        current.kill_suidgid = (in->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_CREATE:
      if (auto* in = Body<fuse_create_in>(request, size)) {
        current.kill_suidgid = (in->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      }
      break;
    case FUSE_INIT:
      if (auto* in = Body<fuse_init_in>(request, size)) current.init_flags = in->flags;
      break;
    default:
      break;
  }
}

Volume::Impl* Of(void* userdata) { return static_cast<Volume::Impl*>(userdata); }

// An adopted session's first request: the INIT the kernel sent the first server, as saved.
ssize_t ReplayInit(const ArenaHeader& h, void* buf, size_t len) {
  size_t size = sizeof(fuse_in_header) + h.init_in_len;
  if (len < size || h.init_in_len > sizeof h.init_in) {
    errno = EINVAL;
    return -1;
  }
  fuse_in_header header{};
  header.len = static_cast<uint32_t>(size);
  header.opcode = FUSE_INIT;
  header.unique = kReplayedInitUnique;
  std::memcpy(buf, &header, sizeof header);
  std::memcpy(static_cast<char*>(buf) + sizeof header, h.init_in, h.init_in_len);
  return static_cast<ssize_t>(size);
}

ssize_t Read(int fd, void* buf, size_t len, void* userdata) {
  Volume::Impl* v = Of(userdata);
  ssize_t n;
  bool replay = v->replay_init.exchange(false);
  if (replay) {
    n = ReplayInit(*v->arena->header(), buf, len);
  } else {
    n = read(fd, buf, len);
  }
  if (n <= 0) {
    int saved = errno;
    ReleaseJournalRecord();
    current = CurrentRequest{};
    errno = saved;
    return n;
  }
  Record(static_cast<const char*>(buf), static_cast<size_t>(n));
  if (v->passthrough) v->passthrough->SeeRequest(buf, static_cast<size_t>(n));
  if (!replay && current.opcode == FUSE_INIT) {
    ArenaHeader* h = v->arena->header();
    size_t body = std::min(static_cast<size_t>(n) - sizeof(fuse_in_header), sizeof h->init_in);
    std::memcpy(h->init_in, static_cast<const char*>(buf) + sizeof(fuse_in_header), body);
    h->init_in_len = static_cast<uint32_t>(body);
  }
  return n;
}

// 3.14 replies to INIT with the header and a fuse_init_out of its own; the kernel's minor
// decides how much of it is sent. With KILLPRIV_V2 the kernel stops asking for
// security.capability before every write (it marks the superblock SB_NOSEC) and leaves
// clearing set-id bits to the server, which the handlers do (RequestKillsSuidgid).
void PatchKillprivV2(struct iovec* iov, int count) {
  if (current.opcode == FUSE_INIT && (current.init_flags & FUSE_HANDLE_KILLPRIV_V2) && count == 2 &&
      iov[0].iov_len == sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
    fuse_out_header header;
    std::memcpy(&header, iov[0].iov_base, sizeof header);
    if (header.unique == current.unique && header.error == 0) {
      auto* out = static_cast<char*>(iov[1].iov_base);
      uint32_t flags;
      std::memcpy(&flags, out + offsetof(fuse_init_out, flags), sizeof flags);
      flags |= FUSE_HANDLE_KILLPRIV_V2;
      std::memcpy(out + offsetof(fuse_init_out, flags), &flags, sizeof flags);
    }
  }
}

ssize_t Writev(int fd, struct iovec* iov, int count, void* userdata) {
  Volume::Impl* v = Of(userdata);
  fuse_out_header header{};
  bool has_header = count >= 1 && iov[0].iov_len >= sizeof header;
  if (has_header) std::memcpy(&header, iov[0].iov_base, sizeof header);
  if (has_header && header.unique == kReplayedInitUnique) {
    // The replayed INIT's reply: the kernel lives by the first one, which the arena keeps.
    ssize_t total = 0;
    for (int i = 0; i < count; ++i) total += static_cast<ssize_t>(iov[i].iov_len);
    return total;
  }
  if (v->passthrough) {
    if (has_header && iov[0].iov_len == sizeof(fuse_out_header)) v->passthrough->PatchReply(iov, count);
  } else {
    PatchKillprivV2(iov, count);
  }
  if (has_header && header.unique != 0 && header.unique == current.unique &&
      current.opcode == FUSE_INIT && header.error == 0 && count >= 2) {
    ArenaHeader* h = v->arena->header();
    size_t body = std::min(iov[1].iov_len, sizeof h->init_out);
    std::memcpy(h->init_out, iov[1].iov_base, body);
    h->init_out_len = static_cast<uint32_t>(body);
    if (v->passthrough && v->passthrough->enabled()) h->flags |= kArenaPassthrough;
  }
  ssize_t n = writev(fd, iov, count);
  // The kernel has the answer (or has given up on the request): the journal record is done with.
  if (current.journal != nullptr && has_header && header.unique == current.unique) {
    int saved = errno;
    ReleaseJournalRecord();
    errno = saved;
  }
  return n;
}

// Without this hook libfuse would stop offering splice for read replies once custom I/O is on.
ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned int flags,
                   void*) {
  return splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

int InstallChannelIo(fuse_session* session, int fd, bool splice_send) {
  fuse_custom_io io{};
  io.read = Read;
  io.writev = Writev;
  if (splice_send) io.splice_send = SpliceSend;
  return fuse_session_custom_io(session, &io, fd) == 0 ? 0 : -EINVAL;
}

bool RequestKillsSuidgid() { return current.kill_suidgid; }

bool RequestIsResent() { return current.resent; }

uint64_t RequestUnique() { return current.unique; }

uint32_t RequestOpcode() { return current.opcode; }

void AttachJournalRecord(Arena* arena, JournalRecord* record) {
  ReleaseJournalRecord();
  current.journal_arena = arena;
  current.journal = record;
}

}  // namespace claimfs::fs
