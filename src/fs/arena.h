// A volume's state that outlives the process serving it: one memfd per volume ("arena"),
// mapped MAP_SHARED, holding the negotiated INIT, the node table and the open-file table as
// plain-old-data records. Any process that maps it reads node ids and file handles the way the
// kernel holds them (docs/dataplane.md section 5). This file and arena.cc are the only code that
// knows the layout.
//
// Ids: `(uint64(generation) << 32) | slot`. Node slot 1 is the root with generation 0, so its id
// is FUSE_ROOT_ID; slot 0 is never used. Freeing a slot bumps its generation, so an id kept
// after a reuse names no record (the caller answers ESTALE), never another object.
//
// Growth: the mapping lives in an address range reserved at open for the largest arena, so
// record pointers stay valid while the file grows (ftruncate, then a MAP_FIXED remap).
// Allocation and growth are serialised by the Arena's own lock; records are written by their
// owners (a record is complete before the reply that names it is sent).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::fs {

inline constexpr uint64_t kArenaMagic = 0x414e524153464c43ULL;  // "CLFSARNA", little-endian
inline constexpr uint32_t kArenaFormat = 1;
inline constexpr uint32_t kRootSlot = 1;

inline uint64_t MakeId(uint32_t slot, uint32_t generation) {
  return (static_cast<uint64_t>(generation) << 32) | slot;
}
inline uint32_t SlotOf(uint64_t id) { return static_cast<uint32_t>(id); }
inline uint32_t GenerationOf(uint64_t id) { return static_cast<uint32_t>(id >> 32); }

enum class ArenaState : uint32_t { kFresh = 0, kServing = 1, kReleased = 2 };

// Header flags: what the kernel negotiated or the volume was made with; an adopter must agree.
inline constexpr uint32_t kArenaPassthrough = 1u << 0;  // INIT turned FUSE passthrough on
inline constexpr uint32_t kArenaAccounted = 1u << 1;    // the daemon counts usage (a quota)

struct ArenaHeader {
  uint64_t magic;
  uint32_t format;
  uint32_t header_size;
  uint64_t arena_size;  // bytes of the file in use; grows
  uint32_t node_record_size;
  uint32_t file_record_size;
  uint64_t nodes_offset;
  uint32_t nodes_capacity;
  uint32_t nodes_high;  // slots below this have been used at least once
  uint64_t files_offset;
  uint32_t files_capacity;
  uint32_t files_high;
  uint64_t epoch;  // +1 at each adoption
  int32_t owner_pid;
  uint32_t state;  // ArenaState
  uint64_t root_dev;
  uint64_t root_ino;
  uint64_t fuse_dev;  // the connection's device number (st_dev of the mount)
  uint32_t flags;     // kArena*
  uint32_t init_in_len;
  uint32_t init_out_len;
  uint32_t reserved0;
  unsigned char init_in[64];   // the kernel's fuse_init_in, as received
  unsigned char init_out[64];  // our fuse_init_out, as sent (after our patches)
  char name[256];              // volume name (memfd name), NUL-terminated
};
static_assert(sizeof(ArenaHeader) <= 4096);

enum : uint8_t { kRecordFree = 0, kRecordLive = 1 };

// ---- orphans (files unlinked while open; docs/dataplane.md 7.5) ----
// NodeRecord::flags. kNodeOrphan: the node's last name is gone while files are open on it, and
// an OrphanKeeper was asked to keep an fd of it under (slot, generation). Set before the keeper
// is asked and cleared before it is told to forget, so a kept fd whose record lacks the flag is
// stale (an adopter ignores it). Zeroed with the record (NewNode).
inline constexpr uint8_t kNodeOrphan = 1u << 0;
// ---- end orphans ----

struct NodeRecord {
  uint32_t generation;
  uint8_t state;
  uint8_t flags;  // kNode*
  uint8_t reserved0[2];
  uint32_t type;  // S_IFMT bits
  int32_t mount_id;
  uint64_t nlookup;  // the kernel's references; accessed atomically (std::atomic_ref)
  uint64_t dev;
  uint64_t ino;
  int32_t backing_id;  // kernel mode: the node's FUSE backing id, 0 when none
  uint32_t backing_refs;
  int32_t handle_type;
  uint16_t handle_bytes;  // 0: no handle (the node cannot be reopened by another process)
  uint16_t reserved1;
  unsigned char handle[128];
};
static_assert(sizeof(NodeRecord) == 184);

enum class FileKind : uint8_t { kCached = 0, kDirect = 1, kPassthrough = 2 };

struct OpenFileRecord {
  uint32_t generation;
  uint8_t state;
  uint8_t kind;  // FileKind
  uint16_t reserved0;
  uint32_t node_slot;
  uint32_t node_generation;
  int32_t flags;  // the open's flags minus O_CREAT/O_EXCL/O_TRUNC: what a reopen uses
  int32_t backing_id;
};
static_assert(sizeof(OpenFileRecord) == 24);

