// Bad input through every door (claimctl manifests, the HTTP API, the raw socket), each refused
// with its own error, and the daemon still serving a mounted volume after each.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kCanary[] = "still here\n";

int ConnectTo(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until the peer closes or `timeout` passes.
std::string ReadAll(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string ClaimJson(const std::string& name) {
  nlohmann::json claim = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolumeClaim"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Mi"}}}}}}}};
  return claim.dump();
}

class BadInputTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(StartDaemon());
    ASSERT_TRUE(CreateDynamicClaim("keep", "16Mi"));
    ASSERT_TRUE(WriteFile(MountPath("keep") + "/canary.txt", kCanary));
  }

  // The daemon is alive, answers, and serves the volume of claim "keep".
  void ExpectStillServing(const std::string& after) {
    SCOPED_TRACE("after " + after);
    EXPECT_TRUE(DaemonRunning()) << "claimfsd died\n" << DaemonLog();
    EXPECT_EQ(ReadFile(MountPath("keep") + "/canary.txt"), kCanary);
    HttpResult h = Http("GET", "/healthz");
    EXPECT_EQ(h.status, 200) << h.Describe();
    EXPECT_EQ(ClaimPhase("keep"), "Bound");
  }

  // Applies `text` and expects exit 1 with an error that names the file.
  CommandResult ApplyExpectingError(const std::string& name, const std::string& text) {
    std::string path = WriteManifest(name, text);
    CommandResult r = Claimctl({"apply", "-f", path});
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_EQ(r.err.rfind("error: " + path + ":", 0), 0u) << r.err;
    EXPECT_EQ(r.out, "");
    return r;
  }
};

