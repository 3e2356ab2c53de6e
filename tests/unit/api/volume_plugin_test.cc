// The Docker/Podman volume plugin end to end: a real socket, a real StateStore in a temporary
// directory, and a fake daemon whose mounts and leases the tests control.
#include "claimfs/api/volume_plugin.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "claimfs/controller/controller.h"
#include "unit/api/test_http.h"

namespace claimfs::api {
namespace {

using nlohmann::json;
using testing::Request;
using testing::Response;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr char kDockerType[] = "application/vnd.docker.plugins.v1.2+json";

// A daemon that leases only claims the test has "mounted" (as the real one answers kUnavailable
// until the claim is Bound and mounted).
class PluginHooks : public DaemonHooks {
 public:
  void ObjectsChanged() override { ++objects_changed; }

  Result<Lease> AcquireLease(const std::string& claim_key, const std::string& holder,
                             int pid) override {
    std::lock_guard<std::mutex> lock(mu);
    ++acquire_calls;
    if (!acquire_status.ok()) return acquire_status;
    if (!mounted.count(claim_key)) {
      waiting.insert(claim_key);
      return Status::Unavailable("persistentvolumeclaim is not bound and mounted yet");
    }
    Lease lease{"lease-" + std::to_string(++next_id), claim_key, holder, pid,
                "2026-11-25T10:00:00Z"};
    leases.push_back(lease);
    return lease;
  }

  Status ReleaseLease(const std::string& claim_key, const std::string& lease_id) override {
    std::lock_guard<std::mutex> lock(mu);
    released.push_back(claim_key + " " + lease_id);
    for (auto it = leases.begin(); it != leases.end(); ++it) {
      if (it->claim == claim_key && it->id == lease_id) {
        leases.erase(it);
        return Status::Ok();
      }
    }
    return Status::NotFound("lease " + lease_id + " not found on " + claim_key);
  }

  std::vector<Lease> ListLeases(const std::string& claim_key) override {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<Lease> out;
    for (const Lease& lease : leases) {
      if (claim_key.empty() || lease.claim == claim_key) out.push_back(lease);
    }
    return out;
  }

  std::vector<VolumeStats> Stats() override {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<VolumeStats> out;
    for (const auto& [key, stats] : mounted) out.push_back(stats);
    return out;
  }
  std::string DaemonMetrics() override { return ""; }
  Status Health() override { return Status::Ok(); }
  Status CheckVolumeSource(const std::string&) override { return Status::Ok(); }

  size_t LeaseCount() {
    std::lock_guard<std::mutex> lock(mu);
    return leases.size();
  }

  std::atomic<int> objects_changed{0};
  std::mutex mu;
  int acquire_calls = 0;
  Status acquire_status;
  std::map<std::string, VolumeStats> mounted;  // by claim key
  std::set<std::string> waiting;               // claims a lease was asked for too early
  std::vector<Lease> leases;
  std::vector<std::string> released;
  int next_id = 0;
};

class VolumePluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = store::StateStore::Open(dir_.path() / "state");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    model::StorageClass local;
    local.metadata.name = "local";
    local.provisioner = model::kProvisionerName;
    local.allow_volume_expansion = true;
    ASSERT_TRUE(store_->Create(local).ok());
    Start();
  }

