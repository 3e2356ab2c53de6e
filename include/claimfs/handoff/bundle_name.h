// Names of a volume's bundle fds, shared by the holder and systemd's fd store:
// claimfs.1.<pv>.conn, claimfs.1.<pv>.arena, claimfs.1.<pv>.orphan.<slot>.<gen>.
// Parsed from both ends, so dots in a PV name are harmless.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::handoff {

// "claimfs.1.": the bundle naming version is the 1.
inline constexpr std::string_view kBundleNamePrefix = "claimfs.1.";
// systemd's FDNAME limit; the holder uses the same so a name fits both.
inline constexpr size_t kMaxFdNameLength = 255;

enum class BundlePart { kConnection, kArena, kOrphan };

struct BundleName {
  std::string pv;
  BundlePart part = BundlePart::kConnection;
  uint32_t orphan_slot = 0;  // kOrphan only
  uint32_t orphan_generation = 0;

  // The name's text; Invalid when the PV name is not a DNS subdomain or the result would
  // be longer than kMaxFdNameLength (PV names over 240 characters for conn/arena).
  Result<std::string> Format() const;
  bool operator==(const BundleName&) const = default;
};

Result<std::string> ConnectionName(std::string_view pv);
Result<std::string> ArenaName(std::string_view pv);
Result<std::string> OrphanName(std::string_view pv, uint32_t slot, uint32_t generation);
// "claimfs.1.<pv>.": what DROP_PREFIX takes to drop a whole bundle.
Result<std::string> VolumePrefix(std::string_view pv);

// Parses a bundle name; Invalid (saying what is wrong) for anything else.
Result<BundleName> ParseBundleName(std::string_view name);

// systemd's rules for FDNAME= (fdname_is_valid): 1..255 printable ASCII characters, no ':'.
Status ValidateFdName(std::string_view name);

// A Kubernetes object name that is a DNS subdomain (RFC 1123): 1..253 characters of [a-z0-9-.],
// alphanumeric at both ends.
bool IsDnsSubdomain(std::string_view name);

}  // namespace claimfs::handoff
