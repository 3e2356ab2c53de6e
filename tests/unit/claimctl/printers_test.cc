// kubectl get tables, describe pages and the df table, for fixed objects and a fixed "now".
#include "claimctl/printers.h"

#include <gtest/gtest.h>

namespace claimfs::claimctl {
namespace {

using model::AccessMode;

Clock::time_point Now() { return *ParseTimestamp("2026-11-25T10:00:00Z"); }

model::Quantity Q(const char* text) { return *model::Quantity::Parse(text); }

// The article's pv-hostpath, created 7s before Now().
model::PersistentVolume ArticlePv() {
  model::PersistentVolume pv;
  pv.metadata.name = "pv-hostpath";
  pv.metadata.creation_timestamp = "2026-11-25T09:59:53Z";
  pv.metadata.finalizers = {"kubernetes.io/pv-protection"};
  pv.spec.capacity = Q("2Gi");
  pv.spec.access_modes = {AccessMode::kReadWriteOnce};
  pv.spec.volume_mode = model::VolumeMode::kFilesystem;
  pv.spec.storage_class_name = "manual";
  pv.spec.reclaim_policy = model::ReclaimPolicy::kDelete;
  pv.spec.host_path = model::HostPathVolumeSource{"/tmp/k8s-pv", ""};
  pv.status.phase = model::VolumePhase::kAvailable;
  return pv;
}

model::PersistentVolumeClaim ArticlePvc() {
  model::PersistentVolumeClaim pvc;
  pvc.metadata.name = "pvc-hostpath";
  pvc.metadata.namespace_ = "default";
  pvc.metadata.creation_timestamp = "2026-11-25T09:59:57Z";
  pvc.metadata.finalizers = {"kubernetes.io/pvc-protection"};
  pvc.metadata.annotations = {{"pv.kubernetes.io/bind-completed", "yes"},
                              {"pv.kubernetes.io/bound-by-controller", "yes"},
                              {"kubectl.kubernetes.io/last-applied-configuration", "{...}\n"}};
  pvc.spec.access_modes = {AccessMode::kReadWriteOnce};
  pvc.spec.request = Q("1Gi");
  pvc.spec.storage_class_name = "manual";
  pvc.spec.volume_mode = model::VolumeMode::kFilesystem;
  pvc.spec.volume_name = "pv-hostpath";
  pvc.status.phase = model::ClaimPhase::kBound;
  pvc.status.access_modes = {AccessMode::kReadWriteOnce};
  pvc.status.capacity = Q("2Gi");
  return pvc;
}

model::StorageClass LocalClass() {
  model::StorageClass sc;
  sc.metadata.name = "local";
  sc.metadata.creation_timestamp = "2026-11-25T06:40:00Z";
  sc.metadata.annotations = {{model::kDefaultClassAnnotation, "true"}};
  sc.provisioner = "claimfs.io/local";
  sc.parameters = {{"pool", "default"}};
  sc.reclaim_policy = model::ReclaimPolicy::kDelete;
  sc.allow_volume_expansion = true;
  sc.volume_binding_mode = model::VolumeBindingMode::kImmediate;
  return sc;
}

TableOptions Options() {
  TableOptions options;
  options.now = Now();
  return options;
}

TEST(PrintersTest, PersistentVolumeTableAsInTheArticle) {
  model::PersistentVolume available = ArticlePv();
  EXPECT_EQ(PrintPersistentVolumes({available}, Options()),
            "NAME          CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS      CLAIM   "
            "STORAGECLASS   REASON   AGE\n"
            "pv-hostpath   2Gi        RWO            Delete           Available           "
            "manual                  7s\n");

  model::PersistentVolume bound = ArticlePv();
  bound.metadata.creation_timestamp = "2026-11-25T09:49:00Z";
  bound.status.phase = model::VolumePhase::kBound;
  bound.spec.claim_ref =
      model::ObjectReference{"PersistentVolumeClaim", "v1", "default", "pvc-hostpath", "", ""};
  EXPECT_EQ(PrintPersistentVolumes({bound}, Options()),
            "NAME          CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS   CLAIM            "
            "      STORAGECLASS   REASON   AGE\n"
            "pv-hostpath   2Gi        RWO            Delete           Bound    "
            "default/pvc-hostpath   manual                  11m\n");
}

TEST(PrintersTest, PersistentVolumeTableShowsTerminatingReasonAndNoClass) {
  model::PersistentVolume pv = ArticlePv();
  pv.metadata.name = "pvc-1234";
  pv.spec.storage_class_name = "";
  pv.spec.access_modes = {AccessMode::kReadWriteOncePod, AccessMode::kReadOnlyMany,
                          AccessMode::kReadWriteOnce, AccessMode::kReadOnlyMany};
  pv.status.phase = model::VolumePhase::kFailed;
  pv.status.reason = "VolumeFailedDelete";
  pv.metadata.creation_timestamp = "";
  std::vector<std::vector<std::string>> rows = PersistentVolumeRows({pv}, Options());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1],
            (std::vector<std::string>{"pvc-1234", "2Gi", "RWO,ROX,RWOP", "Delete", "Failed", "", "",
                                      "VolumeFailedDelete", "<unknown>"}));
  pv.metadata.deletion_timestamp = "2026-11-25T09:59:00Z";
  EXPECT_EQ(PersistentVolumeRows({pv}, Options())[1][4], "Terminating");
}

