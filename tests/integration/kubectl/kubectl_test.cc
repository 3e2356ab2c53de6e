// The real kubectl against the real claimfsd: the HTTPS listener's authentication, then the
// article's commands and the kubectl commands users reach for, each compared with what kubectl
// prints against a Kubernetes API server (v1.28, the release claimfsd answers as).
//
// kubectl is $CLAIMFS_KUBECTL, else `kubectl` on PATH (scripts/install-deps --test installs
// Debian's kubernetes-client when there is none). Without any, every test skips saying so.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "daemon/as_user.h"
#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

std::string FindKubectl() {
  if (const char* given = std::getenv("CLAIMFS_KUBECTL"); given && *given) return given;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/kubectl";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// A table line split at runs of two or more spaces: "ACCESS MODES" stays one cell. Empty cells
// vanish, so rows are compared with Cells() instead.
std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  std::regex separator("  +");
  for (std::sregex_token_iterator it(line.begin(), line.end(), separator, -1), end; it != end;
       ++it) {
    if (!it->str().empty()) out.push_back(*it);
  }
  return out;
}

// Cells of `row` cut at the columns of `header` (kubectl's tabwriter aligns them).
std::vector<std::string> Cells(const std::string& header, const std::string& row) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] != ' ' && (i == 0 || (i >= 2 && header[i - 1] == ' ' && header[i - 2] == ' '))) {
      starts.push_back(i);
    }
  }
  std::vector<std::string> cells;
  for (size_t c = 0; c < starts.size(); ++c) {
    size_t end = c + 1 < starts.size() ? starts[c + 1] : std::string::npos;
    std::string cell = starts[c] < row.size() ? row.substr(starts[c], end - starts[c]) : "";
    while (!cell.empty() && cell.back() == ' ') cell.pop_back();
    cells.push_back(cell);
  }
  return cells;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const std::regex kAge("^[0-9]+s$");

class KubectlTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    kubectl_ = FindKubectl();
    if (kubectl_.empty()) {
      GTEST_SKIP() << "no kubectl: neither $CLAIMFS_KUBECTL nor kubectl on PATH "
                      "(scripts/install-deps --test installs Debian's kubernetes-client)";
    }
    ASSERT_TRUE(StartDaemon({"--data-dir", data_dir(), "--kube-api", "127.0.0.1:0"}));
    CommandResult config = Claimctl({"kubeconfig"});
    ASSERT_EQ(config.exit_code, 0) << config.Describe();
    std::smatch server;
    ASSERT_TRUE(std::regex_search(config.out, server, std::regex("server: (https://[^\\s]+)")))
        << config.out;
    server_ = server[1];
    kubeconfig_ = base() + "/kubeconfig";
    std::ofstream(kubeconfig_) << config.out;
  }

  CommandResult Kubectl(std::vector<std::string> args, CommandOptions options = {}) {
    args.insert(args.begin(), kubectl_);
    // HOME: kubectl's discovery cache goes under the test's directory, not the user's.
    options.env.push_back("KUBECONFIG=" + kubeconfig_);
    options.env.push_back("HOME=" + base());
    return RunCommand(args, options);
  }

  std::string ManifestPath(const std::string& name) {
    return std::string(CLAIMFS_SOURCE_DIR) + "/config/examples/" + name;
  }

  // curl over TLS with the daemon's CA: "<status>\n<body>".
  CommandResult Curl(std::vector<std::string> extra, const std::string& path) {
    std::vector<std::string> args = {"curl", "-sS",           "--max-time",
                                     "20",   "--cacert",      data_dir() + "/state/kube-ca.crt",
                                     "-w",   "\n%{http_code}"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(server_ + path);
    return RunCommand(args);
  }

  static long StatusOf(const CommandResult& result) {
    size_t nl = result.out.rfind('\n');
    return std::atol(result.out.c_str() + (nl == std::string::npos ? 0 : nl + 1));
  }

  std::string Token() {
    std::smatch token;
    std::string text = ReadFile(kubeconfig_);
    if (!std::regex_search(text, token, std::regex("token: ([^\\s]+)"))) return "";
    return token[1];
  }

  std::string kubectl_;
  std::string server_;
  std::string kubeconfig_;
};

