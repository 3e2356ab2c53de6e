// The in-flight journal's two halves (docs/dataplane.md 7.3): InFlight writes one request's
// record into the arena around its syscall; ResendJournal holds what an adopter loaded from the
// dead server's records and answers, for each resent request, what that server had got to.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "arena.h"

namespace claimfs::fs {

class ResendJournal {
 public:
  // The records and completeness an adopter took from the arena; kept at most `ttl`.
  void Load(JournalContents contents,
            std::chrono::steady_clock::duration ttl = std::chrono::seconds(10));
  // The record the dead server left for the resent request `unique` (bit 63 set or not), taken
  // out of the map; none when it left none. Thread-safe.
  std::optional<JournalRecord> Take(uint64_t unique);
  // Whether a resent request without a record was certainly never started (every request the
  // dead server started was journalled). False before Load and after the map expired.
  bool Vouches() const;
  size_t pending() const;

 private:
  std::atomic<bool> active_{false};  // the map holds records
  std::atomic<bool> complete_{false};
  mutable std::mutex mu_;                                // a leaf lock
  std::unordered_map<uint64_t, JournalRecord> records_;  // guarded by mu_
  std::chrono::steady_clock::time_point expires_;        // guarded by mu_
};

// One non-idempotent request's journal record. Construct it in the handler (it looks up what a
// dead server left for a resent request), call Start() with the pre-state just before the
// syscall and Finish() with its result; compat_io frees the record when the reply is written.
// Without a free record (journal full) the request is served by the rules of 7.5 (legacy()).
class InFlight {
 public:
  InFlight(Arena* arena, ResendJournal* resend, uint32_t opcode);
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  // The dead server finished the change; result() is what it would have answered.
  bool done() const { return prior_ && prior_->state == kJournalDone; }
  int result() const { return prior_ ? prior_->result : 0; }
  // The dead server started the change and may or may not have made it; existed(), dev(),
  // ino() are the pre-state it recorded.
  bool started() const { return prior_ && prior_->state == kJournalStarted; }
  bool existed() const { return prior_ && (prior_->flags & kJournalExisted); }
  uint64_t dev() const { return prior_ ? prior_->dev : 0; }
  uint64_t ino() const { return prior_ ? prior_->ino : 0; }
  // A resent request nobody can vouch for (no journal, or a dead server whose journal was
  // full): only the per-operation rules of 7.5 remain.
  bool legacy() const { return legacy_; }

  // Journals the request as started with its pre-state (a request carried over from a dead
  // server keeps that server's pre-state, and a done one its result: if this server dies too,
  // the next one reads the same). Call at most once.
  void Start(bool existed, uint64_t dev, uint64_t ino);
  // Marks it done with `rv` (0 or -errno); returns rv.
  int Finish(int rv);
  // For done(): carries the dead server's record over and returns its result.
  int Carry();

 private:
  Arena* arena_;
  uint32_t opcode_;
  uint64_t unique_ = 0;
  std::optional<JournalRecord> prior_;
  bool legacy_ = false;
  JournalRecord* record_ = nullptr;
};

}  // namespace claimfs::fs
