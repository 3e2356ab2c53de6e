// The internal `claimfsd hold --run-dir D` role: the process that keeps every volume's bundle.
#pragma once

namespace claimfs::claimfsd {

// argv[1] is "hold". Returns the exit code: 0 after SHUTDOWN or the idle exit, 3 when another
// holder already runs for D, 1 on any other error, 2 for bad arguments.
int HoldMain(int argc, char** argv);

}  // namespace claimfs::claimfsd
