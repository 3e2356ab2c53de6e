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

// Puts the hooks on `session`, whose fd is open (after fuse_session_mount). Reads and writes
// stay plain read(2)/writev(2)/splice(2) on the fd libfuse passes. 0 or -errno.
int InstallCompatIo(fuse_session* session);

// Notes what RequestKillsSuidgid() answers for the request in `buf` (`len` bytes as read from
// the device), which the calling thread is about to handle. For other custom I/O hooks
// (Passthrough's) that take the place of these.
void NoteRequest(const void* buf, size_t len);

// Whether the request the calling thread is processing asks the server to clear set-uid, and
// set-gid where group-execute is set (the kernel's should_remove_suid()): a WRITE, SETATTR,
// OPEN or CREATE by a caller without CAP_FSETID on a connection with KILLPRIV_V2. Valid in the
// handler only: the hook records it when the thread reads the request.
bool RequestKillsSuidgid();

}  // namespace claimfs::fs