// ---- who gets in

TEST_F(KubectlTest, KubectlWithTheKubeconfigGetsIn) {
  CommandResult version = Kubectl({"version"});
  EXPECT_EQ(version.exit_code, 0) << version.Describe();
  // "Server Version: v1.28.0-claimfs", or kubectl 1.20's GitVersion:"v1.28.0-claimfs".
  EXPECT_NE(version.out.find("v1.28.0-claimfs"), std::string::npos) << version.Describe();
}

TEST_F(KubectlTest, NoTokenWrongTokenAndForgedTokenGet401) {
  CommandResult none = Curl({}, "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(none), 401) << none.Describe();
  EXPECT_NE(none.out.find("\"reason\":\"Unauthorized\""), std::string::npos) << none.out;
  CommandResult wrong = Curl({"-H", "Authorization: Bearer nonsense"}, "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(wrong), 401) << wrong.Describe();
  // The right shape, the wrong MAC: root's token with one hex digit changed.
  std::string forged = Token();
  ASSERT_FALSE(forged.empty());
  forged.back() = forged.back() == '0' ? '1' : '0';
  CommandResult bad = Curl({"-H", "Authorization: Bearer " + forged}, "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(bad), 401) << bad.Describe();
  // Basic auth is not a way in either.
  CommandResult basic = Curl({"-u", "root:root"}, "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(basic), 401) << basic.Describe();
  CommandResult good =
      Curl({"-H", "Authorization: Bearer " + Token()}, "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(good), 200) << good.Describe();
}

TEST_F(KubectlTest, KubectlWithoutCredentialsIsUnauthorized) {
  std::string text = ReadFile(kubeconfig_);
  text = std::regex_replace(text, std::regex("token: [^\\s]+"), "token: claimfs-0.00");
  std::ofstream(kubeconfig_) << text;
  CommandResult get = Kubectl({"get", "pv"});
  EXPECT_NE(get.exit_code, 0);
  // kubectl 1.20 says "(Unauthorized)", later ones "(the server has asked for the client to
  // provide credentials)": both what they print for an API server's 401.
  EXPECT_NE(get.err.find("error: You must be logged in to the server ("), std::string::npos)
      << get.Describe();
}

TEST_F(KubectlTest, AnotherCaIsNotTrusted) {
  // A kubeconfig trusting some other CA: kubectl refuses the server's certificate.
  CommandResult other =
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=other", "-keyout",
                  base() + "/other.key", "-out", base() + "/other.crt", "-days", "1"});
  ASSERT_EQ(other.exit_code, 0) << other.Describe();
  CommandResult get = Kubectl({"--certificate-authority", base() + "/other.crt", "get", "pv"});
  EXPECT_NE(get.exit_code, 0);
  EXPECT_NE(get.err.find("certificate"), std::string::npos) << get.Describe();
}

TEST_F(KubectlTest, CredentialsAreRootsAloneOnDisk) {
  for (const char* name : {"kube-ca.crt", "kube-ca.key", "kube-token.secret"}) {
    struct stat st;
    std::string path = data_dir() + "/state/" + name;
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << path;
    EXPECT_EQ(st.st_uid, 0u) << path;
  }
}

TEST_F(KubectlTest, UserOutsideTheSocketGroupCannotObtainAToken) {
  // uid 1001 is not root and not in the socket's group (root's): the socket refuses it, so it
  // never gets a kubeconfig.
  std::string answer = RunAs({1001, 1001, {}}, [&] {
    return RawHttp(socket_path(), "GET", "/apis/claimfs.io/v1/kubeconfig", "");
  });
  EXPECT_EQ(answer.find("token:"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Permission denied"), std::string::npos) << answer;
}

TEST_F(KubectlTest, TokenOfAUserWhoMayNotUseTheSocketIsRefused) {
  // A token made with the daemon's own secret (as if it had been handed out earlier) for a uid
  // that is not in the socket's group: valid MAC, still 401.
  std::string secret = ReadFile(data_dir() + "/state/kube-token.secret");
  while (!secret.empty() && secret.back() == '\n') secret.pop_back();
  CommandResult mac = RunCommand({"openssl", "dgst", "-sha256", "-hmac", secret},
                                 CommandOptions{"claimfs-kube-token:1001", {}, 10s});
  ASSERT_EQ(mac.exit_code, 0) << mac.Describe();
  std::string hex = mac.out.substr(mac.out.rfind(' ') + 1);
  while (!hex.empty() && hex.back() == '\n') hex.pop_back();
  CommandResult get =
      Curl({"-H", "Authorization: Bearer claimfs-1001." + hex}, "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(get), 401) << get.Describe();
}

TEST_F(KubectlTest, NonLoopbackListenAddressIsRefused) {
  ASSERT_TRUE(StopDaemon());
  CommandResult start =
      RunCommand({ClaimfsdBinary(), "--data-dir", data_dir(), "--kube-api", "0.0.0.0:0"},
                 CommandOptions{"", {}, 30s});
  EXPECT_NE(start.exit_code, 0) << start.Describe();
  EXPECT_NE((start.out + start.err).find("must be on a loopback address"), std::string::npos)
      << start.Describe();
}

TEST_F(KubectlTest, QuickStartWhosePortIsTakenStillStartsAndSaysSo) {
  ASSERT_TRUE(StopDaemon());
  // Hold 127.0.0.1:6443 (or find it held already by someone else: taken either way).
  int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(6443);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool held = bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
              listen(holder, 1) == 0;
  ASSERT_TRUE(StartDaemon());  // the quick start: --data-dir only
  EXPECT_NE(DaemonLog().find("the Kubernetes API for kubectl is not served"), std::string::npos)
      << "held=" << held << "\n"
      << DaemonLog();
  CommandResult config = Claimctl({"kubeconfig"});
  EXPECT_EQ(config.exit_code, 1);
  EXPECT_NE(config.err.find("the Kubernetes API listener is off"), std::string::npos)
      << config.Describe();
  EXPECT_EQ(Claimctl({"get", "pv"}).exit_code, 0);  // the socket serves as ever
  close(holder);
}

TEST_F(KubectlTest, HugeAndMalformedBodiesOverTls) {
  std::string auth = "Authorization: Bearer " + Token();
  std::string huge_path = base() + "/huge.json";
  {
    std::ofstream huge(huge_path);
    huge << "{\"metadata\":{\"name\":\"" << std::string(5 << 20, 'a') << "\"}}";
  }
  CommandResult huge =
      Curl({"-H", auth, "-H", "Content-Type: application/json", "--data-binary", "@" + huge_path},
           "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(huge), 413) << huge.out.substr(0, 300);
  CommandResult malformed =
      Curl({"-H", auth, "-H", "Content-Type: application/json", "--data-binary", "{\"metadata\":"},
           "/api/v1/persistentvolumes");
  EXPECT_EQ(StatusOf(malformed), 400) << malformed.Describe();
  EXPECT_NE(malformed.out.find("\"kind\":\"Status\""), std::string::npos) << malformed.out;
  // Plain HTTP on the TLS port gets no answer it could mistake for the API's.
  std::string http_url = std::regex_replace(server_, std::regex("^https"), "http");
  CommandResult plain = RunCommand({"curl", "-sS", "--max-time", "5", http_url + "/version"});
  EXPECT_EQ(plain.out.find("gitVersion"), std::string::npos) << plain.Describe();
  // The daemon still answers.
  EXPECT_EQ(Kubectl({"get", "pv"}).exit_code, 0);
}

TEST_F(KubectlTest, WatchOnTheUnixSocketIsRefusedNotLeftHanging) {
  // The socket's server has a small thread pool and no streaming: a watch there must not take
  // a thread for half an hour, nor look like an empty stream.
  HttpResult watch = Http("GET", "/api/v1/persistentvolumes?watch=true");
  EXPECT_EQ(watch.status, 405) << watch.Describe();
  EXPECT_NE(watch.body.find("Kubernetes API listener"), std::string::npos) << watch.body;
}

// ---- the article's commands, verbatim

class KubectlArticleTest : public KubectlTest {
 protected:
  void SetUp() override {
    uses_article_host_path_ = true;
    KubectlTest::SetUp();
  }
};

TEST_F(KubectlArticleTest, ApplyGetDescribeDelete) {
  CommandResult pv = Kubectl({"apply", "-f", ManifestPath("pv-hostpath.yaml")});
  ASSERT_EQ(pv.exit_code, 0) << pv.Describe();
  EXPECT_EQ(pv.out, "persistentvolume/pv-hostpath created\n");

  CommandResult get_pv = Kubectl({"get", "pv"});
  ASSERT_EQ(get_pv.exit_code, 0) << get_pv.Describe();
  std::vector<std::string> lines = Lines(get_pv.out);
  ASSERT_EQ(lines.size(), 2u) << get_pv.out;
  EXPECT_EQ(Words(lines[0]),
            (std::vector<std::string>{"NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY",
                                      "STATUS", "CLAIM", "STORAGECLASS", "REASON", "AGE"}));
  std::vector<std::string> cells = Cells(lines[0], lines[1]);
  ASSERT_EQ(cells.size(), 9u);
  EXPECT_EQ(std::vector<std::string>(cells.begin(), cells.end() - 1),
            (std::vector<std::string>{"pv-hostpath", "2Gi", "RWO", "Delete", "Available", "",
                                      "manual", ""}));
  EXPECT_TRUE(std::regex_match(cells[8], kAge)) << cells[8];

  CommandResult pvc = Kubectl({"apply", "-f", ManifestPath("pvc-hostpath.yaml")});
  ASSERT_EQ(pvc.exit_code, 0) << pvc.Describe();
  EXPECT_EQ(pvc.out, "persistentvolumeclaim/pvc-hostpath created\n");
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath"));

  CommandResult get_pvc = Kubectl({"get", "pvc"});
  lines = Lines(get_pvc.out);
  ASSERT_EQ(lines.size(), 2u) << get_pvc.Describe();
  EXPECT_EQ(Words(lines[0]), (std::vector<std::string>{"NAME", "STATUS", "VOLUME", "CAPACITY",
                                                       "ACCESS MODES", "STORAGECLASS", "AGE"}));
  cells = Cells(lines[0], lines[1]);
  EXPECT_EQ(
      std::vector<std::string>(cells.begin(), cells.end() - 1),
      (std::vector<std::string>{"pvc-hostpath", "Bound", "pv-hostpath", "2Gi", "RWO", "manual"}));

  lines = Lines(Kubectl({"get", "pv"}).out);
  ASSERT_EQ(lines.size(), 2u);
  cells = Cells(lines[0], lines[1]);
  EXPECT_EQ(cells[4], "Bound");
  EXPECT_EQ(cells[5], "default/pvc-hostpath");

  CommandResult describe = Kubectl({"describe", "pvc", "pvc-hostpath"});
  ASSERT_EQ(describe.exit_code, 0) << describe.Describe();
  for (const char* line :
       {"Name:          pvc-hostpath", "Namespace:     default", "StorageClass:  manual",
        "Status:        Bound", "Volume:        pv-hostpath",
        "Finalizers:    [kubernetes.io/pvc-protection]", "Capacity:      2Gi", "Access Modes:  RWO",
        "VolumeMode:    Filesystem", "Used By:       <none>"}) {
    EXPECT_NE(describe.out.find(std::string(line) + "\n"), std::string::npos) << line << "\n"
                                                                              << describe.out;
  }

  CommandResult delete_pvc = Kubectl({"delete", "-f", ManifestPath("pvc-hostpath.yaml")});
  EXPECT_EQ(delete_pvc.exit_code, 0) << delete_pvc.Describe();
  EXPECT_EQ(delete_pvc.out, "persistentvolumeclaim \"pvc-hostpath\" deleted\n");
  EXPECT_TRUE(WaitFor([&] { return ClaimPhase("pvc-hostpath").empty(); }, 10s));
  // Delete reclaim: the volume goes too.
  EXPECT_TRUE(WaitFor([&] { return VolumePhase("pv-hostpath").empty(); }, 10s));
  CommandResult gone = Kubectl({"get", "pv", "pv-hostpath"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_EQ(gone.err,
            "Error from server (NotFound): persistentvolumes \"pv-hostpath\" not found\n");
}

TEST_F(KubectlArticleTest, ReapplyUnchangedAndExplain) {
  ASSERT_EQ(Kubectl({"apply", "-f", ManifestPath("pv-hostpath.yaml")}).exit_code, 0);
  CommandResult again = Kubectl({"apply", "-f", ManifestPath("pv-hostpath.yaml")});
  EXPECT_EQ(again.out, "persistentvolume/pv-hostpath unchanged\n") << again.Describe();
  CommandResult explain = Kubectl({"explain", "persistentvolume.spec"});
  ASSERT_EQ(explain.exit_code, 0) << explain.Describe();
  EXPECT_NE(explain.out.find("KIND:"), std::string::npos) << explain.out;
  EXPECT_NE(explain.out.find("PersistentVolume"), std::string::npos) << explain.out;
  for (const char* field : {"accessModes", "capacity", "hostPath", "persistentVolumeReclaimPolicy",
                            "storageClassName"}) {
    EXPECT_NE(explain.out.find(field), std::string::npos) << field << "\n" << explain.out;
  }
}

// ---- what kubectl users reach for

TEST_F(KubectlTest, WatchShowsAClaimGoFromPendingToBound) {
  pid_t watcher = SpawnFunction([this] {
    CommandResult watch =
        Kubectl({"get", "pvc", "-w", "--request-timeout=8s"}, CommandOptions{"", {}, 8s});
    std::ofstream(base() + "/watch.out") << watch.out << watch.err;
    return 0;
  });
  std::this_thread::sleep_for(2s);
  ASSERT_TRUE(CreateDynamicClaim("data", "10Mi"));
  ASSERT_TRUE(WaitSpawned(watcher, 20s).has_value());
  std::string out = ReadFile(base() + "/watch.out");
  std::vector<std::string> lines = Lines(out);
  std::vector<std::string> phases;
  for (const std::string& line : lines) {
    std::vector<std::string> words = Words(line);
    if (words.size() >= 2 && words[0].rfind("data", 0) == 0) {
      // "data           Pending" may keep one space between name and status.
      std::istringstream in(line);
      std::string name, phase;
      in >> name >> phase;
      phases.push_back(phase);
    }
  }
  ASSERT_GE(phases.size(), 2u) << out;
  EXPECT_EQ(phases.front(), "Pending") << out;
  EXPECT_EQ(phases.back(), "Bound") << out;
}

// `kubectl delete` waits with a watch from the resourceVersion of its list; when the daemon
// removed the claim between that list and the watch, no DELETED event came and kubectl waited
// forever (seen once by hand with kubectl 1.32; this race does not reproduce on demand, so the
// test guards the path rather than proving the fix).
TEST_F(KubectlTest, DeleteReturnsWhenTheClaimGoesBeforeTheWatchStarts) {
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(CreateDynamicClaim("data", "10Mi"));
    CommandResult deleted = Kubectl({"delete", "pvc", "--all"}, CommandOptions{"", {}, 30s});
    EXPECT_FALSE(deleted.timed_out) << "round " << round;
    EXPECT_EQ(deleted.out, "persistentvolumeclaim \"data\" deleted\n") << deleted.Describe();
    ASSERT_TRUE(WaitFor([&] { return ClaimPhase("data").empty(); }, 10s));
  }
}

TEST_F(KubectlTest, LabelsSelectorsSortingAndOutputFormats) {
  ASSERT_TRUE(CreateDynamicClaim("b-claim", "10Mi"));
  ASSERT_TRUE(CreateDynamicClaim("a-claim", "20Mi"));
  EXPECT_EQ(Kubectl({"label", "pvc", "a-claim", "tier=fast"}).out,
            "persistentvolumeclaim/a-claim labeled\n");
  EXPECT_EQ(Kubectl({"annotate", "pvc", "a-claim", "note=hello"}).out,
            "persistentvolumeclaim/a-claim annotated\n");

  CommandResult labels = Kubectl({"get", "pvc", "--show-labels"});
  std::vector<std::string> lines = Lines(labels.out);
  ASSERT_EQ(lines.size(), 3u) << labels.Describe();
  EXPECT_EQ(Words(lines[0]).back(), "LABELS");
  EXPECT_EQ(Cells(lines[0], lines[1]).back(), "tier=fast");  // a-claim sorts first
  EXPECT_EQ(Cells(lines[0], lines[2]).back(), "<none>");

  CommandResult selected = Kubectl({"get", "pvc", "-l", "tier=fast", "-o", "name"});
  EXPECT_EQ(selected.out, "persistentvolumeclaim/a-claim\n") << selected.Describe();
  CommandResult none = Kubectl({"get", "pvc", "-l", "tier=slow"});
  EXPECT_EQ(none.out, "");
  EXPECT_EQ(none.err, "No resources found in default namespace.\n");

  CommandResult sorted =
      Kubectl({"get", "pvc", "--sort-by=.spec.resources.requests.storage", "-o",
               "custom-columns=NAME:.metadata.name,SIZE:.spec.resources.requests.storage"});
  EXPECT_EQ(sorted.out, "NAME      SIZE\nb-claim   10Mi\na-claim   20Mi\n") << sorted.Describe();
  CommandResult path = Kubectl({"get", "pvc", "-o", "jsonpath={.items[*].metadata.name}"});
  EXPECT_EQ(path.out, "a-claim b-claim") << path.Describe();
  CommandResult note =
      Kubectl({"get", "pvc", "a-claim", "-o", "jsonpath={.metadata.annotations.note}"});
  EXPECT_EQ(note.out, "hello");

  CommandResult wide = Kubectl({"get", "pvc", "-o", "wide"});
  EXPECT_EQ(Words(Lines(wide.out)[0]).back(), "VOLUMEMODE") << wide.out;
  CommandResult sc = Kubectl({"get", "sc"});
  lines = Lines(sc.out);
  ASSERT_EQ(lines.size(), 2u) << sc.Describe();
  EXPECT_EQ(Words(lines[0]),
            (std::vector<std::string>{"NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                                      "ALLOWVOLUMEEXPANSION", "AGE"}));
  std::vector<std::string> cells = Cells(lines[0], lines[1]);
  EXPECT_EQ(std::vector<std::string>(cells.begin(), cells.end() - 1),
            (std::vector<std::string>{"local (default)", "claimfs.io/local", "Delete", "Immediate",
                                      "true"}));
}

TEST_F(KubectlTest, PatchInEveryFlavourAndEdit) {
  ASSERT_TRUE(CreateDynamicClaim("data", "10Mi"));
  CommandResult strategic =
      Kubectl({"patch", "pvc", "data", "-p", R"({"metadata":{"labels":{"a":"1"}}})"});
  EXPECT_EQ(strategic.out, "persistentvolumeclaim/data patched\n") << strategic.Describe();
  CommandResult merge = Kubectl(
      {"patch", "pvc", "data", "--type=merge", "-p", R"({"metadata":{"labels":{"b":"2"}}})"});
  EXPECT_EQ(merge.out, "persistentvolumeclaim/data patched\n") << merge.Describe();
  CommandResult json_patch = Kubectl({"patch", "pvc", "data", "--type=json", "-p",
                                      R"([{"op":"remove","path":"/metadata/labels/a"}])"});
  EXPECT_EQ(json_patch.out, "persistentvolumeclaim/data patched\n") << json_patch.Describe();
  // Growing the claim through a strategic merge patch raises the quota.
  CommandResult grow = Kubectl(
      {"patch", "pvc", "data", "-p", R"({"spec":{"resources":{"requests":{"storage":"20Mi"}}}})"});
  EXPECT_EQ(grow.exit_code, 0) << grow.Describe();
  CommandResult shrink = Kubectl(
      {"patch", "pvc", "data", "-p", R"({"spec":{"resources":{"requests":{"storage":"1Mi"}}}})"});
  EXPECT_EQ(shrink.exit_code, 1);
  EXPECT_NE(shrink.err.find("field can not be less than previous value"), std::string::npos)
      << shrink.Describe();
  EXPECT_EQ(Kubectl({"get", "pvc", "data", "-o", "jsonpath={.metadata.labels}"}).out,
            R"({"b":"2"})");

  std::string editor = base() + "/editor.sh";
  std::ofstream(editor) << "#!/bin/sh\nsed -i 's/b: \"2\"/b: \"3\"/' \"$1\"\n";
  chmod(editor.c_str(), 0755);
  CommandResult edit =
      Kubectl({"edit", "pvc", "data"},
              CommandOptions{"", {"EDITOR=" + editor, "KUBE_EDITOR=" + editor}, 60s});
  EXPECT_EQ(edit.out, "persistentvolumeclaim/data edited\n") << edit.Describe();
  EXPECT_EQ(Kubectl({"get", "pvc", "data", "-o", "jsonpath={.metadata.labels.b}"}).out, "3");
  // A strategic patch that apply sends keeps no $-directives in the stored object.
  CommandResult order = Kubectl(
      {"patch", "pvc", "data", "-p",
       R"({"$setElementOrder/finalizers":["kubernetes.io/pvc-protection"],"metadata":{"labels":{"c":"4"}}})"});
  EXPECT_EQ(order.exit_code, 0) << order.Describe();
  CommandResult stored = Kubectl({"get", "pvc", "data", "-o", "json"});
  EXPECT_EQ(stored.out.find("$setElementOrder"), std::string::npos) << stored.out;
}

TEST_F(KubectlTest, ApiResourcesEventsWaitAndErrors) {
  CommandResult resources = Kubectl({"api-resources"});
  ASSERT_EQ(resources.exit_code, 0) << resources.Describe();
  std::vector<std::string> lines = Lines(resources.out);
  EXPECT_EQ(Words(lines[0]),
            (std::vector<std::string>{"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"}));
  EXPECT_NE(resources.out.find("persistentvolumeclaims"), std::string::npos);
  bool sc_line = false;
  for (const std::string& line : lines) {
    if (Words(line) == std::vector<std::string>{"storageclasses", "sc", "storage.k8s.io/v1",
                                                "false", "StorageClass"}) {
      sc_line = true;
    }
  }
  EXPECT_TRUE(sc_line) << resources.out;

  ASSERT_TRUE(CreateDynamicClaim("data", "10Mi"));
  CommandResult events = Kubectl({"get", "events"});
  ASSERT_EQ(events.exit_code, 0) << events.Describe();
  lines = Lines(events.out);
  ASSERT_GE(lines.size(), 2u) << events.Describe();
  EXPECT_EQ(Words(lines[0]),
            (std::vector<std::string>{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}));
  EXPECT_NE(events.out.find("ProvisioningSucceeded"), std::string::npos) << events.out;
  EXPECT_NE(events.out.find("persistentvolumeclaim/data"), std::string::npos) << events.out;
  CommandResult described = Kubectl({"describe", "pvc", "data"});
  EXPECT_NE(described.out.find("ProvisioningSucceeded"), std::string::npos) << described.out;

  // --for=jsonpath came with kubectl 1.23 (Debian's 1.20 lacks it).
  if (Kubectl({"wait", "--help"}).out.find("--for=jsonpath") != std::string::npos) {
    CommandResult bound =
        Kubectl({"wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=10s"});
    EXPECT_EQ(bound.out, "persistentvolumeclaim/data condition met\n") << bound.Describe();
  }
  CommandResult never = Kubectl({"wait", "--for=condition=Ready", "pvc/data", "--timeout=2s"});
  EXPECT_EQ(never.exit_code, 1);
  EXPECT_NE(never.err.find("timed out waiting for the condition on persistentvolumeclaims/data"),
            std::string::npos)
      << never.Describe();

  CommandResult missing = Kubectl({"get", "pvc", "nope"});
  EXPECT_EQ(missing.err,
            "Error from server (NotFound): persistentvolumeclaims \"nope\" not found\n");
  CommandResult deleted = Kubectl({"delete", "pvc", "data"});
  EXPECT_EQ(deleted.out, "persistentvolumeclaim \"data\" deleted\n") << deleted.Describe();
}

}  // namespace
}  // namespace claimfs::it
