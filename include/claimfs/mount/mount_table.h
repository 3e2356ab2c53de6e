// The kernel's mount table as values (/proc/<pid>/mountinfo), and the cleanup of FUSE mounts a
// crashed daemon left behind.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::mount {

// One line of /proc/<pid>/mountinfo (proc(5)). Paths are unescaped (\040 → space, \011 tab,
// \012 newline, \134 backslash) and relative to the root of the process whose table it is.
struct MountInfo {
  int mount_id = 0;
  int parent_id = 0;
  dev_t device = 0;  // makedev(major, minor): st_dev of files on the mount
  std::string root;  // the directory of the filesystem mounted here ("/" for all of it)
  std::string mount_point;
  std::string mount_options;    // per-mount: "rw,nosuid,relatime"
  std::string optional_fields;  // propagation, space-separated: "shared:1 master:2"; often ""
  std::string fs_type;          // "ext4", "fuse.claimfs"
  std::string source;           // "/dev/sda1", the fsname of a FUSE mount, "none"
  std::string super_options;    // per-superblock: "rw,user_id=0,group_id=0"

  // The peer group in optional_fields under `tag` ("shared" or "master"); 0 when absent.
  int PeerGroup(std::string_view tag) const;
};

// Parses the text of a mountinfo file. Empty lines are skipped; any other line that does not
// have the kernel's shape fails the whole parse with kInvalid naming the line number and text.
Result<std::vector<MountInfo>> ParseMountInfo(std::string_view text);

// Reads and parses a mountinfo file: kNotFound when it is missing (a process that exited),
// kIOError when it cannot be read, kInvalid as ParseMountInfo.
Result<std::vector<MountInfo>> ReadMountInfo(const std::string& path = "/proc/self/mountinfo");

// True for a mount served by claimfs: type "fuse.claimfs", or type "fuse" with source "claimfs".
bool IsClaimfsMount(const MountInfo& mount);

// Detaches (umount2 MNT_DETACH) every claimfs mount at or below `root` in this process's mount
// namespace, deepest first, and returns their mount points in that order. `root` is compared as
// a path string with the table (after collapsing "//", "." and a trailing '/'), never resolved:
// a stale FUSE mount (its daemon died) answers ENOTCONN to stat, so nothing here stats a mount
// point. A claimfs mount covered by some other mount stacked on the same mount point is left
// alone with a warning (detaching by path would take the wrong one). Mounts below a detached one
// go with it. A mount that vanished meanwhile is skipped. When a umount2 fails the others are
// still tried and the first error is returned (kIOError naming the mount point), after a log of
// what was detached. kInvalid for a relative `root`. Needs CAP_SYS_ADMIN. Thread-safe.
Result<std::vector<std::string>> DetachStaleMounts(const std::string& root);

// Which claimfs mounts DetachStaleMounts takes, and how it reaches them.
struct DetachOptions {
  int below_mount_id = 0;      // when set, only mounts stacked (at any depth) on this mount
  int not_below_mount_id = 0;  // when set, no mount stacked on this one
  // When set, umount2 reaches a mount point `root`/X as `via`/X: the root's path is covered by
  // another mount now, and `via` ("/proc/self/fd/N", N opened on the root before) still leads
  // to the directory below it.
  std::string via;
  // Mounts with these device numbers stay: a live serving process serves them.
  std::set<dev_t> keep_devices;
};
Result<std::vector<std::string>> DetachStaleMounts(const std::string& root,
                                                   const DetachOptions& options);

}  // namespace claimfs::mount