TEST(PrintersTest, PersistentVolumeWideAddsVolumeModeUsageMountAndMode) {
  std::vector<VolumeStats> stats = {{"pv-hostpath", "default/pvc-hostpath",
                                     "/run/claimfs/claims/default/pvc-hostpath", 2147483648,
                                     67108864, 2080374784, 3, std::nullopt, 0, false,
                                     "kernel (btrfs qgroup 0/257, passthrough)"}};
  TableOptions options = Options();
  options.wide = true;
  options.stats = &stats;
  model::PersistentVolume unmounted = ArticlePv();
  unmounted.metadata.name = "other";
  unmounted.spec.volume_mode.reset();
  EXPECT_EQ(PrintPersistentVolumes({ArticlePv(), unmounted}, options),
            "NAME          CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS      CLAIM   "
            "STORAGECLASS   REASON   AGE   VOLUMEMODE   USED   MOUNT                                      MODE\n"
            "pv-hostpath   2Gi        RWO            Delete           Available           "
            "manual                  7s    Filesystem   64M    "
            "/run/claimfs/claims/default/pvc-hostpath   kernel\n"
            "other         2Gi        RWO            Delete           Available           "
            "manual                  7s    <unset>                                                        \n");
}

TEST(PrintersTest, PersistentVolumeClaimTableAsInTheArticle) {
  EXPECT_EQ(PrintPersistentVolumeClaims({ArticlePvc()}, Options()),
            "NAME           STATUS   VOLUME        CAPACITY   ACCESS MODES   STORAGECLASS   AGE\n"
            "pvc-hostpath   Bound    pv-hostpath   2Gi        RWO            manual         3s\n");
}

TEST(PrintersTest, PendingClaimHasNoCapacityNorAccessModes) {
  model::PersistentVolumeClaim pvc = ArticlePvc();
  pvc.metadata.name = "data";
  pvc.spec.volume_name = "";
  pvc.spec.storage_class_name.reset();
  pvc.status = {};
  pvc.status.access_modes = {AccessMode::kReadWriteOnce};  // ignored without a volume
  EXPECT_EQ(PrintPersistentVolumeClaims({pvc}, Options()),
            "NAME   STATUS    VOLUME   CAPACITY   ACCESS MODES   STORAGECLASS   AGE\n"
            "data   Pending                                                     3s\n");
}

