#include "inode_table.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace claimfs::fs {

InodeTable::InodeTable(int root_fd, const struct stat& root_stat, size_t fd_budget, Arena* arena)
    : root_(new Inode(root_stat.st_dev, root_stat.st_ino, root_stat.st_mode & S_IFMT)),
      fd_budget_(fd_budget),
      arena_(arena) {
  stale_.record = &stale_record_;
  stale_.pinned = true;
  root_->record = arena_->NodeSlot(kRootSlot);
  root_->slot = kRootSlot;
  root_->generation = 0;
  root_->record->dev = root_stat.st_dev;
  root_->record->ino = root_stat.st_ino;
  root_->record->type = root_stat.st_mode & S_IFMT;
  if (root_->nlookup().load() == 0) root_->nlookup().store(1);
  by_slot_.Set(kRootSlot, root_);
  root_->path_fd = root_fd;
  root_->pinned = true;
  // Handles work only when the fs exports them and we may open them (CAP_DAC_READ_SEARCH).
  if (MakeHandle(root_, root_fd) == 0) {
    auto* fh = reinterpret_cast<file_handle*>(root_->handle.get());
    int probe = open_by_handle_at(root_->mount_fd, fh, O_PATH | O_CLOEXEC);
    if (probe >= 0) {
      close(probe);
      handles_usable_ = true;
    }
  }
  index_[{root_->dev, root_->ino}] = root_;
}

InodeTable::~InodeTable() {
  std::lock_guard lock(mu_);
  std::lock_guard cache_lock(cache_mu_);
  // Every inode the kernel still knows, indexed or not (unlinked while known); the session is
  // gone. Their arena records stay as they are: an adopter after a handoff still needs them.
  for (uint32_t slot = kRootSlot + 1; slot < arena_->nodes_high(); ++slot) {
    Inode* inode = by_slot_.Get(slot);
    if (inode == nullptr) continue;
    int fd = inode->path_fd.exchange(-1);
    if (fd >= 0) close(fd);
    delete inode;
  }
  int fd = root_->path_fd.exchange(-1);
  if (fd >= 0) close(fd);
  delete root_;
  for (auto& [id, mfd] : mount_fds_) close(mfd);
}

int InodeTable::MakeHandle(Inode* inode, int fd) {
  char buffer[sizeof(file_handle) + MAX_HANDLE_SZ];
  auto* fh = reinterpret_cast<file_handle*>(buffer);
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) != 0) return -errno;
  size_t size = sizeof(file_handle) + fh->handle_bytes;
  inode->handle.reset(new char[size]);
  std::memcpy(inode->handle.get(), buffer, size);
  if (NodeRecord* r = inode->record; r != nullptr && fh->handle_bytes <= sizeof r->handle) {
    r->handle_type = fh->handle_type;
    r->mount_id = mount_id;
    std::memcpy(r->handle, fh->f_handle, fh->handle_bytes);
    r->handle_bytes = static_cast<uint16_t>(fh->handle_bytes);
  }
  auto it = mount_fds_.find(mount_id);
  if (it == mount_fds_.end()) {
    // open_by_handle_at() wants a real open fd on the filesystem, not an O_PATH one. A mount
    // is entered through its root directory, so the first object seen on it is a directory,
    // which is safe to open.
    if (inode->type != S_IFDIR) {
      inode->handle.reset();
      return -EOPNOTSUPP;
    }
    char proc_path[32];
    std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    int mfd = open(proc_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) {
      inode->handle.reset();
      return -errno;
    }
    it = mount_fds_.emplace(mount_id, mfd).first;
  }
  inode->mount_fd = it->second;
  return 0;
}

void InodeTable::Publish(Inode* inode, int64_t id) {
  inode->slot = SlotOf(static_cast<uint64_t>(id));
  inode->generation = GenerationOf(static_cast<uint64_t>(id));
  inode->record = arena_->NodeSlot(inode->slot);
  inode->record->dev = inode->dev;
  inode->record->ino = inode->ino;
  inode->record->type = inode->type;
}

