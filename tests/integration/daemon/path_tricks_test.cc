// Path tricks through the real API (issue 9): every string that becomes a path is checked as the
// kernel will see it. For each trick: the HTTP answer, and that nothing outside the intended
// directory is ever mounted or deleted (the pool, the state directory, the mount root and a
// directory of the machine keep their sentinel files across a Delete reclaim).
//
// CLAIMFS_PATH_TRICKS_REPORT=<file> writes the table (trick -> answer) as Markdown.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

constexpr char kSentinel[] = "claimfs-sentinel";
constexpr char kMarker[] = "marker";

std::string Escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c >= 0x80) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else if (c == '|') {
      out += "\\|";
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Shorten(const std::string& s, size_t n = 140) {
  return s.size() <= n ? s : s.substr(0, n) + "...(" + std::to_string(s.size()) + " bytes)";
}

std::set<std::string> List(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(d);
  return names;
}

std::string PvJson(const std::string& name, const std::string& path) {
  return StaticVolumeJson(name, path).dump();
}

std::string ClaimJson(const std::string& name, const std::string& volume) {
  nlohmann::json claim = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"accessModes", {"ReadWriteOnce"}},
        {"storageClassName", ""},
        {"volumeName", volume},
        {"resources", {{"requests", {{"storage", "16Mi"}}}}}}}};
  return claim.dump();
}

// One trick: what is sent and what must come back.
struct Trick {
  std::string name;
  std::string path;          // hostPath.path (ignored when raw_body or request is set)
  long want_status;          // HTTP status of the create
  std::string want_message;  // a substring of the answer ("" = accepted)
  std::string raw_body;      // sent as the PV create body instead of PvJson
  std::string method;        // with target: a request instead of a PV create
  std::string target;
};

struct Row {
  std::string trick;
  std::string sent;
  long status = 0;
  std::string message;
  std::string mounted;  // what the claim's mount showed
  std::string after_delete;
};

class PathTricksTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(StartDaemon());
    ASSERT_TRUE(CreateDynamicClaim("keep", "16Mi"));
    ASSERT_TRUE(WriteFile(MountPath("keep") + "/canary.txt", "canary"));
    // Sentinels in every directory a trick might reach. Not in the mount root: it is a
    // read-only tmpfs nobody can write to (BareMountpoint checks that).
    for (const std::string& dir : {pool_dir(), data_dir() + "/state", data_dir(), base()}) {
      ASSERT_TRUE(WriteFile(dir + "/" + kSentinel, "sentinel")) << dir;
    }
    intended_ = base() + "/intended";
    ASSERT_EQ(mkdir(intended_.c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(intended_ + "/" + kMarker, "marker"));
  }

  std::vector<std::string> SentinelFiles() const {
    return {pool_dir() + "/" + kSentinel, data_dir() + "/state/" + kSentinel,
            data_dir() + "/state/state.db", data_dir() + "/" + kSentinel,
            base() + "/" + kSentinel};
  }

  // Nothing outside the intended directory was deleted, and the dynamic claim still serves.
  std::string Damage() {
    std::string out;
    for (const std::string& f : SentinelFiles()) {
      if (access(f.c_str(), F_OK) != 0) out += f + " is gone; ";
    }
    if (ReadFile(MountPath("keep") + "/canary.txt") != "canary") out += "claim keep lost its data; ";
    if (!DaemonRunning()) out += "claimfsd died; ";
    return out;
  }

  // Creates a claim pre-bound to `volume`; when the volume exists, waits for the mount and
  // records what it shows, then deletes the claim (Delete reclaim) and checks the sentinels.
  void Exercise(const std::string& volume, Row* row) {
    std::string claim = volume;
    HttpResult c = Http("POST", "/api/v1/namespaces/default/persistentvolumeclaims",
                        ClaimJson(claim, volume));
    ASSERT_EQ(c.status, 201) << c.Describe();
    bool exists = GetVolume(volume).has_value();
    if (exists && WaitBoundAndMounted(claim, 10s)) {
      std::set<std::string> names = List(MountPath(claim));
      std::string shown;
      for (const std::string& n : names) shown += (shown.empty() ? "" : ",") + n;
      row->mounted = names.empty() ? "(empty)" : shown;
      for (const std::string& n : names) {
        EXPECT_EQ(n, kMarker) << row->trick << ": the claim's mount shows " << shown
                              << ", which is not the intended directory";
      }
    } else {
      row->mounted = exists ? "not mounted" : "-";
    }
    HttpResult d = Http("DELETE", "/api/v1/namespaces/default/persistentvolumeclaims/" + claim);
    EXPECT_TRUE(d.status == 200 || d.status == 202) << d.Describe();
    if (exists) {
      WaitFor([&] { return !GetVolume(volume).has_value() || VolumePhase(volume) == "Failed"; },
              10s);
      row->after_delete = GetVolume(volume) ? "PV " + VolumePhase(volume) : "PV deleted";
      Http("DELETE", "/api/v1/persistentvolumes/" + volume);
      // A Failed PV keeps its path until it is gone; the next trick may name the same directory.
      WaitFor([&] { return !GetVolume(volume).has_value(); }, 10s);
    }
    WaitFor([&] { return ClaimPhase(claim).empty(); }, 10s);
    std::string damage = Damage();
    EXPECT_EQ(damage, "") << row->trick;
    if (!damage.empty()) row->after_delete += " DAMAGE: " + damage;
  }

  std::string intended_;
  std::vector<Row> rows_;
};

