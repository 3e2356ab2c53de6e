// Kills store_crash_writer with SIGKILL at random points, hundreds of times, and checks after
// each kill that the store opens and is consistent.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "claimfs/store/state_store.h"
#include "unit/store/test_objects.h"

namespace claimfs::store {
namespace {

using model::ClaimPhase;
using model::VolumePhase;

// Kills per test: CLAIMFS_STORE_CRASH_KILLS, or 400 (200 under a sanitizer, where each writer
// start costs ten times as much; the issue asks for at least 200).
int KillCount() {
  if (const char* env = std::getenv("CLAIMFS_STORE_CRASH_KILLS")) return std::atoi(env);
#if defined(__SANITIZE_ADDRESS__)
  return 200;
#else
  return 400;
#endif
}

struct Writer {
  pid_t pid = -1;
  int out = -1;  // read end of the writer's stdout
  int err = -1;  // read end of its stderr
};

Writer Spawn(const std::filesystem::path& dir, unsigned seed,
             const std::vector<std::string>& extra_args) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    std::vector<std::string> args = {CLAIMFS_STORE_CRASH_WRITER, dir.string(),
                                     std::to_string(seed)};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(CLAIMFS_STORE_CRASH_WRITER, argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  return Writer{pid, out[0], err[0]};
}

// Reads until `lines` whole lines have come, or `wait_ms` have passed without any output.
std::string ReadLines(int fd, int lines, int wait_ms) {
  std::string text;
  pollfd p{fd, POLLIN, 0};
  while (std::count(text.begin(), text.end(), '\n') < lines && poll(&p, 1, wait_ms) > 0) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

// Everything up to EOF; the writer is dead, so EOF comes.
std::string ReadAll(int fd) {
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  return text;
}

// The last whole version line the writer printed (0 when none).
int64_t LastCommitted(const std::string& out) {
  int64_t last = 0;
  size_t start = 0;
  for (size_t nl = out.find('\n'); nl != std::string::npos; nl = out.find('\n', start)) {
    std::string line = out.substr(start, nl - start);
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos) {
      last = std::stoll(line);
    }
    start = nl + 1;
  }
  return last;
}

std::string RawQuery(const std::filesystem::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      out = text ? reinterpret_cast<const char*>(text) : "";
    } else {
      out = std::string("error: ") + sqlite3_errmsg(db);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

// What a check of the store found: its version, and every broken invariant.
struct Check {
  int64_t counter = -1;
  std::vector<std::string> problems;
};

// Opens the store the writer left and checks every invariant the writer keeps.
Check CheckConsistent(const std::filesystem::path& dir) {
  Check check;
  auto problem = [&](std::string text) { check.problems.push_back(std::move(text)); };
  Result<std::unique_ptr<StateStore>> opened = StateStore::Open(dir);
  if (!opened.ok()) {
    problem("does not open: " + opened.status().ToString());
    return check;
  }
  StateStore& store = **opened;
  Result<Snapshot> snap = store.ReadSnapshot();  // decodes every row
  if (!snap.ok()) {
    problem("snapshot: " + snap.status().ToString());
    return check;
  }
  const int64_t counter = std::stoll(snap->resource_version);
  check.counter = counter;

  std::set<int64_t> versions;
  auto check_version = [&](const model::ObjectMeta& meta) {
    int64_t v = std::stoll(meta.resource_version);
    if (!versions.insert(v).second) problem("resourceVersion " + std::to_string(v) + " twice");
    if (v <= 0 || v > counter) {
      problem(meta.name + " has resourceVersion " + std::to_string(v) + ", store is at " +
              std::to_string(counter));
    }
  };

  std::map<std::string, const model::PersistentVolume*> volumes;
  for (const auto& pv : snap->volumes) {
    check_version(pv.metadata);
    volumes[pv.metadata.name] = &pv;
  }
  std::map<std::string, const model::PersistentVolumeClaim*> claims;
  for (const auto& pvc : snap->claims) {
    check_version(pvc.metadata);
    claims[pvc.metadata.name] = &pvc;
  }

  for (const auto& pvc : snap->claims) {
    const std::string& name = pvc.metadata.name;
    switch (pvc.status.phase) {
      case ClaimPhase::kPending:
        if (!pvc.spec.volume_name.empty()) problem("Pending claim " + name + " names a volume");
        break;
      case ClaimPhase::kBound: {
        auto it = volumes.find(pvc.spec.volume_name);
        if (it == volumes.end()) {
          problem("Bound claim " + name + " points at missing volume " + pvc.spec.volume_name);
          break;
        }
        const model::PersistentVolume& pv = *it->second;
        const auto& ref = pv.spec.claim_ref;
        if (pv.status.phase != VolumePhase::kBound || !ref || ref->name != name ||
            ref->uid != pvc.metadata.uid) {
          problem("claim " + name + " is bound to " + pv.metadata.name +
                  ", which is not bound "
                  "back");
        }
        break;
      }
      case ClaimPhase::kLost:
        if (pvc.spec.volume_name.empty()) problem("Lost claim " + name + " names no volume");
        if (auto it = volumes.find(pvc.spec.volume_name); it != volumes.end()) {
          const auto& ref = it->second->spec.claim_ref;
          if (ref && ref->uid == pvc.metadata.uid) {
            problem("Lost claim " + name + " still has its volume");
          }
        }
        break;
    }
  }
  for (const auto& pv : snap->volumes) {
    const std::string& name = pv.metadata.name;
    const auto& ref = pv.spec.claim_ref;
    auto it = ref ? claims.find(ref->name) : claims.end();
    bool claim_is_there = it != claims.end() && it->second->metadata.uid == ref->uid;
    switch (pv.status.phase) {
      case VolumePhase::kAvailable:
        if (ref) problem("Available volume " + name + " has a claimRef");
        break;
      case VolumePhase::kBound:
        if (!claim_is_there) {
          problem("Bound volume " + name + " has no claim");
        } else if (it->second->spec.volume_name != name ||
                   it->second->status.phase != ClaimPhase::kBound) {
          problem("volume " + name + " is bound to claim " + ref->name +
                  ", which is not bound back");
        }
        break;
      case VolumePhase::kReleased:
        if (!ref) problem("Released volume " + name + " has no claimRef");
        if (claim_is_there) problem("Released volume " + name + " still has its claim");
        break;
      default:
        problem("volume " + name + " is in a phase the writer never sets");
    }
  }

  Result<std::vector<model::Event>> events = store.ListAllEvents();  // decodes every event
  if (!events.ok()) {
    problem("events: " + events.status().ToString());
  } else {
    for (const auto& e : *events) check_version(e.metadata);
  }

  std::filesystem::path db = dir / kDatabaseFileName;
  std::string integrity = RawQuery(db, "PRAGMA integrity_check");
  if (integrity != "ok") problem("integrity_check: " + integrity);
  std::string torn = RawQuery(db,
                              "SELECT count(*) FROM objects WHERE "
                              "json_extract(body, '$.metadata.resourceVersion') != "
                              "CAST(resource_version AS TEXT) OR "
                              "json_extract(body, '$.metadata.uid') != uid");
  if (torn != "0") problem(torn + " rows whose columns and body disagree");
  return check;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += "\n  " + line;
  return out;
}

struct KillRun {
  int kills = 0;
  int mid_run_kills = 0;
  int64_t writes = 0;        // writes that survived, summed over the state directories used
  double check_seconds = 0;  // of the run's time, how much went into checking
  std::vector<std::string> problems;
};

// Spawns the writer (with `writer_args` after the directory and seed) and kills it `kills`
// times; stops at the first inconsistency.
KillRun KillRepeatedly(int kills, std::mt19937* rng, const std::vector<std::string>& writer_args) {
  KillRun run;
  std::unique_ptr<testing::TempDir> dir;
  int64_t last_counter = 0;
  double commit_micros = 5000;  // how long the writer takes per batch, as last seen
  for (int kill = 0; kill < kills; ++kill) {
    // Now and then a fresh directory, so that some kills land in the first open's migrations.
    if (kill % 50 == 0) {
      dir = std::make_unique<testing::TempDir>();
      last_counter = 0;
    }
    ++run.kills;
    auto fail = [&](const std::string& what) {
      run.problems.push_back("kill " + std::to_string(kill) + " in " + dir->path().string() + ": " +
                             what);
    };
    Writer w = Spawn(dir->path(), (*rng)(), writer_args);
    if (w.pid <= 0) {
      fail(std::string("cannot start ") + CLAIMFS_STORE_CRASH_WRITER);
      return run;
    }
    std::string out;
    if (std::uniform_int_distribution<int>(0, 3)(*rng) == 0) {
      // Anywhere from exec through open to the first writes.
      std::this_thread::sleep_for(
          std::chrono::microseconds(std::uniform_int_distribution<int>(0, 6000)(*rng)));
    } else {
      // After `wait_for` commits, somewhere within the next: in a transaction or between two.
      int wait_for = std::uniform_int_distribution<int>(0, 3)(*rng);
      auto t0 = std::chrono::steady_clock::now();
      out = ReadLines(w.out, 1 + wait_for, 5000);
      if (wait_for > 0) {
        double per_commit =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count() /
            wait_for;
        commit_micros = 0.8 * commit_micros + 0.2 * per_commit;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(
          std::uniform_int_distribution<int>(0, static_cast<int>(1.5 * commit_micros))(*rng)));
      ++run.mid_run_kills;
    }
    ::kill(w.pid, SIGKILL);
    int status = 0;
    waitpid(w.pid, &status, 0);
    out += ReadAll(w.out);
    std::string err = ReadAll(w.err);
    close(w.out);
    close(w.err);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
      fail("the writer stopped by itself (status " + std::to_string(status) + "): " + err);
      return run;
    }

    auto check_start = std::chrono::steady_clock::now();
    Check check = CheckConsistent(dir->path());
    run.check_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - check_start).count();
    for (const std::string& p : check.problems) fail(p);
    // A batch the writer saw commit is there; versions never go back.
    int64_t committed = LastCommitted(out);
    if (check.counter >= 0 && check.counter < committed) {
      fail("store is at version " + std::to_string(check.counter) + " but the writer saw " +
           std::to_string(committed) + " commit");
    }
    if (check.counter >= 0 && check.counter < last_counter) {
      fail("store went back from version " + std::to_string(last_counter) + " to " +
           std::to_string(check.counter));
    }
    if (!run.problems.empty()) return run;
    run.writes += check.counter - last_counter;
    last_counter = check.counter;
  }
  return run;
}

TEST(StoreCrashTest, SigkillAtRandomPointsLeavesAConsistentStore) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  auto start = std::chrono::steady_clock::now();
  KillRun run = KillRepeatedly(KillCount(), &rng, {});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "%d kills (%d after the store opened), %lld writes survived, %.1f s (%.1f s checking), "
      "seed %u\n",
      run.kills, run.mid_run_kills, static_cast<long long>(run.writes), seconds, run.check_seconds,
      seed);
  EXPECT_TRUE(run.problems.empty()) << "seed " << seed << Join(run.problems);
  // The kills must have landed among writes, not only before them.
  EXPECT_GE(run.writes, run.mid_run_kills / 2);
}

// The check above must be able to fail: a writer that binds in two transactions (volume first,
// then claim) is caught between them.
TEST(StoreCrashTest, CatchesABindSplitAcrossTwoTransactions) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  KillRun run = KillRepeatedly(KillCount(), &rng, {"--split-binds"});
  ASSERT_FALSE(run.problems.empty())
      << "seed " << seed << ": " << run.kills << " kills never caught a half-done bind";
  EXPECT_NE(run.problems.front().find("not bound back"), std::string::npos) << Join(run.problems);
  std::printf("caught after %d kills: %s\n", run.kills, run.problems.front().c_str());
}

}  // namespace
}  // namespace claimfs::store
