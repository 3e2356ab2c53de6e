// Who may write what (docs/api.md, "Who may do what"): root may do everything; a non-root peer on
// a socket (a member of socket.group) is a tenant that writes only its own claims, the volumes it
// made over its own directories, and no StorageClass. Reads are open to every socket member.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <variant>

#include "claimfs/api/http_server.h"
#include "claimfs/controller/controller.h"
#include "claimfs/model/objects.h"
#include "claimfs/store/state_store.h"
#include "identity.h"

namespace claimfs::api::internal {

// The uid a non-root creator of a PersistentVolume is recorded under; set by the server, kept
// on every update by a non-root caller. Root's volumes carry none.
using controller::kCreatorUidAnnotation;

// A peer that is not root, as the kernel names it; nullopt for root and for a peer the kernel
// did not name (no checks apply then, as before). A tenant that sends Impersonate-* headers
// gets ResolveCaller's 403 instead.
std::variant<std::optional<Caller>, http::Response> Tenant(const http::Request& request);

// The claim's owner-uid annotation; nullopt when it has none (then it is root's).
std::optional<uid_t> ClaimOwner(const model::PersistentVolumeClaim& claim);

// Kubernetes' refusal: `persistentvolumeclaims "x" is forbidden: User "alice" cannot delete
// resource "persistentvolumeclaims" in API group "" in the namespace "default": <why>`.
// `namespace_` empty means the cluster scope.
http::Response CannotDo(const Caller& who, const std::string& verb, const std::string& resource,
                        const std::string& group, const std::string& name,
                        const std::string& namespace_, const std::string& why);

// nullopt when `tenant` may write (update, patch, delete, lease) the stored claim.
std::optional<http::Response> CheckClaimWrite(
    const Caller& tenant, const std::string& verb, const model::PersistentVolumeClaim& claim,
    const std::string& resource = "persistentvolumeclaims", const std::string& group = "");

// A tenant's new volume: the directory is its own or missing (and not under another user's),
// no mount option lifts nosuid, nodev or noexec, a claimRef names a claim it owns. Records the
// creator. nullopt when allowed.
std::optional<http::Response> CheckVolumeCreate(const Caller& tenant, store::StateStore* store,
                                                model::PersistentVolume* pv);

// A tenant's update (verb "update"/"patch") or delete ("delete", `next` null) of `stored`: the
// volume is one it made, bound to no other user's claim; an update keeps the creator, points
// claimRef only at its own claims and lifts no mount protection.
std::optional<http::Response> CheckVolumeWrite(const Caller& tenant, const std::string& verb,
                                               store::StateStore* store,
                                               const model::PersistentVolume& stored,
                                               model::PersistentVolume* next);

// Mount options that lift a protection the daemon mounts with (nosuid, nodev, noexec); "" when
// none does.
std::string LiftedProtection(const std::vector<std::string>& options);

}  // namespace claimfs::api::internal