  void Start(std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
    server_.reset();
    VolumePluginOptions options;
    options.socket_path = socket_;
    options.mount_wait = wait;
    auto server = VolumePluginServer::Start(options, store_.get(), &hooks_);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  Response Call(const std::string& endpoint, const json& body) {
    return Request(socket_, "POST", "/" + endpoint, body.dump(), kDockerType);
  }

  // Calls an endpoint that must succeed: 200 with an empty Err.
  json Ok(const std::string& endpoint, const json& body) {
    Response r = Call(endpoint, body);
    EXPECT_EQ(r.code, 200) << endpoint << " " << body.dump() << ": " << r.body << r.error;
    json answer = r.Json();
    EXPECT_EQ(answer.value("Err", "missing"), "") << endpoint << ": " << r.body;
    return answer;
  }

  // Calls an endpoint that must fail; returns its Err.
  std::string Err(const std::string& endpoint, const json& body, long code = 500) {
    Response r = Call(endpoint, body);
    EXPECT_EQ(r.code, code) << endpoint << " " << body.dump() << ": " << r.body << r.error;
    EXPECT_EQ(r.content_type, "application/vnd.docker.plugins.v1.1+json");
    return r.Json().value("Err", "");
  }

  void CreateVolume(const std::string& name, json opts = {{"size", "64Mi"}}) {
    Ok("VolumeDriver.Create", {{"Name", name}, {"Opts", opts}});
  }

  std::optional<model::PersistentVolumeClaim> Claim(const std::string& ns,
                                                    const std::string& name) {
    auto claim = store_->GetPersistentVolumeClaim(ns, name);
    if (!claim.ok()) return std::nullopt;
    return *claim;
  }

  std::string MountPathOf(const std::string& ns, const std::string& name) {
    return (dir_.path() / "claims" / ns / name).string();
  }

  // What the daemon does for a claim: bind it to a volume and mount it.
  void BindAndMount(const std::string& ns, const std::string& name, uint64_t used = 0) {
    auto claim = store_->GetPersistentVolumeClaim(ns, name);
    ASSERT_TRUE(claim.ok()) << claim.status().ToString();
    claim->spec.volume_name = "pvc-" + claim->metadata.uid;
    claim->status.phase = model::ClaimPhase::kBound;
    claim->status.capacity = claim->spec.request;
    auto updated = store_->Update(*claim);
    ASSERT_TRUE(updated.ok()) << updated.status().ToString();
    VolumeStats stats;
    stats.volume = claim->spec.volume_name;
    stats.claim = ns + "/" + name;
    stats.mount_path = MountPathOf(ns, name);
    stats.capacity_bytes = static_cast<uint64_t>(claim->spec.request->value());
    stats.used_bytes = used;
    stats.available_bytes = stats.capacity_bytes - used;
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.mounted[stats.claim] = stats;
  }

  void AddFinalizer(const std::string& ns, const std::string& name) {
    auto claim = store_->GetPersistentVolumeClaim(ns, name);
    ASSERT_TRUE(claim.ok());
    claim->metadata.finalizers.push_back(model::kPvcProtectionFinalizer);
    ASSERT_TRUE(store_->Update(*claim).ok());
  }

  TempDir dir_;
  std::string socket_ = (dir_.path() / "plugins" / "claimfs.sock").string();
  std::unique_ptr<store::StateStore> store_;
  PluginHooks hooks_;
  std::unique_ptr<VolumePluginServer> server_;
};

// ---- handshake

TEST_F(VolumePluginTest, ActivateAndCapabilities) {
  for (const char* type :
       {kDockerType, "application/vnd.docker.plugins.v1.1+json", "application/json", ""}) {
    Response r = Request(socket_, "POST", "/Plugin.Activate", "", type);
    EXPECT_EQ(r.code, 200) << type << r.error;
    EXPECT_EQ(r.Json()["Implements"], json::array({"VolumeDriver"})) << r.body;
  }
  json caps = Ok("VolumeDriver.Capabilities", json::object());
  EXPECT_EQ(caps["Capabilities"], (json{{"Scope", "local"}}));
}

TEST_F(VolumePluginTest, SocketDirectoryIsCreatedAndSocketIsNotWorldWritable) {
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(VolumePluginTest, InvalidNamespaceRefusesToStart) {
  VolumePluginOptions options;
  options.socket_path = (dir_.path() / "other.sock").string();
  options.namespace_ = "Docker_Volumes";
  auto server = VolumePluginServer::Start(options, store_.get(), &hooks_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalid);
  EXPECT_NE(server.status().message().find("\"Docker_Volumes\""), std::string::npos);
}

TEST_F(VolumePluginTest, MalformedRequestsAnswerWithErr) {
  Response garbage = Request(socket_, "POST", "/VolumeDriver.Create", "{not json", kDockerType);
  EXPECT_EQ(garbage.code, 400);
  EXPECT_EQ(
      garbage.Json().value("Err", "").rfind("claimfs: the request body is not valid JSON: ", 0), 0u)
      << garbage.body;
  EXPECT_EQ(Err("VolumeDriver.Get", {{"Name", 7}}, 400),
            "claimfs: Name must be a string, not number");
  EXPECT_EQ(Err("VolumeDriver.Create", json::array({1}), 400),
            "claimfs: the request body must be a JSON object");
  EXPECT_EQ(Err("VolumeDriver.Create", {{"Name", "v1"}, {"Opts", "size=1Gi"}}, 400),
            "claimfs: Opts must be an object of strings");
  Response unknown = Call("VolumeDriver.Update", {{"Name", "v1"}});
  EXPECT_EQ(unknown.code, 404);
  EXPECT_FALSE(unknown.Json().value("Err", "").empty()) << unknown.body;
}

// ---- Create

TEST_F(VolumePluginTest, CreateStoresAClaimAsTheApiWould) {
  CreateVolume("v1", {{"size", "64Mi"},
                      {"class", "local"},
                      {"accessMode", "ReadWriteMany"},
                      {"reclaimPolicy", "Retain"},
                      {"uid", "1000"},
                      {"gid", "100"},
                      {"mode", "750"}});
  auto claim = Claim("docker", "v1");
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->spec.request, model::Quantity::FromBytes(64 << 20));
  EXPECT_EQ(claim->spec.storage_class_name, std::optional<std::string>("local"));
  EXPECT_EQ(claim->spec.access_modes, std::vector{model::AccessMode::kReadWriteMany});
  EXPECT_EQ(claim->spec.volume_mode, model::VolumeMode::kFilesystem);  // defaulted
  EXPECT_FALSE(claim->metadata.uid.empty());
  EXPECT_EQ(claim->status.phase, model::ClaimPhase::kPending);
  std::map<std::string, std::string> want = {{controller::kReclaimPolicyAnnotation, "Retain"},
                                             {controller::kOwnerUidAnnotation, "1000"},
                                             {controller::kOwnerGidAnnotation, "100"},
                                             {controller::kModeAnnotation, "0750"}};
  EXPECT_EQ(claim->metadata.annotations, want);
  EXPECT_EQ(hooks_.objects_changed, 1);
}

TEST_F(VolumePluginTest, CreateWithOnlyASizeTakesTheDefaults) {
  CreateVolume("v1", {{"size", "1Gi"}});
  auto claim = Claim("docker", "v1");
  ASSERT_TRUE(claim);
  EXPECT_FALSE(claim->spec.storage_class_name.has_value());  // the default class decides
  EXPECT_EQ(claim->spec.access_modes, std::vector{model::AccessMode::kReadWriteOnce});
  // Docker's local driver: root-owned 0755 (a claim's own default is 0770).
  std::map<std::string, std::string> want = {{controller::kModeAnnotation, "0755"}};
  EXPECT_EQ(claim->metadata.annotations, want);
}

TEST_F(VolumePluginTest, CreateRequiresASize) {
  EXPECT_EQ(Err("VolumeDriver.Create", {{"Name", "v1"}}),
            "claimfs: size is required, e.g. --opt size=1Gi");
  EXPECT_EQ(Err("VolumeDriver.Create", {{"Name", "v1"}, {"Opts", {{"class", "local"}}}}),
            "claimfs: size is required, e.g. --opt size=1Gi");
  EXPECT_FALSE(Claim("docker", "v1"));
  EXPECT_EQ(hooks_.objects_changed, 0);
}

TEST_F(VolumePluginTest, CreateRefusesBadOptionsNamingThem) {
  struct Case {
    json opts;
    std::string err;
  };
  const Case cases[] = {
      {{{"size", "1Gi"}, {"foo", "bar"}},
       "claimfs: unknown option \"foo\" (known: size, class, accessMode, reclaimPolicy, uid, gid, "
       "mode)"},
      {{{"size", "lots"}}, "claimfs: option size=\"lots\" is not valid: "},
      {{{"size", "0"}}, "claimfs: option size=\"0\" is not valid: must be greater than zero"},
      {{{"size", "-1Gi"}}, "claimfs: option size=\"-1Gi\" is not valid: must be greater than zero"},
      {{{"size", "1Gi"}, {"class", "fast"}},
       "claimfs: option class=\"fast\" is not valid: there is no StorageClass \"fast\""},
      {{{"size", "1Gi"}, {"accessMode", "RWO"}},
       "claimfs: option accessMode=\"RWO\" is not valid: must be ReadWriteOnce, ReadWriteMany, "
       "ReadOnlyMany or ReadWriteOncePod"},
      {{{"size", "1Gi"}, {"reclaimPolicy", "Recycle"}},
       "claimfs: option reclaimPolicy=\"Recycle\" is not valid: must be Delete or Retain"},
      {{{"size", "1Gi"}, {"uid", "-1"}},
       "claimfs: option uid=\"-1\" is not valid: must be a number from 0 to 4294967294"},
      {{{"size", "1Gi"}, {"gid", "staff"}},
       "claimfs: option gid=\"staff\" is not valid: must be a number from 0 to 4294967294"},
      {{{"size", "1Gi"}, {"uid", "4294967295"}},
       "claimfs: option uid=\"4294967295\" is not valid: must be a number from 0 to 4294967294"},
      {{{"size", "1Gi"}, {"mode", "0999"}},
       "claimfs: option mode=\"0999\" is not valid: must be octal permission bits, e.g. 0755"},
      {{{"size", "1Gi"}, {"mode", "17777"}},
       "claimfs: option mode=\"17777\" is not valid: must be octal permission bits, e.g. 0755"},
      {{{"size", true}}, "claimfs: option \"size\" must be a string, not true"},
  };
  for (const Case& c : cases) {
    std::string err = Err("VolumeDriver.Create", {{"Name", "v1"}, {"Opts", c.opts}});
    EXPECT_EQ(err.substr(0, c.err.size()), c.err) << c.opts.dump();
  }
  EXPECT_FALSE(Claim("docker", "v1"));
}

TEST_F(VolumePluginTest, CreateAcceptsNumbersAndYamlOctal) {
  CreateVolume("v1", {{"size", 1048576}, {"uid", 0}, {"mode", "0o700"}});
  auto claim = Claim("docker", "v1");
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->spec.request->value(), 1 << 20);
  EXPECT_EQ(claim->metadata.annotations[controller::kOwnerUidAnnotation], "0");
  EXPECT_EQ(claim->metadata.annotations[controller::kModeAnnotation], "0700");
}

