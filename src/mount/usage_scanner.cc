#include "claimfs/mount/usage_scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <utility>

#include "claimfs/common/log.h"
#include "claimfs/mount/mount_table.h"

namespace claimfs::mount {
namespace {

// Errors that only mean "the process is gone": not worth a log line.
bool Vanished(int err) { return err == ENOENT || err == ESRCH; }

void LogUnreadable(const std::string& path, int err) {
  if (!Vanished(err)) log::Debug("usage scan: cannot read {}: {}", path, std::strerror(err));
}

// Reads a small /proc file whole; errno on failure.
int ReadFile(const std::string& path, std::string* out) {
  out->clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buffer[8192];
  int err = 0;
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    out->append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return err;
}

// readlink(2) into a string; errno on failure.
int ReadLink(const std::string& path, std::string* out) {
  out->assign(256, '\0');
  while (true) {
    ssize_t n = ::readlink(path.c_str(), out->data(), out->size());
    if (n < 0) return errno;
    if (static_cast<size_t>(n) < out->size()) {
      out->resize(static_cast<size_t>(n));
      return 0;
    }
    if (out->size() >= 65536) return ENAMETOOLONG;
    out->assign(out->size() * 2, '\0');
  }
}

// One mount namespace's table, indexed for the two questions the scan asks.
struct NamespaceView {
  std::vector<MountInfo> mounts;
  std::map<int, dev_t> device_of_mount;  // mount id → device

  explicit NamespaceView(std::vector<MountInfo> table) : mounts(std::move(table)) {
    for (const MountInfo& m : mounts) device_of_mount[m.mount_id] = m.device;
  }

  // The device of the mount that holds `path` (a path in this namespace): the longest mount
  // point that is a prefix, the latest of those stacked on one point. 0 when none is.
  dev_t DeviceOfPath(const std::string& path) const {
    const MountInfo* best = nullptr;
    for (const MountInfo& m : mounts) {
      const std::string& mp = m.mount_point;
      bool holds = mp == "/" || path == mp ||
                   (path.size() > mp.size() && path.compare(0, mp.size(), mp) == 0 &&
                    path[mp.size()] == '/');
      if (holds && (best == nullptr || mp.size() >= best->mount_point.size())) best = &m;
    }
    return best != nullptr ? best->device : 0;
  }
};

// The namespace inode of /proc/<pid>/ns/mnt: equal inodes, same namespace.
bool NamespaceOf(const std::string& ns_path, std::pair<dev_t, ino_t>* out, int* err) {
  struct stat st;
  if (::stat(ns_path.c_str(), &st) != 0) {
    *err = errno;
    return false;
  }
  *out = {st.st_dev, st.st_ino};
  return true;
}

// "mnt_id:\t42" in /proc/<pid>/fdinfo/<fd>; -1 when absent.
int MountIdFromFdInfo(const std::string& text) {
  size_t pos = text.find("mnt_id:");
  if (pos == std::string::npos) return -1;
  pos += 7;
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
  int id = -1;
  std::from_chars(text.data() + pos, text.data() + text.size(), id);
  return id;
}

// The devices in the fifth column of /proc/<pid>/maps ("fd:01", hex major:minor).
void DevicesInMaps(const std::string& text, std::set<dev_t>* out) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    // address perms offset dev inode [path]
    size_t field_start = 0;
    for (int field = 0; field < 3; ++field) {
      field_start = line.find(' ', field_start);
      if (field_start == std::string_view::npos) break;
      ++field_start;
    }
    if (field_start == std::string_view::npos) continue;
    size_t field_end = line.find(' ', field_start);
    std::string_view dev =
        line.substr(field_start, field_end == std::string_view::npos ? std::string_view::npos
                                                                     : field_end - field_start);
    size_t colon = dev.find(':');
    unsigned major = 0, minor = 0;
    if (colon == std::string_view::npos) continue;
    auto r1 = std::from_chars(dev.data(), dev.data() + colon, major, 16);
    auto r2 = std::from_chars(dev.data() + colon + 1, dev.data() + dev.size(), minor, 16);
    if (r1.ec != std::errc() || r2.ec != std::errc()) continue;
    if (major == 0 && minor == 0) continue;  // anonymous memory
    out->insert(makedev(major, minor));
  }
}

std::string StripDeleted(std::string path) {
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() &&
      path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
    path.resize(path.size() - kDeleted.size());
  }
  return path;
}

