// One directory, one volume; Delete removes only what claimfsd made (issue 9). The real daemon on
// its real socket: overlapping PersistentVolumes are refused at admission, also when created
// concurrently; an overlap that appears behind admission stops mounts and reclaims; a Delete
// policy never removes a directory claimfsd did not create.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

class OverlapTest : public DaemonTest {
 protected:
  // Starts claimfsd with its pool configured as base()/link/p, base()/link -> base()/real.
  void StartWithSymlinkedPool() {
    std::string real = base() + "/real";
    std::string link = base() + "/link";
    ASSERT_EQ(mkdir(real.c_str(), 0755), 0);
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    std::string config = base() + "/symlinked-pool.yaml";
    {
      std::ofstream out(config);
      out << "pools:\n  - name: default\n    path: " << link << "/p\n"
          << "stateDir: " << data_dir() << "/state\n"
          << "mountRoot: " << data_dir() << "/claims\n"
          << "socket:\n  path: " << socket_path() << "\n";
    }
    ASSERT_TRUE(StartDaemon({"--config", config}));
  }
};

TEST_F(OverlapTest, PathEqualToInsideOrAroundAnotherVolumesIsRefused) {
  ASSERT_TRUE(StartDaemon());
  std::string dir = base() + "/vols/a";
  HttpResult h = Http("POST", "/api/v1/persistentvolumes", StaticVolumeJson("a", dir).dump());
  ASSERT_EQ(h.status, 201) << h.Describe();

  struct Case {
    std::string name, source, path;
  } cases[] = {
      {"equal", "hostPath", dir},
      {"equal-slash", "hostPath", dir + "/"},
      {"equal-doubled", "hostPath", base() + "/vols//a"},
      {"inside", "hostPath", dir + "/b"},
      {"deep-inside", "hostPath", dir + "/b/c/d"},
      {"around", "hostPath", base() + "/vols"},
      {"equal-local", "local", dir},
      {"inside-local", "local", dir + "/b"},
      {"around-local", "local", base() + "/vols"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + " " + c.path);
    for (const char* query : {"", "?dryRun=All"}) {
      h = Http("POST", std::string("/api/v1/persistentvolumes") + query,
               StaticVolumeJson(c.name, c.path, "Delete", c.source).dump());
      EXPECT_EQ(h.status, 422) << h.Describe();
      EXPECT_NE(JsonString(h.Json(), "/message")
                    .find("spec." + c.source +
                          ".path: Forbidden: overlaps PersistentVolume \"a\" (" + dir + ")"),
                std::string::npos)
          << h.body;
    }
    EXPECT_FALSE(GetVolume(c.name).has_value());
  }
  // A sibling whose name merely starts with the same bytes does not overlap.
  h = Http("POST", "/api/v1/persistentvolumes", StaticVolumeJson("ab", dir + "b").dump());
  EXPECT_EQ(h.status, 201) << h.Describe();
  // The volume itself again: already exists, not an overlap with itself.
  h = Http("POST", "/api/v1/persistentvolumes", StaticVolumeJson("a", dir).dump());
  EXPECT_EQ(h.status, 409) << h.Describe();
}

TEST_F(OverlapTest, ConcurrentCreatesOfOverlappingVolumesAdmitOnlyOne) {
  ASSERT_TRUE(StartDaemon());
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string dir = base() + "/race/" + std::to_string(round);
    // Equal paths in even rounds, nested ones in odd rounds.
    std::string other = round % 2 == 0 ? dir : dir + "/inner";
    std::atomic<int> created{0}, refused{0};
    auto post = [&](const std::string& name, const std::string& path) {
      HttpResult h = Http("POST", "/api/v1/persistentvolumes", StaticVolumeJson(name, path).dump());
      if (h.status == 201) created++;
      if (h.status == 422) refused++;
    };
    std::thread a(post, "race-" + std::to_string(round) + "-a", dir);
    std::thread b(post, "race-" + std::to_string(round) + "-b", other);
    a.join();
    b.join();
    EXPECT_EQ(created.load(), 1);
    EXPECT_EQ(refused.load(), 1);
  }
}

