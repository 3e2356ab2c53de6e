// What a SIGTERM means: a restart of the service (systemd's job on our unit is a restart: exit
// keeping serving processes, holder and mounts, for the next start to adopt) or a stop (unmount
// everything). docs/dataplane.md 11, phase 4c.
#pragma once

#include <memory>

namespace claimfs::claimfsd {

enum class StopKind { kStop, kRestart };

class StopIntent {
 public:
  virtual ~StopIntent() = default;
  // Asked once SIGTERM arrived.
  virtual StopKind OnSigterm() = 0;
};

// Asks systemd over the system bus: GetUnitByPID(getpid()) -> the unit's Job -> its JobType.
// restart, try-restart and reload-or-restart are restarts; anything else, and no bus or no
// systemd, is a stop. In builds with tests, CLAIMFS_STOP_INTENT=restart|stop answers instead.
std::unique_ptr<StopIntent> SystemdStopIntent();

}  // namespace claimfs::claimfsd
