// Programs that keep files open in volumes while claimfsd's processes die, restart and are
// upgraded (issue 10): per volume a writer appending checksummed records with fsync through one
// descriptor, and a reader keeping the same file open and checking its first and last records.
// They run as forked children that record their progress and their first error in shared
// memory. Every call must succeed; StopAndVerify() reads every fsync'd record back.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/daemon_fixture.h"

namespace claimfs::it {

class OpenFilesWorkloadTest : public DaemonTest {
 protected:
  static constexpr int kVolumes = 4;

  void SetUp() override;
  void TearDown() override;

  // Claims "<prefix>0" ... "<prefix>3" of 64Mi, Bound and mounted.
  void CreateClaims();
  std::string ClaimName(int i) const { return claim_prefix_ + std::to_string(i); }
  // A writer and a reader per volume, on "<mount>/records".
  void StartWorkload();
  // Records each writer has fsync'd so far.
  std::vector<uint64_t> Counts() const;
  // True once every writer has fsync'd `more` records since `since`.
  bool Progressed(const std::vector<uint64_t>& since, uint64_t more,
                  std::chrono::milliseconds timeout);
  // The first error of each writer and reader, one line each; "" when none saw one.
  std::string Errors() const;
  // Stops the workload: every child exited 0, no error, every fsync'd record reads back intact
  // and in order, every reader read.
  void StopAndVerify();

  std::string claim_prefix_ = "w";

 private:
  struct Progress {
    std::atomic<uint64_t> fsynced{0};  // records written and fsync'd
    std::atomic<uint64_t> reads{0};
    std::atomic<int> error{0};  // errno of the first failed call
    std::atomic<int> where{0};  // which call: 1 write, 2 fsync, 3 pread, 4 fstat, 5 bad record
  };
  struct Shared {
    Progress writers[kVolumes];
    Progress readers[kVolumes];
    std::atomic<bool> stop{false};
  };
  static int Writer(const std::string& path, Progress* p, const std::atomic<bool>* stop);
  static int Reader(const std::string& path, Progress* p, const std::atomic<bool>* stop);

  Shared* shared_ = nullptr;
  std::vector<pid_t> children_;
};

}  // namespace claimfs::it
