// Who may do what on the API and plugin sockets (docs/api.md, "Who may do what"): root may do
// everything; a non-root member of socket.group is a tenant that writes only its own claims, the
// volumes it made over its own directories, and no StorageClass. Reads stay open. The attack
// report's repros (issue 9, sections A, B5, B6, F, I, J, L) are the regression tests below; the
// callers are forked children with uids 1001 and 1002 on sockets opened to everyone.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "daemon/as_user.h"
#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using nlohmann::json;

const Identity kAlice{1001, 1001, {}};
const Identity kBob{1002, 1002, {}};

constexpr char kClaims[] = "/api/v1/namespaces/default/persistentvolumeclaims";
constexpr char kVolumes[] = "/api/v1/persistentvolumes";
constexpr char kClasses[] = "/apis/storage.k8s.io/v1/storageclasses";
constexpr char kLeases[] = "/apis/claimfs.io/v1/namespaces/default/persistentvolumeclaims";
constexpr char kMerge[] = "application/merge-patch+json";

std::string Claim(const std::string& name, const std::string& volume = "") {
  json claim = {
      {"metadata", {{"name", name}}},
      {"spec",
       {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "16Mi"}}}}}}}};
  if (!volume.empty()) {
    claim["spec"]["volumeName"] = volume;
    claim["spec"]["storageClassName"] = "";
  }
  return claim.dump();
}

std::string Volume(const std::string& name, const std::string& path,
                   const std::vector<std::string>& mount_options = {}, const json& claim_ref = {}) {
  json pv = StaticVolumeJson(name, path, "Retain");
  if (!mount_options.empty()) pv["spec"]["mountOptions"] = mount_options;
  if (!claim_ref.is_null()) pv["spec"]["claimRef"] = claim_ref;
  return pv.dump();
}

class AuthzTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    ASSERT_TRUE(StartDaemon());
    // The tests' stand-in for socket.group: every local user may connect.
    ASSERT_EQ(chmod(socket_path().c_str(), 0666), 0);
    ASSERT_EQ(chmod(plugin_path().c_str(), 0666), 0);
  }

  std::string plugin_path() const { return data_dir() + "/docker-plugin.sock"; }

  // "<status> <body>" of a request from `who`, as RawHttp.
  std::string As(const Identity& who, const std::string& method, const std::string& target,
                 const std::string& body = "", const std::string& type = "application/json") {
    return RunAs(who, [&] { return RawHttp(socket_path(), method, target, body, {}, type); });
  }
  std::string AsRoot(const std::string& method, const std::string& target,
                     const std::string& body = "", const std::string& type = "application/json") {
    return RawHttp(socket_path(), method, target, body, {}, type);
  }
  std::string Plugin(const Identity* who, const std::string& endpoint, const json& body) {
    auto call = [&] { return RawHttp(plugin_path(), "POST", endpoint, body.dump()); };
    return who ? RunAs(*who, call) : call();
  }

  // A claim `who` creates over the socket and that ends up Bound and mounted.
  void ClaimAs(const Identity& who, const std::string& name) {
    std::string created = As(who, "POST", kClaims, Claim(name));
    ASSERT_EQ(StatusOf(created), 201) << created;
    ASSERT_TRUE(WaitBoundAndMounted(name));
  }

  // A directory of `uid` under base() (an allowed hostPath prefix: /tmp).
  std::string DirectoryOf(const std::string& name, uid_t uid, mode_t mode = 0755) {
    std::string path = base() + "/" + name;
    std::filesystem::create_directories(path);
    EXPECT_EQ(chown(path.c_str(), uid, uid), 0);
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
};