TEST(PrintersTest, AllNamespacesKindPrefixAndWideClaims) {
  model::PersistentVolumeClaim other = ArticlePvc();
  other.metadata.name = "cache";
  other.metadata.namespace_ = "team-a";
  other.metadata.deletion_timestamp = "2026-11-25T09:59:59Z";
  std::vector<VolumeStats> stats = {{"pv-hostpath", "default/pvc-hostpath",
                                     "/run/claimfs/claims/default/pvc-hostpath", 2147483648,
                                     1610612736, 536870912, 10, 1000, 2, false}};
  TableOptions options = Options();
  options.with_namespace = true;
  options.with_kind = true;
  options.wide = true;
  options.stats = &stats;
  EXPECT_EQ(
      PrintPersistentVolumeClaims({ArticlePvc(), other}, options),
      "NAMESPACE   NAME                                 STATUS        VOLUME        CAPACITY   "
      "ACCESS MODES   STORAGECLASS   AGE   VOLUMEMODE   USED   MOUNT\n"
      "default     persistentvolumeclaim/pvc-hostpath   Bound         pv-hostpath   2Gi        "
      "RWO            manual         3s    Filesystem   1.5G   "
      "/run/claimfs/claims/default/pvc-hostpath\n"
      "team-a      persistentvolumeclaim/cache          Terminating   pv-hostpath   2Gi        "
      "RWO            manual         3s    Filesystem          \n");
}

TEST(PrintersTest, StorageClassTableMarksTheDefault) {
  model::StorageClass plain;
  plain.metadata.name = "slow";
  plain.metadata.creation_timestamp = "2026-11-23T10:00:00Z";
  plain.provisioner = "claimfs.io/local";
  plain.volume_binding_mode = model::VolumeBindingMode::kWaitForFirstConsumer;
  plain.reclaim_policy = model::ReclaimPolicy::kRetain;
  EXPECT_EQ(PrintStorageClasses({LocalClass(), plain}, Options()),
            "NAME              PROVISIONER        RECLAIMPOLICY   VOLUMEBINDINGMODE      "
            "ALLOWVOLUMEEXPANSION   AGE\n"
            "local (default)   claimfs.io/local   Delete          Immediate              "
            "true                   3h20m\n"
            "slow              claimfs.io/local   Retain          WaitForFirstConsumer   "
            "false                  2d\n");
}

TEST(PrintersTest, NoHeaders) {
  TableOptions options = Options();
  options.headers = false;
  EXPECT_EQ(PrintStorageClasses({LocalClass()}, options),
            "local (default)   claimfs.io/local   Delete   Immediate   true   3h20m\n");
}

TEST(DescribeTest, PersistentVolumeLikeKubectl) {
  model::PersistentVolume pv = ArticlePv();
  pv.metadata.labels = {{"location", "local"}, {"app", "db"}};
  std::vector<model::Event> none;
  EXPECT_EQ(DescribePersistentVolume(pv, &none, Now(), nullptr),
            "Name:            pv-hostpath\n"
            "Labels:          app=db\n"
            "                 location=local\n"
            "Annotations:     <none>\n"
            "Finalizers:      [kubernetes.io/pv-protection]\n"
            "StorageClass:    manual\n"
            "Status:          Available\n"
            "Claim:           \n"
            "Reclaim Policy:  Delete\n"
            "Access Modes:    RWO\n"
            "VolumeMode:      Filesystem\n"
            "Capacity:        2Gi\n"
            "Node Affinity:   <none>\n"
            "Message:         \n"
            "Source:\n"
            "    Type:          HostPath (bare host directory volume)\n"
            "    Path:          /tmp/k8s-pv\n"
            "    HostPathType:  \n"
            "Events:            <none>\n");
}

