#include "fs/arena.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include "fs/inode_table.h"
#include "fs/open_files.h"

namespace claimfs::fs {
namespace {

std::unique_ptr<Arena> NewArena(uint32_t nodes = 4, uint32_t files = 2) {
  auto arena = Arena::Create("test", nodes, files);
  EXPECT_TRUE(arena.ok()) << arena.status().message();
  return std::move(*arena);
}

TEST(Arena, RootIsSlotOneGenerationZeroSoItsIdIsFuseRootId) {
  auto arena = NewArena();
  ASSERT_NE(arena->Node(1), nullptr);
  EXPECT_EQ(MakeId(kRootSlot, 0), 1u);
  EXPECT_EQ(arena->Node(0), nullptr);
  int64_t id = arena->NewNode();
  ASSERT_GT(id, 0);
  EXPECT_GT(SlotOf(static_cast<uint64_t>(id)), kRootSlot);
}

TEST(Arena, ReuseOfASlotBumpsItsGeneration) {
  auto arena = NewArena();
  int64_t first = arena->NewNode();
  ASSERT_GT(first, 0);
  arena->FreeNode(SlotOf(static_cast<uint64_t>(first)));
  int64_t second = arena->NewNode();
  ASSERT_GT(second, 0);
  EXPECT_EQ(SlotOf(static_cast<uint64_t>(second)), SlotOf(static_cast<uint64_t>(first)));
  EXPECT_NE(GenerationOf(static_cast<uint64_t>(second)), GenerationOf(static_cast<uint64_t>(first)));
  EXPECT_NE(second, first);
}

// An adopter trusts a kept orphan fd only for a record flagged kNodeOrphan: a reused slot must
// not inherit the flag of the orphan that had it before.
TEST(Arena, OrphanFlagDoesNotOutliveItsNode) {
  auto arena = NewArena();
  int64_t id = arena->NewNode();
  ASSERT_GT(id, 0);
  NodeRecord* r = arena->Node(static_cast<uint64_t>(id));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->flags, 0);
  r->flags |= kNodeOrphan;
  arena->FreeNode(SlotOf(static_cast<uint64_t>(id)));
  int64_t reused = arena->NewNode();
  ASSERT_EQ(SlotOf(static_cast<uint64_t>(reused)), SlotOf(static_cast<uint64_t>(id)));
  EXPECT_EQ(arena->Node(static_cast<uint64_t>(reused))->flags, 0);
  EXPECT_EQ(arena->Node(static_cast<uint64_t>(id)), nullptr);
}

TEST(Arena, StaleIdNamesNoRecord) {
  auto arena = NewArena();
  int64_t id = arena->NewNode();
  ASSERT_NE(arena->Node(static_cast<uint64_t>(id)), nullptr);
  arena->FreeNode(SlotOf(static_cast<uint64_t>(id)));
  EXPECT_EQ(arena->Node(static_cast<uint64_t>(id)), nullptr);  // freed
  int64_t reused = arena->NewNode();
  EXPECT_EQ(arena->Node(static_cast<uint64_t>(id)), nullptr);  // reused under another generation
  EXPECT_NE(arena->Node(static_cast<uint64_t>(reused)), nullptr);
  int64_t fh = arena->NewFile();
  arena->FreeFile(SlotOf(static_cast<uint64_t>(fh)));
  EXPECT_EQ(arena->File(static_cast<uint64_t>(fh)), nullptr);
}

TEST(Arena, GrowthKeepsIdsAndRecords) {
  auto arena = NewArena(4, 2);
  std::vector<std::pair<uint64_t, NodeRecord*>> nodes;
  for (int i = 0; i < 5000; ++i) {
    int64_t id = arena->NewNode();
    ASSERT_GT(id, 0) << i;
    NodeRecord* r = arena->Node(static_cast<uint64_t>(id));
    r->ino = static_cast<uint64_t>(i) + 100;
    nodes.emplace_back(static_cast<uint64_t>(id), r);
  }
  std::set<uint64_t> ids;
  for (size_t i = 0; i < nodes.size(); ++i) {
    ids.insert(nodes[i].first);
    EXPECT_EQ(arena->Node(nodes[i].first), nodes[i].second);  // pointers stay valid
    EXPECT_EQ(nodes[i].second->ino, i + 100);
  }
  EXPECT_EQ(ids.size(), nodes.size());
  EXPECT_GE(arena->header()->nodes_capacity, 5002u);
  for (int i = 0; i < 1000; ++i) ASSERT_GT(arena->NewFile(), 0) << i;
  EXPECT_GE(arena->header()->files_capacity, 1001u);
}

TEST(Arena, FormatRoundTripThroughAnotherMapping) {
  auto arena = NewArena();
  int64_t a = arena->NewNode();
  int64_t b = arena->NewNode();
  arena->Node(static_cast<uint64_t>(a))->ino = 42;
  for (int i = 0; i < 3000; ++i) ASSERT_GT(arena->NewNode(), 0);  // grown after the fact
  arena->FreeNode(SlotOf(static_cast<uint64_t>(b)));
  int64_t fh = arena->NewFile();
  arena->File(static_cast<uint64_t>(fh))->flags = O_RDWR;
  arena->header()->init_in_len = 3;

  auto again = Arena::Open(fcntl(arena->fd(), F_DUPFD_CLOEXEC, 0));
  ASSERT_TRUE(again.ok()) << again.status().message();
  Arena& other = **again;
  EXPECT_EQ(other.header()->init_in_len, 3u);
  ASSERT_NE(other.Node(static_cast<uint64_t>(a)), nullptr);
  EXPECT_EQ(other.Node(static_cast<uint64_t>(a))->ino, 42u);
  EXPECT_EQ(other.Node(static_cast<uint64_t>(b)), nullptr);
  ASSERT_NE(other.File(static_cast<uint64_t>(fh)), nullptr);
  EXPECT_EQ(other.File(static_cast<uint64_t>(fh))->flags, O_RDWR);
  // The free list was rebuilt: the freed slot comes back under a new generation, and no live
  // slot is handed out twice.
  int64_t c = other.NewNode();
  EXPECT_EQ(SlotOf(static_cast<uint64_t>(c)), SlotOf(static_cast<uint64_t>(b)));
  EXPECT_NE(c, b);
  // Both mappings see the same records.
  other.Node(static_cast<uint64_t>(c))->ino = 7;
  EXPECT_EQ(arena->NodeSlot(SlotOf(static_cast<uint64_t>(c)))->ino, 7u);
}

TEST(Arena, RefusesWhatIsNotAnArenaOfThisFormat) {
  int fd = memfd_create("not-an-arena", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 8192), 0);
  EXPECT_FALSE(Arena::Open(fd).ok());