TEST_F(VolumePluginTest, VolumeNamesMustBeClaimNames) {
  std::string err = Err("VolumeDriver.Create", {{"Name", "My_Vol"}, {"Opts", {{"size", "1Gi"}}}});
  EXPECT_EQ(err.rfind("claimfs: volume name \"My_Vol\" cannot name a claim (claim names are "
                      "Kubernetes object names): a lowercase RFC 1123 subdomain must consist of",
                      0),
            0u)
      << err;
  err = Err("VolumeDriver.Create", {{"Name", "Team_A.data"}, {"Opts", {{"size", "1Gi"}}}});
  EXPECT_EQ(err.rfind("claimfs: volume name \"Team_A.data\" is <namespace>.<claim>, and namespace "
                      "\"Team_A\" is not valid: a lowercase RFC 1123 label must",
                      0),
            0u)
      << err;
  EXPECT_EQ(Err("VolumeDriver.Create", {{"Opts", {{"size", "1Gi"}}}}),
            "claimfs: a volume name is required");
  EXPECT_NE(Err("VolumeDriver.Mount", {{"Name", "a_b"}, {"ID", "c1"}}).find("RFC 1123 subdomain"),
            std::string::npos);
  Result<std::vector<model::PersistentVolumeClaim>> claims = store_->ListPersistentVolumeClaims();
  ASSERT_TRUE(claims.ok());
  EXPECT_TRUE(claims->empty());
}