// The whole matrix on claims and classes: every write to another user's object is 403 in
// Kubernetes' words, reads stay open, the owner and root keep every right.
TEST_F(AuthzTest, TenantWritesOnlyItsOwnClaimsAndNoClass) {
  ClaimAs(kBob, "bobdata");
  ClaimAs(kAlice, "alicedata");
  std::string bob_claim = std::string(kClaims) + "/bobdata";
  std::string alice_claim = std::string(kClaims) + "/alicedata";
  std::optional<json> stored = GetClaim("bobdata");
  ASSERT_TRUE(stored);
  json relabelled = *stored;
  relabelled["metadata"]["labels"] = {{"a", "b"}};
  json new_class = {{"metadata", {{"name", "evil"}}},
                    {"provisioner", "claimfs.io/local"},
                    {"mountOptions", {"suid", "dev"}}};

  struct Case {
    const char* what;
    const Identity* who;  // nullptr: root
    std::string method, target, body, type;
    int status;
  };
  const std::string label = R"({"metadata":{"labels":{"x":"y"}}})";
  const Case cases[] = {
      {"read another's claim", &kAlice, "GET", bob_claim, "", "application/json", 200},
      {"list claims", &kAlice, "GET", kClaims, "", "application/json", 200},
      {"patch another's claim", &kAlice, "PATCH", bob_claim, label, kMerge, 403},
      {"replace another's claim", &kAlice, "PUT", bob_claim, relabelled.dump(), "application/json",
       403},
      {"patch another's claim status", &kAlice, "PATCH", bob_claim + "/status",
       R"({"status":{"phase":"Lost"}})", kMerge, 403},
      {"lease another's claim", &kAlice, "POST", std::string(kLeases) + "/bobdata/leases",
       R"({"holder":"alice","pid":0})", "application/json", 403},
      {"release a lease on another's claim", &kAlice, "DELETE",
       std::string(kLeases) + "/bobdata/leases/1", "", "application/json", 403},
      {"list another's leases", &kAlice, "GET", std::string(kLeases) + "/bobdata/leases", "",
       "application/json", 200},
      {"patch its own claim", &kAlice, "PATCH", alice_claim, label, kMerge, 200},
      {"lease its own claim", &kAlice, "POST", std::string(kLeases) + "/alicedata/leases",
       R"({"holder":"alice","pid":0})", "application/json", 201},
      {"read classes", &kAlice, "GET", kClasses, "", "application/json", 200},
      {"create a class", &kAlice, "POST", kClasses, new_class.dump(), "application/json", 403},
      {"patch a class", &kAlice, "PATCH", std::string(kClasses) + "/local",
       R"({"metadata":{"annotations":{"storageclass.kubernetes.io/is-default-class":"false"}}})",
       kMerge, 403},
      {"delete a class", &kAlice, "DELETE", std::string(kClasses) + "/local", "",
       "application/json", 403},
      {"root patches anyone's claim", nullptr, "PATCH", bob_claim, label, kMerge, 200},
      {"delete another's claim", &kAlice, "DELETE", bob_claim, "", "application/json", 403},
      {"delete its own claim", &kBob, "DELETE", bob_claim, "", "application/json", 200},
      {"root deletes anyone's claim", nullptr, "DELETE", alice_claim, "", "application/json", 200},
  };
  for (const Case& c : cases) {
    std::string got = c.who ? As(*c.who, c.method, c.target, c.body, c.type)
                            : AsRoot(c.method, c.target, c.body, c.type);
    EXPECT_EQ(StatusOf(got), c.status) << c.what << ": " << got;
    if (c.status == 403) {
      EXPECT_NE(MessageOf(got).find("is forbidden: User \""), std::string::npos)
          << c.what << ": " << got;
    }
  }
  std::string classes = Claimctl({"get", "sc"}).out;
  EXPECT_EQ(classes.find("evil"), std::string::npos) << classes;
}

// Attack A2: alice deleted bob's claim (and with Delete his data) and pinned it with a lease.
TEST_F(AuthzTest, TenantCannotDeleteAnotherUsersClaim) {
  ClaimAs(kBob, "bobdata");
  std::string got = As(kAlice, "DELETE", std::string(kClaims) + "/bobdata");
  EXPECT_EQ(StatusOf(got), 403) << got;
  const passwd* account = getpwuid(kAlice.uid);
  std::string who = account ? account->pw_name : "1001";
  EXPECT_NE(MessageOf(got).find("persistentvolumeclaims \"bobdata\" is forbidden: User \"" + who +
                                "\" cannot delete resource \"persistentvolumeclaims\" in API "
                                "group \"\" in the namespace \"default\""),
            std::string::npos)
      << got;
  std::optional<json> claim = GetClaim("bobdata");
  ASSERT_TRUE(claim);
  EXPECT_FALSE(claim->at("metadata").contains("deletionTimestamp")) << claim->dump();
  std::string leased =
      As(kAlice, "POST", std::string(kLeases) + "/bobdata/leases", R"({"holder":"alice","pid":0})");
  EXPECT_EQ(StatusOf(leased), 403) << leased;
  EXPECT_TRUE(Leases("bobdata").empty());
}

