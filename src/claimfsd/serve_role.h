// claimfsd's serving processes as main sees them (the binary they run, their run directory) and
// the internal `claimfsd serve --run-dir D --shard K` role itself (docs/dataplane.md, 3).
#pragma once

#include "claimfs/common/status.h"
#include "claimfs/mount/volume_set.h"
#include "claimfs/yaml/daemon_config.h"

namespace claimfs::claimfsd {

// Opens this program's own binary, once, at start: respawns run what started, even after the file
// on disk was replaced.
void OpenOwnBinary();
// Makes the run directory (<stateDir>/run, 0700) and fills in what VolumeSet needs to start and
// find the serving processes.
Status PrepareServing(const yaml::DaemonConfig& config, mount::VolumeSetOptions* options);

// True when argv names the internal serve role.
bool IsServeRole(int argc, char** argv);
// Runs the serve role; the process's exit code.
int RunServeRole(int argc, char** argv);

}  // namespace claimfs::claimfsd