  auto arena = NewArena();
  arena->header()->format = kArenaFormat + 1;
  auto newer = Arena::Open(fcntl(arena->fd(), F_DUPFD_CLOEXEC, 0));
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("format"), std::string::npos);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/claimfs-arena-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(InodeTableIds, StaleNodeIdAnswersEstaleNeverAnotherObject) {
  TempDir dir;
  auto arena = NewArena();
  int root_fd = open(dir.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root_fd, 0);
  struct stat root_st;
  ASSERT_EQ(fstat(root_fd, &root_st), 0);
  InodeTable table(root_fd, root_st, 64, arena.get());
  EXPECT_EQ(table.Get(1), table.root());

  auto intern = [&](const std::string& name) {
    int fd = openat(root_fd, name.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    close(fd);
    int path_fd = openat(root_fd, name.c_str(), O_PATH | O_CLOEXEC);
    struct stat st;
    fstat(path_fd, &st);
    Inode* inode = nullptr;
    bool created = false;
    EXPECT_EQ(table.Intern(path_fd, st, &inode, &created), 0);
    return inode;
  };
  Inode* a = intern("a");
  uint64_t a_id = a->id();
  EXPECT_EQ(table.Get(a_id), a);
  table.Forget(a, 1);
  Inode* b = intern("b");
  EXPECT_EQ(b->slot, SlotOf(a_id));  // the slot is reused...
  Inode* stale = table.Get(a_id);    // ...but the old id names nothing
  EXPECT_TRUE(table.IsStale(stale));
  EXPECT_NE(stale, b);
  FdRef ref;
  EXPECT_EQ(table.Acquire(stale, &ref), -ESTALE);
  EXPECT_TRUE(table.IsStale(table.Get(0)));
  EXPECT_TRUE(table.IsStale(table.Get(MakeId(999, 1))));
}

TEST(OpenFilesIds, FileHandleNamesItsRecordAndAStaleOneIsRefused) {
  auto arena = NewArena();
  OpenFiles files(arena.get());
  Inode node(1, 2, S_IFREG);
  node.slot = 5;
  node.generation = 3;
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  int64_t fh = files.Add(node, fd, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, FileKind::kCached);
  ASSERT_GT(fh, 0);
  EXPECT_EQ(files.Fd(static_cast<uint64_t>(fh)), fd);
  const OpenFileRecord* r = arena->File(static_cast<uint64_t>(fh));
  EXPECT_EQ(r->node_slot, 5u);
  EXPECT_EQ(r->node_generation, 3u);
  EXPECT_EQ(r->flags & (O_CREAT | O_TRUNC), 0);  // what a reopen must not do again
  EXPECT_EQ(files.Remove(static_cast<uint64_t>(fh)), fd);
  close(fd);
  EXPECT_EQ(files.Fd(static_cast<uint64_t>(fh)), -EBADF);
  EXPECT_EQ(files.Remove(static_cast<uint64_t>(fh)), -1);
}

}  // namespace
}  // namespace claimfs::fs
