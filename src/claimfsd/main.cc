// claimfsd: the claimfs daemon. Mounts a quota-limited FUSE volume for every bound claim and
// serves the API claimctl talks to; runs under systemd (Type=notify) or by hand.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "claimfs/common/log.h"
#include "claimfs/model/host_path.h"
#include "claimfs/yaml/daemon_config.h"
#include "daemon.h"
#include "hold_main.h"
#include "serve_role.h"
#include "stop_intent.h"
#include "trusted_path.h"

namespace claimfs::claimfsd {
namespace {

constexpr char kDefaultConfigPath[] = "/etc/claimfs/claimfsd.yaml";
constexpr int kExitOk = 0;
constexpr int kExitError = 1;

struct Flags {
  std::string config_path;
  std::string data_dir;
  std::string log_level;
  std::optional<std::string> kube_api;  // --kube-api ADDRESS|off
};

// What SIGUSR2 executes again: the path this program was started from (a file installed there
// since runs), with the same arguments.
struct Reexec {
  std::string binary;
  std::vector<std::string> argv;
};
Reexec g_reexec;

// SIGUSR2: this process becomes the binary installed at the recorded path, keeping its pid.
// Nothing is unmounted: the new image finds the serving processes and the holder as after a
// kill -9 of main. Returns only when the exec failed.
void RestartInPlace() {
  sd_notify(0, "RELOADING=1\nSTATUS=restarting in place");
  log::Info("SIGUSR2: restarting in place as {}", g_reexec.binary);
  std::vector<char*> argv;
  for (std::string& a : g_reexec.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  execv(g_reexec.binary.c_str(), argv.data());
  log::Error("SIGUSR2: cannot execute {}: {}; going on as before", g_reexec.binary,
             strerror(errno));
  sd_notify(0, "READY=1");
}

// Reads the configuration the flags name; prints every error and returns nullopt when it is
// not usable. `consequence` ends the error summary: what happens instead.
std::optional<yaml::DaemonConfig> LoadConfig(const Flags& flags,
                                             const char* consequence = "not starting") {
  yaml::DaemonConfig config;
  if (!flags.data_dir.empty() && flags.config_path.empty()) {
    config = yaml::QuickStartConfig(flags.data_dir);
  } else {
    // With --data-dir too, the file's keys override the quick start's values.
    std::string path = flags.config_path.empty() ? kDefaultConfigPath : flags.config_path;
    auto loaded = yaml::LoadDaemonConfig(path, flags.data_dir.empty()
                                                   ? yaml::DefaultDaemonConfig()
                                                   : yaml::QuickStartConfig(flags.data_dir));
    if (!loaded.ok()) {
      if (loaded.status().code() == StatusCode::kNotFound && flags.config_path.empty()) {
        log::Info("no {}: using the built-in defaults", path);
        config = yaml::DefaultDaemonConfig();
      } else {
        std::cerr << "claimfsd: " << loaded.status().message() << "\n";
        return std::nullopt;
      }
    } else {
      for (const auto& w : loaded->warnings) std::cerr << "claimfsd: warning: " << w.ToString() << "\n";
      if (!loaded->ok()) {
        for (const auto& e : loaded->errors) std::cerr << "claimfsd: error: " << e.ToString() << "\n";
        std::cerr << "claimfsd: " << path << ": " << loaded->errors.size()
                  << " error(s); " << consequence << "\n";
        return std::nullopt;
      }
      config = loaded->config;
    }
  }
  Status s = yaml::ApplyEnvironment(&config);
  if (!s.ok()) {
    std::cerr << "claimfsd: " << s.message() << "\n";
    return std::nullopt;
  }
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (flags.kube_api) {
    config.api_listen = *flags.kube_api == "off" ? "" : *flags.kube_api;
    config.api_listen_optional = false;
  }
  // The quick start's paths and the overrides had no file to be checked in: check them now
  // (a deep --data-dir can make the socket path too long for a Unix socket).
  s = yaml::ValidateDaemonConfig(config);
  if (!s.ok()) {
    std::cerr << "claimfsd: " << s.message() << "\n";
    return std::nullopt;
  }
  return config;
}

// The quick start's DIR (the parent of its state directory): 0711, so that owners reach their
// mounts in DIR/claims and the socket by path while nobody lists what is there. DIR often sits
// in a world-writable place (/var/tmp/claimfs): whoever made it first, or planted a symlink in
// it, would own what claimfsd keeps there, so neither is accepted.
// Paths that --config moved out of DIR are not DIR's to prepare.
Status PrepareDataDirectory(const std::string& data_dir, const yaml::DaemonConfig& config) {
  constexpr mode_t kDataDirectoryMode = 0711;
  std::string dir =
      std::filesystem::path(yaml::QuickStartConfig(data_dir).state_dir).parent_path().string();
  if (dir.empty()) return Status::Ok();
  Status s = CheckTrustedDirectory("data directory", dir, Symlinks::kRefuse);
  if (!s.ok()) return s;
  std::error_code ec;
  bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return Status::FromErrno("cannot create data directory " + dir, ec.value());
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cannot open data directory " + dir, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) s = Status::FromErrno("cannot stat " + dir, errno);
  if (s.ok() && (st.st_mode & 07777) != kDataDirectoryMode) {
    if (::fchmod(fd, kDataDirectoryMode) != 0) {
      s = Status::FromErrno("cannot set the mode of data directory " + dir, errno);
    } else if (!created) {
      log::Info("data directory {}: mode {:04o} -> {:04o}", dir, st.st_mode & 07777,
                kDataDirectoryMode);
    }
  }
  ::close(fd);
  if (!s.ok()) return s;
  // Checked again: it may have appeared between the first check and its creation.
  s = CheckTrustedDirectory("data directory", dir, Symlinks::kRefuse);
  if (!s.ok()) return s;
  std::vector<std::pair<std::string, std::string>> derived = {{"state directory", config.state_dir},
                                                              {"mount root", config.mount_root}};
  for (const yaml::PoolConfig& pool : config.pools) {
    std::filesystem::path path(pool.path);
    derived.emplace_back("pools directory", path.parent_path().string());
    derived.emplace_back("pool directory", pool.path);
  }
  auto data_dir_path = model::HostPath::Parse(dir);
  for (const auto& [what, path] : derived) {
    auto parsed = model::HostPath::Parse(path);
    if (!data_dir_path.ok() || !parsed.ok() || !parsed->IsAtOrBelow(*data_dir_path)) continue;
    s = CheckTrustedDirectory(what, path, Symlinks::kRefuse);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

int Run(const Flags& flags) {
  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR2}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::optional<yaml::DaemonConfig> config = LoadConfig(flags);
  if (!config) return kExitError;
  Status level = log::SetLevel(config->log_level);
  if (!level.ok()) {
    std::cerr << "claimfsd: " << level.message() << "\n";
    return kExitError;
  }
  if (!flags.data_dir.empty()) {
    Status made = PrepareDataDirectory(flags.data_dir, *config);
    if (!made.ok()) {
      std::cerr << "claimfsd: " << made.message() << "\n";
      return kExitError;
    }
  }
  sd_notify(0, "STATUS=recovering: mounting bound volumes");
  auto daemon = Daemon::Start(*config);
  if (!daemon.ok()) {
    log::Error("cannot start: {}", daemon.status().message());
    sd_notifyf(0, "STATUS=failed: %s", daemon.status().message().c_str());
    return kExitError;
  }
  std::string status = (*daemon)->StatusLine();
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());

  uint64_t watchdog_usec = 0;
  bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
  // Wake at half the watchdog interval (and at least every second for STATUS=).
  int64_t wait_ns = watchdog ? std::min<int64_t>(static_cast<int64_t>(watchdog_usec) * 500, 1'000'000'000)
                             : 1'000'000'000;
  timespec timeout{wait_ns / 1'000'000'000, wait_ns % 1'000'000'000};
  while (true) {
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM && SystemdStopIntent()->OnSigterm() == StopKind::kRestart) {
      // systemd restarts the unit (KillMode=process leaves the other processes be): the next
      // start adopts the serving processes, the holder and every mount.
      log::Info("SIGTERM for a restart: exiting with the volumes mounted and served");
      sd_notify(0, "STOPPING=1\nSTATUS=restarting: the volumes stay mounted");
      std::fflush(nullptr);
      _exit(kExitOk);
    }
    if (sig == SIGTERM || sig == SIGINT) {
      log::Info("{}: unmounting and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGUSR2) RestartInPlace();
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      std::optional<yaml::DaemonConfig> reloaded =
          LoadConfig(flags, "keeping the running configuration");
      if (reloaded) {
        (*daemon)->Reload(*reloaded);
      } else {
        log::Error("SIGHUP: the new configuration is not valid; keeping the running one");
      }
      sd_notify(0, "READY=1");
    }
    if (watchdog && (*daemon)->Alive()) sd_notify(0, "WATCHDOG=1");
    std::string now = (*daemon)->StatusLine();
    if (now != status) {
      status = now;
      sd_notifyf(0, "STATUS=%s", status.c_str());
    }
  }
  sd_notify(0, "STOPPING=1\nSTATUS=unmounting volumes");
  (*daemon)->Stop();
  daemon->reset();
  log::Info("stopped");
  return kExitOk;
}

}  // namespace
}  // namespace claimfs::claimfsd

int main(int argc, char** argv) {
  using namespace claimfs::claimfsd;
  // Internal roles, started by claimfsd itself.
  if (argc > 1 && std::string_view(argv[1]) == "hold") return HoldMain(argc, argv);
  if (IsServeRole(argc, argv)) return RunServeRole(argc, argv);
  OpenOwnBinary();
  std::error_code ec;
  g_reexec.binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  g_reexec.argv.assign(argv, argv + argc);
  CLI::App app{
      "claimfsd mounts a quota-limited volume for every bound PersistentVolumeClaim and serves "
      "the API claimctl talks to.",
      "claimfsd"};
  Flags flags;
  app.add_option("-c,--config", flags.config_path,
                 "Configuration file (default /etc/claimfs/claimfsd.yaml); with --data-dir, its "
                 "keys override the quick start's");
  app.add_option("--data-dir", flags.data_dir,
                 "Quick start: keep pool, state, mounts and socket under this one directory");
  app.add_option("--kube-api", flags.kube_api,
                 "Serve the Kubernetes API for kubectl over HTTPS on this loopback address "
                 "(127.0.0.1:6443; port 0 picks one), or off (overrides api.listen; the quick "
                 "start serves 127.0.0.1:6443 when it is free)");
  app.add_option("--log-level", flags.log_level,
                 "trace, debug, info, warn, error or off (overrides the config)");
  app.set_version_flag("--version", "claimfsd version " CLAIMFS_VERSION);
  CLI11_PARSE(app, argc, argv);
  return Run(flags);
}