int64_t InodeTable::Rebuild() {
  std::lock_guard lock(mu_);
  int64_t count = 0;
  for (uint32_t slot = kRootSlot + 1; slot < arena_->nodes_high(); ++slot) {
    NodeRecord* r = arena_->NodeSlot(slot);
    if (r->state != kRecordLive) continue;
    auto inode = std::make_unique<Inode>(static_cast<dev_t>(r->dev), static_cast<ino_t>(r->ino),
                                         static_cast<mode_t>(r->type));
    inode->record = r;
    inode->slot = slot;
    inode->generation = r->generation;
    inode->pinned = true;  // until its handle is known to work
    auto mount = mount_fds_.find(r->mount_id);
    // An orphan is reached through the fd its keeper kept (AdoptOrphan) or not at all: its
    // handle opens only while some process happens to hold it open.
    bool orphan = (r->flags & kNodeOrphan) != 0;
    if (!orphan && r->handle_bytes > 0 && r->handle_bytes <= sizeof r->handle &&
        mount != mount_fds_.end()) {
      inode->handle.reset(new char[sizeof(file_handle) + r->handle_bytes]);
      auto* fh = reinterpret_cast<file_handle*>(inode->handle.get());
      fh->handle_bytes = r->handle_bytes;
      fh->handle_type = r->handle_type;
      std::memcpy(fh->f_handle, r->handle, r->handle_bytes);
      inode->mount_fd = mount->second;
      int fd = open_by_handle_at(inode->mount_fd, fh, O_PATH | O_CLOEXEC);
      struct stat st;
      if (fd >= 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
          st.st_dev == inode->dev && st.st_ino == inode->ino) {
        inode->allocated = static_cast<uint64_t>(st.st_blocks) * 512;
        inode->pinned = false;
        if (index_.find(Key{inode->dev, inode->ino}) == index_.end()) {
          index_[Key{inode->dev, inode->ino}] = inode.get();
        }
      }
      if (fd >= 0) close(fd);
    }
    // A node whose object is gone (unlinked, its last fd closed with the old process) stays
    // known to the kernel until it forgets it; every use answers ESTALE.
    if (inode->pinned) inode->handle.reset();
    by_slot_.Set(slot, inode.release());
    ++count;
  }
  return count;
}

int InodeTable::Intern(int fd, const struct stat& st, Inode** out, bool* created) {
  std::lock_guard lock(mu_);
  Key key{st.st_dev, st.st_ino};
  auto it = index_.find(key);
  if (it != index_.end() && it->second->type == (st.st_mode & S_IFMT)) {
    Inode* inode = it->second;
    inode->nlookup().fetch_add(1);
    {
      std::lock_guard cache_lock(cache_mu_);
      if (inode->path_fd.load() < 0) {
        inode->path_fd = fd;
        if (!inode->pinned) RingInsertLocked(inode);
        fd = -1;
        EvictLocked();
      }
    }
    if (fd >= 0) close(fd);
    *out = inode;
    *created = false;
    return 0;
  }
  int64_t id = arena_->NewNode();
  if (id < 0) {
    close(fd);
    return static_cast<int>(id);
  }
  auto inode = std::make_unique<Inode>(st.st_dev, st.st_ino, st.st_mode & S_IFMT);
  Publish(inode.get(), id);
  inode->nlookup().store(1);
  inode->path_fd = fd;
  bool pinned = !handles_usable_ || MakeHandle(inode.get(), fd) != 0;
  {
    std::lock_guard cache_lock(cache_mu_);
    inode->pinned = pinned;
    if (!pinned) {
      RingInsertLocked(inode.get());
      EvictLocked();
    }
  }
  if (it != index_.end()) index_.erase(it);  // a stale entry of a reused inode number
  *out = inode.get();
  by_slot_.Set(inode->slot, inode.get());
  index_[key] = inode.release();
  *created = true;
  return 0;
}

Inode* InodeTable::Find(dev_t dev, ino_t ino) {
  std::lock_guard lock(mu_);
  auto it = index_.find(Key{dev, ino});
  return it == index_.end() ? nullptr : it->second;
}

void InodeTable::Unindex(Inode* inode) {
  std::lock_guard lock(mu_);
  auto it = index_.find(Key{inode->dev, inode->ino});
  if (it != index_.end() && it->second == inode) index_.erase(it);
}

void InodeTable::Forget(Inode* inode, uint64_t n) {
  if (inode == root_ || inode == &stale_) return;
  std::lock_guard lock(mu_);
  uint64_t before = inode->nlookup().fetch_sub(n);
  if (before > n) return;
  by_slot_.Set(inode->slot, nullptr);
  arena_->FreeNode(inode->slot);
  auto it = index_.find(Key{inode->dev, inode->ino});
  if (it != index_.end() && it->second == inode) index_.erase(it);
  {
    std::lock_guard cache_lock(cache_mu_);
    RingRemoveLocked(inode);
    int fd = inode->path_fd.exchange(-1);
    if (fd >= 0) close(fd);
  }
  delete inode;
}

