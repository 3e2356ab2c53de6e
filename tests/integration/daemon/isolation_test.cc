// Who can reach what: a claim's volume belongs to the user who asked for it (the API caller's
// peer credentials, or the user a root caller impersonates), others get EACCES on its mount,
// and the daemon's own directories (pools, state, mount root) are not for unprivileged users.
// Other users are forked children that switch to uids/gids like 1001 with setresuid/setgroups:
// no accounts needed.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "daemon/as_user.h"
#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using nlohmann::json;

std::string ClaimBody(const std::string& name, const std::map<std::string, std::string>& ann = {}) {
  json claim = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "16Mi"}}}}}}}};
  if (!ann.empty()) claim["metadata"]["annotations"] = ann;
  return claim.dump();
}

constexpr char kClaims[] = "/api/v1/namespaces/default/persistentvolumeclaims";

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 07777 + 1;
  return st.st_mode & 07777;
}

class IsolationTest : public DaemonTest {
 protected:
  // Lets every local user connect to the API socket (the test's stand-in for socket.group).
  void OpenSocketToEveryone() { ASSERT_EQ(chmod(socket_path().c_str(), 0666), 0); }

  // What `who` gets for read, write, list, traverse and stat on the claim's mount.
  std::map<std::string, std::string> Access(const Identity& who, const std::string& mount) {
    std::string out = RunAs(who, [&] {
      std::string r;
      int fd = open((mount + "/owned").c_str(), O_RDONLY);
      r += "read=" + Errno(fd);
      if (fd >= 0) close(fd);
      std::string mine = mount + "/by-" + std::to_string(getuid());
      fd = open(mine.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      r += " write=" + Errno(fd);
      if (fd >= 0) close(fd);
      DIR* dir = opendir(mount.c_str());
      r += " list=" + Errno(dir ? 0 : -1);
      if (dir) closedir(dir);
      struct stat st;
      r += " traverse=" + Errno(stat((mount + "/sub/inner").c_str(), &st));
      r += " stat=" + Errno(stat(mount.c_str(), &st));
      return r;
    });
    std::map<std::string, std::string> result;
    size_t start = 0;
    while (start < out.size()) {
      size_t end = out.find(' ', start);
      if (end == std::string::npos) end = out.size();
      std::string item = out.substr(start, end - start);
      size_t eq = item.find('=');
      if (eq == std::string::npos) {
        result["error"] = out;
        break;
      }
      result[item.substr(0, eq)] = item.substr(eq + 1);
      start = end + 1;
    }
    return result;
  }

  // Files the matrix reads and traverses to, the owner's as they would be had it made them.
  void Populate(const std::string& mount, uid_t uid, gid_t gid) {
    std::ofstream(mount + "/owned") << "data";
    ASSERT_EQ(chmod((mount + "/owned").c_str(), 0660), 0);
    ASSERT_EQ(mkdir((mount + "/sub").c_str(), 0770), 0);
    std::ofstream(mount + "/sub/inner") << "x";
    for (const char* name : {"/owned", "/sub", "/sub/inner"}) {
      ASSERT_EQ(chown((mount + name).c_str(), uid, gid), 0) << strerror(errno);
    }
  }
};

const Identity kOwner{1001, 1001, {}};
const Identity kGroupMember{1002, 1002, {1001}};
const Identity kStranger{1003, 1003, {}};
const Identity kRoot{0, 0, {}};

// Defect 4 of issue 9: uid 1001, with no access to the API socket, wrote into root's claim.
TEST_F(IsolationTest, AnotherUserCannotWriteIntoSomeonesClaim) {
  // As an installed claimfsd finds /run/claimfs and /var/lib/claimfs: there, and 0755.
  ASSERT_EQ(mkdir(data_dir().c_str(), 0755), 0);
  ASSERT_EQ(chmod(data_dir().c_str(), 0755), 0);
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("private", "16Mi"));
  std::string mount = MountPath("private");
  std::ofstream(mount + "/secret") << "root's";
  std::string got = RunAs(kOwner, [&] {
    int fd = open((mount + "/intruder").c_str(), O_WRONLY | O_CREAT, 0644);
    std::string w = Errno(fd);
    if (fd >= 0) close(fd);
    fd = open((mount + "/secret").c_str(), O_RDONLY);
    std::string r = Errno(fd);
    if (fd >= 0) close(fd);
    return "write=" + w + " read=" + r;
  });
  EXPECT_EQ(got, "write=EACCES read=EACCES");
  EXPECT_FALSE(std::filesystem::exists(mount + "/intruder"));
}