std::string PidList(const std::vector<pid_t>& pids, const std::map<pid_t, std::string>& names,
                    const std::map<pid_t, std::string>& containers) {
  constexpr size_t kShown = 10;
  constexpr size_t kShortId = 12;  // as `docker ps` shows it
  std::string out;
  for (size_t i = 0; i < pids.size() && i < kShown; ++i) {
    if (i > 0) out += ", ";
    out += "pid " + std::to_string(pids[i]);
    std::vector<std::string> about;
    auto name = names.find(pids[i]);
    if (name != names.end() && !name->second.empty()) about.push_back(name->second);
    auto container = containers.find(pids[i]);
    if (container != containers.end()) {
      about.push_back("container " + container->second.substr(0, kShortId));
    }
    for (size_t a = 0; a < about.size(); ++a) out += (a == 0 ? " (" : ", ") + about[a];
    if (!about.empty()) out += ")";
  }
  if (pids.size() > kShown) out += " and " + std::to_string(pids.size() - kShown) + " more";
  return out;
}

}  // namespace

bool VolumeUsers::any() const {
  return !open_files.empty() || !other_namespaces.empty() || !bind_mounts.empty();
}

std::string VolumeUsers::Describe() const {
  std::vector<std::string> parts;
  if (!open_files.empty()) parts.push_back("open by " + PidList(open_files, commands, containers));
  if (!other_namespaces.empty()) {
    parts.push_back("mounted in the mount namespace of " +
                    PidList(other_namespaces, commands, containers));
  }
  if (!bind_mounts.empty()) {
    std::string list;
    for (const std::string& mp : bind_mounts) list += (list.empty() ? "" : ", ") + mp;
    parts.push_back("bind-mounted at " + list);
  }
  if (parts.empty()) return "not in use";
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : "; ") + part;
  return out;
}

UsageScanner::UsageScanner(std::string proc_root) : proc_root_(std::move(proc_root)) {}

