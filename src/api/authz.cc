#include "authz.h"

#include <sys/stat.h>

#include <charconv>
#include <string_view>

#include "claimfs/controller/controller.h"
#include "handlers.h"

namespace claimfs::api::internal {
namespace {

constexpr char kPersistentVolumes[] = "persistentvolumes";

std::optional<uid_t> ParseUid(const std::string& text) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return static_cast<uid_t>(value);
}

std::optional<uid_t> Creator(const model::PersistentVolume& pv) {
  auto it = pv.metadata.annotations.find(kCreatorUidAnnotation);
  if (it == pv.metadata.annotations.end()) return std::nullopt;
  return ParseUid(it->second);
}

std::string UidText(std::optional<uid_t> uid) {
  return uid ? "uid " + std::to_string(*uid) : std::string("root");
}

// The claim a claimRef names, when it exists.
std::optional<model::PersistentVolumeClaim> Referenced(store::StateStore* store,
                                                       const model::ObjectReference& ref) {
  Result<model::PersistentVolumeClaim> claim =
      store->GetPersistentVolumeClaim(ref.namespace_, ref.name);
  if (!claim.ok()) return std::nullopt;
  if (!ref.uid.empty() && ref.uid != claim->metadata.uid) return std::nullopt;
  return *claim;
}

// nullopt when the tenant owns the claim `ref` names (it must exist: a volume pre-bound to a
// name another user may claim later would be handed to that user).
std::optional<std::string> NotOwnClaim(const Caller& tenant, store::StateStore* store,
                                       const model::ObjectReference& ref) {
  std::optional<model::PersistentVolumeClaim> claim = Referenced(store, ref);
  std::string key = ref.namespace_ + "/" + ref.name;
  if (!claim) return "spec.claimRef names claim " + key + ", which is not one of the caller's";
  std::optional<uid_t> owner = ClaimOwner(*claim);
  if (owner != std::optional<uid_t>(tenant.uid)) {
    return "spec.claimRef names claim " + key + ", which belongs to " + UidText(owner);
  }
  return std::nullopt;
}

// Why the tenant may not serve `path`: an existing directory not its own, or a missing one whose
// nearest existing ancestor belongs to another non-root user. nullopt when it may.
std::optional<std::string> NotOwnDirectory(const Caller& tenant, const std::string& path) {
  std::string at = path;
  bool missing = false;
  while (!at.empty()) {
    struct stat st;
    if (lstat(at.c_str(), &st) == 0) {
      if (!missing && st.st_uid != tenant.uid) {
        return "the directory " + path + " belongs to " +
               UidText(st.st_uid == 0 ? std::nullopt : std::optional(st.st_uid)) +
               ", not to the caller";
      }
      if (missing && st.st_uid != tenant.uid && st.st_uid != 0) {
        return at + " belongs to uid " + std::to_string(st.st_uid) + ", not to the caller";
      }
      return std::nullopt;
    }
    if (errno != ENOENT && errno != ENOTDIR) return "cannot stat " + at + ": " + strerror(errno);
    missing = true;
    size_t slash = at.find_last_of('/');
    if (slash == std::string::npos) break;
    at = slash == 0 ? (at == "/" ? "" : "/") : at.substr(0, slash);
  }
  return std::nullopt;
}

}  // namespace

std::variant<std::optional<Caller>, http::Response> Tenant(const http::Request& request) {
  if (!request.peer || request.peer->uid == 0) return std::optional<Caller>();
  return ResolveCaller(request);  // a tenant that sends Impersonate-* gets its 403
}

std::optional<uid_t> ClaimOwner(const model::PersistentVolumeClaim& claim) {
  auto it = claim.metadata.annotations.find(controller::kOwnerUidAnnotation);
  if (it == claim.metadata.annotations.end()) return std::nullopt;
  return ParseUid(it->second);
}

http::Response CannotDo(const Caller& who, const std::string& verb, const std::string& resource,
                        const std::string& group, const std::string& name,
                        const std::string& namespace_, const std::string& why) {
  std::string scope =
      namespace_.empty() ? "at the cluster scope" : "in the namespace \"" + namespace_ + "\"";
  return Failure(403,
                 resource + " \"" + name + "\" is forbidden: User \"" + who.name + "\" cannot " +
                     verb + " resource \"" + resource + "\" in API group \"" + group + "\" " +
                     scope + ": " + why,
                 StatusDetails{name, group, resource, {}});
}