TEST(DescribeTest, PersistentVolumeClaimWithEventsAndMount) {
  model::PersistentVolumeClaim pvc = ArticlePvc();
  std::vector<model::Event> events(2);
  events[0].type = "Warning";
  events[0].reason = "ProvisioningFailed";
  events[0].message = "storageclass.storage.k8s.io \"fast\" not found ";
  events[0].source_component = "persistentvolume-controller";
  events[0].count = 3;
  events[0].first_timestamp = "2026-11-25T09:55:00Z";
  events[0].last_timestamp = "2026-11-25T09:59:00Z";
  events[1].type = "Normal";
  events[1].reason = "ExternalProvisioning";
  events[1].message = "waiting";
  events[1].source_component = "persistentvolume-controller";
  events[1].first_timestamp = "2026-11-25T09:50:00Z";
  events[1].last_timestamp = "2026-11-25T09:50:00Z";
  VolumeStats stats{"pv-hostpath",
                    "default/pvc-hostpath",
                    "/run/claimfs/claims/default/pvc-hostpath",
                    2147483648,
                    1024,
                    2147482624,
                    1,
                    std::nullopt,
                    0,
                    false};
  EXPECT_EQ(DescribePersistentVolumeClaim(pvc, &events, Now(), &stats),
            "Name:          pvc-hostpath\n"
            "Namespace:     default\n"
            "StorageClass:  manual\n"
            "Status:        Bound\n"
            "Volume:        pv-hostpath\n"
            "Labels:        <none>\n"
            "Annotations:   pv.kubernetes.io/bind-completed: yes\n"
            "               pv.kubernetes.io/bound-by-controller: yes\n"
            "Finalizers:    [kubernetes.io/pvc-protection]\n"
            "Capacity:      2Gi\n"
            "Access Modes:  RWO\n"
            "VolumeMode:    Filesystem\n"
            "Used:          1.0K\n"
            "Mount:         /run/claimfs/claims/default/pvc-hostpath\n"
            "Used By:       <none>\n"
            "Events:\n"
            "  Type     Reason                Age               From                         "
            "Message\n"
            "  ----     ------                ----              ----                         "
            "-------\n"
            "  Normal   ExternalProvisioning  10m               persistentvolume-controller  "
            "waiting\n"
            "  Warning  ProvisioningFailed    60s (x3 over 5m)  persistentvolume-controller  "
            "storageclass.storage.k8s.io \"fast\" not found\n");
}