TEST_F(VolumePluginTest, CreateOfAnExistingVolumeSucceedsAndChangesNothing) {
  CreateVolume("v1", {{"size", "64Mi"}});
  auto before = Claim("docker", "v1");
  // Docker creates a volume it is about to use with no options when it does not know it.
  Ok("VolumeDriver.Create", {{"Name", "v1"}});
  Ok("VolumeDriver.Create", {{"Name", "v1"}, {"Opts", {{"size", "1Gi"}}}});
  EXPECT_EQ(Claim("docker", "v1"), before);
  EXPECT_EQ(hooks_.objects_changed, 1);
}

TEST_F(VolumePluginTest, DottedNamesReachOtherNamespaces) {
  CreateVolume("default.data", {{"size", "128Mi"}});
  auto claim = Claim("default", "data");
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->spec.request->value(), 128 << 20);
  EXPECT_FALSE(Claim("docker", "default.data"));
  // The plugin's own namespace written out is the same claim as the bare name.
  CreateVolume("v1");
  Ok("VolumeDriver.Create", {{"Name", "docker.v1"}});
  EXPECT_EQ(store_->ListPersistentVolumeClaims("docker")->size(), 1u);
}

TEST_F(VolumePluginTest, NamespaceIsConfigurable) {
  server_.reset();
  VolumePluginOptions options;
  options.socket_path = socket_;
  options.namespace_ = "containers";
  auto server = VolumePluginServer::Start(options, store_.get(), &hooks_);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  CreateVolume("v1");
  EXPECT_TRUE(Claim("containers", "v1"));
  EXPECT_FALSE(Claim("docker", "v1"));
}