TEST_F(BadInputTest, MalformedYamlIsRejectedAtItsLine) {
  CommandResult r = ApplyExpectingError("broken.yaml",
                                        "apiVersion: v1\n"
                                        "kind: PersistentVolumeClaim\n"
                                        "metadata:\n"
                                        "  name: broken\n"
                                        "spec:\n"
                                        "  accessModes: [ReadWriteOnce\n"
                                        "  resources: {}\n");
  EXPECT_NE(r.err.find("broken.yaml:7:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("invalid YAML"), std::string::npos) << r.err;
  EXPECT_FALSE(GetClaim("broken").has_value());
  ExpectStillServing("malformed YAML");
}

TEST_F(BadInputTest, UnknownKindIsRejected) {
  CommandResult r = ApplyExpectingError("pod.yaml",
                                        "apiVersion: v1\n"
                                        "kind: Pod\n"
                                        "metadata:\n"
                                        "  name: web\n");
  EXPECT_NE(r.err.find("pod.yaml:2:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(R"(no matches for kind "Pod" in version "v1")"), std::string::npos) << r.err;
  // The API refuses it too. Pods are listed (empty, for kubectl describe), so the path exists
  // and a create on it is a method the resource does not allow.
  HttpResult h = Http("POST", "/api/v1/namespaces/default/pods",
                      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"}})");
  EXPECT_EQ(h.status, 405) << h.Describe();
  EXPECT_EQ(JsonString(h.Json(), "/reason"), "MethodNotAllowed") << h.body;
  h = Http("POST", "/api/v1/namespaces/default/deployments",
           R"({"apiVersion":"v1","kind":"Deployment","metadata":{"name":"web"}})");
  EXPECT_EQ(h.status, 404) << h.Describe();
  EXPECT_EQ(JsonString(h.Json(), "/kind"), "Status") << h.body;
  ExpectStillServing("an unknown kind");
}

TEST_F(BadInputTest, BadQuantityIsRejectedByClaimctlAndByTheApi) {
  CommandResult r = ApplyExpectingError("quantity.yaml",
                                        "apiVersion: v1\n"
                                        "kind: PersistentVolumeClaim\n"
                                        "metadata:\n"
                                        "  name: q\n"
                                        "spec:\n"
                                        "  accessModes: [ReadWriteOnce]\n"
                                        "  resources:\n"
                                        "    requests:\n"
                                        "      storage: 1Gx\n");
  EXPECT_NE(r.err.find("quantity.yaml:9:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(R"(spec.resources.requests.storage: Invalid value: "1Gx")"),
            std::string::npos)
      << r.err;
  std::string body = ClaimJson("q");
  body.replace(body.find("\"1Mi\""), 5, "\"1Gx\"");
  HttpResult h = Http("POST", "/api/v1/namespaces/default/persistentvolumeclaims", body);
  EXPECT_TRUE(h.status == 400 || h.status == 422) << h.Describe();
  EXPECT_EQ(JsonString(h.Json(), "/kind"), "Status") << h.body;
  EXPECT_NE(JsonString(h.Json(), "/message").find("1Gx"), std::string::npos) << h.body;
  EXPECT_FALSE(GetClaim("q").has_value());
  ExpectStillServing("a bad quantity");
}

// Regression: "storage": 1e999999 in a request body answered 500 (json::parse threw
// out_of_range past the handlers). Every hostile quantity, as a JSON number or a string, in a
// claim's request, a volume's capacity and a merge patch, is a 4xx naming the field.
TEST_F(BadInputTest, HostileQuantityIsA4xxNamingTheFieldNotA500) {
  const char* kNumbers[] = {
      "1e999999", "-1e999999", "1E400", "99999999999999999999", "9223372036854775808",
      "-1",       "0",         "-0"};
  const char* kStrings[] = {"1e999999",   "1e-999999x",
                            "Infinity",   "NaN",
                            "-0",         "99999999999999999999",
                            "1.5.5Gi",    "1Gi ",
                            " 1Gi",       "\\u0000",
                            "1Gi\\u0000", "9223372036854775808",
                            "-1Gi",       ".",
                            "+",          "1e",
                            "0x10",       "1Ki1",
                            "8Ei",        ""};
  std::vector<std::pair<std::string, bool>> values;  // JSON text, is a number
  for (const char* n : kNumbers) values.emplace_back(n, true);
  for (const char* t : kStrings) values.emplace_back(std::string("\"") + t + "\"", false);
  int i = 0;
  for (const auto& [value, is_number] : values) {
    SCOPED_TRACE("storage: " + value);
    std::string claim = "hq" + std::to_string(i);
    std::string volume = "hv" + std::to_string(i++);
    HttpResult h = Http(
        "POST", "/api/v1/namespaces/default/persistentvolumeclaims",
        R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":")" + claim +
            R"("},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":)" +
            value + "}}}}");
    EXPECT_EQ(h.status, 422) << h.Describe();
    EXPECT_EQ(JsonString(h.Json(), "/kind"), "Status") << h.body;
    EXPECT_NE(JsonString(h.Json(), "/message").find("spec.resources"), std::string::npos) << h.body;
    EXPECT_FALSE(GetClaim(claim).has_value());

    h = Http("POST", "/api/v1/persistentvolumes",
             R"({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":")" + volume +
                 R"("},"spec":{"accessModes":["ReadWriteOnce"],"capacity":{"storage":)" + value +
                 R"(},"hostPath":{"path":"/tmp/claimfs-never-)" + volume + R"("}}})");
    EXPECT_EQ(h.status, 422) << h.Describe();
    EXPECT_NE(JsonString(h.Json(), "/message").find("spec.capacity"), std::string::npos) << h.body;
    EXPECT_FALSE(GetVolume(volume).has_value());

    h = Http("PATCH", "/api/v1/namespaces/default/persistentvolumeclaims/keep",
             R"({"spec":{"resources":{"requests":{"storage":)" + value + "}}}}",
             "application/merge-patch+json");
    EXPECT_GE(h.status, 400) << h.Describe();
    EXPECT_LT(h.status, 500) << h.Describe();
    EXPECT_NE(JsonString(h.Json(), "/message").find("spec.resources"), std::string::npos) << h.body;
  }
  // A number beyond a double anywhere else is a 4xx too, never a 500.
  HttpResult h = Http("POST", "/api/v1/namespaces/default/persistentvolumeclaims",
                      R"({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"x",
                          "labels":{"a":1e999999}},"spec":{"resources":{"requests":{"storage":"1Mi"}}}})");
  EXPECT_EQ(h.status, 400) << h.Describe();
  EXPECT_NE(JsonString(h.Json(), "/message")
                .find("metadata.labels[a]: Invalid type: expected string, got number 1e999999"),
            std::string::npos)
      << h.body;
  auto claim = GetClaim("keep");
  ASSERT_TRUE(claim.has_value());
  EXPECT_EQ(JsonString(*claim, "/spec/resources/requests/storage"), "16Mi");
  ExpectStillServing("hostile quantities");
}

TEST_F(BadInputTest, NamesWithSlashOrDotDotAreRefusedByTheApi) {
  for (std::string name : {"a/b", "..", "../../etc", ".", "x/../../y"}) {
    SCOPED_TRACE("name " + name);
    HttpResult h = Http("POST", "/api/v1/namespaces/default/persistentvolumeclaims", ClaimJson(name));
    EXPECT_EQ(h.status, 422) << h.Describe();
    nlohmann::json status = h.Json();
    EXPECT_EQ(JsonString(status, "/kind"), "Status") << h.body;
    EXPECT_EQ(JsonString(status, "/reason"), "Invalid") << h.body;
    EXPECT_NE(JsonString(status, "/message").find("metadata.name"), std::string::npos) << h.body;

    nlohmann::json pv = {{"apiVersion", "v1"},
                         {"kind", "PersistentVolume"},
                         {"metadata", {{"name", name}}},
                         {"spec",
                          {{"capacity", {{"storage", "1Mi"}}},
                           {"accessModes", {"ReadWriteOnce"}},
                           {"hostPath", {{"path", base() + "/pv"}}}}}};
    h = Http("POST", "/api/v1/persistentvolumes", pv.dump());
    EXPECT_EQ(h.status, 422) << h.Describe();
    EXPECT_EQ(JsonString(h.Json(), "/reason"), "Invalid") << h.body;
  }
  // Nothing was made for them: one claim, one volume directory, one mount.
  HttpResult list = Http("GET", "/api/v1/namespaces/default/persistentvolumeclaims");
  ASSERT_EQ(list.status, 200) << list.Describe();
  EXPECT_EQ(list.Json()["items"].size(), 1u) << list.body;
  EXPECT_EQ(VolumeMountsUnder(data_dir()).size(), 1u);
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(pool_dir())) ++entries;
  EXPECT_EQ(entries, 1u);
  ExpectStillServing("names with / and ..");
}