// Attack A1: alice rewrote the owner annotations of bob's claim, and her own.
TEST_F(AuthzTest, TenantCannotRewriteAClaimsOwner) {
  ClaimAs(kBob, "bobdata");
  ClaimAs(kAlice, "alicedata");
  const std::string steal =
      R"({"metadata":{"annotations":{"claimfs.io/owner-uid":"1001","claimfs.io/owner-gid":"1001"}}})";
  std::string got = As(kAlice, "PATCH", std::string(kClaims) + "/bobdata", steal, kMerge);
  EXPECT_EQ(StatusOf(got), 403) << got;
  std::optional<json> bob = GetClaim("bobdata");
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->at("metadata")["annotations"].value("claimfs.io/owner-uid", ""), "1002");
  EXPECT_EQ(bob->at("metadata")["annotations"].value("claimfs.io/owner-gid", ""), "1002");
  // Not even a group it is in, on a claim of its own: the owner is a record.
  got = As(kAlice, "PATCH", std::string(kClaims) + "/alicedata",
           R"({"metadata":{"annotations":{"claimfs.io/owner-gid":"0"}}})", kMerge);
  EXPECT_EQ(StatusOf(got), 403) << got;
  EXPECT_NE(MessageOf(got).find("only root may change a claim's owner"), std::string::npos) << got;
}

// Attack B6: alice served bob's directory and kept reading it through the mount's cache after
// bob closed it.
TEST_F(AuthzTest, TenantCannotServeAnotherUsersDirectory) {
  std::string bobs = DirectoryOf("bobpub", kBob.uid);
  std::string rootdir = DirectoryOf("rootdir", 0);
  std::string alices = DirectoryOf("alicedir", kAlice.uid);
  struct Case {
    const char* what;
    std::string path;
    int status;
  };
  const Case cases[] = {
      {"another user's directory", bobs, 403},
      {"root's directory", rootdir, 403},
      {"a missing directory inside another user's", bobs + "/new", 403},
      {"its own directory", alices, 201},
      {"a missing directory", base() + "/fresh/x", 201},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::string name = "st" + std::to_string(n++);
    std::string got = As(kAlice, "POST", kVolumes, Volume(name, c.path));
    EXPECT_EQ(StatusOf(got), c.status) << c.what << ": " << got;
    if (c.status == 403) {
      EXPECT_NE(MessageOf(got).find("spec.hostPath.path"), std::string::npos) << got;
      EXPECT_EQ(VolumePhase(name), "") << c.what;
    } else {
      std::optional<json> pv = GetVolume(name);
      ASSERT_TRUE(pv);
      EXPECT_EQ(pv->at("metadata")["annotations"].value("claimfs.io/creator-uid", ""), "1001");
    }
  }
  // Root serves any directory under an allowed prefix.
  std::string root = AsRoot("POST", kVolumes, Volume("byroot", bobs));
  EXPECT_EQ(StatusOf(root), 201) << root;
}

// Attack B5: alice turned nosuid/nodev off with a volume's (or her own class's) mount options.
TEST_F(AuthzTest, TenantCannotLiftMountProtections) {
  std::string alices = DirectoryOf("alicedir", kAlice.uid);
  int n = 0;
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{"suid"}, {"dev"}, {"exec"}, {"noatime", "suid"}, {"nodev,dev"}}) {
    std::string got =
        As(kAlice, "POST", kVolumes, Volume("mo" + std::to_string(n++), alices, options));
    EXPECT_EQ(StatusOf(got), 403) << json(options).dump() << ": " << got;
    EXPECT_NE(MessageOf(got).find("spec.mountOptions"), std::string::npos) << got;
  }
  std::string plain = As(kAlice, "POST", kVolumes, Volume("plain", alices, {"noatime"}));
  EXPECT_EQ(StatusOf(plain), 201) << plain;
  std::string lifted = As(kAlice, "PATCH", std::string(kVolumes) + "/plain",
                          R"({"spec":{"mountOptions":["noatime","suid"]}})", kMerge);
  EXPECT_EQ(StatusOf(lifted), 403) << lifted;
  // Its own volume stays its own to change and delete.
  std::string relabelled = As(kAlice, "PATCH", std::string(kVolumes) + "/plain",
                              R"({"metadata":{"labels":{"a":"b"}}})", kMerge);
  EXPECT_EQ(StatusOf(relabelled), 200) << relabelled;
  std::string forged =
      As(kAlice, "PATCH", std::string(kVolumes) + "/plain",
         R"({"metadata":{"annotations":{"claimfs.io/creator-uid":"1002"}}})", kMerge);
  EXPECT_EQ(StatusOf(forged), 200) << forged;
  std::optional<json> plain_pv = GetVolume("plain");
  ASSERT_TRUE(plain_pv);
  EXPECT_EQ(plain_pv->at("metadata")["annotations"].value("claimfs.io/creator-uid", ""), "1001");
  EXPECT_EQ(StatusOf(As(kBob, "DELETE", std::string(kVolumes) + "/plain")), 403);
  EXPECT_EQ(StatusOf(As(kAlice, "DELETE", std::string(kVolumes) + "/plain")), 200);
}