std::optional<http::Response> CheckClaimWrite(const Caller& tenant, const std::string& verb,
                                              const model::PersistentVolumeClaim& claim,
                                              const std::string& resource,
                                              const std::string& group) {
  std::optional<uid_t> owner = ClaimOwner(claim);
  if (owner == std::optional<uid_t>(tenant.uid)) return std::nullopt;
  return CannotDo(tenant, verb, resource, group, claim.metadata.name, claim.metadata.namespace_,
                  "the claim belongs to " + UidText(owner));
}

std::string LiftedProtection(const std::vector<std::string>& options) {
  for (const std::string& entry : options) {
    size_t start = 0;
    while (start <= entry.size()) {
      size_t comma = entry.find(',', start);
      if (comma == std::string::npos) comma = entry.size();
      std::string_view word = std::string_view(entry).substr(start, comma - start);
      word = word.substr(0, word.find('='));
      while (!word.empty() && (word.front() == ' ' || word.front() == '\t')) word.remove_prefix(1);
      while (!word.empty() && (word.back() == ' ' || word.back() == '\t')) word.remove_suffix(1);
      // "user"/"users" imply noexec,nosuid,nodev in mount(8), but "exec"/"suid"/"dev" after
      // them lift it again; "defaults" alone sets no flag here.
      if (word == "suid" || word == "dev" || word == "exec") return std::string(word);
      start = comma + 1;
    }
  }
  return "";
}

std::optional<http::Response> CheckVolumeCreate(const Caller& tenant, store::StateStore* store,
                                                model::PersistentVolume* pv) {
  const std::string& name = pv->metadata.name;
  auto refuse = [&](const std::string& why) {
    return CannotDo(tenant, "create", kPersistentVolumes, "", name, "", why);
  };
  for (const auto* path : {pv->spec.host_path ? &pv->spec.host_path->path : nullptr,
                           pv->spec.local ? &pv->spec.local->path : nullptr}) {
    if (!path) continue;
    const char* field = pv->spec.host_path ? "spec.hostPath.path" : "spec.local.path";
    if (std::optional<std::string> why = NotOwnDirectory(tenant, *path)) {
      return refuse(std::string(field) + ": " + *why);
    }
  }
  if (std::string lifted = LiftedProtection(pv->spec.mount_options); !lifted.empty()) {
    return refuse("spec.mountOptions: only root may mount with \"" + lifted + "\"");
  }
  if (pv->spec.claim_ref) {
    if (std::optional<std::string> why = NotOwnClaim(tenant, store, *pv->spec.claim_ref)) {
      return refuse(*why);
    }
  }
  pv->metadata.annotations[kCreatorUidAnnotation] = std::to_string(tenant.uid);
  return std::nullopt;
}

std::optional<http::Response> CheckVolumeWrite(const Caller& tenant, const std::string& verb,
                                               store::StateStore* store,
                                               const model::PersistentVolume& stored,
                                               model::PersistentVolume* next) {
  const std::string& name = stored.metadata.name;
  auto refuse = [&](const std::string& why) {
    return CannotDo(tenant, verb, kPersistentVolumes, "", name, "", why);
  };
  std::optional<uid_t> creator = Creator(stored);
  if (creator != std::optional<uid_t>(tenant.uid)) {
    return refuse("the volume was made by " + UidText(creator));
  }
  if (stored.spec.claim_ref) {
    std::optional<model::PersistentVolumeClaim> bound = Referenced(store, *stored.spec.claim_ref);
    if (bound && ClaimOwner(*bound) != std::optional<uid_t>(tenant.uid)) {
      return refuse("the volume is bound to claim " + bound->metadata.namespace_ + "/" +
                    bound->metadata.name + ", which belongs to " + UidText(ClaimOwner(*bound)));
    }
  }
  if (!next) return std::nullopt;
  next->metadata.annotations[kCreatorUidAnnotation] = std::to_string(tenant.uid);
  if (next->spec.claim_ref && next->spec.claim_ref != stored.spec.claim_ref &&
      (!stored.spec.claim_ref ||
       next->spec.claim_ref->namespace_ != stored.spec.claim_ref->namespace_ ||
       next->spec.claim_ref->name != stored.spec.claim_ref->name)) {
    if (std::optional<std::string> why = NotOwnClaim(tenant, store, *next->spec.claim_ref)) {
      return refuse(*why);
    }
  }
  if (next->spec.mount_options != stored.spec.mount_options) {
    if (std::string lifted = LiftedProtection(next->spec.mount_options); !lifted.empty()) {
      return refuse("spec.mountOptions: only root may mount with \"" + lifted + "\"");
    }
  }
  return std::nullopt;
}

}  // namespace claimfs::api::internal
