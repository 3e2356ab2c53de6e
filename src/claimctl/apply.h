// kubectl apply's client-side bookkeeping: the last-applied-configuration annotation and the
// three-way merge patch computed from it.
#pragma once

#include <nlohmann/json.hpp>

namespace claimfs::claimctl {

inline constexpr char kLastAppliedAnnotation[] = "kubectl.kubernetes.io/last-applied-configuration";

// The object apply sends for `manifest` (an object's JSON as the manifest gave it): without
// status, and with metadata.annotations[kLastAppliedAnnotation] set to the compact JSON of the
// manifest itself (without that annotation) and a newline, as kubectl writes it.
nlohmann::json WithLastApplied(nlohmann::json manifest);

// The merge patch that applies `modified` (from WithLastApplied) to the live object `current`:
// the last-applied configuration is read from current's annotation (missing: nothing is
// deleted). Empty object: nothing to change ("unchanged").
nlohmann::json ApplyPatch(const nlohmann::json& modified, const nlohmann::json& current);

}  // namespace claimfs::claimctl
