#include "compat_io.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace claimfs::fs {
namespace {

// The request this thread read last. libfuse (its own loop and ServerPool alike) processes a
// request on the thread that read it, before that thread reads the next one.
struct CurrentRequest {
  uint32_t opcode = 0;
  uint64_t unique = 0;
  bool kill_suidgid = false;
  uint32_t init_flags = 0;  // INIT only: what the kernel offered
};
thread_local CurrentRequest current;

template <typename T>
const T* Body(const char* request, size_t size) {
  if (size < sizeof(fuse_in_header) + sizeof(T)) return nullptr;
  return reinterpret_cast<const T*>(request + sizeof(fuse_in_header));
}

void Record(const char* request, size_t size) {
  current = CurrentRequest{};
  if (size < sizeof(fuse_in_header)) return;
  fuse_in_header header;
  std::memcpy(&header, request, sizeof header);
  current.opcode = header.opcode;
  current.unique = header.unique;
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

ssize_t Read(int fd, void* buf, size_t len, void*) {
  ssize_t n = read(fd, buf, len);
  if (n > 0) {
    Record(static_cast<const char*>(buf), static_cast<size_t>(n));
  } else {
    int saved = errno;
    current = CurrentRequest{};
    errno = saved;
  }
  return n;
}

// 3.14 replies to INIT with the header and a fuse_init_out of its own; the kernel's minor
// decides how much of it is sent. With KILLPRIV_V2 the kernel stops asking for
// security.capability before every write (it marks the superblock SB_NOSEC) and leaves
// clearing set-id bits to the server, which the handlers do (RequestKillsSuidgid).
ssize_t Writev(int fd, struct iovec* iov, int count, void*) {
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
  return writev(fd, iov, count);
}

// Without this hook libfuse would stop offering splice for read replies once custom I/O is on.
ssize_t SpliceSend(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned int flags,
                   void*) {
  return splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

int InstallCompatIo(fuse_session* session) {
  fuse_custom_io io{};
  io.read = Read;
  io.writev = Writev;
  io.splice_send = SpliceSend;
  return fuse_session_custom_io(session, &io, fuse_session_fd(session));
}

void NoteRequest(const void* buf, size_t len) { Record(static_cast<const char*>(buf), len); }

bool RequestKillsSuidgid() { return current.kill_suidgid; }

}  // namespace claimfs::fs
