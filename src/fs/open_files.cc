#include "open_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "inode_table.h"

namespace claimfs::fs {

int64_t OpenFiles::Add(const Inode& inode, int fd, int flags, FileKind kind) {
  int64_t fh = arena_->NewFile();
  if (fh < 0) return fh;
  OpenFileRecord* r = arena_->FileSlot(SlotOf(static_cast<uint64_t>(fh)));
  r->node_slot = inode.slot;
  r->node_generation = inode.generation;
  r->flags = flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
  r->kind = static_cast<uint8_t>(kind);
  if (!fds_.Set(SlotOf(static_cast<uint64_t>(fh)), fd + 1)) {
    arena_->FreeFile(SlotOf(static_cast<uint64_t>(fh)));
    return -ENFILE;
  }
  return fh;
}

int OpenFiles::Fd(uint64_t fh) const {
  if (arena_->File(fh) == nullptr) return -EBADF;
  int v = fds_.Get(SlotOf(fh));
  if (v == kFailed) return -EIO;
  return v > 0 ? v - 1 : -EBADF;
}

int OpenFiles::Remove(uint64_t fh) {
  if (arena_->File(fh) == nullptr) return -1;
  int v = fds_.Get(SlotOf(fh));
  fds_.Set(SlotOf(fh), 0);
  arena_->FreeFile(SlotOf(fh));
  return v > 0 ? v - 1 : -1;
}

void OpenFiles::CloseAll() {
  for (uint32_t slot = 1; slot < arena_->files_high(); ++slot) {
    int v = fds_.Get(slot);
    if (v > 0) close(v - 1);
    if (v != 0) fds_.Set(slot, 0);
  }
}

size_t OpenFiles::Reopen(const std::function<int(uint64_t, const OpenFileRecord&)>& reopen) {
  size_t count = 0;
  for (uint32_t slot = 1; slot < arena_->files_high(); ++slot) {
    const OpenFileRecord* r = arena_->FileSlot(slot);
    if (r->state != kRecordLive) continue;
    uint64_t fh = MakeId(slot, r->generation);
    int fd = reopen(fh, *r);
    fds_.Set(slot, fd >= 0 ? fd + 1 : kFailed);
    ++count;
  }
  return count;
}

}  // namespace claimfs::fs
