#include "identity.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <charconv>
#include <string_view>

#include "claimfs/api/status_object.h"
#include "claimfs/controller/controller.h"
#include "handlers.h"

namespace claimfs::api::internal {
namespace {

std::optional<uint32_t> ParseId(std::string_view text) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return "";
  size_t end = text.find_last_not_of(" \t");
  return std::string(text.substr(begin, end - begin + 1));
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = Trim(std::string_view(text).substr(start, comma - start));
    if (!item.empty()) items.push_back(std::move(item));
    start = comma + 1;
  }
  return items;
}

std::optional<passwd> LookupUser(const std::string* name, std::optional<uid_t> uid,
                                 std::vector<char>* buffer) {
  buffer->resize(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rv = name ? getpwnam_r(name->c_str(), &pw, buffer->data(), buffer->size(), &found)
                : getpwuid_r(*uid, &pw, buffer->data(), buffer->size(), &found);
  if (rv != 0 || !found) return std::nullopt;
  return pw;
}

std::string UserName(uid_t uid) {
  std::vector<char> buffer;
  std::optional<passwd> pw = LookupUser(nullptr, uid, &buffer);
  return pw ? std::string(pw->pw_name) : std::to_string(uid);
}

std::optional<gid_t> GroupId(const std::string& text) {
  if (std::optional<uint32_t> id = ParseId(text)) return static_cast<gid_t>(*id);
  std::vector<char> buffer(16384);
  group gr{};
  group* found = nullptr;
  if (getgrnam_r(text.c_str(), &gr, buffer.data(), buffer.size(), &found) != 0 || !found) {
    return std::nullopt;
  }
  return found->gr_gid;
}

http::Response Forbidden(std::string_view message) { return Failure(403, message); }

// Kubernetes' refusal of an impersonation the caller may not make.
http::Response CannotImpersonate(const std::string& who, const http::Request& request) {
  struct Kind {
    const char* header;
    const char* resource;
    const char* group;
  };
  for (const Kind& kind : {Kind{kImpersonateUserHeader, "users", ""},
                           Kind{kImpersonateUidHeader, "uids", "authentication.k8s.io"},
                           Kind{kImpersonateGroupHeader, "groups", ""}}) {
    const std::string* value = request.Header(kind.header);
    if (!value) continue;
    return Failure(403,
                   std::string(kind.resource) + " \"" + *value + "\" is forbidden: User \"" + who +
                       "\" cannot impersonate resource \"" + kind.resource + "\" in API group \"" +
                       kind.group + "\" at the cluster scope",
                   StatusDetails{*value, kind.group, kind.resource, {}});
  }
  return Forbidden("impersonation is forbidden");
}

}  // namespace

bool Caller::InGroup(gid_t group) const {
  return group == gid || std::find(groups.begin(), groups.end(), group) != groups.end();
}