// Attack B5: alice's default class `evil` (suid,dev) captured everyone's claims.
TEST_F(AuthzTest, TenantCannotCreateAStorageClass) {
  json evil = {{"metadata",
                {{"name", "evil"},
                 {"annotations", {{"storageclass.kubernetes.io/is-default-class", "true"}}}}},
               {"provisioner", "claimfs.io/local"},
               {"mountOptions", {"suid", "dev"}}};
  std::string got = As(kAlice, "POST", kClasses, evil.dump());
  EXPECT_EQ(StatusOf(got), 403) << got;
  EXPECT_NE(MessageOf(got).find("cannot create resource \"storageclasses\" in API group "
                                "\"storage.k8s.io\" at the cluster scope"),
            std::string::npos)
      << got;
  std::string read = AsRoot("GET", std::string(kClasses) + "/evil");
  EXPECT_EQ(StatusOf(read), 404) << read;
}

// Attack J1: alice re-pointed the claimRef of the PV bound to a Docker volume at her own claim
// and, after a restart, read the volume's data.
TEST_F(AuthzTest, TenantCannotRepointAnotherUsersBoundVolume) {
  ClaimAs(kBob, "bobdata");
  std::string pv = VolumeOf("bobdata");
  ASSERT_FALSE(pv.empty());
  std::string pending = As(kAlice, "POST", kClaims, Claim("steal", pv));
  ASSERT_EQ(StatusOf(pending), 201) << pending;
  std::string target = std::string(kVolumes) + "/" + pv;
  std::string got = As(kAlice, "PATCH", target,
                       R"({"spec":{"claimRef":{"namespace":"default","name":"steal","uid":null,)"
                       R"("resourceVersion":null}}})",
                       kMerge);
  EXPECT_EQ(StatusOf(got), 403) << got;
  EXPECT_EQ(StatusOf(As(kAlice, "DELETE", target)), 403);
  EXPECT_EQ(StatusOf(As(kAlice, "PATCH", target + "/status", R"({"status":{"phase":"Released"}})",
                        kMerge)),
            403);
  EXPECT_EQ(ClaimPhase("bobdata"), "Bound");
  EXPECT_EQ(ClaimPhase("steal"), "Pending");
  ASSERT_TRUE(Restart());
  EXPECT_TRUE(WaitBoundAndMounted("bobdata"));
  EXPECT_EQ(ClaimPhase("steal"), "Pending");

  // Nor may a tenant's own new volume be pre-bound to a claim that is not its own.
  std::string alices = DirectoryOf("alicedir", kAlice.uid);
  ASSERT_EQ(chmod(socket_path().c_str(), 0666), 0);
  std::string prebound =
      As(kAlice, "POST", kVolumes,
         Volume("bait", alices, {}, {{"namespace", "default"}, {"name", "bobdata"}}));
  EXPECT_EQ(StatusOf(prebound), 403) << prebound;
  std::string future =
      As(kAlice, "POST", kVolumes,
         Volume("bait", alices, {}, {{"namespace", "default"}, {"name", "later"}}));
  EXPECT_EQ(StatusOf(future), 403) << future;
}

