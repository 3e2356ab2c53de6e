// claimfs: mounts one quota-limited view of a directory.
//   claimfs SOURCE MOUNTPOINT [-o OPTIONS] [-f] [-d]
// Also the FUSE mount helper: `mount -t fuse.claimfs SOURCE MOUNTPOINT -o capacity=1Gi` and
// /etc/fstab lines reach it through mount.fuse3.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "claimfs/common/log.h"
#include "claimfs/fs/volume.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Mounts SOURCE on MOUNTPOINT as a FUSE filesystem whose allocated size is limited to a\n"
      "capacity: a write past it fails with \"No space left on device\", and df shows it.\n\n"
      "Options (-o, comma-separated):\n"
      "  capacity=SIZE        limit in Kubernetes quantities: 64Mi, 1Gi, 1.5G, 500M, bytes\n"
      "  inodes=N             limit on files, directories and other objects (root included)\n"
      "  quota_errno=ENOSPC|EDQUOT  error for an operation over the limit (default ENOSPC)\n"
      "  ro, allow_other, noexec, nosuid, nodev, noatime, fsname=NAME, ...  as for mount(8)\n"
      "  cache_timeout=SECONDS  kernel attribute cache lifetime (default 86400)\n"
      "  threads=N            FUSE worker threads (default 16)\n"
      "Without capacity= the directory is passed through with no limit.",
      "claimfs"};
  std::string source, mountpoint;
  std::vector<std::string> option_lists;
  bool foreground = false, debug = false;
  app.add_option("SOURCE", source, "backing directory")->required();
  app.add_option("MOUNTPOINT", mountpoint, "where to mount it")->required();
  app.add_option("-o", option_lists, "mount options")->allow_extra_args(false);
  app.add_flag("-f,--foreground", foreground, "stay in the foreground");
  app.add_flag("-d,--debug", debug, "trace every FUSE request (implies -f)");
  app.set_version_flag("-V,--version", "claimfs version " CLAIMFS_VERSION);
  CLI11_PARSE(app, argc, argv);

  claimfs::fs::VolumeOptions options;
  options.source = source;
  options.mountpoint = mountpoint;
  for (const std::string& list : option_lists) {
    claimfs::Status s = claimfs::fs::ParseMountOptions(list, &options);
    if (!s.ok()) {
      std::fprintf(stderr, "claimfs: %s\n", s.message().c_str());
      return 2;
    }
  }
  if (debug) {
    options.debug = true;
    foreground = true;
  }

  // The mount is visible before the volume's signal handlers are in place: a SIGINT or SIGTERM
  // in between would kill claimfs and leave a dead mount. It waits, pending, until then.
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop_signals, sig);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  auto volume = claimfs::fs::Volume::Mount(options);
  if (!volume.ok()) {
    std::fprintf(stderr, "claimfs: %s\n", volume.status().message().c_str());
    return 1;
  }
  // The mount is usable now; the parent returns only after this point.
  if (!foreground && fuse_daemonize(0) != 0) {
    std::fprintf(stderr, "claimfs: cannot go to the background\n");
    return 1;
  }
  claimfs::Status s = (*volume)->HandleSignals();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (s.ok()) s = (*volume)->Serve();
  (*volume)->Stop();
  if (!s.ok()) {
    claimfs::log::Error("{}", s.message());
    return 1;
  }
  return 0;
}
