// What libfuse 3.14 cannot express, done in its custom I/O hooks (fuse_session_custom_io): the
// INIT reply gains FUSE_HANDLE_KILLPRIV_V2, and the kill-suid/sgid flags the kernel then sends
// (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID), which 3.14's
// do_write/do_setattr/do_open/do_create drop, are read from the raw request for the handler.
//
// A libfuse with FUSE_CAP_HANDLE_KILLPRIV_V2 and fuse_file_info/setattr kill flags (3.16+)
// replaces this module: want() the cap in Init and read the flags from the handler's arguments.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstddef>

namespace claimfs::fs {

// The unique of the INIT an adopting session replays (never one the kernel uses: its uniques
// count up from 1, and bit 63 marks a resent request).
inline constexpr uint64_t kReplayedInitUnique = uint64_t{1} << 62;
// Bit 63 of a request's unique: the kernel resent it after FUSE_NOTIFY_RESEND.
inline constexpr uint64_t kResentUnique = uint64_t{1} << 63;

// Puts the volume's one set of custom I/O hooks on `session`, on connection fd `fd` (the
// session's userdata is the volume's Volume::Impl). Reads and writes stay plain
// read(2)/writev(2)/splice(2). The hooks save the kernel's INIT and our reply (after patching:
// KILLPRIV_V2, and passthrough through the volume's Passthrough) in the volume's arena, and for
// an adopted volume (Impl::replay_init) the first read returns the saved INIT, whose reply is
// swallowed. 0 or -errno.
int InstallChannelIo(fuse_session* session, int fd, bool splice_send);

// Whether the request the calling thread is processing asks the server to clear set-uid, and
// set-gid where group-execute is set (the kernel's should_remove_suid()): a WRITE, SETATTR,
// OPEN or CREATE by a caller without CAP_FSETID on a connection with KILLPRIV_V2. Valid in the
// handler only: the hook records it when the thread reads the request.
bool RequestKillsSuidgid();

// Whether the request the calling thread is processing was resent by the kernel after an
// adoption: the server that read it first may have done it already (docs/dataplane.md 7.3).
bool RequestIsResent();
// The calling thread's request's unique, as the kernel sent it (0 outside a request).
uint64_t RequestUnique();
// The calling thread's request's opcode (0 outside a request).
uint32_t RequestOpcode();

// The journal record (docs/dataplane.md 7.3) of the calling thread's request: freed when its
// reply is written (or, failing that, when the thread reads its next request).
class Arena;
struct JournalRecord;
void AttachJournalRecord(Arena* arena, JournalRecord* record);

}  // namespace claimfs::fs
