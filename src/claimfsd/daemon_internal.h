// What the files of Daemon's implementation share: the clock, ids and a volume's path.
#pragma once

#include <chrono>
#include <cstddef>
#include <ctime>
#include <random>
#include <string>

#include "claimfs/model/objects.h"

namespace claimfs::claimfsd {

using Clock = std::chrono::steady_clock;

// A pass that keeps finding work stops after this many rounds and waits for the next tick.
inline constexpr int kMaxRoundsPerWake = 16;

inline std::string Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

inline std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 random(std::random_device{}());
  std::string out;
  static const char* digits = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(random() & 0xff);
    out += digits[b >> 4];
    out += digits[b & 0xf];
  }
  return out;
}

inline std::string VolumePath(const model::PersistentVolume& pv) {
  if (pv.spec.host_path) return pv.spec.host_path->path;
  if (pv.spec.local) return pv.spec.local->path;
  return "";
}

}  // namespace claimfs::claimfsd
