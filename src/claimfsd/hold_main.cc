#include "hold_main.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "claimfs/common/log.h"
#include "claimfs/handoff/holder.h"
#include "process_title.h"

namespace claimfs::claimfsd {
namespace {

constexpr int kExitAlreadyRunning = 3;

// Best effort: lowering needs CAP_SYS_RESOURCE, which root on these machines may lack.
void ProtectFromOomKiller() {
  FILE* f = std::fopen("/proc/self/oom_score_adj", "w");
  if (f == nullptr) return;
  bool ok = std::fputs("-1000", f) >= 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) log::Debug("holder: cannot set oom_score_adj -1000: {}", std::strerror(errno));
}

}  // namespace

int HoldMain(int argc, char** argv) {
  CLI::App app{"Internal: holds the fds of every volume's bundle (claimfsd starts it).",
               "claimfsd hold"};
  handoff::HolderOptions options;
  int64_t idle_exit_ms = options.idle_exit.count();
  std::string log_level = "info";
  options.build_id = "claimfsd " CLAIMFS_VERSION;
  app.add_option("--run-dir", options.run_dir, "Directory of hold.sock")->required();
  app.add_option("--idle-exit-ms", idle_exit_ms,
                 "Exit after this long with nothing held and no client")
      ->check(CLI::PositiveNumber);
  app.add_option("--build-id", options.build_id, "Build id said in HELLO");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  options.idle_exit = std::chrono::milliseconds(idle_exit_ms);
  (void)log::SetLevel(log_level);

  // Only SHUTDOWN and the idle exit end a holder; a stop or a closed terminal does not.
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_IGN);
  ::setsid();
  ProtectFromOomKiller();
  InitProcessTitle(argc, argv);
  SetProcessTitle("claimfsd: hold");
  SetProcessComm("claimfsd-hold");

  Status s = handoff::RunHolder(options);
  if (!s.ok()) {
    log::Error("{}", s.message());
    return s.code() == StatusCode::kAlreadyExists ? kExitAlreadyRunning : 1;
  }
  return 0;
}

}  // namespace claimfs::claimfsd
