// Who a request acts for: the peer credentials of the Unix socket, or, for a root peer only, the
// user that Kubernetes' impersonation headers name (claimctl run through sudo sends them).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "claimfs/api/http_server.h"
#include "claimfs/model/objects.h"

namespace claimfs::api::internal {

inline constexpr char kImpersonateUserHeader[] = "impersonate-user";
inline constexpr char kImpersonateUidHeader[] = "impersonate-uid";
inline constexpr char kImpersonateGroupHeader[] = "impersonate-group";

struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary
  std::string name;           // the user name, or the uid in decimal when it has none

  bool root() const { return uid == 0; }
  bool InGroup(gid_t group) const;
};

// The caller of `request`: its peer, or the user a root peer impersonates. nullopt when the
// kernel did not say who the peer is (no checks apply then, as before). A non-root peer that
// sends any Impersonate-* header, and a root peer naming a user that cannot be resolved, get a
// 403 Status response in Kubernetes' words.
std::variant<std::optional<Caller>, http::Response> ResolveCaller(const http::Request& request);

// Gives a new claim its owner: the owner-uid and owner-gid annotations it lacks are set to the
// caller's uid and gid. A non-root caller may not name another uid, nor a gid it is not in: 403
// naming the annotation. `stored` is the claim before an update (nullptr on create); on update
// only annotations whose value changes are checked, and those the update leaves out are kept.
std::optional<http::Response> ApplyClaimOwner(const std::optional<Caller>& caller,
                                              const model::PersistentVolumeClaim* stored,
                                              model::PersistentVolumeClaim* claim);

}  // namespace claimfs::api::internal