// Regression (issue 9, defect 3): a member of the socket's group deleted a root-owned 0700
// directory under /tmp by creating a Delete-policy hostPath PV over it.
TEST_F(OverlapTest, DeletePolicyOnAPreExistingRootOwnedDirectoryKeepsItAndFailsThePv) {
  ASSERT_TRUE(StartDaemon());
  std::string tmpl = "/tmp/claimfs-victim-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
  std::string victim = tmpl;
  RemoveAtTearDown(victim);
  ASSERT_EQ(chmod(victim.c_str(), 0700), 0);
  ASSERT_TRUE(WriteFile(victim + "/secret", "root's own\n"));

  CommandResult r = Apply(StaticPairYaml("victim", victim, "ReadWriteOnce", "Delete"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("victim"));
  r = Claimctl({"delete", "pvc", "victim"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return VolumePhase("victim") == "Failed"; }, 10s))
      << "PV phase " << VolumePhase("victim") << "\n"
      << DescribeEvents("PersistentVolume", "victim");
  std::optional<nlohmann::json> pv = GetVolume("victim");
  ASSERT_TRUE(pv.has_value());
  EXPECT_EQ(JsonString(*pv, "/status/message"),
            "host_path deleter only removes directories claimfsd created but received provided " +
                victim + ", which it did not create; the data is kept");
  EXPECT_NE(DescribeEvents("PersistentVolume", "victim").find("VolumeFailedDelete"),
            std::string::npos);
  EXPECT_EQ(ReadFile(victim + "/secret"), "root's own\n");
  struct stat st;
  ASSERT_EQ(stat(victim.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

// A directory claimfsd made itself (the hostPath was missing) is its to delete.
TEST_F(OverlapTest, DeletePolicyRemovesAHostPathDirectoryClaimfsdCreated) {
  ASSERT_TRUE(StartDaemon());
  std::string dir = base() + "/made/by/claimfsd";
  CommandResult r = Apply(StaticPairYaml("made", dir, "ReadWriteOnce", "Delete"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("made"));
  ASSERT_TRUE(WriteFile(MountPath("made") + "/file", "x"));
  r = Claimctl({"delete", "pvc", "made"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return !GetVolume("made").has_value(); }, 10s))
      << DescribeEvents("PersistentVolume", "made");
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << dir << " is still there";
  EXPECT_EQ(access((base() + "/made/by").c_str(), F_OK), 0) << "a parent it did not own went";
}

// The reclaimer checks again: a PV that overlaps another one (here written into the state behind
// the API's back, as an older claimfsd's state file may hold) is neither mounted nor deleted.
TEST_F(OverlapTest, OverlapThatAppearsAfterAdmissionStopsMountAndDelete) {
  ASSERT_TRUE(StartDaemon());
  std::string dir = base() + "/shared";
  CommandResult r = Apply(StaticPairYaml("first", dir, "ReadWriteOnce", "Delete"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("first"));
  ASSERT_TRUE(WriteFile(MountPath("first") + "/keep.txt", "survives\n"));
  ASSERT_TRUE(StopDaemon());

  std::string db = data_dir() + "/state/state.db";
  CommandResult sql = RunCommand(
      {"sqlite3", db,
       "INSERT INTO objects (kind, namespace, name, resource_version, body, uid, generation) "
       "SELECT kind, namespace, 'second', resource_version, "
       "json_set(json_remove(body, '$.spec.claimRef'), '$.metadata.name', 'second', "
       "'$.metadata.uid', '77777777-7777-4777-8777-777777777777', '$.spec.hostPath.path', '" +
           dir +
           "/inner', '$.status', json('{\"phase\":\"Available\"}')), "
           "'77777777-7777-4777-8777-777777777777', generation FROM objects "
           "WHERE kind = 'PersistentVolume' AND name = 'first';"});
  ASSERT_EQ(sql.exit_code, 0) << sql.Describe();
  ASSERT_TRUE(Restart());
  ASSERT_TRUE(GetVolume("second").has_value());

  // Not mounted again: the claim says why.
  EXPECT_TRUE(WaitFor(
      [&] {
        return DescribeEvents("PersistentVolumeClaim", "first")
                   .find("overlaps PersistentVolume \"second\" (" + dir + "/inner)") !=
               std::string::npos;
      },
      10s))
      << DescribeEvents("PersistentVolumeClaim", "first");
  EXPECT_FALSE(MountAt(MountPath("first")).has_value());

  r = Claimctl({"delete", "pvc", "first"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return VolumePhase("first") == "Failed"; }, 10s))
      << "PV phase " << VolumePhase("first") << "\n"
      << DescribeEvents("PersistentVolume", "first");
  std::optional<nlohmann::json> pv = GetVolume("first");
  ASSERT_TRUE(pv.has_value());
  EXPECT_EQ(JsonString(*pv, "/status/message"), "host_path deleter refuses " + dir +
                                                    ": it overlaps PersistentVolume \"second\" (" +
                                                    dir + "/inner); the data is kept");
  EXPECT_NE(DescribeEvents("PersistentVolume", "first").find("VolumeFailedDelete"),
            std::string::npos);
  EXPECT_EQ(ReadFile(dir + "/keep.txt"), "survives\n");
}

// Attack report G1 (issue 9): with a pool configured through a symlink, a hostPath PV naming the
// pool's real path passed the lexical overlap check, mounted the whole pool (every claim's
// volume) and its Delete policy wiped them.
TEST_F(OverlapTest, PoolConfiguredThroughASymlinkIsRefusedByItsRealPath) {
  std::string real = base() + "/real";
  std::string link = base() + "/link";
  ASSERT_NO_FATAL_FAILURE(StartWithSymlinkedPool());
  ASSERT_TRUE(CreateDynamicClaim("alicedata", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("alicedata") + "/s", "alicesecret\n"));
  std::string volume = VolumeOf("alicedata");
  ASSERT_FALSE(volume.empty());

  struct Case {
    std::string name, source, path;
  } cases[] = {
      {"sy1", "hostPath", real + "/p"},
      {"sy2", "hostPath", real + "/p/"},
      {"sy3", "hostPath", real + "/p/" + volume},
      {"sy4", "hostPath", real},
      {"sy5", "local", real + "/p"},
      {"sy6", "hostPath", link + "/p"},
      {"sy7", "hostPath", real + "/p/" + volume + "/sub"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name + " " + c.path);
    HttpResult h = Http("POST", "/api/v1/persistentvolumes",
                        StaticVolumeJson(c.name, c.path, "Delete", c.source).dump());
    EXPECT_EQ(h.status, 422) << h.Describe();
    EXPECT_NE(JsonString(h.Json(), "/message").find("pool default"), std::string::npos) << h.body;
    EXPECT_FALSE(GetVolume(c.name).has_value());
  }
  // Nothing but alicedata's volume is mounted, and its data is where it was.
  EXPECT_EQ(VolumeMountsUnder(data_dir() + "/claims").size(), 1u);
  EXPECT_EQ(ReadFile(real + "/p/" + volume + "/s"), "alicesecret\n");
}

// G1 behind admission: a volume stored before this check (an older claimfsd's state) over the
// real path of a pool configured through a symlink is neither mounted nor deleted, and the
// pool's volumes survive.
TEST_F(OverlapTest, StoredVolumeOverTheRealPathOfASymlinkedPoolIsNotMountedNorDeleted) {
  std::string real = base() + "/real";
  ASSERT_NO_FATAL_FAILURE(StartWithSymlinkedPool());
  ASSERT_TRUE(CreateDynamicClaim("alicedata", "16Mi"));
  ASSERT_TRUE(WriteFile(MountPath("alicedata") + "/s", "alicesecret\n"));
  std::string volume = VolumeOf("alicedata");
  ASSERT_FALSE(volume.empty());
  std::string harmless = base() + "/harmless";
  ASSERT_EQ(mkdir(harmless.c_str(), 0700), 0);
  CommandResult r = Apply(StaticPairYaml("sneak", harmless, "ReadWriteOnce", "Delete"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("sneak"));
  ASSERT_TRUE(StopDaemon());

  CommandResult sql =
      RunCommand({"sqlite3", data_dir() + "/state/state.db",
                  "UPDATE objects SET body = json_set(body, '$.spec.hostPath.path', '" + real +
                      "/p') WHERE kind = 'PersistentVolume' AND name = 'sneak';"});
  ASSERT_EQ(sql.exit_code, 0) << sql.Describe();
  ASSERT_TRUE(Restart());
  // Both now overlap (alicedata's volume lies inside the pool's real path): neither is mounted
  // until an admin removes the stale volume, as for any overlap found after admission.
  EXPECT_TRUE(WaitFor(
      [&] {
        return DescribeEvents("PersistentVolumeClaim", "sneak").find("overlaps") !=
               std::string::npos;
      },
      10s))
      << DescribeEvents("PersistentVolumeClaim", "sneak");
  EXPECT_FALSE(MountAt(MountPath("sneak")).has_value());

  r = Claimctl({"delete", "pvc", "sneak"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return VolumePhase("sneak") == "Failed"; }, 10s))
      << "PV phase " << VolumePhase("sneak") << "\n"
      << DescribeEvents("PersistentVolume", "sneak");
  EXPECT_EQ(ReadFile(real + "/p/" + volume + "/s"), "alicesecret\n");
}

}  // namespace
}  // namespace claimfs::it