std::variant<std::optional<Caller>, http::Response> ResolveCaller(const http::Request& request) {
  const std::string* user = request.Header(kImpersonateUserHeader);
  const std::string* uid_header = request.Header(kImpersonateUidHeader);
  const std::string* group_header = request.Header(kImpersonateGroupHeader);
  bool impersonating = user || uid_header || group_header;
  if (!request.peer) {
    if (impersonating) return CannotImpersonate("system:anonymous", request);
    return std::optional<Caller>();
  }
  const http::PeerCredentials& peer = *request.peer;
  if (!impersonating) {
    return std::optional<Caller>(Caller{peer.uid, peer.gid, peer.groups, UserName(peer.uid)});
  }
  if (peer.uid != 0) return CannotImpersonate(UserName(peer.uid), request);

  // Root acts for another user: Impersonate-Uid wins over the user's name.
  Caller caller;
  std::vector<char> buffer;
  std::optional<passwd> pw;
  if (uid_header) {
    std::optional<uint32_t> uid = ParseId(*uid_header);
    if (!uid) {
      return Forbidden("uids \"" + *uid_header +
                       "\" is forbidden: Impersonate-Uid must be a numeric user id");
    }
    caller.uid = *uid;
    pw = LookupUser(nullptr, caller.uid, &buffer);
  } else if (user) {
    pw = LookupUser(user, std::nullopt, &buffer);
    std::optional<uint32_t> numeric = ParseId(*user);
    if (pw) {
      caller.uid = pw->pw_uid;
    } else if (numeric) {
      caller.uid = *numeric;
    } else {
      return Forbidden("users \"" + *user +
                       "\" is forbidden: no such user on this machine (send Impersonate-Uid)");
    }
  } else {
    return Forbidden("impersonating groups without a user is forbidden: send Impersonate-User");
  }
  caller.name = user ? *user : pw ? std::string(pw->pw_name) : std::to_string(caller.uid);

  std::vector<std::string> groups =
      group_header ? SplitList(*group_header) : std::vector<std::string>();
  for (const std::string& name : groups) {
    std::optional<gid_t> gid = GroupId(name);
    if (!gid)
      return Forbidden("groups \"" + name + "\" is forbidden: no such group on this machine");
    caller.groups.push_back(*gid);
  }
  if (!caller.groups.empty()) {
    caller.gid = caller.groups.front();
  } else if (pw) {
    caller.gid = pw->pw_gid;
  } else {
    return Forbidden("users \"" + caller.name +
                     "\" is forbidden: not a user of this machine, so send Impersonate-Group too");
  }
  if (pw) {
    int count = 64;
    std::vector<gid_t> member(count);
    if (getgrouplist(pw->pw_name, pw->pw_gid, member.data(), &count) < 0) {
      member.resize(count);
      getgrouplist(pw->pw_name, pw->pw_gid, member.data(), &count);
    }
    member.resize(std::max(count, 0));
    caller.groups.insert(caller.groups.end(), member.begin(), member.end());
  }
  return std::optional<Caller>(std::move(caller));
}

std::optional<http::Response> ApplyClaimOwner(const std::optional<Caller>& caller,
                                              const model::PersistentVolumeClaim* stored,
                                              model::PersistentVolumeClaim* claim) {
  auto& annotations = claim->metadata.annotations;
  // The owner is a record, like metadata.uid: an update that leaves it out keeps it.
  if (stored) {
    for (const char* annotation :
         {controller::kOwnerUidAnnotation, controller::kOwnerGidAnnotation}) {
      auto old = stored->metadata.annotations.find(annotation);
      if (old != stored->metadata.annotations.end()) {
        annotations.try_emplace(annotation, old->second);
      }
    }
  }
  if (!caller) return std::nullopt;
  StatusDetails details{claim->metadata.name, "", "persistentvolumeclaims", {}};
  auto refuse = [&](const char* annotation, const std::string& value, const char* why) {
    return Failure(403,
                   "persistentvolumeclaims \"" + claim->metadata.name + "\" is forbidden: User \"" +
                       caller->name + "\" may not set metadata.annotations[" + annotation +
                       "] to \"" + value + "\": " + why,
                   details);
  };
  auto changed = [&](const char* annotation) -> const std::string* {
    auto it = annotations.find(annotation);
    if (it == annotations.end()) return nullptr;
    if (stored) {
      auto old = stored->metadata.annotations.find(annotation);
      if (old != stored->metadata.annotations.end() && old->second == it->second) return nullptr;
    }
    return &it->second;
  };
  if (!caller->root() && stored) {
    for (const char* annotation :
         {controller::kOwnerUidAnnotation, controller::kOwnerGidAnnotation}) {
      if (const std::string* value = changed(annotation)) {
        return refuse(annotation, *value, "only root may change a claim's owner");
      }
    }
  }
  if (!caller->root()) {
    if (const std::string* uid = changed(controller::kOwnerUidAnnotation)) {
      if (ParseId(*uid) != std::optional<uint32_t>(caller->uid)) {
        return refuse(controller::kOwnerUidAnnotation, *uid,
                      "only root may give a claim's volume to another user");
      }
    }
    if (const std::string* gid = changed(controller::kOwnerGidAnnotation)) {
      std::optional<uint32_t> id = ParseId(*gid);
      if (!id || !caller->InGroup(*id)) {
        return refuse(controller::kOwnerGidAnnotation, *gid,
                      "the caller is not a member of that group");
      }
    }
  }
  if (!stored) {
    annotations.try_emplace(controller::kOwnerUidAnnotation, std::to_string(caller->uid));
    annotations.try_emplace(controller::kOwnerGidAnnotation, std::to_string(caller->gid));
  }
  return std::nullopt;
}

}  // namespace claimfs::api::internal
