// The in-flight journal region of the arena and the adopter's map (docs/dataplane.md 7.3).
#include "fs/journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "fs/arena.h"
#include "fs/compat_io.h"

namespace claimfs::fs {
namespace {

std::unique_ptr<Arena> NewArena() {
  auto arena = Arena::Create("journal-test");
  EXPECT_TRUE(arena.ok()) << arena.status().message();
  return std::move(*arena);
}

// What a serving process writes for a request in flight.
JournalRecord* Journal(Arena* arena, uint32_t opcode, uint64_t unique, uint8_t state,
                       int32_t result = 0) {
  JournalRecord* r = arena->ClaimJournal();
  if (r == nullptr) return nullptr;
  r->opcode = opcode;
  r->unique = unique;
  r->epoch = static_cast<uint32_t>(arena->header()->epoch);
  r->result = result;
  r->flags = kJournalExisted;
  r->dev = 7;
  r->ino = 8;
  r->state = state;
  return r;
}

// The arena as the adopting process maps it.
std::unique_ptr<Arena> Reopen(const Arena& arena) {
  auto again = Arena::Open(fcntl(arena.fd(), F_DUPFD_CLOEXEC, 0));
  EXPECT_TRUE(again.ok()) << again.status().message();
  return std::move(*again);
}

TEST(Journal, TheDeadServersRecordsAreLoadedAndTheTableEmptied) {
  auto arena = NewArena();
  arena->header()->epoch = 3;
  Journal(arena.get(), FUSE_MKDIR, 10, kJournalStarted);
  Journal(arena.get(), FUSE_UNLINK, 12, kJournalDone, -ENOENT);
  Journal(arena.get(), FUSE_CREATE, 14, kJournalClaimed);  // claimed, not started: no syscall yet
  auto adopter = Reopen(*arena);
  JournalContents got = adopter->TakeJournal(3);
  EXPECT_TRUE(got.complete);
  ASSERT_EQ(got.records.size(), 2u);
  std::set<uint64_t> uniques;
  for (const JournalRecord& r : got.records) uniques.insert(r.unique);
  EXPECT_EQ(uniques, (std::set<uint64_t>{10, 12}));
  EXPECT_TRUE(adopter->TakeJournal(3).records.empty());
  for (uint32_t i = 0; i < kJournalSlots; ++i)
    EXPECT_EQ(arena->JournalSlot(i)->state, kJournalFree);
}

TEST(Journal, AFullTableRefusesACountsAndTheAdopterNoLongerVouches) {
  auto arena = NewArena();
  std::vector<JournalRecord*> held;
  for (uint32_t i = 0; i < kJournalSlots; ++i) {
    JournalRecord* r = arena->ClaimJournal();
    ASSERT_NE(r, nullptr) << i;
    held.push_back(r);
  }
  EXPECT_EQ(arena->ClaimJournal(), nullptr);
  EXPECT_EQ(arena->journal_header()->overflows, 1u);
  arena->ReleaseJournal(held.back());
  EXPECT_EQ(arena->ClaimJournal(), held.back());
  JournalContents got = Reopen(*arena)->TakeJournal(arena->header()->epoch);
  EXPECT_FALSE(got.complete);
  ResendJournal resend;
  resend.Load(got);
  EXPECT_FALSE(resend.Vouches());
  EXPECT_EQ(arena->journal_header()->overflows, 0u);  // the new epoch starts counting afresh
}

TEST(Journal, ConcurrentClaimsNeverShareARecord) {
  auto arena = NewArena();
  std::atomic<int> shared{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        JournalRecord* r = arena->ClaimJournal();
        if (r == nullptr) continue;
        r->unique = static_cast<uint64_t>(t) + 1;
        std::this_thread::yield();
        if (r->unique != static_cast<uint64_t>(t) + 1) shared.fetch_add(1);
        arena->ReleaseJournal(r);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(shared.load(), 0);
}

TEST(Journal, RecordsOfAnOlderEpochAreStaleAndIgnored) {
  auto arena = NewArena();
  arena->header()->epoch = 5;
  Journal(arena.get(), FUSE_MKDIR, 10, kJournalDone, 0);
  arena->header()->epoch = 6;
  Journal(arena.get(), FUSE_MKDIR, 12, kJournalDone, -EEXIST);
  JournalContents got = Reopen(*arena)->TakeJournal(6);
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].unique, 12u);
  EXPECT_EQ(got.records[0].result, -EEXIST);
}

TEST(Journal, ForgedRecordsAreIgnored) {
  auto arena = NewArena();
  struct Forged {
    uint32_t opcode;
    uint64_t unique;
    uint8_t state;
    int32_t result;
  };
  const Forged forged[] = {
      {FUSE_READ, 10, kJournalDone, 0},                  // an opcode the journal never keeps
      {9999, 11, kJournalStarted, 0},                    // no opcode at all
      {FUSE_MKDIR, 12, 77, 0},                           // no state
      {FUSE_MKDIR, 0, kJournalDone, 0},                  // no unique
      {FUSE_MKDIR, (1ULL << 63) | 13, kJournalDone, 0},  // a resent unique is never journalled
      {FUSE_MKDIR, 14, kJournalDone, 5},                 // a positive "errno"
      {FUSE_MKDIR, 15, kJournalDone, -100000},           // no errno
  };
  for (const Forged& f : forged) {
    ASSERT_NE(Journal(arena.get(), f.opcode, f.unique, f.state, f.result), nullptr);
  }
  Journal(arena.get(), FUSE_RMDIR, 16, kJournalDone, -ENOTEMPTY);
  JournalContents got = Reopen(*arena)->TakeJournal(arena->header()->epoch);
  ASSERT_EQ(got.records.size(), 1u);
  EXPECT_EQ(got.records[0].unique, 16u);
}

TEST(Journal, AForgedTableHeaderIsNotTrustedToIndexMemory) {
  auto arena = NewArena();
  Journal(arena.get(), FUSE_MKDIR, 10, kJournalDone, 0);
  struct Case {
    uint64_t magic;
    uint32_t record_size;
    uint32_t capacity;
  };
  const Case cases[] = {
      {kJournalMagic, sizeof(JournalRecord), 1u << 30},  // capacity far beyond the page
      {kJournalMagic, 4096, kJournalSlots},              // records of another size
      {0, sizeof(JournalRecord), kJournalSlots},         // written before the journal existed
  };
  for (const Case& c : cases) {
    JournalHeader* j = arena->journal_header();
    j->magic = c.magic;
    j->record_size = c.record_size;
    j->capacity = c.capacity;
    auto adopter = Reopen(*arena);
    EXPECT_TRUE(adopter->TakeJournal(arena->header()->epoch).records.empty());
    EXPECT_EQ(adopter->journal_header()->capacity, kJournalSlots);
    EXPECT_EQ(adopter->JournalSlot(kJournalSlots), nullptr);
    EXPECT_NE(adopter->ClaimJournal(), nullptr);
    Journal(arena.get(), FUSE_MKDIR, 10, kJournalDone, 0);
  }
}

// What an adopter takes from a journal that holds one MKDIR, done with `result`.
JournalContents OneDoneMkdir(uint64_t unique, int32_t result) {
  JournalContents contents;
  contents.complete = true;
  JournalRecord r{};
  r.state = kJournalDone;
  r.opcode = FUSE_MKDIR;
  r.unique = unique;
  r.result = result;
  contents.records.push_back(r);
  return contents;
}

TEST(ResendJournal, TakesARecordOnceByTheResentUnique) {
  ResendJournal resend;
  resend.Load(OneDoneMkdir(42, -EEXIST));
  EXPECT_TRUE(resend.Vouches());
  EXPECT_FALSE(resend.Take(kResentUnique | 43).has_value());
  auto got = resend.Take(kResentUnique | 42);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->result, -EEXIST);
  EXPECT_FALSE(resend.Take(kResentUnique | 42).has_value());
  EXPECT_EQ(resend.pending(), 0u);
}

TEST(ResendJournal, IsDroppedWhenItsTimeIsUp) {
  ResendJournal resend;
  resend.Load(OneDoneMkdir(42, -EEXIST), std::chrono::milliseconds(0));
  EXPECT_FALSE(resend.Take(kResentUnique | 42).has_value());
  EXPECT_FALSE(resend.Vouches());
}

}  // namespace
}  // namespace claimfs::fs
