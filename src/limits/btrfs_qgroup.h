// btrfs: a volume is a subvolume; its limit is the max_referenced of qgroup 0/<subvolume id>.
// Everything through ioctls and sysfs: no btrfs-progs at run time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "claimfs/limits/limit_backend.h"

namespace claimfs::limits {

// The limit of the btrfs subvolume whose root is `dir_fd`; see OpenVolumeLimit().
Result<std::unique_ptr<VolumeLimit>> OpenBtrfsQgroup(int dir_fd);

// "f6667383-2413-4fe9-baea-7088ad186f23" from the 16 bytes of a btrfs fsid.
std::string FormatFsid(const uint8_t (&fsid)[16]);

// Parses one sysfs number ("16384\n"); false on anything else.
bool ParseSysfsNumber(const char* text, size_t length, uint64_t* out);

}  // namespace claimfs::limits