// ---- Mount and Unmount

TEST_F(VolumePluginTest, MountWaitsForTheClaimThenLeasesItOncePerId) {
  CreateVolume("v1");
  auto start = Clock::now();
  std::thread daemon([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    BindAndMount("docker", "v1");
  });
  json mount = Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}});
  daemon.join();
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(400));
  EXPECT_EQ(mount["Mountpoint"], MountPathOf("docker", "v1"));
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    EXPECT_EQ(hooks_.waiting, std::set<std::string>{"docker/v1"});  // the daemon was told
    ASSERT_EQ(hooks_.leases.size(), 1u);
    EXPECT_EQ(hooks_.leases[0].claim, "docker/v1");
    EXPECT_EQ(hooks_.leases[0].holder, "docker c1");
    EXPECT_EQ(hooks_.leases[0].pid, 0);
  }
  // Docker may mount one volume twice for one container: one lease, counted.
  EXPECT_EQ(Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}})["Mountpoint"],
            MountPathOf("docker", "v1"));
  EXPECT_EQ(hooks_.LeaseCount(), 1u);
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c1"}});
  EXPECT_EQ(hooks_.LeaseCount(), 1u);
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c1"}});
  EXPECT_EQ(hooks_.LeaseCount(), 0u);
  // An Unmount nothing matches is harmless.
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c1"}});
  EXPECT_EQ(hooks_.released.size(), 1u);
}

TEST_F(VolumePluginTest, EachContainerHoldsItsOwnLease) {
  CreateVolume("v1", {{"size", "64Mi"}, {"accessMode", "ReadWriteMany"}});
  BindAndMount("docker", "v1");
  Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}});
  Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c2"}});
  EXPECT_EQ(hooks_.LeaseCount(), 2u);
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c1"}});
  std::vector<Lease> left = hooks_.ListLeases("docker/v1");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].holder, "docker c2");
}

