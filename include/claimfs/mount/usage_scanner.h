// Who uses mounted volumes: open files, working directories, memory maps and mounts in other
// mount namespaces, found in one pass over /proc without touching the volumes themselves.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace claimfs::mount {

// The users of one volume. Empty (!any()) means the volume can be unmounted without disturbing
// anyone.
struct VolumeUsers {
  // Processes with an open file descriptor, working directory, root directory or memory
  // mapping on the volume (through any mount of it, in any namespace), in pid order.
  std::vector<pid_t> open_files;
  // One pid for each other mount namespace that holds a mount of the volume (a bind mount in a
  // container), in pid order. A copy that our unmount takes with it (a slave or peer of our
  // mount at the same mount point: systemd services with PrivateTmp= and the like) holds
  // nothing and is not listed; its open files still are, under open_files.
  std::vector<pid_t> other_namespaces;
  // Mount points of further mounts of the volume in our own namespace (bind mounts), besides
  // the primary one.
  std::vector<std::string> bind_mounts;
  // The command name (/proc/<pid>/comm) of every pid above, as read during the scan.
  std::map<pid_t, std::string> commands;
  // The Docker or Podman container (its 64-hex id) of those pids that run in one.
  std::map<pid_t, std::string> containers;

  bool any() const;
  // "open by pid 123 (cat); mounted in the mount namespace of pid 456 (sleep); bind-mounted at
  // /mnt/x", or "not in use".
  std::string Describe() const;
};

// The id of the Docker or Podman container whose cgroup a /proc/<pid>/cgroup text names
// (".../docker-<id>.scope", ".../docker/<id>", ".../libpod-<id>.scope"); "" when none.
std::string ContainerIdFromCgroup(std::string_view cgroup);

// Scans /proc. Needs to read other processes' /proc entries (root, or CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH); what it cannot read is skipped with a debug log, as are processes that
// exit mid-scan. Nothing on the volumes is stat()ed or opened, so a dead FUSE mount cannot hang
// the scan. Thread-safe: the scanner holds no mutable state.
class UsageScanner {
 public:
  // `proc_root` is where procfs is mounted; tests may point it elsewhere.
  explicit UsageScanner(std::string proc_root = "/proc");

  // For every volume (its device number → its primary mount point in our namespace), the
  // processes and mounts that use it. Every device given gets an entry. The calling process
  // (the daemon, all its threads) is never reported. A volume whose device is not mounted in
  // our namespace is still looked for in other namespaces and memory maps. Processes in `ours`
  // (claimfsd's serving processes) are not reported either.
  std::map<dev_t, VolumeUsers> Scan(const std::map<dev_t, std::string>& primary_mounts,
                                    const std::set<pid_t>& ours = {}) const;

 private:
  std::string proc_root_;
};

}  // namespace claimfs::mount
