#include "serve_role.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <string>

#include "claimfs/common/log.h"
#include "claimfs/mount/volume_server.h"
#include "process_title.h"

namespace claimfs::claimfsd {
namespace {

int g_own_binary = -1;

// The installed binary this process runs, not only its version: a file copied or installed over
// the old one is another build, whose servers main replaces (docs/dataplane.md 7.4).
std::string BuildId() {
  struct stat st;
  int r = g_own_binary >= 0 ? fstat(g_own_binary, &st) : stat("/proc/self/exe", &st);
  if (r != 0) return "claimfsd " CLAIMFS_VERSION;
  return "claimfsd " CLAIMFS_VERSION " " + std::to_string(major(st.st_dev)) + ":" +
         std::to_string(minor(st.st_dev)) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

void OpenOwnBinary() {
  if (g_own_binary < 0) g_own_binary = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

Status PrepareServing(const yaml::DaemonConfig& config, mount::VolumeSetOptions* options) {
  if (g_own_binary < 0) return Status::FromErrno("cannot open claimfsd's own binary", errno);
  std::string run_dir = config.state_dir + "/run";
  if (mkdir(run_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno("cannot create the run directory " + run_dir, errno);
  }
  struct stat st;
  if (lstat(run_dir.c_str(), &st) != 0) {
    return Status::FromErrno("cannot read the run directory " + run_dir, errno);
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
    return Status::Forbidden("the run directory " + run_dir + " is not a directory of ours");
  }
  if ((st.st_mode & 07777) != 0700 && chmod(run_dir.c_str(), 0700) != 0) {
    return Status::FromErrno("cannot restrict the run directory " + run_dir, errno);
  }
  options->server_binary_fd = g_own_binary;
  options->run_dir = run_dir;
  options->log_level = config.log_level;
  options->build_id = BuildId();
  options->max_volumes = config.max_volumes;
  return Status::Ok();
}

bool IsServeRole(int argc, char** argv) { return argc > 1 && std::string(argv[1]) == "serve"; }

int RunServeRole(int argc, char** argv) {
  InitProcessTitle(argc, argv);
  SetProcessComm("claimfsd-serve");
  CLI::App app{"internal: serves the volumes claimfsd places on this process", "claimfsd serve"};
  mount::VolumeServerOptions options;
  std::string log_level = "info";
  app.add_option("--run-dir", options.run_dir)->required();
  app.add_option("--shard", options.shard)->required();
  app.add_option("--threads", options.threads);
  app.add_option("--log-level", log_level);
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  (void)log::SetLevel(log_level);
  options.build_id = BuildId();
  options.on_volume_count = [](size_t n) {
    SetProcessTitle("claimfsd: serve " + std::to_string(n) + " volumes");
  };
  return mount::RunVolumeServer(options);
}

}  // namespace claimfs::claimfsd