// Defect 4 of issue 9: an existing pool directory stayed reachable, so another user could read
// (or run setuid files from) a volume's backing copy.
TEST_F(IsolationTest, AnotherUserCannotReachThePool) {
  ASSERT_TRUE(std::filesystem::create_directories(pool_dir()));
  ASSERT_EQ(chmod(pool_dir().c_str(), 0755), 0);
  ASSERT_EQ(chmod((data_dir() + "/pools").c_str(), 0755), 0);
  ASSERT_TRUE(StartDaemon());
  EXPECT_EQ(ModeOf(pool_dir()), 0700u);
  EXPECT_NE(DaemonLog().find("0755 -> 0700"), std::string::npos) << DaemonLog();
  ASSERT_TRUE(CreateDynamicClaim("data", "16Mi"));
  std::ofstream(MountPath("data") + "/file") << "private";
  std::string backing = pool_dir() + "/" + VolumeOf("data") + "/file";
  ASSERT_TRUE(std::filesystem::exists(backing));
  std::string got = RunAs(kStranger, [&] {
    int fd = open(backing.c_str(), O_RDONLY);
    if (fd >= 0) close(fd);
    DIR* dir = opendir(pool_dir().c_str());
    std::string list = Errno(dir ? 0 : -1);
    if (dir) closedir(dir);
    return "read=" + Errno(fd) + " list=" + list;
  });
  EXPECT_EQ(got, "read=EACCES list=EACCES");
}

