#include "journal.h"

#include <linux/fuse.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include "compat_io.h"

namespace claimfs::fs {
namespace {

const char* JournalledName(uint32_t opcode) {
  switch (opcode) {
    case FUSE_CREATE:
      return "create";
    case FUSE_MKNOD:
      return "mknod";
    case FUSE_MKDIR:
      return "mkdir";
    case FUSE_SYMLINK:
      return "symlink";
    case FUSE_LINK:
      return "link";
    case FUSE_UNLINK:
      return "unlink";
    case FUSE_RMDIR:
      return "rmdir";
    case FUSE_RENAME:
      return "rename";
    case FUSE_RENAME2:
      return "rename";
    case FUSE_SETXATTR:
      return "setxattr";
    case FUSE_REMOVEXATTR:
      return "removexattr";
    case FUSE_FALLOCATE:
      return "fallocate";
    default:
      return "";
  }
}

// Test hook for the adoption tests: with CLAIMFS_CRASH_AT=journal.<op> the process kills
// itself after <op>'s syscall, before its record says done (the record stays "started").
void CrashPointBeforeJournalDone(uint32_t opcode) {
  static const char* const where = std::getenv("CLAIMFS_CRASH_AT");
  if (where != nullptr && std::strncmp(where, "journal.", 8) == 0 &&
      std::strcmp(where + 8, JournalledName(opcode)) == 0) {
    raise(SIGKILL);
  }
}

}  // namespace

void ResendJournal::Load(JournalContents contents, std::chrono::steady_clock::duration ttl) {
  std::lock_guard lock(mu_);
  records_.clear();
  for (const JournalRecord& r : contents.records) records_.emplace(r.unique, r);
  expires_ = std::chrono::steady_clock::now() + ttl;
  complete_.store(contents.complete);
  active_.store(!records_.empty());
}

std::optional<JournalRecord> ResendJournal::Take(uint64_t unique) {
  if (!active_.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard lock(mu_);
  if (std::chrono::steady_clock::now() >= expires_) {
    records_.clear();
    complete_.store(false);
  }
  std::optional<JournalRecord> out;
  if (auto it = records_.find(unique & ~kResentUnique); it != records_.end()) {
    out = it->second;
    records_.erase(it);
  }
  if (records_.empty()) active_.store(false, std::memory_order_release);
  return out;
}

bool ResendJournal::Vouches() const {
  if (!complete_.load()) return false;
  std::lock_guard lock(mu_);
  return std::chrono::steady_clock::now() < expires_;
}

size_t ResendJournal::pending() const {
  std::lock_guard lock(mu_);
  return records_.size();
}

InFlight::InFlight(Arena* arena, ResendJournal* resend, uint32_t opcode)
    : arena_(arena), opcode_(opcode), unique_(RequestUnique() & ~kResentUnique) {
  if (!RequestIsResent()) return;
  prior_ = resend->Take(unique_);
  if (prior_ && prior_->opcode != opcode) prior_.reset();  // not this request's: never trusted
  legacy_ = !prior_ && !resend->Vouches();
}

void InFlight::Start(bool existed, uint64_t dev, uint64_t ino) {
  if (record_ != nullptr || unique_ == 0) return;
  JournalRecord* r = arena_->ClaimJournal();
  if (r == nullptr) return;
  record_ = r;
  r->opcode = opcode_;
  r->unique = unique_;
  r->epoch = static_cast<uint32_t>(arena_->header()->epoch);
  r->result = 0;
  if (prior_) {
    r->flags = prior_->flags;
    r->dev = prior_->dev;
    r->ino = prior_->ino;
  } else {
    r->flags = existed ? kJournalExisted : 0;
    r->dev = dev;
    r->ino = ino;
  }
  std::atomic_ref<uint8_t>(r->state).store(kJournalStarted, std::memory_order_release);
  AttachJournalRecord(arena_, r);
}

int InFlight::Finish(int rv) {
  if (record_ == nullptr) return rv;
  CrashPointBeforeJournalDone(opcode_);
  record_->result = rv;
  std::atomic_ref<uint8_t>(record_->state).store(kJournalDone, std::memory_order_release);
  return rv;
}

int InFlight::Carry() {
  Start(false, 0, 0);
  return Finish(result());
}

}  // namespace claimfs::fs