TEST_F(VolumePluginTest, ConcurrentMountsWithOneIdKeepOneLease) {
  CreateVolume("v1");
  std::vector<std::thread> clients;
  std::vector<json> answers(4);
  for (size_t i = 0; i < answers.size(); ++i) {
    clients.emplace_back([this, i, &answers] {
      answers[i] = Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}});
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BindAndMount("docker", "v1");
  for (auto& client : clients) client.join();
  for (const json& answer : answers) EXPECT_EQ(answer["Mountpoint"], MountPathOf("docker", "v1"));
  EXPECT_EQ(hooks_.LeaseCount(), 1u);
  for (size_t i = 0; i < answers.size(); ++i) {
    EXPECT_EQ(hooks_.LeaseCount(), 1u) << i;
    Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c1"}});
  }
  EXPECT_EQ(hooks_.LeaseCount(), 0u);
}

TEST_F(VolumePluginTest, MountOfAClaimThatStaysPendingSaysWhy) {
  Start(std::chrono::milliseconds(300));
  CreateVolume("v1", {{"size", "64Mi"}});
  auto claim = Claim("docker", "v1");
  model::Event event;
  event.involved_object = {"PersistentVolumeClaim", "v1", "docker", "v1", claim->metadata.uid, ""};
  event.reason = "ProvisioningFailed";
  event.type = "Warning";
  event.message = "pool \"default\" has 10Mi free, the claim asks for 64Mi";
  event.source_component = "persistentvolume-controller";
  ASSERT_TRUE(store_->AppendEvent(event).ok());
  auto start = Clock::now();
  EXPECT_EQ(Err("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}}),
            "claimfs: claim docker/v1 is still Pending: pool \"default\" has 10Mi free, the claim "
            "asks for 64Mi");
  auto took = Clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
  EXPECT_EQ(hooks_.LeaseCount(), 0u);
}

TEST_F(VolumePluginTest, MountOfABoundClaimNotMountedYetSaysSo) {
  Start(std::chrono::milliseconds(200));
  CreateVolume("v1");
  BindAndMount("docker", "v1");
  {
    std::lock_guard<std::mutex> lock(hooks_.mu);
    hooks_.mounted.clear();
  }
  std::string err = Err("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}});
  EXPECT_EQ(err, "claimfs: claim docker/v1 is Bound, but volume pvc-" +
                     Claim("docker", "v1")->metadata.uid + " is not mounted yet");
}

TEST_F(VolumePluginTest, MountRefusedByTheDaemonFailsAtOnce) {
  CreateVolume("v1", {{"size", "64Mi"}, {"accessMode", "ReadWriteOncePod"}});
  BindAndMount("docker", "v1");
  hooks_.acquire_status = Status::Conflict(
      "persistentvolumeclaim \"v1\" is ReadWriteOncePod and already used by claimctl use");
  auto start = Clock::now();
  EXPECT_EQ(Err("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}}),
            "claimfs: persistentvolumeclaim \"v1\" is ReadWriteOncePod and already used by "
            "claimctl use");
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1000));
}

TEST_F(VolumePluginTest, MountOfAMissingVolume) {
  EXPECT_EQ(Err("VolumeDriver.Mount", {{"Name", "nope"}, {"ID", "c1"}}), "no such volume: nope");
  EXPECT_EQ(hooks_.acquire_calls, 0);
}

TEST_F(VolumePluginTest, MountsHeldBeforeARestartAreReleasedByUnmount) {
  CreateVolume("v1");
  BindAndMount("docker", "v1");
  Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c9"}});
  Start();  // a new plugin in the same daemon: the lease is still there
  EXPECT_EQ(hooks_.LeaseCount(), 1u);
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c9"}});
  EXPECT_EQ(hooks_.LeaseCount(), 0u);
}

// ---- Remove

TEST_F(VolumePluginTest, RemoveIsRefusedWhileLeasedThenDeletes) {
  CreateVolume("v1");
  BindAndMount("docker", "v1");
  Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "3f2a9c"}});
  EXPECT_EQ(Err("VolumeDriver.Remove", {{"Name", "v1"}}, 409), "volume is in use - [3f2a9c]");
  auto claim = Claim("docker", "v1");
  ASSERT_TRUE(claim);
  EXPECT_FALSE(claim->metadata.deletion_timestamp);
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "3f2a9c"}});
  int changed = hooks_.objects_changed;
  Ok("VolumeDriver.Remove", {{"Name", "v1"}});
  EXPECT_FALSE(Claim("docker", "v1"));
  EXPECT_EQ(hooks_.objects_changed, changed + 1);
}

