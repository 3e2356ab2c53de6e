// The process title ps and /proc/PID/cmdline show: "claimfsd: serve 3 volumes" instead of the
// internal role's arguments (PostgreSQL's technique: the argv area is rewritten in place, after
// the environment it shares the area with has been moved to the heap; PR_SET_MM would need
// CAP_SYS_RESOURCE).
#pragma once

#include <string>
#include <string_view>

namespace claimfs::claimfsd {

// Takes over the argv area. Call once, first thing in main: afterwards argv[i] point to heap
// copies (so parsing still works) and environ is a heap copy.
void InitProcessTitle(int argc, char** argv);
// Sets comm, the name top and /proc/PID/comm show (at most 15 bytes kept).
void SetProcessComm(std::string_view comm);
// Rewrites the visible command line; a title longer than the argv area is cut. Not thread-safe
// with itself: call from one thread at a time.
void SetProcessTitle(std::string_view title);

}  // namespace claimfs::claimfsd