TEST(DescribeTest, TerminatingClaimAndNoEventsFetched) {
  model::PersistentVolumeClaim pvc = ArticlePvc();
  pvc.metadata.deletion_timestamp = "2026-11-25T09:59:30Z";
  pvc.metadata.annotations.clear();
  std::string text = DescribePersistentVolumeClaim(pvc, nullptr, Now(), nullptr);
  EXPECT_NE(text.find("Status:        Terminating (lasts 30s)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Annotations:   <none>\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("Events:"), std::string::npos) << text;
  EXPECT_EQ(text.find("Mount:"), std::string::npos) << text;
}

// "Used By" was always <none>, even for a claim a `claimctl use` held in Terminating.
TEST(DescribeTest, LeaseHoldersAreListedUnderUsedBy) {
  model::PersistentVolumeClaim pvc = ArticlePvc();
  pvc.metadata.deletion_timestamp = "2026-11-25T09:59:30Z";
  std::string text = DescribePersistentVolumeClaim(
      pvc, nullptr, Now(), nullptr, {"claimctl use (pid 4242)", "docker 3f2a9c"});
  EXPECT_NE(text.find("Used By:       claimctl use (pid 4242)\n"
                      "               docker 3f2a9c\n"),
            std::string::npos)
      << text;
}

TEST(DescribeTest, StorageClassLikeKubectl) {
  std::vector<model::Event> none;
  model::StorageClass sc = LocalClass();
  sc.mount_options = {"noatime", "nodev"};
  EXPECT_EQ(DescribeStorageClass(sc, &none, Now()),
            "Name:                  local\n"
            "IsDefaultClass:        Yes\n"
            "Annotations:           storageclass.kubernetes.io/is-default-class=true\n"
            "Provisioner:           claimfs.io/local\n"
            "Parameters:            pool=default\n"
            "AllowVolumeExpansion:  True\n"
            "MountOptions:\n"
            "  noatime\n"
            "  nodev\n"
            "ReclaimPolicy:      Delete\n"
            "VolumeBindingMode:  Immediate\n"
            "Events:             <none>\n");
}

TEST(HumanBytesTest, LikeDfDashH) {
  struct Case {
    int64_t bytes;
    const char* want;
  } cases[] = {
      {0, "0"},
      {1, "1"},
      {1023, "1023"},
      {1024, "1.0K"},
      {1025, "1.1K"},  // df rounds up
      {1536, "1.5K"},
      {10 * 1024 - 1, "10K"},
      {10 * 1024, "10K"},
      {64 * 1024 * 1024, "64M"},
      {1536LL * 1024 * 1024, "1.5G"},
      {1024LL * 1024 * 1024 - 1, "1.0G"},
      {100LL * 1024 * 1024 * 1024 + 1, "101G"},
      {5LL * 1024 * 1024 * 1024 * 1024, "5.0T"},
  };
  for (const Case& c : cases) EXPECT_EQ(HumanBytes(c.bytes), c.want) << c.bytes;
}

TEST(DfTest, HumanReadableAndBytes) {
  std::vector<VolumeStats> stats = {
      {"pvc-0a1b", "default/data", "/run/claimfs/claims/default/data", 1073741824, 67108864,
       1006632960, 12, std::nullopt, 0, false},
      {"pv-hostpath", "team-a/logs", "/run/claimfs/claims/team-a/logs", 2147483648, 0, 2147483648,
       1, std::nullopt, 0, true},
  };
  EXPECT_EQ(FormatDf(stats, false),
            "NAMESPACE   CLAIM   VOLUME        CAPACITY   USED   AVAIL   USE%   MOUNTED ON\n"
            "default     data    pvc-0a1b      1.0G       64M    960M    7%     "
            "/run/claimfs/claims/default/data\n"
            "team-a      logs    pv-hostpath   2.0G       0      2.0G    0%     "
            "/run/claimfs/claims/team-a/logs\n");
  EXPECT_EQ(FormatDf({stats[0]}, true),
            "NAMESPACE   CLAIM   VOLUME     CAPACITY     USED       AVAIL        USE%   "
            "MOUNTED ON\n"
            "default     data    pvc-0a1b   1073741824   67108864   1006632960   7%     "
            "/run/claimfs/claims/default/data\n");
}

TEST(DfTest, FullVolumeAndEmptyCapacity) {
  std::vector<VolumeStats> stats = {
      {"v1", "default/full", "/m/full", 100, 100, 0, 1, std::nullopt, 5, false},
      {"v2", "default/none", "/m/none", 0, 0, 0, 0, std::nullopt, 0, false},
      {"v3", "default/tiny", "/m/tiny", 1000, 1, 999, 0, std::nullopt, 0, false},
  };
  std::string text = FormatDf(stats, true);
  EXPECT_NE(text.find("100    0       100%"), std::string::npos) << text;
  EXPECT_NE(text.find("0      0       -      /m/none"), std::string::npos) << text;
  EXPECT_NE(text.find("1%"), std::string::npos) << text;  // 0.1% rounds up, as df
}

TEST(VolumeStatsTest, DecodesTheApiResponse) {
  auto json = nlohmann::json::parse(R"({"items":[
    {"volume":"pvc-1","claim":"default/data","mountPath":"/run/claimfs/claims/default/data",
     "capacityBytes":1073741824,"usedBytes":4096,"availableBytes":1073737728,"usedInodes":2,
     "inodeLimit":1000,"quotaRejections":3,"readOnly":true},
    {"volume":"pvc-2","claim":"default/x","mountPath":"/m","capacityBytes":1,"usedBytes":0,
     "availableBytes":1,"usedInodes":0,"quotaRejections":0,"readOnly":false}]})");
  auto stats = VolumeStatsFromJson(json);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->size(), 2u);
  EXPECT_EQ((*stats)[0].inode_limit, 1000);
  EXPECT_TRUE((*stats)[0].read_only);
  EXPECT_EQ((*stats)[0].quota_rejections, 3);
  EXPECT_FALSE((*stats)[1].inode_limit);
  EXPECT_EQ(FindStatsByClaim(*stats, "default", "x"), &(*stats)[1]);
  EXPECT_EQ(FindStatsByVolume(*stats, "pvc-1"), &(*stats)[0]);
  EXPECT_EQ(FindStatsByVolume(*stats, "nope"), nullptr);

  auto bad = VolumeStatsFromJson(nlohmann::json::parse(R"({"items":[{"volume":"v",
      "usedBytes":"lots"}]})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "volumestats: items[0].usedBytes: missing or of the wrong type");
  EXPECT_FALSE(VolumeStatsFromJson(nlohmann::json::parse("[]")).ok());
}

}  // namespace
}  // namespace claimfs::claimctl
