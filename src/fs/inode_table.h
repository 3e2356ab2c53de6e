// The volume's inodes as the kernel knows them, and a bounded cache of O_PATH fds to their
// backing objects, reopened from file handles on demand. Keeping one fd per known inode would
// exhaust RLIMIT_NOFILE on a volume of 200,000 files; handles cost memory only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "arena.h"
#include "slot_array.h"

namespace claimfs::fs {

struct Inode {
  Inode(dev_t d, ino_t i, mode_t t) : dev(d), ino(i), type(t) {}

  const dev_t dev;
  const ino_t ino;
  const mode_t type;  // S_IFMT bits

  // Set once before the inode is published: its node record in the arena and its id there
  // (the nodeid the kernel holds).
  NodeRecord* record = nullptr;
  uint32_t slot = 0;
  uint32_t generation = 0;
  uint64_t id() const { return MakeId(slot, generation); }
  // The kernel's references (lookup count), kept in the arena so an adopter knows them.
  std::atomic_ref<uint64_t> nlookup() const { return std::atomic_ref<uint64_t>(record->nlookup); }

  // Set once at creation, before the inode is published; read-only afterwards.
  std::unique_ptr<char[]> handle;  // struct file_handle, or null when the fs has none
  int mount_fd = -1;               // an fd on the handle's filesystem, owned by the table

  // fd cache state; see InodeTable::Acquire for the protocol.
  std::atomic<int> path_fd{-1};
  std::atomic<uint32_t> fd_users{0};
  std::atomic<bool> referenced{false};
  size_t ring_slot = SIZE_MAX;  // guarded by InodeTable::cache_mu_
  bool pinned = false;          // guarded by InodeTable::cache_mu_

  // Quota accounting.
  std::mutex mu;
  uint64_t allocated = 0;   // guarded by mu: st_blocks × 512 as last measured
  uint32_t open_count = 0;  // guarded by mu: open files and directories on this inode
  bool orphan = false;      // guarded by mu: last link removed while open; freed at last close
  // Listed in Volume::Impl::recently_written (set and cleared under its recent_mu).
  std::atomic<bool> recently_written{false};
};

class InodeTable;

// An fd for an inode that stays open while the FdRef lives. Release it before replying to the
// kernel: once a request is answered the kernel may forget the inode, and another thread then
// frees it.
class FdRef {
 public:
  FdRef() = default;
  FdRef(const FdRef&) = delete;
  FdRef& operator=(const FdRef&) = delete;
  ~FdRef() { Reset(); }
  int fd() const { return fd_; }
  void Reset() {
    if (inode_) inode_->fd_users.fetch_sub(1);
    inode_ = nullptr;
    fd_ = -1;
  }

 private:
  friend class InodeTable;
  Inode* inode_ = nullptr;
  int fd_ = -1;
};

class InodeTable {
 public:
  // Takes ownership of root_fd (an O_PATH fd of the volume's root). `fd_budget` bounds the
  // cached fds of non-pinned inodes. Node records live in `arena` (which must outlive the
  // table); a fresh arena gets the root's record filled in.
  InodeTable(int root_fd, const struct stat& root_stat, size_t fd_budget, Arena* arena);
  ~InodeTable();

  Inode* root() { return root_; }
  bool handles_usable() const { return handles_usable_; }

  // The inode of a nodeid the kernel holds; a process-local stand-in that answers ESTALE to
  // every use (no handle, no fd) when the id names no live node (a stale id).
  Inode* Get(uint64_t id) {
    if (id == kRootNodeId) return root_;
    Inode* inode = by_slot_.Get(SlotOf(id));
    return inode != nullptr && inode->generation == GenerationOf(id) ? inode : &stale_;
  }
  bool IsStale(const Inode* inode) const { return inode == &stale_; }

  // Adoption: makes the arena's live node records known again (their handles reopen on
  // demand), with what they hold on disk now measured. Before any request is served.
  // Returns the number of nodes, or -errno.
  int64_t Rebuild();

  // Registers a lookup of the object behind `fd` (an O_PATH fd; the table keeps or closes it)
  // whose stat is `st`, and counts one kernel reference. *created says whether the inode was
  // new to the table. Returns 0 or -errno.
  int Intern(int fd, const struct stat& st, Inode** out, bool* created);
  // Adds one kernel reference to a known inode (link, readdirplus of a known entry).
  void Ref(Inode* inode) { inode->nlookup().fetch_add(1); }
  // Drops `n` kernel references; the inode is destroyed at zero.
  void Forget(Inode* inode, uint64_t n);
  // Finds the inode of (dev, ino) if the kernel knows it. Not counted as a reference.
  Inode* Find(dev_t dev, ino_t ino);
  // Calls fn(inode) with the inode of (dev, ino), if the kernel still knows it, while the
  // inode cannot be forgotten. fn may Acquire and take Inode::mu.
  template <typename Fn>
  bool WithKnown(dev_t dev, ino_t ino, Fn&& fn) {
    std::lock_guard lock(mu_);
    auto it = index_.find(Key{dev, ino});
    if (it == index_.end()) return false;
    fn(it->second);
    return true;
  }
  // The object's last link is gone: (dev, ino) may be reused by a new object.
  void Unindex(Inode* inode);

  // An fd for the inode's backing object, valid until `ref` is reset. 0 or -errno (ESTALE when
  // the object no longer exists).
  int Acquire(Inode* inode, FdRef* ref);
  // Keeps the inode's fd open (an unlinked file still in use cannot be reopened by handle).
  int Pin(Inode* inode);
  void Unpin(Inode* inode);
  // Closes the cached fd now, so the backing filesystem can free an unlinked object.
  void DropFd(Inode* inode);
  // Adoption of an orphan (a file unlinked while open, kept by an OrphanKeeper): `path_fd` (an
  // O_PATH fd of it, owned from now on) becomes the inode's pinned fd, the only way to it; the
  // inode leaves the (dev, ino) index. Before any request is served.
  void AdoptOrphan(Inode* inode, int path_fd);
  // The orphan's last open file is gone: closes its fd even when it is the only way back to
  // the object (unless in use right now; then it closes when the kernel forgets the inode).
  void CloseOrphanFd(Inode* inode);

  size_t cached_fds() const;

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.ino * 31 + k.dev); }
  };

  int MakeHandle(Inode* inode, int fd);
  void RingInsertLocked(Inode* inode);
  void RingRemoveLocked(Inode* inode);
  void EvictLocked();

  static constexpr uint64_t kRootNodeId = 1;
  void Publish(Inode* inode, int64_t id);
  int MountFdFor(int mount_id);

  Inode* root_;
  bool handles_usable_ = false;
  const size_t fd_budget_;
  Arena* const arena_;
  NodeRecord stale_record_{};
  Inode stale_{0, 0, 0};
  SlotArray<Inode*> by_slot_;  // lock-free reads; written under mu_

  // Lock order: mu_ before cache_mu_.
  std::mutex mu_;
  std::unordered_map<Key, Inode*, KeyHash> index_;  // guarded by mu_
  std::unordered_map<int, int> mount_fds_;          // guarded by mu_: mount id → fd

  mutable std::mutex cache_mu_;
  std::vector<Inode*> ring_;  // guarded by cache_mu_: clock order of inodes with a cached fd
  size_t hand_ = 0;           // guarded by cache_mu_
  size_t holes_ = 0;          // guarded by cache_mu_
  size_t cached_ = 0;         // guarded by cache_mu_: fds held by ring members
};

}  // namespace claimfs::fs
