// Parity checks: run one syscall scenario on the native backing filesystem and on the volume,
// record every result (return value, errno, the stat fields that must match), and compare.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/process_util.h"

namespace claimfs::it {

// Stat fields a trace records; inode numbers and device ids are never compared.
enum StatField : unsigned {
  kMode = 1u << 0,  // file type and permission bits
  kNlink = 1u << 1,
  kSize = 1u << 2,
  kOwner = 1u << 3,  // uid and gid
  kBlocks = 1u << 4,
  kRdev = 1u << 5,   // only for device nodes
  kMtime = 1u << 6,  // only where the scenario set it explicitly
  kAtime = 1u << 7,
  kDefaultFields = kMode | kNlink | kSize | kOwner | kBlocks | kRdev,
  kDirFields = kMode | kNlink | kOwner,  // directory sizes depend on history; skip them
};

// A record of what one scenario saw. Scenarios are written against `P("name")` paths so the
// same code runs on both roots.
class Trace {
 public:
  explicit Trace(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string P(std::string_view rel) const;
  const char* C(std::string_view rel);  // P(rel).c_str(), valid until the next C()

  // Records "label -> rv" or "label -> -1 ENOENT"; returns rv. Call with the syscall's result
  // directly so errno is still the syscall's.
  long Ret(std::string_view label, long rv);
  // Like Ret() but records only success/failure and errno (for fds and byte counts that differ).
  long Ok(std::string_view label, long rv);
  // lstat (or stat with follow) of rel, the given fields, or its errno.
  void Stat(std::string_view rel, unsigned fields = kDefaultFields, bool follow = false);
  void Fstat(std::string_view label, int fd, unsigned fields = kDefaultFields);
  // The file's content (size and, if short, the bytes; else a hash), or its errno.
  void Content(std::string_view rel);
  // Sorted entry names with d_type, without . and ..
  void Listing(std::string_view rel);
  void Note(std::string line);

  const std::vector<std::string>& lines() const { return lines_; }
  std::string Serialize() const;
  static std::vector<std::string> Deserialize(const std::string& text);

 private:
  std::string root_;
  std::string scratch_;
  std::vector<std::string> lines_;
};

// Formats selected stat fields ("mode=0100644 nlink=1 size=3 uid=0 gid=0 blocks=8").
std::string FormatStat(const struct stat& st, unsigned fields);

using Scenario = std::function<void(Trace&)>;

struct ParityOptions {
  Scenario setup;                 // run first on each root as root (not compared)
  std::optional<Credentials> as;  // run the scenario in a child as this user
  int umask = 022;                // umask for the scenario
};

// Runs `scenario` on `native_root` and on `volume_root` and expects the same trace; prints both
// traces, marking the first difference, when they differ.
void ExpectParity(const std::string& native_root, const std::string& volume_root,
                  const Scenario& scenario, const ParityOptions& options = {});

}  // namespace claimfs::it