TEST_F(IsolationTest, AClaimCreatedOverTheSocketBelongsToItsCaller) {
  ASSERT_TRUE(StartDaemon());
  OpenSocketToEveryone();
  std::string answer =
      RunAs(kOwner, [&] { return RawHttp(socket_path(), "POST", kClaims, ClaimBody("mine")); });
  ASSERT_EQ(StatusOf(answer), 201) << answer;
  std::optional<json> claim = GetClaim("mine");
  ASSERT_TRUE(claim);
  EXPECT_EQ((*claim)["metadata"]["annotations"].value("claimfs.io/owner-uid", ""), "1001");
  EXPECT_EQ((*claim)["metadata"]["annotations"].value("claimfs.io/owner-gid", ""), "1001");
  ASSERT_TRUE(WaitBoundAndMounted("mine"));
  std::string mount = MountPath("mine");
  struct stat st;
  ASSERT_EQ(stat(mount.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1001u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode & 07777, 0770u);
}

// Owner, a member of the owning group, another user and root on one claim's mount.
TEST_F(IsolationTest, UidMatrixOnAClaimsMount) {
  ASSERT_TRUE(StartDaemon());
  OpenSocketToEveryone();
  std::string answer =
      RunAs(kOwner, [&] { return RawHttp(socket_path(), "POST", kClaims, ClaimBody("matrix")); });
  ASSERT_EQ(StatusOf(answer), 201) << answer;
  ASSERT_TRUE(WaitBoundAndMounted("matrix"));
  std::string mount = MountPath("matrix");
  Populate(mount, kOwner.uid, kOwner.gid);

  using Row = std::map<std::string, std::string>;
  const Row all_ok{
      {"read", "ok"}, {"write", "ok"}, {"list", "ok"}, {"traverse", "ok"}, {"stat", "ok"}};
  EXPECT_EQ(Access(kOwner, mount), all_ok) << "the owner";
  EXPECT_EQ(Access(kGroupMember, mount), all_ok) << "a member of the owning group";
  EXPECT_EQ(Access(kRoot, mount), all_ok) << "root";
  const Row refused{{"read", "EACCES"},
                    {"write", "EACCES"},
                    {"list", "EACCES"},
                    {"traverse", "EACCES"},
                    {"stat", "ok"}};
  EXPECT_EQ(Access(kStranger, mount), refused) << "another user";

  // Mount root and namespace directory: reached by path, listed by nobody but root.
  for (const Identity& who : {kOwner, kStranger}) {
    std::string got = RunAs(who, [&] {
      std::string r;
      for (const std::string& dir : {data_dir() + "/claims", data_dir() + "/claims/default"}) {
        DIR* d = opendir(dir.c_str());
        r += Errno(d ? 0 : -1) + " ";
        if (d) closedir(d);
      }
      struct stat st;
      r += Errno(stat(mount.c_str(), &st));
      return r;
    });
    EXPECT_EQ(got, "EACCES EACCES ok") << "uid " << who.uid;
  }
}

// A hostPath directory that was missing is created for the claim's owner, mode 0770, below
// parents only root enters: before, it was root's 0755 on /tmp, its owner could not write to it
// and every local user read what was written through the mount from the backing directory.
TEST_F(IsolationTest, HostPathDirectoryClaimfsdCreatesBelongsToTheClaimsOwner) {
  ASSERT_TRUE(StartDaemon());
  OpenSocketToEveryone();
  const std::string parent = base() + "/made-by-claimfsd";
  const std::string leaf = parent + "/for-alice";
  json pv = StaticVolumeJson("made", leaf, "Retain");
  std::string created = RawHttp(socket_path(), "POST", "/api/v1/persistentvolumes", pv.dump());
  ASSERT_EQ(StatusOf(created), 201) << created;
  json claim = json::parse(ClaimBody("made"));
  claim["spec"]["storageClassName"] = "";
  claim["spec"]["volumeName"] = "made";
  std::string answer =
      RunAs(kOwner, [&] { return RawHttp(socket_path(), "POST", kClaims, claim.dump()); });
  ASSERT_EQ(StatusOf(answer), 201) << answer;
  ASSERT_TRUE(WaitBoundAndMounted("made"));

  struct stat st;
  ASSERT_EQ(lstat(leaf.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_uid, kOwner.uid);
  EXPECT_EQ(st.st_gid, kOwner.gid);
  EXPECT_EQ(st.st_mode & 07777, 0770u);
  ASSERT_EQ(lstat(parent.c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  std::string mount = MountPath("made");
  std::string wrote = RunAs(kOwner, [&] {
    int fd = open((mount + "/note").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
    return Errno(fd);
  });
  EXPECT_EQ(wrote, "ok") << "the owner writes into its own claim";
  std::string backing = RunAs(kStranger, [&] {
    int fd = open((leaf + "/note").c_str(), O_RDONLY);
    if (fd >= 0) close(fd);
    return Errno(fd);
  });
  EXPECT_EQ(backing, "EACCES") << "another user reads the backing directory";
}

TEST_F(IsolationTest, RootActingForAUserGivesThatUserTheClaim) {
  ASSERT_TRUE(StartDaemon());
  std::string answer =
      RawHttp(socket_path(), "POST", kClaims, ClaimBody("acted"),
              {"Impersonate-User: someone", "Impersonate-Uid: 1005", "Impersonate-Group: 1006"});
  ASSERT_EQ(StatusOf(answer), 201) << answer;
  ASSERT_TRUE(WaitBoundAndMounted("acted"));
  struct stat st;
  ASSERT_EQ(stat(MountPath("acted").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1005u);
  EXPECT_EQ(st.st_gid, 1006u);

  // claimctl run through sudo sends those headers from SUDO_UID/SUDO_GID/SUDO_USER.
  CommandOptions sudo;
  sudo.env = {"SUDO_UID=1007", "SUDO_GID=1008", "SUDO_USER=someone-else"};
  sudo.stdin_data = ClaimBody("sudoed");
  CommandResult applied = Claimctl({"apply", "-f", "-"}, sudo);
  ASSERT_EQ(applied.exit_code, 0) << applied.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("sudoed"));
  ASSERT_EQ(stat(MountPath("sudoed").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1007u);
  EXPECT_EQ(st.st_gid, 1008u);
}

TEST_F(IsolationTest, OnlyRootMayActForAnotherUserOrGiveAClaimAway) {
  ASSERT_TRUE(StartDaemon());
  OpenSocketToEveryone();
  struct Case {
    const char* what;
    std::vector<std::string> headers;
    std::map<std::string, std::string> annotations;
    int status;
    const char* message;
  };
  // The daemon names the caller as the system does: by its user name where uid 1001 has one.
  const passwd* account = getpwuid(kOwner.uid);
  const std::string refused_user = "users \"root\" is forbidden: User \"" +
                                   (account ? std::string(account->pw_name) : "1001") +
                                   "\" cannot impersonate resource \"users\"";
  const Case cases[] = {
      {"impersonate a user",
       {"Impersonate-User: root"},
       {},
       403,
       refused_user.c_str()},
      {"impersonate a uid",
       {"Impersonate-Uid: 0"},
       {},
       403,
       "cannot impersonate resource \"uids\""},
      {"impersonate a group",
       {"Impersonate-Group: 0"},
       {},
       403,
       "cannot impersonate resource \"groups\""},
      {"someone else's uid", {}, {{"claimfs.io/owner-uid", "0"}}, 403, "claimfs.io/owner-uid"},
      {"a group it is not in", {}, {{"claimfs.io/owner-gid", "0"}}, 403, "claimfs.io/owner-gid"},
      {"a group it is in", {}, {{"claimfs.io/owner-gid", "1001"}}, 201, ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::string name = "c" + std::to_string(n++);
    std::string answer = RunAs(kOwner, [&] {
      return RawHttp(socket_path(), "POST", kClaims, ClaimBody(name, c.annotations), c.headers);
    });
    EXPECT_EQ(StatusOf(answer), c.status) << c.what << ": " << answer;
    if (c.status == 403) {
      EXPECT_NE(MessageOf(answer).find(c.message), std::string::npos) << c.what << ": " << answer;
      EXPECT_EQ(ClaimPhase(name), "") << c.what;
    }
  }
  // Reads with impersonation are refused too.
  std::string read = RunAs(kOwner, [&] {
    return RawHttp(socket_path(), "GET", kClaims, "", {"Impersonate-User: root"});
  });
  EXPECT_EQ(StatusOf(read), 403) << read;

  // Giving an existing claim away on update is refused the same way.
  std::string patched = RunAs(kOwner, [&] {
    return RawHttp(socket_path(), "PATCH", std::string(kClaims) + "/c5",
                   R"({"metadata":{"annotations":{"claimfs.io/owner-uid":"1003"}}})", {},
                   "application/merge-patch+json");
  });
  EXPECT_EQ(StatusOf(patched), 403) << patched;
  EXPECT_NE(MessageOf(patched).find("may not set metadata.annotations[claimfs.io/owner-uid]"),
            std::string::npos)
      << patched;
  std::string renamed = RunAs(kOwner, [&] {
    return RawHttp(socket_path(), "PATCH", std::string(kClaims) + "/c5",
                   R"({"metadata":{"labels":{"a":"b"}}})", {}, "application/merge-patch+json");
  });
  EXPECT_EQ(StatusOf(renamed), 200) << renamed;
  // The owner is a record: an update that drops it keeps it.
  std::string dropped = RunAs(kOwner, [&] {
    return RawHttp(socket_path(), "PATCH", std::string(kClaims) + "/c5",
                   R"({"metadata":{"annotations":{"claimfs.io/owner-uid":null}}})", {},
                   "application/merge-patch+json");
  });
  EXPECT_EQ(StatusOf(dropped), 200) << dropped;
  std::optional<json> c5 = GetClaim("c5");
  ASSERT_TRUE(c5);
  EXPECT_EQ((*c5)["metadata"]["annotations"].value("claimfs.io/owner-uid", ""), "1001");
}

TEST_F(IsolationTest, DaemonDirectoriesAndFilesAreNotForOtherUsers) {
  std::string plugin_socket = base() + "/plugin.sock";
  // Appended right after socket.path: the socket's group, and the plugin on its own socket.
  std::string config = WriteConfig(
      "  group: \"4321\"\nvolumePlugin:\n  enabled: true\n  socket: " + plugin_socket + "\n");
  ASSERT_TRUE(StartDaemon({"--config", config}));
  ASSERT_TRUE(CreateDynamicClaim("data", "16Mi"));
  ASSERT_EQ(Claimctl({"use", "data", "--", "true"}).exit_code, 0);

  EXPECT_EQ(ModeOf(data_dir() + "/state"), 0700u);
  for (const auto& entry : std::filesystem::directory_iterator(data_dir() + "/state")) {
    if (!entry.is_regular_file()) continue;
    EXPECT_EQ(ModeOf(entry.path().string()), 0600u) << entry.path();
  }
  EXPECT_TRUE(std::filesystem::exists(data_dir() + "/state/state.db-wal"));
  EXPECT_EQ(ModeOf(pool_dir()), 0700u);
  EXPECT_EQ(ModeOf(data_dir() + "/claims"), 0711u);
  EXPECT_EQ(ModeOf(data_dir() + "/claims/default"), 0711u);
  EXPECT_EQ(ModeOf(MountPath("data")), 0770u);
  for (const std::string& socket : {socket_path(), plugin_socket}) {
    struct stat st;
    ASSERT_EQ(stat(socket.c_str(), &st), 0) << socket;
    EXPECT_EQ(st.st_gid, 4321u) << socket;
    EXPECT_EQ(st.st_mode & 07777, 0660u) << socket;
  }
}

TEST_F(IsolationTest, QuickStartDirectoryIsTraversableNotListable) {
  ASSERT_TRUE(std::filesystem::create_directories(data_dir() + "/state"));
  ASSERT_EQ(chmod(data_dir().c_str(), 0755), 0);
  ASSERT_EQ(chmod((data_dir() + "/state").c_str(), 0755), 0);
  std::ofstream(data_dir() + "/state/leases.json") << "[]";
  ASSERT_EQ(chmod((data_dir() + "/state/leases.json").c_str(), 0644), 0);
  ASSERT_TRUE(StartDaemon());
  EXPECT_EQ(ModeOf(data_dir()), 0711u);
  EXPECT_EQ(ModeOf(data_dir() + "/state"), 0700u);
  EXPECT_EQ(ModeOf(data_dir() + "/state/leases.json"), 0600u);
  EXPECT_EQ(ModeOf(data_dir() + "/state/state.db"), 0600u);
}

// Docker's convention: plugin volumes are root's 0755, and no host user reaches them.
TEST_F(IsolationTest, DockerPluginVolumesAreBehindARootOnlyDirectory) {
  ASSERT_TRUE(StartDaemon());
  std::string plugin = data_dir() + "/docker-plugin.sock";
  std::string created =
      RawHttp(plugin, "POST", "/VolumeDriver.Create", R"({"Name":"dv","Opts":{"size":"16Mi"}})");
  ASSERT_EQ(StatusOf(created), 200) << created;
  ASSERT_EQ(created.find("claimfs:"), std::string::npos) << created;
  ASSERT_TRUE(WaitBoundAndMounted("dv", std::chrono::seconds(10), "docker"));
  std::string mount = MountPath("dv", "docker");
  EXPECT_EQ(ModeOf(mount), 0755u);
  EXPECT_EQ(ModeOf(data_dir() + "/claims/docker"), 0700u);
  std::string got = RunAs(kStranger, [&] {
    struct stat st;
    return Errno(stat(mount.c_str(), &st));
  });
  EXPECT_EQ(got, "EACCES");
}

// What `sudo claimctl` looks like to claimctl: root, with the invoking user in SUDO_*.
// SUDO_USER=root names an account that is not SUDO_UID's: its groups must not be taken.
const std::vector<std::string> kSudoEnv = {"SUDO_UID=1001", "SUDO_GID=1001", "SUDO_USER=root"};

// A directory every user may traverse, for files the tests give to root or to uid 1001.
class SudoFiles {
 public:
  SudoFiles() {
    char name[] = "/tmp/claimfs-sudo-XXXXXX";
    if (mkdtemp(name) != nullptr) dir_ = name;
    chmod(dir_.c_str(), 0755);
  }
  ~SudoFiles() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }
  std::string Write(const std::string& name, const std::string& text, uid_t uid, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
    EXPECT_EQ(chown(path.c_str(), uid, uid), 0) << strerror(errno);
    EXPECT_EQ(chmod(path.c_str(), mode), 0) << strerror(errno);
    return path;
  }

 private:
  std::string dir_;
};

// Issue 9 (H1): `sudo claimctl use CLAIM -- CMD` ran CMD as root, so a sudo rule for claimctl
// alone was a root shell.
TEST_F(IsolationTest, SudoClaimctlUseRanTheCommandAsRoot) {
  ASSERT_EQ(mkdir(data_dir().c_str(), 0755), 0);
  ASSERT_TRUE(StartDaemon());
  CommandOptions sudo;
  sudo.env = kSudoEnv;
  sudo.stdin_data = ClaimBody("mine");
  CommandResult r = Claimctl({"apply", "-f", "-"}, sudo);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("mine"));
  sudo.stdin_data.clear();
  r = Claimctl({"use", "mine", "--", "sh", "-c",
                "id -u; id -g; id -G; echo \"$HOME $USER\"; touch \"$CLAIMFS_MOUNT/by-cmd\""},
               sudo);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "1001\n1001\n1001\n/ 1001\n");
  struct stat st;
  ASSERT_EQ(stat((MountPath("mine") + "/by-cmd").c_str(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_uid, 1001u);
  EXPECT_EQ(st.st_gid, 1001u);
}

// Issue 9 (H1): `sudo claimctl apply -f FILE` read FILE as root and echoed a line of it in its
// error, so any user allowed to run claimctl through sudo could read root's files.
TEST_F(IsolationTest, SudoClaimctlApplyReadRootOnlyFiles) {
  ASSERT_TRUE(StartDaemon());
  SudoFiles files;
  const std::string secret = "apiVersion: v1\nkind: root-only-secret\n";  // errors echo the kind
  std::string root_file = files.Write("secret", secret, 0, 0600);
  files.Write("dir/secret.yaml", secret, 0, 0600);
  ASSERT_EQ(chmod((files.dir() + "/dir").c_str(), 0755), 0);
  std::string root_dir = files.dir() + "/private";
  ASSERT_EQ(mkdir(root_dir.c_str(), 0700), 0);
  files.Write("private/secret.yaml", secret, 0, 0644);
  CommandOptions sudo;
  sudo.env = kSudoEnv;
  for (const std::string& path :
       {root_file, files.dir() + "/dir", root_dir, root_dir + "/secret.yaml"}) {
    CommandResult r = Claimctl({"apply", "-f", path}, sudo);
    EXPECT_NE(r.exit_code, 0) << path << ": " << r.Describe();
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << path << ": " << r.Describe();
    EXPECT_EQ((r.out + r.err).find("root-only-secret"), std::string::npos) << r.Describe();
  }
  // Root itself, without sudo, still reads them.
  CommandResult r = Claimctl({"apply", "-f", root_file});
  EXPECT_NE(r.err.find("root-only-secret"), std::string::npos) << r.Describe();
}

TEST_F(IsolationTest, SudoClaimctlApplyReadsTheUsersOwnFiles) {
  ASSERT_TRUE(StartDaemon());
  SudoFiles files;
  std::string own = files.Write("claims/mine.yaml", ClaimBody("mine"), 1001, 0600);
  ASSERT_EQ(chown((files.dir() + "/claims").c_str(), 1001, 1001), 0);
  ASSERT_EQ(chmod((files.dir() + "/claims").c_str(), 0700), 0);
  CommandOptions sudo;
  sudo.env = kSudoEnv;
  CommandResult r = Claimctl({"apply", "-f", own}, sudo);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Claimctl({"apply", "-f", files.dir() + "/claims"}, sudo);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::optional<json> claim = GetClaim("mine");
  ASSERT_TRUE(claim);
  EXPECT_EQ((*claim)["metadata"]["annotations"].value("claimfs.io/owner-uid", ""), "1001");
}

}  // namespace
}  // namespace claimfs::it