void WriteReport(const std::vector<Row>& rows) {
  const char* file = std::getenv("CLAIMFS_PATH_TRICKS_REPORT");
  std::ostringstream out;
  out << "| # | trick | sent | HTTP | answer | claim's mount shows | after Delete |\n"
      << "|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out << "| " << i + 1 << " | " << r.trick << " | `" << Shorten(Escape(r.sent), 90) << "` | "
        << r.status << " | " << Shorten(Escape(r.message), 220) << " | " << r.mounted << " | "
        << r.after_delete << " |\n";
  }
  std::cout << out.str();
  if (file != nullptr) std::ofstream(file) << out.str();
}

TEST_F(PathTricksTest, EveryTrickIsRefusedOrServesOnlyTheIntendedDirectory) {
  const std::string pool = pool_dir();
  const std::string state = data_dir() + "/state";
  const std::string mounts = data_dir() + "/claims";
  const std::string longname(256, 'n');
  std::string long_path = base() + "/intended";
  while (long_path.size() <= 4096) long_path += "/" + std::string(200, 'l');

  // Symlink components: a link to the pool in the allowed prefix.
  ASSERT_EQ(symlink(pool.c_str(), (base() + "/to-pool").c_str()), 0);
  ASSERT_EQ(symlink(base().c_str(), (base() + "/to-base").c_str()), 0);

  const std::string kNul = "must not contain NUL";
  const std::string kOverlap = "overlaps";
  const std::vector<Trick> tricks = {
      {"NUL at the end of the pool path", pool + "\0"s, 422, kNul + " (byte " +
                                                                 std::to_string(pool.size()) + ")"},
      {"NUL then ../.. after the pool path", pool + "\0/../.."s, 422, kNul},
      {"NUL in the middle: state\\0x", state + "\0x"s, 422, kNul},
      {"NUL after /tmp/: /tmp/\\0x", "/tmp/\0x"s, 422, kNul + " (byte 5)"},
      {"NUL at the end of the mount root", mounts + "\0"s, 422, kNul},
      {"NUL at the end of the intended directory", intended_ + "\0"s, 422, kNul},
      {"NUL only", "\0"s, 422, kNul + " (byte 0)"},
      {"JSON-escaped NUL written by hand", "", 422, kNul, R"({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"t"},"spec":{"capacity":{"storage":"16Mi"},"accessModes":["ReadWriteOnce"],"persistentVolumeReclaimPolicy":"Delete","storageClassName":"","hostPath":{"path":")" + pool + R"(\u0000"}}})"},
      {"modified-UTF-8 NUL (0xc0 0x80) in the JSON body", "", 400, "",
       R"({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"t"},"spec":{"capacity":{"storage":"16Mi"},"accessModes":["ReadWriteOnce"],"persistentVolumeReclaimPolicy":"Delete","storageClassName":"","hostPath":{"path":")" + pool + "\xc0\x80" + R"("}}})"},
      {"percent-encoded NUL in the path (%00 is three plain bytes)", intended_ + "/%00", 201, ""},
      {"percent-encoded NUL in the URL: GET pv name%00", "", 404, "", "", "GET",
       "/api/v1/persistentvolumes/t%00"},
      {"percent-encoded NUL in the URL: DELETE claim keep%00", "", 404, "", "", "DELETE",
       "/api/v1/namespaces/default/persistentvolumeclaims/keep%00"},
      {"percent-encoded NUL in the URL: namespace default%00", "", 422,
       "metadata.namespace: Invalid value: \"default%00\"", "", "POST",
       "/api/v1/namespaces/default%00/persistentvolumeclaims"},
      {"double slashes", "/" + base() + "//intended", 201, ""},
      {"/./ components", base() + "/./intended/.", 201, ""},
      {"trailing slash", intended_ + "/", 201, ""},
      {".. back into the pool", intended_ + "/../data/pools/default", 422,
       "must not contain '..'"},
      {"/tmp/../etc", "/tmp/../etc", 422, "must not contain '..'"},
      {"/tmp/./k8s/../..", "/tmp/./k8s/../..", 422, "must not contain '..'"},
      {"symlink component to the pool", base() + "/to-pool/pvc-x", 422, "symlink"},
      {"symlink as the last component (to the pool)", base() + "/to-pool", 422, "symlink"},
      {"symlink component to an allowed directory", base() + "/to-base/intended", 422, "symlink"},
      {"longer than PATH_MAX", long_path, 422, "PATH_MAX"},
      {"component of NAME_MAX+1 bytes", base() + "/" + longname, 422, "NAME_MAX"},
      {"non-UTF-8 byte 0xff (raw body)", "", 400, "",
       R"({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"t"},"spec":{"capacity":{"storage":"16Mi"},"accessModes":["ReadWriteOnce"],"persistentVolumeReclaimPolicy":"Delete","storageClassName":"","hostPath":{"path":")" + base() + "/\xff" + R"("}}})"},
      {"control byte 0x01", base() + "/a\x01", 422, "control character 0x01"},
      {"escape 0x1b", base() + "/a\x1b[2J", 422, "control character 0x1b"},
      {"DEL 0x7f", base() + "/a\x7f", 422, "control character 0x7f"},
      {"tab", base() + "/a\tb", 422, "control character 0x09"},
      {"newline", base() + "/a\nb", 422, "control character 0x0a"},
      {"equal to the pool", pool, 422, kOverlap},
      {"equal to the pool, trailing slash", pool + "/", 422, kOverlap},
      {"a volume inside the pool", pool + "/pvc-stolen", 422, kOverlap},
      {"the pools' parent", data_dir() + "/pools", 422, kOverlap},
      {"the data directory (parent of everything)", data_dir(), 422, kOverlap},
      {"equal to the state directory", state, 422, kOverlap},
      {"equal to the mount root", mounts, 422, kOverlap},
      {"a claim's mount under the mount root", mounts + "/default/keep", 422, kOverlap},
      {"/", "/", 422, kOverlap},
      {"/tmp itself (holds the pool here)", "/tmp", 422, kOverlap},
      {"a path whose component is \"..x\" (no backstep)", intended_ + "/..x", 201, ""},
      {"UTF-8 name (accepted)", intended_ + "/caf\xc3\xa9", 201, ""},
      {"relative", "tmp/k8s-pv", 422, "must be an absolute path"},
      {"empty", "", 422, "Required value"},
      {"~", "~", 422, "must be an absolute path"},
      {"~/x", "~/x", 422, "must be an absolute path"},
      {"/proc/self/root/ + the pool", "/proc/self/root" + pool, 422,
       "not below an allowed hostPath prefix"},
      {"/proc/self/cwd", "/proc/self/cwd", 422, "not below an allowed hostPath prefix"},
  };

  int counter = 0;
  for (const Trick& t : tricks) {
    SCOPED_TRACE(t.name);
    Row row;
    row.trick = t.name;
    std::string volume = "trick-" + std::to_string(++counter);
    HttpResult h;
    if (!t.method.empty()) {
      row.sent = t.method + " " + t.target;
      h = Http(t.method, t.target, t.method == "POST" ? ClaimJson("t", "t") : "");
    } else if (!t.raw_body.empty()) {
      row.sent = "raw JSON body, hostPath " + t.raw_body.substr(t.raw_body.find("\"path\":") + 7);
      row.sent = row.sent.substr(0, row.sent.size() - 3);
      h = Http("POST", "/api/v1/persistentvolumes", t.raw_body);
      volume = "t";
    } else {
      row.sent = t.path;
      h = Http("POST", "/api/v1/persistentvolumes", PvJson(volume, t.path));
    }
    row.status = h.status;
    nlohmann::json j = h.Json();
    row.message = j.is_object() ? JsonString(j, "/message", h.body) : h.body;
    if (h.status == 201) row.message = "created";
    EXPECT_EQ(h.status, t.want_status) << h.Describe();
    EXPECT_NE(row.message.find(t.want_message), std::string::npos)
        << "want \"" << t.want_message << "\" in: " << h.body;
    if (!t.method.empty()) {
      row.mounted = "-";
      std::string damage = Damage();
      EXPECT_EQ(damage, "");
      row.after_delete = damage.empty() ? "keep still Bound and serving" : "DAMAGE: " + damage;
    } else {
      Exercise(volume, &row);
    }
    rows_.push_back(row);
    // An accepted trick made its directory below intended_ (or intended_ itself, which Delete
    // removes): put the marker back for the next one.
    mkdir(intended_.c_str(), 0755);
    WriteFile(intended_ + "/" + kMarker, "marker");
  }
  WriteReport(rows_);
  EXPECT_GE(rows_.size(), 30u);
}

