#include "arena.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

namespace claimfs::fs {
namespace {

constexpr size_t kHeaderSize = 4096;
// The open-file table has a fixed span of the file (sparse until used); the node table follows
// it and grows at the end of the file.
constexpr uint32_t kMaxFiles = 1u << 20;
constexpr size_t kReserved = size_t{1} << 30;  // the largest arena a process maps

uint64_t NodesOffset() { return kHeaderSize + uint64_t{kMaxFiles} * sizeof(OpenFileRecord); }

uint32_t MaxNodes() {
  return static_cast<uint32_t>(std::min<uint64_t>((kReserved - NodesOffset()) / sizeof(NodeRecord),
                                                  UINT32_MAX));
}

uint32_t NextGeneration(uint32_t g) { return g + 1 == 0 ? 1 : g + 1; }

}  // namespace

Arena::~Arena() {
  if (base_ != nullptr) munmap(base_, reserved_);
  if (fd_ >= 0) close(fd_);
}

int Arena::Map(uint64_t size) {
  if (size > reserved_) return -ENOSPC;
  void* p = mmap(base_, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd_, 0);
  if (p == MAP_FAILED) return -errno;
  header_ = reinterpret_cast<ArenaHeader*>(base_);
  return 0;
}

Result<std::unique_ptr<Arena>> Arena::Create(const std::string& name, uint32_t initial_nodes,
                                             uint32_t initial_files) {
  std::unique_ptr<Arena> a(new Arena());
  std::string memfd_name = "claimfs-arena:" + name;
  a->fd_ = memfd_create(memfd_name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (a->fd_ < 0) return Status::FromErrno("cannot create the arena of " + name, errno);
  initial_nodes = std::clamp<uint32_t>(initial_nodes, 2, MaxNodes());
  initial_files = std::clamp<uint32_t>(initial_files, 1, kMaxFiles);
  uint64_t size = NodesOffset() + uint64_t{initial_nodes} * sizeof(NodeRecord);
  if (ftruncate(a->fd_, static_cast<off_t>(size)) != 0) {
    return Status::FromErrno("cannot size the arena of " + name, errno);
  }
  // The arena never shrinks: a mapper never finds its records cut off.
  fcntl(a->fd_, F_ADD_SEALS, F_SEAL_SHRINK);
  a->reserved_ = kReserved;
  void* range = mmap(nullptr, kReserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (range == MAP_FAILED) return Status::FromErrno("cannot reserve the arena of " + name, errno);
  a->base_ = static_cast<char*>(range);
  if (int rv = a->Map(size); rv < 0) return Status::FromErrno("cannot map the arena of " + name, -rv);
  ArenaHeader* h = a->header_;
  h->magic = kArenaMagic;
  h->format = kArenaFormat;
  h->header_size = kHeaderSize;
  h->arena_size = size;
  h->node_record_size = sizeof(NodeRecord);
  h->file_record_size = sizeof(OpenFileRecord);
  h->nodes_offset = NodesOffset();
  h->nodes_capacity = initial_nodes;
  h->nodes_high = kRootSlot + 1;
  h->files_offset = kHeaderSize;
  h->files_capacity = initial_files;
  h->files_high = 1;
  h->state = static_cast<uint32_t>(ArenaState::kFresh);
  std::strncpy(h->name, name.c_str(), sizeof h->name - 1);
  NodeRecord* root = a->NodeSlot(kRootSlot);
  root->state = kRecordLive;
  root->generation = 0;
  root->nlookup = 1;
  a->ResetJournal();
  return a;
}

Result<std::unique_ptr<Arena>> Arena::Open(int fd) {
  std::unique_ptr<Arena> a(new Arena());
  a->fd_ = fd;
  ArenaHeader h;
  ssize_t n = pread(fd, &h, sizeof h, 0);
  if (n < 0) return Status::FromErrno("cannot read the arena", errno);
  if (static_cast<size_t>(n) < sizeof h || h.magic != kArenaMagic) {
    return Status::Invalid("not a claimfs arena (bad magic)");
  }
  if (h.format != kArenaFormat || h.header_size != kHeaderSize ||
      h.node_record_size != sizeof(NodeRecord) || h.file_record_size != sizeof(OpenFileRecord) ||
      h.nodes_offset != NodesOffset() || h.files_offset != kHeaderSize) {
    return Status::Invalid("arena format " + std::to_string(h.format) +
                           " is not one this claimfs reads (format " +
                           std::to_string(kArenaFormat) + ")");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno("cannot stat the arena", errno);
  uint64_t size = h.nodes_offset + uint64_t{h.nodes_capacity} * sizeof(NodeRecord);
  if (h.arena_size != size || static_cast<uint64_t>(st.st_size) < size ||
      h.nodes_high > h.nodes_capacity || h.files_high > h.files_capacity ||
      h.files_capacity > kMaxFiles || h.nodes_high <= kRootSlot) {
    return Status::Invalid("the arena's header does not match its size");
  }
  a->reserved_ = kReserved;
  void* range = mmap(nullptr, kReserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (range == MAP_FAILED) return Status::FromErrno("cannot reserve the arena", errno);
  a->base_ = static_cast<char*>(range);
  if (int rv = a->Map(size); rv < 0) return Status::FromErrno("cannot map the arena", -rv);
  a->RebuildFreeLists();
  JournalHeader* j = a->journal_header();
  if (j->magic != kJournalMagic || j->record_size != sizeof(JournalRecord) ||
      j->capacity != kJournalSlots) {
    a->ResetJournal();  // written by an older format, or forged: nothing in it can be trusted
  }
  return a;
}

void Arena::RebuildFreeLists() {
  std::lock_guard lock(mu_);
  free_nodes_.clear();
  for (uint32_t slot = header_->nodes_high; slot-- > kRootSlot + 1;) {
    if (NodeSlot(slot)->state == kRecordFree) free_nodes_.push_back(slot);
  }
  free_files_.clear();
  for (uint32_t slot = header_->files_high; slot-- > 1;) {
    if (FileSlot(slot)->state == kRecordFree) free_files_.push_back(slot);
  }
}

NodeRecord* Arena::NodeSlot(uint32_t slot) const {
  if (slot == 0 || slot >= header_->nodes_high) return nullptr;
  return reinterpret_cast<NodeRecord*>(base_ + header_->nodes_offset) + slot;
}

NodeRecord* Arena::Node(uint64_t id) const {
  NodeRecord* r = NodeSlot(SlotOf(id));
  if (r == nullptr || r->state != kRecordLive || r->generation != GenerationOf(id)) return nullptr;
  return r;
}

OpenFileRecord* Arena::FileSlot(uint32_t slot) const {
  if (slot == 0 || slot >= header_->files_high) return nullptr;
  return reinterpret_cast<OpenFileRecord*>(base_ + header_->files_offset) + slot;
}

OpenFileRecord* Arena::File(uint64_t id) const {
  OpenFileRecord* r = FileSlot(SlotOf(id));
  if (r == nullptr || r->state != kRecordLive || r->generation != GenerationOf(id)) return nullptr;
  return r;
}

int Arena::GrowNodes() {
  uint64_t capacity = std::min<uint64_t>(uint64_t{header_->nodes_capacity} * 2, MaxNodes());
  if (capacity <= header_->nodes_capacity) return -ENOSPC;
  uint64_t size = header_->nodes_offset + capacity * sizeof(NodeRecord);
  if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return -errno;
  if (int rv = Map(size); rv < 0) return rv;
  header_->nodes_capacity = static_cast<uint32_t>(capacity);
  header_->arena_size = size;
  return 0;
}

int Arena::GrowFiles() {
  uint64_t capacity = std::min<uint64_t>(uint64_t{header_->files_capacity} * 2, kMaxFiles);
  if (capacity <= header_->files_capacity) return -ENOSPC;
  header_->files_capacity = static_cast<uint32_t>(capacity);  // its span is already in the file
  return 0;
}

namespace {

// A live record in a table (node or open file): a freed slot first, else the next never used
// one, growing the table when full. The caller holds the arena's lock.
template <typename Record, typename SlotOf, typename Grow>
int64_t NewRecord(std::vector<uint32_t>* free_slots, uint32_t* high, const uint32_t* capacity,
                  SlotOf slot_of, Grow grow) {
  uint32_t slot;
  if (!free_slots->empty()) {
    slot = free_slots->back();
    free_slots->pop_back();
  } else {
    if (*high >= *capacity) {
      if (int rv = grow(); rv < 0) return rv;
    }
    slot = (*high)++;
    slot_of(slot)->generation = 1;
  }
  Record* r = slot_of(slot);
  uint32_t generation = r->generation;
  std::memset(r, 0, sizeof *r);
  r->generation = generation;
  r->state = kRecordLive;
  return static_cast<int64_t>(MakeId(slot, generation));
}

// Frees a live record; its next use gets a new generation, so ids naming this one go stale.
template <typename Record>
void FreeRecord(Record* r, uint32_t slot, std::vector<uint32_t>* free_slots) {
  if (r == nullptr || r->state == kRecordFree) return;
  r->state = kRecordFree;
  r->generation = NextGeneration(r->generation);
  free_slots->push_back(slot);
}

}  // namespace

int64_t Arena::NewNode() {
  std::lock_guard lock(mu_);
  return NewRecord<NodeRecord>(
      &free_nodes_, &header_->nodes_high, &header_->nodes_capacity,
      [this](uint32_t slot) { return NodeSlot(slot); }, [this] { return GrowNodes(); });
}

void Arena::FreeNode(uint32_t slot) {
  if (slot == kRootSlot) return;
  std::lock_guard lock(mu_);
  FreeRecord(NodeSlot(slot), slot, &free_nodes_);
}

int64_t Arena::NewFile() {
  std::lock_guard lock(mu_);
  return NewRecord<OpenFileRecord>(
      &free_files_, &header_->files_high, &header_->files_capacity,
      [this](uint32_t slot) { return FileSlot(slot); }, [this] { return GrowFiles(); });
}

void Arena::FreeFile(uint32_t slot) {
  std::lock_guard lock(mu_);
  FreeRecord(FileSlot(slot), slot, &free_files_);
}

// ---- In-flight journal ----

bool IsJournalledOpcode(uint32_t opcode) {
  switch (opcode) {
    case FUSE_CREATE:
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_SYMLINK:
    case FUSE_LINK:
    case FUSE_UNLINK:
    case FUSE_RMDIR:
    case FUSE_RENAME:
    case FUSE_RENAME2:
    case FUSE_SETXATTR:
    case FUSE_REMOVEXATTR:
    case FUSE_FALLOCATE:
      return true;
    default:
      return false;
  }
}

JournalHeader* Arena::journal_header() const {
  return reinterpret_cast<JournalHeader*>(base_ + kJournalOffset);
}

JournalRecord* Arena::JournalSlot(uint32_t index) const {
  if (index >= kJournalSlots) return nullptr;
  return reinterpret_cast<JournalRecord*>(base_ + kJournalOffset + sizeof(JournalHeader)) + index;
}

void Arena::ResetJournal() {
  JournalHeader* j = journal_header();
  std::memset(j, 0, sizeof *j + kJournalSlots * sizeof(JournalRecord));
  j->record_size = sizeof(JournalRecord);
  j->capacity = kJournalSlots;
  std::atomic_ref<uint64_t>(j->magic).store(kJournalMagic, std::memory_order_release);
}

JournalRecord* Arena::ClaimJournal() {
  // Each thread starts where it last found a free record: with one request per thread in
  // flight, a thread usually finds its own record free again at once.
  static thread_local uint32_t hint =
      static_cast<uint32_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  for (uint32_t i = 0; i < kJournalSlots; ++i) {
    uint32_t index = (hint + i) % kJournalSlots;
    JournalRecord* r = JournalSlot(index);
    uint8_t expected = kJournalFree;
    if (std::atomic_ref<uint8_t>(r->state).compare_exchange_strong(expected, kJournalClaimed,
                                                                   std::memory_order_acquire)) {
      hint = index;
      return r;
    }
  }
  std::atomic_ref<uint32_t>(journal_header()->overflows).fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void Arena::ReleaseJournal(JournalRecord* r) {
  std::atomic_ref<uint8_t>(r->state).store(kJournalFree, std::memory_order_release);
}

JournalContents Arena::TakeJournal(uint64_t epoch) {
  JournalContents out;
  JournalHeader* j = journal_header();
  if (j->magic != kJournalMagic || j->record_size != sizeof(JournalRecord) ||
      j->capacity != kJournalSlots) {
    ResetJournal();
    return out;
  }
  out.complete = j->overflows == 0;
  for (uint32_t i = 0; i < kJournalSlots; ++i) {
    JournalRecord r;
    std::memcpy(&r, JournalSlot(i), sizeof r);
    if (r.state != kJournalStarted && r.state != kJournalDone) continue;
    if (r.epoch != static_cast<uint32_t>(epoch) || !IsJournalledOpcode(r.opcode)) continue;
    if (r.unique == 0 || (r.unique >> 63) != 0) continue;
    if (r.state == kJournalDone && (r.result > 0 || r.result < -4095)) continue;
    out.records.push_back(r);
  }
  ResetJournal();
  return out;
}

// ---- end of the in-flight journal ----

}  // namespace claimfs::fs
