// The volume's open files as the kernel holds them: fh = (generation << 32) | slot into the
// arena's open-file table, which records the node and the flags to reopen it with; the backing
// fd is process-local. An adopter reopens every record by its node's handle (Reopen).
#pragma once

#include <cstdint>
#include <functional>

#include "arena.h"
#include "slot_array.h"

namespace claimfs::fs {

struct Inode;

class OpenFiles {
 public:
  explicit OpenFiles(Arena* arena) : arena_(arena) {}
  OpenFiles(const OpenFiles&) = delete;
  OpenFiles& operator=(const OpenFiles&) = delete;

  // Registers `fd` (owned from now on) as an open of `inode` with the kernel's open `flags`.
  // Returns the fh, or -errno (the fd is then still the caller's).
  int64_t Add(const Inode& inode, int fd, int flags, FileKind kind);
  // The backing fd of `fh`: -EBADF for an fh that names no open file, -EIO for one whose
  // reopen failed at adoption.
  int Fd(uint64_t fh) const;
  // Forgets `fh` and frees its record; returns its fd for the caller to close (-1 if none).
  int Remove(uint64_t fh);
  // Closes every process-local fd; the records stay (an adopter reopens them).
  void CloseAll();

  // Adoption: calls reopen(record) for each live record; it returns an fd (>= 0) or -errno,
  // which makes the fh answer EIO. Returns the number of records.
  size_t Reopen(const std::function<int(uint64_t fh, const OpenFileRecord&)>& reopen);

 private:
  // fd + 1; 0: none; kFailed: the reopen failed.
  static constexpr int kFailed = -1;
  Arena* const arena_;
  SlotArray<int> fds_;
};

}  // namespace claimfs::fs