TEST_F(VolumePluginTest, RemoveNamesEveryLeaseHolder) {
  CreateVolume("v1", {{"size", "64Mi"}, {"accessMode", "ReadWriteMany"}});
  BindAndMount("docker", "v1");
  Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}});
  ASSERT_TRUE(hooks_.AcquireLease("docker/v1", "claimctl use", 0).ok());
  EXPECT_EQ(Err("VolumeDriver.Remove", {{"Name", "v1"}}, 409),
            "volume is in use - [c1, claimctl use]");
}

TEST_F(VolumePluginTest, RemoveOfAProtectedClaimMarksItTerminating) {
  CreateVolume("v1");
  BindAndMount("docker", "v1");
  AddFinalizer("docker", "v1");
  Ok("VolumeDriver.Remove", {{"Name", "v1"}});
  auto claim = Claim("docker", "v1");
  ASSERT_TRUE(claim);
  ASSERT_TRUE(claim->metadata.deletion_timestamp);
  EXPECT_EQ(claim->metadata.deletion_timestamp->size(), 20u);  // 2026-11-25T10:00:00Z
  // Going away, but still there: Docker sees it Terminating, cannot mount it again, and may
  // not create it again yet.
  EXPECT_EQ(Ok("VolumeDriver.List", json::object())["Volumes"].size(), 1u);
  EXPECT_EQ(Ok("VolumeDriver.Get", {{"Name", "v1"}})["Volume"]["Status"]["phase"], "Terminating");
  EXPECT_EQ(Err("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}}),
            "claimfs: claim docker/v1 is being deleted");
  EXPECT_EQ(Err("VolumeDriver.Create", {{"Name", "v1"}, {"Opts", {{"size", "1Gi"}}}}),
            "claimfs: claim docker/v1 is being deleted; create the volume again once it is gone");
  Ok("VolumeDriver.Remove", {{"Name", "v1"}});  // again: nothing more to do
  EXPECT_EQ(Claim("docker", "v1")->metadata.deletion_timestamp, claim->metadata.deletion_timestamp);
}

// Docker gets a volume before it unmounts it; when Get said "no such volume" for a claim
// deleted with claimctl while a container used it, Docker never unmounted it and the claim's
// lease kept it Terminating for ever.
TEST_F(VolumePluginTest, ClaimDeletedWhileMountedIsStillUnmountedByDocker) {
  CreateVolume("v1");
  BindAndMount("docker", "v1");
  AddFinalizer("docker", "v1");
  Ok("VolumeDriver.Mount", {{"Name", "v1"}, {"ID", "c1"}});
  auto claim = Claim("docker", "v1");
  ASSERT_TRUE(claim);
  claim->metadata.deletion_timestamp = "2026-11-25T10:00:00Z";  // claimctl delete pvc v1
  ASSERT_TRUE(store_->Update(*claim).ok());
  json volume = Ok("VolumeDriver.Get", {{"Name", "v1"}})["Volume"];
  EXPECT_EQ(volume["Mountpoint"], MountPathOf("docker", "v1"));
  EXPECT_EQ(Ok("VolumeDriver.Path", {{"Name", "v1"}})["Mountpoint"], MountPathOf("docker", "v1"));
  EXPECT_EQ(hooks_.LeaseCount(), 1u);
  Ok("VolumeDriver.Unmount", {{"Name", "v1"}, {"ID", "c1"}});
  EXPECT_EQ(hooks_.LeaseCount(), 0u);
}

TEST_F(VolumePluginTest, RemoveOfAMissingVolumeSucceeds) {
  Ok("VolumeDriver.Remove", {{"Name", "gone"}});
  EXPECT_EQ(hooks_.objects_changed, 0);
}

// ---- Path, Get, List

TEST_F(VolumePluginTest, PathIsEmptyUntilMounted) {
  CreateVolume("v1");
  EXPECT_EQ(Ok("VolumeDriver.Path", {{"Name", "v1"}})["Mountpoint"], "");
  BindAndMount("docker", "v1");
  EXPECT_EQ(Ok("VolumeDriver.Path", {{"Name", "v1"}})["Mountpoint"], MountPathOf("docker", "v1"));
  EXPECT_EQ(Err("VolumeDriver.Path", {{"Name", "nope"}}), "no such volume: nope");
}

TEST_F(VolumePluginTest, GetReportsPhaseAndUsage) {
  CreateVolume("v1", {{"size", "64Mi"}});
  auto claim = Claim("docker", "v1");
  json pending = Ok("VolumeDriver.Get", {{"Name", "v1"}})["Volume"];
  EXPECT_EQ(pending["Name"], "v1");
  EXPECT_EQ(pending["Mountpoint"], "");
  EXPECT_EQ(pending["CreatedAt"], claim->metadata.creation_timestamp);
  EXPECT_EQ(
      pending["Status"],
      (json{{"phase", "Pending"}, {"volume", ""}, {"claim", "docker/v1"}, {"capacity", 64 << 20}}));
  BindAndMount("docker", "v1", 5 << 20);
  json bound = Ok("VolumeDriver.Get", {{"Name", "v1"}})["Volume"];
  EXPECT_EQ(bound["Mountpoint"], MountPathOf("docker", "v1"));
  EXPECT_EQ(bound["Status"], (json{{"phase", "Bound"},
                                   {"volume", "pvc-" + claim->metadata.uid},
                                   {"claim", "docker/v1"},
                                   {"capacity", 64 << 20},
                                   {"used", 5 << 20},
                                   {"available", 59 << 20}}));
  EXPECT_TRUE(bound["Status"]["capacity"].is_number());
  EXPECT_EQ(Err("VolumeDriver.Get", {{"Name", "nope"}}), "no such volume: nope");
}

TEST_F(VolumePluginTest, ListShowsClaimsOfEveryNamespace) {
  CreateVolume("v1");
  CreateVolume("default.data");
  model::PersistentVolumeClaim dotted;
  dotted.metadata.name = "my.data";
  dotted.metadata.namespace_ = "docker";
  dotted.spec.access_modes = {model::AccessMode::kReadWriteOnce};
  dotted.spec.request = model::Quantity::FromBytes(1 << 20);
  ASSERT_TRUE(store_->Create(dotted).ok());
  CreateVolume("going");
  AddFinalizer("docker", "going");
  Ok("VolumeDriver.Remove", {{"Name", "going"}});
  BindAndMount("default", "data");

  json volumes = Ok("VolumeDriver.List", json::object())["Volumes"];
  std::vector<std::string> names;
  for (const json& v : volumes) names.push_back(v["Name"]);
  // A claim being deleted is listed until it is gone (Docker unmounts only what it can get).
  EXPECT_EQ(names, (std::vector<std::string>{"default.data", "going", "docker.my.data", "v1"}));
  EXPECT_EQ(volumes[0]["Mountpoint"], MountPathOf("default", "data"));
  EXPECT_EQ(volumes[3]["Mountpoint"], "");
  // Every listed name works as a volume name.
  for (const std::string& name : names) {
    EXPECT_EQ(Ok("VolumeDriver.Get", {{"Name", name}})["Volume"]["Name"], name);
  }
  EXPECT_EQ(Ok("VolumeDriver.Get", {{"Name", "docker.my.data"}})["Volume"]["Status"]["claim"],
            "docker/my.data");
  EXPECT_EQ(Ok("VolumeDriver.Mount", {{"Name", "default.data"}, {"ID", "c1"}})["Mountpoint"],
            MountPathOf("default", "data"));
  EXPECT_EQ(hooks_.ListLeases("default/data").size(), 1u);
}

}  // namespace
}  // namespace claimfs::api