// The defect of issue 9: "pools/default\0" passed every check (they compared the string with the
// NUL inside, the syscalls stopped at it), so the claim's mount showed every volume of the pool
// and its Delete removed the pool.
TEST_F(PathTricksTest, NulByteInHostPathCannotExposeOrDeleteThePool) {
  HttpResult h = Http("POST", "/api/v1/persistentvolumes", PvJson("nul", pool_dir() + "\0"s));
  EXPECT_EQ(h.status, 422) << h.Describe();
  EXPECT_NE(h.body.find("spec.hostPath.path: Invalid value: \\\"" + pool_dir() +
                        "\\\\x00\\\": must not contain NUL (byte " +
                        std::to_string(pool_dir().size()) + ")"),
            std::string::npos)
      << h.body;
  Row row{"nul", pool_dir() + "\0"s};
  Exercise("nul", &row);
  EXPECT_EQ(row.mounted, "-") << "the PV was created and its mount showed " << row.mounted;
}

TEST_F(PathTricksTest, NulByteInHostPathCannotExposeTheStateDirectory) {
  HttpResult h =
      Http("POST", "/api/v1/persistentvolumes", PvJson("state", data_dir() + "/state\0x"s));
  EXPECT_EQ(h.status, 422) << h.Describe();
  EXPECT_NE(h.body.find("must not contain NUL"), std::string::npos) << h.body;
  Row row{"state", data_dir() + "/state\0x"s};
  Exercise("state", &row);
  EXPECT_EQ(row.mounted, "-") << "the PV was created and its mount showed " << row.mounted;
}

