#include "api/identity.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "claimfs/controller/controller.h"

namespace claimfs::api::internal {
namespace {

http::Request RequestFrom(std::optional<http::PeerCredentials> peer,
                          std::map<std::string, std::string> headers) {
  http::Request request;
  request.peer = std::move(peer);
  request.headers = std::move(headers);
  return request;
}

struct CallerCase {
  const char* name;
  std::optional<http::PeerCredentials> peer;
  std::map<std::string, std::string> headers;
  int refused;  // 0: resolved
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

TEST(ResolveCallerTest, PeersAndImpersonation) {
  const http::PeerCredentials root{1, 0, 0, {}};
  const http::PeerCredentials alice{2, 1001, 1001, {1001, 2000}};
  const CallerCase cases[] = {
      {"no peer, no headers", std::nullopt, {}, 0, std::nullopt, std::nullopt},
      {"no peer, impersonating", std::nullopt, {{"impersonate-user", "x"}}, 403, {}, {}},
      {"a user is itself", alice, {}, 0, 1001, 1001},
      {"root is itself", root, {}, 0, 0, 0},
      {"a user may not impersonate", alice, {{"impersonate-user", "root"}}, 403, {}, {}},
      {"nor name a uid", alice, {{"impersonate-uid", "0"}}, 403, {}, {}},
      {"nor a group", alice, {{"impersonate-group", "0"}}, 403, {}, {}},
      {"root acts for a uid and group",
       root,
       {{"impersonate-user", "bob"}, {"impersonate-uid", "1005"}, {"impersonate-group", "1006"}},
       0,
       1005,
       1006},
      {"the first of several groups is the gid",
       root,
       {{"impersonate-uid", "1005"}, {"impersonate-group", "1007, 1008"}},
       0,
       1005,
       1007},
      {"a numeric user name",
       root,
       {{"impersonate-user", "1009"}, {"impersonate-group", "1"}},
       0,
       1009,
       1},
      {"a uid that is not a number", root, {{"impersonate-uid", "-1"}}, 403, {}, {}},
      {"a uid past 32 bits", root, {{"impersonate-uid", "4294967296"}}, 403, {}, {}},
      {"an unknown user name", root, {{"impersonate-user", "no-such-user-here"}}, 403, {}, {}},
      {"groups without a user", root, {{"impersonate-group", "0"}}, 403, {}, {}},
      {"an unknown group",
       root,
       {{"impersonate-uid", "1005"}, {"impersonate-group", "no-such-group-here"}},
       403,
       {},
       {}},
      {"an unknown uid without a group", root, {{"impersonate-uid", "3999999"}}, 403, {}, {}},
  };
  for (const CallerCase& c : cases) {
    auto got = ResolveCaller(RequestFrom(c.peer, c.headers));
    if (c.refused) {
      auto* response = std::get_if<http::Response>(&got);
      ASSERT_NE(response, nullptr) << c.name;
      EXPECT_EQ(response->status, c.refused) << c.name << ": " << response->body;
      continue;
    }
    auto* caller = std::get_if<std::optional<Caller>>(&got);
    ASSERT_NE(caller, nullptr) << c.name << ": " << std::get<http::Response>(got).body;
    ASSERT_EQ(caller->has_value(), c.uid.has_value()) << c.name;
    if (!c.uid) continue;
    EXPECT_EQ((*caller)->uid, *c.uid) << c.name;
    EXPECT_EQ((*caller)->gid, *c.gid) << c.name;
  }
}

TEST(ResolveCallerTest, RefusalIsKubernetesWording) {
  auto got = ResolveCaller(
      RequestFrom(http::PeerCredentials{2, 3999998, 3999998, {}}, {{"impersonate-user", "root"}}));
  auto* response = std::get_if<http::Response>(&got);
  ASSERT_NE(response, nullptr);
  EXPECT_NE(response->body.find(R"(users \"root\" is forbidden: User \"3999998\" cannot )"
                                R"(impersonate resource \"users\" in API group \"\" at the )"
                                R"(cluster scope)"),
            std::string::npos)
      << response->body;
}

model::PersistentVolumeClaim ClaimWith(std::map<std::string, std::string> annotations) {
  model::PersistentVolumeClaim claim;
  claim.metadata.name = "data";
  claim.metadata.annotations = std::move(annotations);
  return claim;
}

TEST(ApplyClaimOwnerTest, CreateAndUpdate) {
  const Caller alice{1001, 1001, {2000}, "alice"};
  const Caller root{0, 0, {}, "root"};
  const char* uid = controller::kOwnerUidAnnotation;
  const char* gid = controller::kOwnerGidAnnotation;
  struct Case {
    const char* name;
    Caller caller;
    std::optional<std::map<std::string, std::string>> stored;  // nullopt: create
    std::map<std::string, std::string> asked;
    int refused;
    std::map<std::string, std::string> want;
  };
  const Case cases[] = {
      {"the caller becomes the owner", alice, std::nullopt, {}, 0, {{uid, "1001"}, {gid, "1001"}}},
      {"its own uid", alice, std::nullopt, {{uid, "1001"}}, 0, {{uid, "1001"}, {gid, "1001"}}},
      {"a group it is in", alice, std::nullopt, {{gid, "2000"}}, 0, {{uid, "1001"}, {gid, "2000"}}},
      {"another uid", alice, std::nullopt, {{uid, "0"}}, 403, {}},
      {"a group it is not in", alice, std::nullopt, {{gid, "0"}}, 403, {}},
      {"a gid that is no number", alice, std::nullopt, {{gid, "wheel"}}, 403, {}},
      {"root names anyone",
       root,
       std::nullopt,
       {{uid, "7"}, {gid, "8"}},
       0,
       {{uid, "7"}, {gid, "8"}}},
      {"an unchanged foreign owner on update",
       alice,
       std::map<std::string, std::string>{{uid, "7"}, {gid, "8"}},
       {{uid, "7"}, {gid, "8"}},
       0,
       {{uid, "7"}, {gid, "8"}}},
      {"a dropped owner is kept",
       alice,
       std::map<std::string, std::string>{{uid, "7"}, {gid, "8"}},
       {},
       0,
       {{uid, "7"}, {gid, "8"}}},
      {"changing its own claim's group on update, even to one it is in",
       alice,
       std::map<std::string, std::string>{{uid, "1001"}, {gid, "1001"}},
       {{uid, "1001"}, {gid, "2000"}},
       403,
       {}},
      {"taking another's claim on update (attack A1)",
       alice,
       std::map<std::string, std::string>{{uid, "1002"}, {gid, "1002"}},
       {{uid, "1001"}, {gid, "1001"}},
       403,
       {}},
      {"root changes an owner on update",
       root,
       std::map<std::string, std::string>{{uid, "1002"}, {gid, "1002"}},
       {{uid, "1001"}, {gid, "1001"}},
       0,
       {{uid, "1001"}, {gid, "1001"}}},
      {"giving it away on update",
       alice,
       std::map<std::string, std::string>{{uid, "1001"}, {gid, "1001"}},
       {{uid, "7"}},
       403,
       {}},
  };
  for (const Case& c : cases) {
    model::PersistentVolumeClaim claim = ClaimWith(c.asked);
    std::optional<model::PersistentVolumeClaim> stored;
    if (c.stored) stored = ClaimWith(*c.stored);
    auto refused = ApplyClaimOwner(c.caller, stored ? &*stored : nullptr, &claim);
    if (c.refused) {
      ASSERT_TRUE(refused) << c.name;
      EXPECT_EQ(refused->status, c.refused) << c.name;
      EXPECT_NE(refused->body.find("claimfs.io/owner-"), std::string::npos) << refused->body;
      continue;
    }
    EXPECT_FALSE(refused) << c.name << ": " << refused->body;
    EXPECT_EQ(claim.metadata.annotations, c.want) << c.name;
  }
}

}  // namespace
}  // namespace claimfs::api::internal
