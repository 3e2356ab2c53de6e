#include "claimctl/merge_patch.h"

namespace claimfs::claimctl {

using nlohmann::json;

json ThreeWayMergePatch(const json& original, const json& modified, const json& current) {
  json patch = json::object();
  if (!modified.is_object()) return patch;
  const json empty = json::object();
  const json& orig = original.is_object() ? original : empty;
  const json& cur = current.is_object() ? current : empty;

  // Deletions: what the last apply set and this one no longer does.
  for (auto it = orig.begin(); it != orig.end(); ++it) {
    if (!modified.contains(it.key()) && cur.contains(it.key())) patch[it.key()] = nullptr;
  }
  // Additions and changes: where the live object differs from the manifest.
  for (auto it = modified.begin(); it != modified.end(); ++it) {
    const json& want = it.value();
    auto live = cur.find(it.key());
    if (live == cur.end()) {
      if (!want.is_null()) patch[it.key()] = want;
      continue;
    }
    if (want.is_object() && live->is_object()) {
      auto before = orig.find(it.key());
      json sub = ThreeWayMergePatch(before == orig.end() ? json() : *before, want, *live);
      if (!sub.empty()) patch[it.key()] = std::move(sub);
    } else if (want != *live) {
      patch[it.key()] = want;
    }
  }
  return patch;
}

json TwoWayMergePatch(const json& from, const json& to) {
  if (!from.is_object() || !to.is_object()) return from == to ? json::object() : to;
  json patch = json::object();
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (!to.contains(it.key())) patch[it.key()] = nullptr;
  }
  for (auto it = to.begin(); it != to.end(); ++it) {
    auto old = from.find(it.key());
    if (old == from.end()) {
      patch[it.key()] = it.value();
    } else if (old->is_object() && it.value().is_object()) {
      json sub = TwoWayMergePatch(*old, it.value());
      if (!sub.empty()) patch[it.key()] = std::move(sub);
    } else if (*old != it.value()) {
      patch[it.key()] = it.value();
    }
  }
  return patch;
}

}  // namespace claimfs::claimctl