// ---- In-flight journal (docs/dataplane.md 7.3) ----
// A fixed table in the header page, after ArenaHeader: one record per non-idempotent request
// in flight, written before its syscall (plain stores into the mapping, no syscall), marked
// done with the result after it, freed once the reply is written. An adopter loads the
// started/done records of the previous epoch and answers the kernel's resent requests from them.
// Nothing in it is trusted to index memory: records are copied out and checked.
inline constexpr uint64_t kJournalMagic = 0x4c4e524a53464c43ULL;  // "CLFSJRNL", little-endian
inline constexpr uint64_t kJournalOffset = 1024;
// At most this many requests of one volume in flight are journalled (a ServerPool runs at most
// 64 threads); more are served by the resend rules without a journal and counted.
inline constexpr uint32_t kJournalSlots = 64;

enum : uint8_t { kJournalFree = 0, kJournalClaimed = 1, kJournalStarted = 2, kJournalDone = 3 };
// JournalRecord::flags: the name (or attribute) existed before the request.
inline constexpr uint8_t kJournalExisted = 1u << 0;

struct JournalRecord {
  uint8_t state;  // kJournal*; accessed atomically (claimed by compare-and-swap)
  uint8_t flags;  // kJournalExisted
  uint16_t reserved0;
  uint32_t opcode;  // FUSE_*
  uint64_t unique;  // the kernel's, without FUSE_UNIQUE_RESEND (bit 63)
  uint32_t epoch;   // the arena epoch of the server that wrote it (low 32 bits)
  int32_t result;   // done: 0 or -errno
  uint64_t dev;     // the object the name named before; FALLOCATE: the file size before
  uint64_t ino;
};
static_assert(sizeof(JournalRecord) == 40);

struct JournalHeader {
  uint64_t magic;
  uint32_t record_size;
  uint32_t capacity;
  uint32_t overflows;  // requests that found every slot taken (not journalled) this epoch
  uint32_t reserved0;
};
static_assert(sizeof(ArenaHeader) <= kJournalOffset);
static_assert(kJournalOffset + sizeof(JournalHeader) + kJournalSlots * sizeof(JournalRecord) <=
              4096);

// The opcodes the journal keeps; a loaded record with another is ignored.
bool IsJournalledOpcode(uint32_t opcode);

// What an adopter found in the journal (Arena::TakeJournal).
struct JournalContents {
  std::vector<JournalRecord> records;  // started or done, of the previous epoch, checked
  // Every request the previous server started was journalled: a resent request without a
  // record was never started.
  bool complete = false;
};
// ---- end of the in-flight journal ----

class Arena {
 public:
  // A new arena: memfd "claimfs-arena:<name>", the root record live (slot 1, generation 0).
  static Result<std::unique_ptr<Arena>> Create(const std::string& name, uint32_t initial_nodes = 1024,
                                               uint32_t initial_files = 256);
  // Maps an existing arena, taking `fd` over (closed on failure too). Fails unless the magic,
  // the format and the record sizes are ones this reader knows.
  static Result<std::unique_ptr<Arena>> Open(int fd);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  int fd() const { return fd_; }
  ArenaHeader* header() const { return header_; }

  // Allocates a node record (zeroed, live, generation set): its id, or -errno (ENOSPC when
  // the table cannot grow). Thread-safe.
  int64_t NewNode();
  // The live record of `id`, or null when the slot is free or its generation differs.
  NodeRecord* Node(uint64_t id) const;
  // The record of `slot` whatever its state; null beyond the used slots.
  NodeRecord* NodeSlot(uint32_t slot) const;
  // Frees the record: state free, generation bumped. Thread-safe.
  void FreeNode(uint32_t slot);

  int64_t NewFile();
  OpenFileRecord* File(uint64_t id) const;
  OpenFileRecord* FileSlot(uint32_t slot) const;
  void FreeFile(uint32_t slot);

  uint32_t nodes_high() const { return header_->nodes_high; }
  uint32_t files_high() const { return header_->files_high; }

  // ---- In-flight journal ----
  // A free journal record, claimed for the calling request (state kJournalClaimed, the rest of
  // it the caller's to fill), or null when all are taken (counted in the header's overflows).
  // Lock-free.
  JournalRecord* ClaimJournal();
  // Frees a record ClaimJournal returned.
  void ReleaseJournal(JournalRecord* r);
  // The checked started/done records of `epoch` (the server being replaced), copied out; the
  // table is then emptied for the new server. Records of other epochs, unknown states or
  // opcodes, and a table whose header does not match this reader's layout are ignored.
  JournalContents TakeJournal(uint64_t epoch);
  JournalHeader* journal_header() const;
  JournalRecord* JournalSlot(uint32_t index) const;  // null beyond kJournalSlots

  // ---- end of the in-flight journal ----

 private:
  void ResetJournal();

  Arena() = default;
  int Map(uint64_t size);
  int GrowNodes();
  int GrowFiles();
  void RebuildFreeLists();

  int fd_ = -1;
  char* base_ = nullptr;  // the reserved range; the file is mapped at its start
  size_t reserved_ = 0;
  ArenaHeader* header_ = nullptr;

  std::mutex mu_;                    // allocation and growth; a leaf lock
  std::vector<uint32_t> free_nodes_;  // guarded by mu_
  std::vector<uint32_t> free_files_;  // guarded by mu_
};

}  // namespace claimfs::fs