TEST_F(PathTricksTest, NulByteInHostPathCannotClaimAllOfTmp) {
  HttpResult h = Http("POST", "/api/v1/persistentvolumes", PvJson("tmp", "/tmp/\0x"s));
  EXPECT_EQ(h.status, 422) << h.Describe();
  EXPECT_NE(h.body.find("must not contain NUL (byte 5)"), std::string::npos) << h.body;
  Row row{"tmp", "/tmp/\0x"s};
  Exercise("tmp", &row);
  EXPECT_EQ(row.mounted, "-") << "the PV was created and its mount showed " << row.mounted;
}

// The same trick through claimctl and a YAML manifest ("\0" is YAML's escape for NUL).
TEST_F(PathTricksTest, NulByteInYamlManifestIsRefusedNamingTheField) {
  CommandResult r =
      Apply(StaticPairYaml("yaml-nul", "\"" + pool_dir() + "\\0\"", "ReadWriteOnce", "Delete"));
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.err.find("spec.hostPath.path: Invalid value: \"" + pool_dir() +
                       "\\x00\": must not contain NUL"),
            std::string::npos)
      << r.Describe();
  EXPECT_FALSE(GetVolume("yaml-nul").has_value());
  Row row{"yaml-nul", pool_dir() + "\0"s};
  Http("DELETE", "/api/v1/namespaces/default/persistentvolumeclaims/yaml-nul");
  WaitFor([&] { return ClaimPhase("yaml-nul").empty(); }, 10s);
  EXPECT_EQ(Damage(), "");
}

