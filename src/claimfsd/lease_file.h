// Leases on disk: in-use protection must outlive a crash or restart of claimfsd, or a claim whose
// user (`claimctl use`, a container) still runs could be deleted right after the restart.
#pragma once

#include <string>
#include <vector>

#include "claimfs/api/api_server.h"
#include "claimfs/common/status.h"

namespace claimfs::claimfsd {

struct StoredLease {
  api::Lease lease;
  unsigned long long start_time = 0;  // the holder's start time (/proc/<pid>/stat), vs pid reuse
};

// Replaces the file at `path` with `leases` as JSON: written to a temporary file, fsync'd and
// renamed over it, so a crash leaves the old list or the new one. A failure names the path.
Status SaveLeases(const std::string& path, const std::vector<StoredLease>& leases);

// The leases saved at `path`; none when the file does not exist. kInvalid naming the path when
// it does not parse, and a Status naming it when it cannot be read.
Result<std::vector<StoredLease>> LoadLeases(const std::string& path);

}  // namespace claimfs::claimfsd
