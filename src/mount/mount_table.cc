#include "claimfs/mount/mount_table.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>

#include "claimfs/common/log.h"

namespace claimfs::mount {
namespace {

// Undoes the kernel's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Splits on single spaces; consecutive spaces give empty fields (an empty source does that).
std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t space = line.find(' ', start);
    fields.push_back(line.substr(start, space == std::string_view::npos ? space : space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  return fields;
}

// Why `line` is not a mountinfo line; "" when it is one (then *out holds it).
std::string ParseLine(std::string_view line, MountInfo* out) {
  std::vector<std::string_view> f = SplitFields(line);
  // id parent major:minor root mount_point options [optional...] - type source super_options
  auto separator = std::find(f.begin() + std::min<size_t>(f.size(), 6), f.end(), "-");
  if (f.size() < 10 || separator == f.end()) return "too few fields or no \" - \" separator";
  if (f.end() - separator != 4) return "want 3 fields after \" - \"";
  if (!ParseNumber(f[0], &out->mount_id)) return "bad mount id";
  if (!ParseNumber(f[1], &out->parent_id)) return "bad parent id";
  size_t colon = f[2].find(':');
  unsigned major = 0, minor = 0;
  if (colon == std::string_view::npos || !ParseNumber(f[2].substr(0, colon), &major) ||
      !ParseNumber(f[2].substr(colon + 1), &minor)) {
    return "bad major:minor";
  }
  out->device = makedev(major, minor);
  if (f[3].empty() || f[4].empty() || f[5].empty()) return "empty root, mount point or options";
  out->root = Unescape(f[3]);
  out->mount_point = Unescape(f[4]);
  out->mount_options = std::string(f[5]);
  out->optional_fields.clear();
  for (auto it = f.begin() + 6; it != separator; ++it) {
    if (!out->optional_fields.empty()) out->optional_fields += ' ';
    out->optional_fields += *it;
  }
  if (separator[1].empty()) return "empty filesystem type";
  out->fs_type = Unescape(separator[1]);
  out->source = Unescape(separator[2]);
  out->super_options = std::string(separator[3]);
  return "";
}

// Collapses "//", "." and a trailing '/'; nullopt for a relative path or one with "..".
std::optional<std::string> NormalizePath(std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (part == "..") return std::nullopt;
    if (!part.empty() && part != ".") {
      out += '/';
      out += part;
    }
    i = j + 1;
  }
  return out.empty() ? "/" : out;
}

bool AtOrBelow(const std::string& path, const std::string& dir) {
  if (dir == "/") return !path.empty() && path.front() == '/';
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

size_t Depth(const std::string& path) { return std::count(path.begin(), path.end(), '/'); }

}  // namespace

int MountInfo::PeerGroup(std::string_view tag) const {
  std::string_view fields = optional_fields;
  size_t start = 0;
  while (start < fields.size()) {
    size_t end = fields.find(' ', start);
    if (end == std::string_view::npos) end = fields.size();
    std::string_view field = fields.substr(start, end - start);
    if (field.size() > tag.size() && field.substr(0, tag.size()) == tag &&
        field[tag.size()] == ':') {
      int group = 0;
      if (ParseNumber(field.substr(tag.size() + 1), &group)) return group;
    }
    start = end + 1;
  }
  return 0;
}

Result<std::vector<MountInfo>> ParseMountInfo(std::string_view text) {
  std::vector<MountInfo> mounts;
  size_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.empty()) continue;
    MountInfo mount;
    std::string problem = ParseLine(line, &mount);
    if (!problem.empty()) {
      return Status::Invalid("mountinfo line " + std::to_string(line_number) + " (\"" +
                             std::string(line.substr(0, 200)) + "\"): " + problem);
    }
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

Result<std::vector<MountInfo>> ReadMountInfo(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cannot open " + path, errno);
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      // A process that exited between open and read.
      return err == ESRCH ? Status::NotFound("cannot read " + path + ": the process exited")
                          : Status::FromErrno("cannot read " + path, err);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  auto parsed = ParseMountInfo(text);
  if (!parsed.ok()) return Status::Invalid(path + ": " + parsed.status().message());
  return parsed;
}

bool IsClaimfsMount(const MountInfo& mount) {
  return mount.fs_type == "fuse.claimfs" || (mount.fs_type == "fuse" && mount.source == "claimfs");
}

namespace {

// Whether `m` lies on top of the mount `ancestor` (a descendant in the mount tree).
bool Below(const MountInfo& m, int ancestor, const std::vector<MountInfo>& table) {
  int parent = m.parent_id;
  for (size_t hops = 0; hops <= table.size(); ++hops) {
    if (parent == ancestor) return true;
    auto it = std::find_if(table.begin(), table.end(),
                           [&](const MountInfo& p) { return p.mount_id == parent; });
    if (it == table.end() || it->parent_id == it->mount_id) return false;
    parent = it->parent_id;
  }
  return false;
}

}  // namespace

Result<std::vector<std::string>> DetachStaleMounts(const std::string& root) {
  return DetachStaleMounts(root, DetachOptions{});
}

Result<std::vector<std::string>> DetachStaleMounts(const std::string& root,
                                                   const DetachOptions& options) {
  std::optional<std::string> dir = NormalizePath(root);
  if (!dir) return Status::Invalid("mount root \"" + root + "\" is not an absolute path");
  auto table = ReadMountInfo();
  if (!table.ok()) return table.status();
  // The path umount2 is given: through `via` when the root's own path leads elsewhere now.
  auto reach = [&](const std::string& mount_point) {
    if (options.via.empty()) return mount_point;
    std::string rest = *dir == "/" ? mount_point : mount_point.substr(dir->size());
    return options.via + rest;
  };

  std::vector<const MountInfo*> candidates;
  for (const MountInfo& m : *table) {
    if (!IsClaimfsMount(m) || !AtOrBelow(m.mount_point, *dir)) continue;
    if (options.below_mount_id != 0 && !Below(m, options.below_mount_id, *table)) continue;
    if (options.not_below_mount_id != 0 && Below(m, options.not_below_mount_id, *table)) continue;
    if (options.keep_devices.count(m.device)) continue;
    candidates.push_back(&m);
  }
  std::set<int> gone;  // mount ids detached (or found gone)
  std::set<int> failed;
  std::vector<std::pair<const MountInfo*, int>> failures;
  std::vector<std::string> detached;
  // Rounds: a mount is detached once nothing is stacked on it any more, deepest first, so a
  // path always names the mount meant.
  while (true) {
    std::vector<const MountInfo*> ready;
    for (const MountInfo* c : candidates) {
      if (gone.count(c->mount_id) || failed.count(c->mount_id)) continue;
      bool covered = std::any_of(table->begin(), table->end(), [&](const MountInfo& m) {
        return m.parent_id == c->mount_id && m.mount_point == c->mount_point &&
               !gone.count(m.mount_id);
      });
      if (!covered) ready.push_back(c);
    }
    if (ready.empty()) break;
    std::stable_sort(ready.begin(), ready.end(), [](const MountInfo* a, const MountInfo* b) {
      return Depth(a->mount_point) > Depth(b->mount_point);
    });
    for (const MountInfo* c : ready) {
      // No stat, no realpath: MNT_DETACH by path does not ask the (dead) FUSE server anything.
      std::string path = reach(c->mount_point);
      // UMOUNT_NOFOLLOW would stop at the /proc/self/fd link itself when it is the whole path.
      int flags = path == options.via ? MNT_DETACH : MNT_DETACH | UMOUNT_NOFOLLOW;
      if (::umount2(path.c_str(), flags) == 0) {
        log::Info("detached stale claimfs mount {} ({})", c->mount_point, c->source);
        detached.push_back(c->mount_point);
        gone.insert(c->mount_id);
      } else if (errno == EINVAL || errno == ENOENT) {
        log::Debug("claimfs mount {} is already gone", c->mount_point);
        gone.insert(c->mount_id);
      } else {
        failures.emplace_back(c, errno);
        failed.insert(c->mount_id);
      }
    }
  }
  for (const MountInfo* c : candidates) {
    if (!gone.count(c->mount_id) && !failed.count(c->mount_id)) {
      log::Warn("left claimfs mount {} alone: another filesystem is mounted on top of it",
                c->mount_point);
    }
  }
  Status first_error;
  for (const auto& [mount, err] : failures) {
    // Below a dead FUSE mount the path lookup itself can fail (ENOTCONN); a detached ancestor
    // took the mount with it.
    bool taken = std::any_of(detached.begin(), detached.end(), [&](const std::string& d) {
      return d != mount->mount_point && AtOrBelow(mount->mount_point, d);
    });
    if (taken) {
      detached.push_back(mount->mount_point);
      continue;
    }
    log::Error("cannot detach claimfs mount {}: {}", mount->mount_point, std::strerror(err));
    if (first_error.ok()) {
      first_error = Status::IOError("cannot detach claimfs mount " + mount->mount_point + ": " +
                                    std::strerror(err));
    }
  }
  if (!first_error.ok()) return first_error;
  return detached;
}

}  // namespace claimfs::mount