int InodeTable::Acquire(Inode* inode, FdRef* ref) {
  // Protocol: a user announces itself (fd_users) before reading path_fd; an evictor swaps
  // path_fd to -1 before checking fd_users and puts it back if anyone announced. Both are
  // sequentially consistent, so a user that read a valid fd is always seen by the evictor.
  inode->fd_users.fetch_add(1);
  int fd = inode->path_fd.load();
  if (fd < 0) {
    std::lock_guard cache_lock(cache_mu_);
    fd = inode->path_fd.load();
    if (fd < 0) {
      if (!inode->handle) {
        inode->fd_users.fetch_sub(1);
        return -ESTALE;
      }
      auto* fh = reinterpret_cast<file_handle*>(inode->handle.get());
      fd = open_by_handle_at(inode->mount_fd, fh, O_PATH | O_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        inode->fd_users.fetch_sub(1);
        return -err;
      }
      inode->path_fd = fd;
      if (!inode->pinned) RingInsertLocked(inode);
      EvictLocked();
    }
  } else {
    inode->referenced.store(true, std::memory_order_relaxed);
  }
  ref->Reset();
  ref->inode_ = inode;
  ref->fd_ = fd;
  return 0;
}

int InodeTable::Pin(Inode* inode) {
  FdRef ref;
  int rv = Acquire(inode, &ref);
  if (rv < 0) return rv;
  std::lock_guard cache_lock(cache_mu_);
  if (!inode->pinned) {
    inode->pinned = true;
    RingRemoveLocked(inode);
  }
  return 0;
}

void InodeTable::Unpin(Inode* inode) {
  std::lock_guard cache_lock(cache_mu_);
  if (!inode->pinned || inode == root_ || !inode->handle) return;
  inode->pinned = false;
  if (inode->path_fd.load() >= 0) RingInsertLocked(inode);
}

void InodeTable::DropFd(Inode* inode) {
  if (inode == root_) return;
  std::lock_guard cache_lock(cache_mu_);
  if (inode->pinned && !inode->handle) return;  // the fd is the only way back to the object
  int fd = inode->path_fd.exchange(-1);
  if (fd < 0) return;
  if (inode->fd_users.load() > 0) {  // in use right now; eviction will close it later
    inode->path_fd = fd;
    return;
  }
  close(fd);
  RingRemoveLocked(inode);
}

void InodeTable::AdoptOrphan(Inode* inode, int path_fd) {
  Unindex(inode);
  std::lock_guard cache_lock(cache_mu_);
  RingRemoveLocked(inode);
  int old = inode->path_fd.exchange(path_fd);
  if (old >= 0) close(old);
  inode->pinned = true;
  inode->handle.reset();
}

void InodeTable::CloseOrphanFd(Inode* inode) {
  if (inode == root_ || inode == &stale_) return;
  std::lock_guard cache_lock(cache_mu_);
  int fd = inode->path_fd.exchange(-1);
  if (fd < 0) return;
  if (inode->fd_users.load() > 0) {
    inode->path_fd = fd;
    return;
  }
  close(fd);
  RingRemoveLocked(inode);
}

size_t InodeTable::cached_fds() const {
  std::lock_guard cache_lock(cache_mu_);
  return cached_;
}

void InodeTable::RingInsertLocked(Inode* inode) {
  if (inode->ring_slot != SIZE_MAX) return;
  inode->ring_slot = ring_.size();
  inode->referenced.store(true, std::memory_order_relaxed);  // new fds survive one sweep
  ring_.push_back(inode);
  ++cached_;
}

void InodeTable::RingRemoveLocked(Inode* inode) {
  if (inode->ring_slot == SIZE_MAX) return;
  ring_[inode->ring_slot] = nullptr;
  inode->ring_slot = SIZE_MAX;
  --cached_;
  if (++holes_ > 64 && holes_ > ring_.size() / 2) {
    size_t out = 0;
    for (size_t i = 0; i < ring_.size(); ++i) {
      if (i == hand_) hand_ = out;
      if (Inode* member = ring_[i]) {
        member->ring_slot = out;
        ring_[out++] = member;
      }
    }
    ring_.resize(out);
    if (hand_ >= out) hand_ = 0;
    holes_ = 0;
  }
}

void InodeTable::EvictLocked() {
  // Second-chance clock: a recently used fd survives one sweep.
  size_t budget_steps = 2 * ring_.size() + 1;
  while (cached_ > fd_budget_ && budget_steps-- > 0 && !ring_.empty()) {
    if (hand_ >= ring_.size()) hand_ = 0;
    Inode* inode = ring_[hand_++];
    if (inode == nullptr) continue;
    if (inode->referenced.exchange(false, std::memory_order_relaxed)) continue;
    int fd = inode->path_fd.exchange(-1);
    if (fd < 0) {
      RingRemoveLocked(inode);
      continue;
    }
    if (inode->fd_users.load() > 0) {
      inode->path_fd = fd;
      continue;
    }
    close(fd);
    RingRemoveLocked(inode);
  }
}

}  // namespace claimfs::fs
