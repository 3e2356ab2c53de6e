// A process's visible command line and name, set the way PostgreSQL does it (ps_status.c):
// the argv area is rewritten in place (PR_SET_MM_ARG_START would need CAP_SYS_RESOURCE), after
// moving the environment strings that follow it out of the way. `ps` and /proc/PID/cmdline
// then show e.g. "claimfsd: hold".
#pragma once

#include <string_view>

namespace claimfs::claimfsd {

// Claims argv[0..argc) and the environment strings contiguous with them as the title area;
// copies environ elsewhere first, so getenv() keeps working. Call once, from main, after the
// arguments were parsed into copies (argv's strings are overwritten by SetProcessTitle).
void InitProcessTitle(int argc, char** argv);

// Writes `title` into the area (cut to its size) and pads the rest with NULs. No-op before
// InitProcessTitle.
void SetProcessTitle(std::string_view title);

// Sets the thread's comm (what top and /proc/PID/comm show; 15 characters at most).
void SetProcessName(std::string_view name);

}  // namespace claimfs::claimfsd