std::map<dev_t, VolumeUsers> UsageScanner::Scan(const std::map<dev_t, std::string>& primary_mounts,
                                                const std::set<pid_t>& ours) const {
  std::map<dev_t, VolumeUsers> result;
  for (const auto& [device, mount_point] : primary_mounts) result[device];
  if (primary_mounts.empty()) return result;

  int err = 0;
  std::pair<dev_t, ino_t> own_ns{};
  if (!NamespaceOf(proc_root_ + "/self/ns/mnt", &own_ns, &err)) {
    log::Warn("usage scan: cannot read {}/self/ns/mnt: {}", proc_root_, std::strerror(err));
  }
  auto own_table = ReadMountInfo(proc_root_ + "/self/mountinfo");
  if (!own_table.ok()) log::Warn("usage scan: {}", own_table.status().message());
  const NamespaceView own(own_table.ok() ? std::move(*own_table) : std::vector<MountInfo>{});

  // Bind mounts in our namespace, and the peer group of each primary mount: copies of it in
  // other namespaces that belong to that group at the same mount point go away when we unmount.
  std::map<dev_t, int> primary_group;
  for (const auto& [device, primary] : primary_mounts) {
    for (const MountInfo& m : own.mounts) {
      if (m.device != device) continue;
      if (m.mount_point == primary) {
        primary_group[device] = m.PeerGroup("shared");
      } else {
        result[device].bind_mounts.push_back(m.mount_point);
      }
    }
  }
  auto propagated_copy = [&](const MountInfo& m) {
    auto group = primary_group.find(m.device);
    if (group == primary_group.end() || group->second == 0) return false;
    if (m.mount_point != primary_mounts.at(m.device)) return false;
    return m.PeerGroup("master") == group->second || m.PeerGroup("shared") == group->second;
  };

  std::map<std::pair<dev_t, ino_t>, NamespaceView> others;
  std::map<pid_t, std::set<dev_t>> users;  // pid → volumes it has open
  std::map<pid_t, std::string> commands;
  const pid_t self = ::getpid();

  DIR* proc = ::opendir(proc_root_.c_str());
  if (proc == nullptr) {
    log::Warn("usage scan: cannot list {}: {}", proc_root_, std::strerror(errno));
    return result;
  }
  auto command_of = [&](pid_t pid, const std::string& base) {
    if (commands.count(pid)) return;
    std::string comm;
    ReadFile(base + "/comm", &comm);
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    commands[pid] = comm;
  };
  while (struct dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    std::string_view name = entry->d_name;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || end != name.data() + name.size() || pid <= 0 || pid == self ||
        ours.count(pid)) {
      continue;
    }
    const std::string base = proc_root_ + "/" + std::string(name);
    std::pair<dev_t, ino_t> ns{};
    if (!NamespaceOf(base + "/ns/mnt", &ns, &err)) {
      LogUnreadable(base + "/ns/mnt", err);
      continue;
    }
    const NamespaceView* view = &own;
    if (ns != own_ns) {
      auto it = others.find(ns);
      if (it == others.end()) {
        auto table = ReadMountInfo(base + "/mountinfo");
        if (!table.ok()) {
          if (table.status().code() != StatusCode::kNotFound) {
            log::Debug("usage scan: {}", table.status().message());
          }
          continue;  // try the namespace again through its next process
        }
        it = others.emplace(ns, NamespaceView(std::move(*table))).first;
        // The first process met in a namespace stands for it.
        std::set<dev_t> held;
        for (const MountInfo& m : it->second.mounts) {
          if (result.count(m.device) && !propagated_copy(m)) held.insert(m.device);
        }
        for (dev_t device : held) {
          result[device].other_namespaces.push_back(pid);
          command_of(pid, base);
        }
      }
      view = &it->second;
    }

    std::set<dev_t> hits;
    auto note = [&](dev_t device) {
      if (device != 0 && result.count(device)) hits.insert(device);
    };
    // Open files: the mount id in fdinfo says where the file is without asking its filesystem.
    // readlink first skips sockets, pipes and anonymous inodes cheaply.
    if (DIR* fds = ::opendir((base + "/fd").c_str())) {
      std::string target, info;
      while (struct dirent* fd = ::readdir(fds)) {
        if (fd->d_name[0] == '.') continue;
        if (ReadLink(base + "/fd/" + fd->d_name, &target) != 0 || target.empty() ||
            target[0] != '/') {
          continue;
        }
        int read_err = ReadFile(base + "/fdinfo/" + fd->d_name, &info);
        if (read_err != 0) {
          LogUnreadable(base + "/fdinfo/" + fd->d_name, read_err);
          continue;
        }
        auto device = view->device_of_mount.find(MountIdFromFdInfo(info));
        if (device != view->device_of_mount.end()) {
          note(device->second);
          continue;
        }
        // A mount the namespace no longer lists (detached lazily while the file stayed open):
        // ask for the device. AT_STATX_DONT_SYNC answers from the inode cache, so a FUSE or
        // network filesystem is not asked anything.
        struct statx stx;
        if (::statx(AT_FDCWD, (base + "/fd/" + fd->d_name).c_str(), AT_STATX_DONT_SYNC, 0, &stx) ==
            0) {
          note(makedev(stx.stx_dev_major, stx.stx_dev_minor));
        }
      }
      ::closedir(fds);
    } else {
      LogUnreadable(base + "/fd", errno);
    }
    // Working and root directories, by path in the process's namespace.
    for (const char* link : {"/cwd", "/root"}) {
      std::string target;
      int link_err = ReadLink(base + link, &target);
      if (link_err != 0) {
        LogUnreadable(base + link, link_err);
        continue;
      }
      note(view->DeviceOfPath(StripDeleted(target)));
    }
    // Memory maps carry the device number itself.
    std::string maps;
    int maps_err = ReadFile(base + "/maps", &maps);
    if (maps_err != 0) {
      LogUnreadable(base + "/maps", maps_err);
    } else {
      std::set<dev_t> mapped;
      DevicesInMaps(maps, &mapped);
      for (dev_t device : mapped) note(device);
    }
    if (!hits.empty()) {
      users[pid] = std::move(hits);
      command_of(pid, base);
    }
  }
  ::closedir(proc);

  for (const auto& [pid, devices] : users) {
    for (dev_t device : devices) result[device].open_files.push_back(pid);
  }
  std::map<pid_t, std::string> containers;
  auto container_of = [&](pid_t pid) -> const std::string& {
    auto it = containers.find(pid);
    if (it != containers.end()) return it->second;
    std::string cgroup;
    ReadFile(proc_root_ + "/" + std::to_string(pid) + "/cgroup", &cgroup);
    return containers[pid] = ContainerIdFromCgroup(cgroup);
  };
  for (auto& [device, volume] : result) {
    std::sort(volume.other_namespaces.begin(), volume.other_namespaces.end());
    for (const std::vector<pid_t>* pids : {&volume.open_files, &volume.other_namespaces}) {
      for (pid_t pid : *pids) {
        volume.commands[pid] = commands[pid];
        if (const std::string& id = container_of(pid); !id.empty()) volume.containers[pid] = id;
      }
    }
  }
  return result;
}

std::string ContainerIdFromCgroup(std::string_view cgroup) {
  constexpr size_t kIdLength = 64;
  for (std::string_view prefix : {"docker-", "docker/", "libpod-"}) {
    for (size_t at = cgroup.find(prefix); at != std::string_view::npos;
         at = cgroup.find(prefix, at + 1)) {
      std::string_view id = cgroup.substr(at + prefix.size(), kIdLength);
      bool hex = id.size() == kIdLength &&
                 id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
      size_t end = at + prefix.size() + kIdLength;
      bool whole = end == cgroup.size() || cgroup[end] == '.' || cgroup[end] == '/' ||
                   cgroup[end] == '\n';
      if (hex && whole) return std::string(id);
    }
  }
  return "";
}

}  // namespace claimfs::mount
