// JSON merge patches (RFC 7386) as kubectl apply computes them.
#pragma once

#include <nlohmann/json.hpp>

namespace claimfs::claimctl {

// kubectl apply's three-way merge patch for JSON merge-patch types: sets every field of
// `modified` (the new manifest) whose value differs from `current` (the live object), and nulls
// every field `original` (the last-applied manifest) had that `modified` dropped and `current`
// still has. Objects merge key by key; arrays and scalars are replaced whole. Returns an empty
// object when applying would change nothing. `original` may be null (no last-applied).
nlohmann::json ThreeWayMergePatch(const nlohmann::json& original, const nlohmann::json& modified,
                                  const nlohmann::json& current);

// The merge patch that turns `from` into `to` (RFC 7386 "diff"); empty object when equal.
nlohmann::json TwoWayMergePatch(const nlohmann::json& from, const nlohmann::json& to);

}  // namespace claimfs::claimctl
