// Fault injection for crash tests: in test builds (CLAIMFS_CRASH_POINTS), a process whose
// environment has CLAIMFS_CRASH_AT=<point> exits at once with status 137, as a kill -9 would
// leave things, when it reaches CrashPoint("<point>"). Elsewhere CrashPoint does nothing.
#pragma once

#include <string_view>

namespace claimfs::mount {

// Points in use: mount.after_mkdir, mount.after_mount, unmount.after_unmount (before rmdir).
void CrashPoint(std::string_view point);

}  // namespace claimfs::mount