// A component admitted as a directory and swapped for a symlink to the pool before the claim
// binds: the mount refuses it (FailedMount: the path now leads into the pool, or goes through a
// symlink), nothing of the pool is shown, and Delete leaves the
// pool alone.
TEST_F(PathTricksTest, ComponentSwappedToSymlinkAfterAdmissionIsNeitherMountedNorDeleted) {
  std::string parent = base() + "/swap";
  ASSERT_EQ(mkdir(parent.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((parent + "/dir").c_str(), 0755), 0);
  HttpResult h = Http("POST", "/api/v1/persistentvolumes", PvJson("swap", parent + "/dir/vol"));
  ASSERT_EQ(h.status, 201) << h.Describe();
  // Swap: dir becomes a link to the pool; "vol" below it names a directory we plant there.
  ASSERT_EQ(rename((parent + "/dir").c_str(), (parent + "/old").c_str()), 0);
  ASSERT_EQ(symlink(pool_dir().c_str(), (parent + "/dir").c_str()), 0);
  ASSERT_EQ(mkdir((pool_dir() + "/vol").c_str(), 0700), 0);
  ASSERT_TRUE(WriteFile(pool_dir() + "/vol/secret", "secret"));
  HttpResult c = Http("POST", "/api/v1/namespaces/default/persistentvolumeclaims",
                      ClaimJson("swap", "swap"));
  ASSERT_EQ(c.status, 201) << c.Describe();
  auto failed_mount = [&] {
    for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", "swap")) {
      std::string message = JsonString(e, "/message");
      if (JsonString(e, "/reason") == "FailedMount" &&
          (message.find("symlink") != std::string::npos ||
           message.find("overlaps pool default") != std::string::npos)) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(WaitFor(failed_mount, 10s)) << DescribeEvents("PersistentVolumeClaim", "swap");
  EXPECT_TRUE(MountsUnder(MountPath("swap")).empty());
  EXPECT_EQ(List(MountPath("swap")).count("secret"), 0u);
  HttpResult d = Http("DELETE", "/api/v1/namespaces/default/persistentvolumeclaims/swap");
  EXPECT_TRUE(d.status == 200 || d.status == 202) << d.Describe();
  WaitFor([&] { return !GetVolume("swap").has_value() || VolumePhase("swap") == "Failed"; }, 10s);
  EXPECT_EQ(ReadFile(pool_dir() + "/vol/secret"), "secret");
  EXPECT_EQ(Damage(), "");
}

}  // namespace
}  // namespace claimfs::it
