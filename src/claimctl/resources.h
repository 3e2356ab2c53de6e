// The kinds claimctl handles, the names kubectl gives them (pv, pvc, sc, persistentvolumes, ...)
// and the API paths that serve them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::claimctl {

enum class Kind { kPersistentVolume, kPersistentVolumeClaim, kStorageClass };

struct KindInfo {
  Kind kind;
  const char* name;      // "PersistentVolumeClaim"
  const char* plural;    // "persistentvolumeclaims", "storageclasses"
  const char* singular;  // "persistentvolumeclaim", "storageclass.storage.k8s.io"
  bool namespaced;
};

const KindInfo& InfoOf(Kind kind);

// Any name kubectl accepts for the kind: "pv", "persistentvolume", "persistentvolumes",
// "pvc", ..., "sc", "storageclass", "storageclasses", "storageclasses.storage.k8s.io"
// (case-insensitive). Nothing when it names no kind claimctl knows.
std::optional<Kind> ParseKind(std::string_view text);
// By the object's kind field ("PersistentVolumeClaim").
std::optional<Kind> KindFromName(std::string_view kind_name);

// An object as a command names it.
struct ObjectRef {
  Kind kind;
  std::string name;

  bool operator==(const ObjectRef&) const = default;
};

// The positional arguments of get/describe/delete/wait/patch: either "TYPE[,TYPE...] [NAME...]"
// or "TYPE/NAME [TYPE/NAME...]"; "all" stands for every kind (pv, pvc, sc). `kinds` lists the
// kinds in order; `objects` the named objects (empty: every object of `kinds`). Fails with
// kInvalid in kubectl's words for unknown types and mixed forms.
struct ResourceArgs {
  std::vector<Kind> kinds;
  std::vector<ObjectRef> objects;
};
Result<ResourceArgs> ParseResourceArgs(const std::vector<std::string>& args);

// API paths. An empty namespace with a namespaced kind means every namespace.
std::string CollectionPath(Kind kind, std::string_view ns);
std::string ObjectPath(Kind kind, std::string_view ns, std::string_view name);
// "persistentvolumeclaim/data", "storageclass.storage.k8s.io/local".
std::string ResourceName(Kind kind, std::string_view name);

// Percent-encodes everything but RFC 3986's unreserved characters.
std::string UrlEncode(std::string_view text);

}  // namespace claimfs::claimctl