// A directory outside the default allowed prefix /tmp (and outside the pool), removed at teardown.
std::string OutsideDirectory() {
  std::string tmpl = "/var/tmp/claimfs-e2e-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

TEST_F(BadInputTest, HostPathOutsideAllowedPrefixesIsRefusedNamingTheField) {
  std::string outside = OutsideDirectory();
  ASSERT_FALSE(outside.empty()) << strerror(errno);
  RemoveAtTearDown(outside);
  ASSERT_TRUE(WriteFile(outside + "/precious", "do not expose"));
  // Below /tmp by name, but through a symlink that anyone could plant there.
  std::string link = base() + "/link";
  ASSERT_EQ(symlink(outside.c_str(), link.c_str()), 0) << strerror(errno);

  struct Case {
    std::string name, path, expected;
  } cases[] = {
      {"outside", outside, "is not below an allowed hostPath prefix or a pool (/tmp"},
      {"etc", "/etc", "is not below an allowed hostPath prefix or a pool (/tmp"},
      {"via-link", link + "/sub", "goes through the symlink " + link},
      // Another claim's volume: it would be read, and deleted, through this one.
      {"steal", pool_dir() + "/" + VolumeOf("keep"), "overlaps pool default (" + pool_dir()},
      {"around-pool", data_dir() + "/pools", "overlaps pool default (" + pool_dir()},
      {"state", data_dir() + "/state", "overlaps the state directory"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    CommandResult r = Apply(StaticPairYaml(c.name, c.path, "ReadWriteOnce", "Delete"));
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_NE(r.err.find("The PersistentVolume \"" + c.name + "\" is invalid: "
                         "spec.hostPath.path: Forbidden: volume source " + c.path),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_FALSE(GetVolume(c.name).has_value());
    // The claim went in (it names a volume that does not exist) and stays Pending, unmounted.
    EXPECT_EQ(ClaimPhase(c.name), "Pending");
  }
  // The same through the API, for local volumes too.
  nlohmann::json pv = {{"apiVersion", "v1"},
                       {"kind", "PersistentVolume"},
                       {"metadata", {{"name", "local-etc"}}},
                       {"spec",
                        {{"capacity", {{"storage", "1Mi"}}},
                         {"accessModes", {"ReadWriteOnce"}},
                         {"local", {{"path", "/etc"}}}}}};
  HttpResult h = Http("POST", "/api/v1/persistentvolumes", pv.dump());
  EXPECT_EQ(h.status, 422) << h.Describe();
  EXPECT_NE(JsonString(h.Json(), "/message").find("spec.local.path: Forbidden"), std::string::npos)
      << h.body;
  h = Http("POST", "/api/v1/persistentvolumes?dryRun=All", pv.dump());
  EXPECT_EQ(h.status, 422) << h.Describe();

  EXPECT_EQ(VolumeMountsUnder(data_dir()).size(), 1u);  // only "keep"
  EXPECT_EQ(ReadFile(outside + "/precious"), "do not expose");
  ExpectStillServing("hostPaths outside the allowed prefixes");
}

// A volume admitted under a prefix that a later configuration no longer allows is neither served
// nor deleted: its mount fails with a FailedMount event, and its Delete policy leaves it Failed
// with the data in place, as Kubernetes' hostPath deleter does outside /tmp.
TEST_F(BadInputTest, VolumeOutsideNarrowedPrefixesIsNeitherMountedNorDeleted) {
  std::string outside = OutsideDirectory();
  ASSERT_FALSE(outside.empty()) << strerror(errno);
  RemoveAtTearDown(outside);
  std::string source = outside + "/volume";
  ASSERT_TRUE(StopDaemon());
  std::string wide = WriteConfig("allowedHostPathPrefixes: [/tmp, " + outside + "]\n");
  ASSERT_TRUE(StartDaemon({"--config", wide}));
  CommandResult r = Apply(StaticPairYaml("outside", source, "ReadWriteOnce", "Delete"));
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("outside"));
  ASSERT_TRUE(WriteFile(MountPath("outside") + "/precious", "do not delete"));

  WriteConfig("allowedHostPathPrefixes: [/tmp]\n");  // the same file, narrowed
  ASSERT_TRUE(Restart());
  auto failed_mount = [&] {
    for (const nlohmann::json& e : EventsFor("PersistentVolumeClaim", "outside")) {
      std::string message = JsonString(e, "/message");
      if (JsonString(e, "/reason") == "FailedMount" &&
          message.find("volume source " + source + " is not below an allowed hostPath prefix") !=
              std::string::npos) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(WaitFor(failed_mount, 10s)) << DescribeEvents("PersistentVolumeClaim", "outside");
  EXPECT_TRUE(MountsUnder(MountPath("outside")).empty());

  r = Claimctl({"delete", "pvc", "outside"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return VolumePhase("outside") == "Failed"; }, 10s))
      << "PV phase " << VolumePhase("outside");
  auto pv = GetVolume("outside");
  ASSERT_TRUE(pv.has_value());
  std::string message = JsonString(*pv, "/status/message");
  EXPECT_NE(message.find("host_path deleter only supports"), std::string::npos) << message;
  EXPECT_NE(message.find(source), std::string::npos) << message;
  bool event = false;
  for (const nlohmann::json& e : EventsFor("PersistentVolume", "outside")) {
    event = event || (JsonString(e, "/reason") == "VolumeFailedDelete" &&
                      JsonString(e, "/type") == "Warning");
  }
  EXPECT_TRUE(event) << DescribeEvents("PersistentVolume", "outside");
  EXPECT_EQ(ReadFile(source + "/precious"), "do not delete");
  ExpectStillServing("a volume outside the narrowed prefixes");
}

TEST_F(BadInputTest, ShrinkingAClaimIsForbidden) {
  CommandResult r =
      Claimctl({"patch", "pvc", "keep", "-p", R"({"spec":{"resources":{"requests":{"storage":"8Mi"}}}})"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("spec.resources.requests.storage: Forbidden: field can not be less than "
                       "previous value"),
            std::string::npos)
      << r.err;
  // Re-applying a smaller size is refused the same way.
  r = Apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: keep\nspec:\n"
            "  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 8Mi\n");
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("field can not be less than previous value"), std::string::npos) << r.err;
  auto claim = GetClaim("keep");
  ASSERT_TRUE(claim.has_value());
  EXPECT_EQ(JsonString(*claim, "/spec/resources/requests/storage"), "16Mi");
  EXPECT_EQ(StatFs(MountPath("keep")).total, 16ull << 20);
  ExpectStillServing("a shrink");
}

TEST_F(BadInputTest, RandomBytesOnTheSocketGetAnErrorOrAClose) {
  std::mt19937 random(42);
  for (int round = 0; round < 5; ++round) {
    int fd = ConnectTo(socket_path());
    ASSERT_GE(fd, 0) << strerror(errno);
    std::string junk(4096, '\0');
    for (char& c : junk) c = static_cast<char>(random());
    if (round == 0) junk = "GET / HTTP/9.9\r\n\r\n";
    if (round == 1) junk = "\r\n\r\n\r\n";
    (void)send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    std::string reply = ReadAll(fd, 12s);
    close(fd);
    EXPECT_TRUE(reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0 ||
                reply.rfind("HTTP/1.0 4", 0) == 0 || reply.rfind("HTTP/1.1 505", 0) == 0)
        << "round " << round << ": " << reply.substr(0, 200);
  }
  ExpectStillServing("random bytes");
}

TEST_F(BadInputTest, OversizedBodyIsRefusedWith413) {
  std::string body = ClaimJson("huge");
  body.insert(body.size() - 1, ",\"padding\":\"" + std::string(5 << 20, 'p') + "\"");
  HttpResult h = Http("POST", "/api/v1/namespaces/default/persistentvolumeclaims", body);
  EXPECT_EQ(h.status, 413) << h.Describe();
  if (!h.body.empty()) {
    EXPECT_EQ(JsonString(h.Json(), "/kind"), "Status") << h.body.substr(0, 500);
  }
  EXPECT_FALSE(GetClaim("huge").has_value());
  ExpectStillServing("an oversized body");
}

TEST_F(BadInputTest, SlowClientDoesNotHoldUpOthersAndIsCutOff) {
  int fd = ConnectTo(socket_path());
  ASSERT_GE(fd, 0) << strerror(errno);
  const std::string request = "GET /api/v1/persistentvolumes HTTP/1.1\r\nHost: x\r\nX-Slow: " +
                              std::string(40, 's') + "\r\n\r\n";
  std::atomic<bool> cut_off{false};
  std::atomic<bool> stop{false};
  std::atomic<int> sent_bytes{0};
  std::thread slow([&] {
    for (char c : request) {
      if (stop) return;
      if (send(fd, &c, 1, MSG_NOSIGNAL) != 1) {
        cut_off = true;
        return;
      }
      ++sent_bytes;
      pollfd p{fd, POLLIN, 0};  // the server closing (or answering 408) shows as readable
      if (poll(&p, 1, 1000) == 1) {
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n > 0 && std::string(buf, static_cast<size_t>(n)).find(" 408 ") !=
                                    std::string::npos)) {
          cut_off = true;
          return;
        }
        if (n < 0 && errno != EAGAIN) {
          cut_off = true;
          return;
        }
      }
    }
  });
  std::this_thread::sleep_for(2s);
  for (int i = 0; i < 3; ++i) {
    auto start = Clock::now();
    HttpResult h = Http("GET", "/api/v1/namespaces/default/persistentvolumeclaims");
    EXPECT_EQ(h.status, 200) << h.Describe();
    EXPECT_LT(Clock::now() - start, 2s) << "a request waited behind the slow client";
  }
  // The server's request timeout (10 s by default) closes the slow connection.
  EXPECT_TRUE(WaitFor([&] { return cut_off.load(); }, 20s))
      << "the slow client was never cut off (sent " << sent_bytes << " bytes)";
  stop = true;
  slow.join();
  close(fd);
  ExpectStillServing("a slow client");
}

}  // namespace
}  // namespace claimfs::it