// Attack F1: over the plugin socket alice gave volumes to root (mode 4777) and to bob, and could
// mount (pin) or remove anyone's volume.
TEST_F(AuthzTest, PluginSocketAppliesTheOwnerRule) {
  std::string created =
      Plugin(nullptr, "/VolumeDriver.Create", {{"Name", "dv"}, {"Opts", {{"size", "16Mi"}}}});
  ASSERT_EQ(StatusOf(created), 200) << created;
  ASSERT_TRUE(WaitBoundAndMounted("dv", std::chrono::seconds(10), "docker"));
  struct Case {
    const char* what;
    std::string endpoint;
    json body;
    int status;
  };
  const Case cases[] = {
      {"a volume for root",
       "/VolumeDriver.Create",
       {{"Name", "v0"}, {"Opts", {{"size", "1Mi"}, {"uid", "0"}, {"gid", "0"}, {"mode", "4777"}}}},
       403},
      {"a volume for bob",
       "/VolumeDriver.Create",
       {{"Name", "v1"}, {"Opts", {{"size", "1Mi"}, {"uid", "1002"}}}},
       403},
      {"a group it is not in",
       "/VolumeDriver.Create",
       {{"Name", "v2"}, {"Opts", {{"size", "1Mi"}, {"gid", "0"}}}},
       403},
      {"mount root's volume", "/VolumeDriver.Mount", {{"Name", "dv"}, {"ID", "x1"}}, 403},
      {"unmount root's volume", "/VolumeDriver.Unmount", {{"Name", "dv"}, {"ID", "x1"}}, 403},
      {"remove root's volume", "/VolumeDriver.Remove", {{"Name", "dv"}}, 403},
      {"list volumes", "/VolumeDriver.List", json::object(), 200},
      {"a volume of its own",
       "/VolumeDriver.Create",
       {{"Name", "mine"}, {"Opts", {{"size", "1Mi"}}}},
       200},
  };
  for (const Case& c : cases) {
    std::string got = Plugin(&kAlice, c.endpoint, c.body);
    EXPECT_EQ(StatusOf(got), c.status) << c.what << ": " << got;
  }
  for (const char* name : {"v0", "v1", "v2"}) EXPECT_EQ(ClaimPhase(name, "docker"), "") << name;
  EXPECT_TRUE(Leases("dv", "docker").empty());
  EXPECT_NE(ClaimPhase("dv", "docker"), "");
  std::optional<json> mine = GetClaim("mine", "docker");
  ASSERT_TRUE(mine);
  json annotations = mine->at("metadata")["annotations"];
  EXPECT_EQ(annotations.value("claimfs.io/owner-uid", ""), "1001") << annotations.dump();
  EXPECT_NE(annotations.value("claimfs.io/mode", ""), "0755") << annotations.dump();
}

// Attack I: a lease holder of 3 MB was kept and logged in full at every start.
TEST_F(AuthzTest, LeaseHolderIsShortAndPrintable) {
  ClaimAs(kAlice, "alicedata");
  std::string leases = std::string(kLeases) + "/alicedata/leases";
  struct Case {
    const char* what;
    std::string holder;
    int status;
  };
  const Case cases[] = {
      {"253 bytes", std::string(253, 'h'), 201},
      {"254 bytes", std::string(254, 'h'), 422},
      {"3 MB", std::string(3'000'000, 'h'), 422},
      {"a tab", "a\tb", 422},
      {"DEL", "a\x7f", 422},
      {"an escape sequence", "a\x1b[2J", 422},
      {"a plain holder", "backup job 7", 201},
  };
  for (const Case& c : cases) {
    std::string got = As(kAlice, "POST", leases, json{{"holder", c.holder}, {"pid", 0}}.dump());
    EXPECT_EQ(StatusOf(got), c.status) << c.what << ": " << got.substr(0, 300);
    if (c.status == 422) {
      EXPECT_NE(MessageOf(got).find("holder"), std::string::npos) << c.what;
    }
  }
}

// Attack L1: a holder with a newline forged a daemon log line, again at every restart.
TEST_F(AuthzTest, LeaseHolderNewlineIsNotWrittenRawToTheLog) {
  ClaimAs(kAlice, "alicedata");
  std::string got = As(kAlice, "POST", std::string(kLeases) + "/alicedata/leases",
                       R"({"holder":"x\n\"y deleted volume directory /etc","pid":0})");
  EXPECT_EQ(StatusOf(got), 422) << got;
  ASSERT_TRUE(Restart());
  std::string log = DaemonLog();
  EXPECT_EQ(log.find("\n\"y"), std::string::npos) << log;
}

}  // namespace
}  // namespace claimfs::it
