// The API client against real Unix sockets: connection failures name the socket and the errno,
// requests arrive as sent, and Kubernetes Status bodies become Status values.
#include "claimfs/api/client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "unit/claimctl/fake_server.h"

namespace claimfs::api {
namespace {

using claimctl::testing::FakeRequest;
using claimctl::testing::FakeResponse;
using claimctl::testing::FakeServer;
using claimctl::testing::TempDir;

TEST(ClientTest, MissingSocketIsUnavailableWithENOENT) {
  TempDir dir;
  const std::string path = dir.path() + "/claimfsd.sock";
  Client client(path);
  Result<HttpResponse> r = client.Request("GET", "/api/v1/persistentvolumes");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "cannot connect to claimfsd at " + path +
                                      ": No such file or directory (is claimfsd running?)");
}

TEST(ClientTest, SocketWithoutListenerIsConnectionRefused) {
  TempDir dir;
  const std::string path = dir.path() + "/claimfsd.sock";
  // A bound socket file that nobody listens on: what a crashed daemon leaves behind.
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);

  Result<nlohmann::json> r = Client(path).Call("GET", "/api/v1/persistentvolumes");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "cannot connect to claimfsd at " + path +
                                      ": Connection refused (is claimfsd running?)");
}

TEST(ClientTest, DefaultSocketPathFollowsEnvironment) {
  const char* saved = std::getenv("CLAIMFS_SOCKET");
  std::string saved_value = saved ? saved : "";
  unsetenv("CLAIMFS_SOCKET");
  EXPECT_EQ(DefaultSocketPath(), "/run/claimfs/claimfsd.sock");
  setenv("CLAIMFS_SOCKET", "/tmp/other.sock", 1);
  EXPECT_EQ(DefaultSocketPath(), "/tmp/other.sock");
  setenv("CLAIMFS_SOCKET", "", 1);
  EXPECT_EQ(DefaultSocketPath(), "/run/claimfs/claimfsd.sock");
  if (saved) {
    setenv("CLAIMFS_SOCKET", saved_value.c_str(), 1);
  } else {
    unsetenv("CLAIMFS_SOCKET");
  }
}

TEST(ClientTest, SendsMethodTargetBodyAndContentType) {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  FakeServer server(path, [](const FakeRequest&) {
    return FakeResponse{201, R"({"kind":"PersistentVolumeClaim","metadata":{"name":"data"}})"};
  });
  nlohmann::json patch = {{"spec", {{"resources", {{"requests", {{"storage", "2Gi"}}}}}}}};
  Result<nlohmann::json> r =
      Client(path).Call("PATCH", "/api/v1/namespaces/default/persistentvolumeclaims/data", &patch,
                        "application/merge-patch+json");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["metadata"]["name"], "data");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PATCH");
  EXPECT_EQ(requests[0].target, "/api/v1/namespaces/default/persistentvolumeclaims/data");
  EXPECT_EQ(requests[0].content_type, "application/merge-patch+json");
  EXPECT_EQ(nlohmann::json::parse(requests[0].body), patch);
}

TEST(ClientTest, LargeBodyArrivesWhole) {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  FakeServer server(path, [](const FakeRequest& req) {
    return FakeResponse{200, nlohmann::json{{"size", req.body.size()}}.dump()};
  });
  std::string big(100000, 'x');
  Result<HttpResponse> r = Client(path).Request("POST", "/x", big);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(r->body)["size"], 100000);
}

struct StatusCase {
  int http;
  std::string body;
  StatusCode code;
  std::string message;
  std::string reason;
};

class StatusFromResponseTest : public ::testing::TestWithParam<StatusCase> {};

TEST_P(StatusFromResponseTest, MapsHttpStatusAndMessage) {
  const StatusCase& c = GetParam();
  HttpResponse response{c.http, "application/json", c.body};
  Status s = StatusFromResponse(response);
  EXPECT_EQ(s.code(), c.code);
  EXPECT_EQ(s.message(), c.message);
  EXPECT_EQ(ReasonFromResponse(response), c.reason);
}

std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  return nlohmann::json{{"kind", "Status"},   {"apiVersion", "v1"}, {"status", "Failure"},
                        {"message", message}, {"reason", reason},   {"code", code}}
      .dump();
}

INSTANTIATE_TEST_SUITE_P(
    Codes, StatusFromResponseTest,
    ::testing::Values(
        StatusCase{200, "{}", StatusCode::kOk, "", ""},
        StatusCase{201, "{}", StatusCode::kOk, "", ""},
        StatusCase{404, StatusBody(404, "NotFound", "persistentvolumeclaims \"x\" not found"),
                   StatusCode::kNotFound, "persistentvolumeclaims \"x\" not found", "NotFound"},
        StatusCase{
            409, StatusBody(409, "AlreadyExists", "persistentvolumeclaims \"data\" already exists"),
            StatusCode::kAlreadyExists, "persistentvolumeclaims \"data\" already exists",
            "AlreadyExists"},
        StatusCase{409, StatusBody(409, "Conflict", "the object has been modified"),
                   StatusCode::kConflict, "the object has been modified", "Conflict"},
        StatusCase{422,
                   StatusBody(422, "Invalid",
                              "PersistentVolumeClaim \"data\" is invalid: spec: Forbidden"),
                   StatusCode::kInvalid,
                   "PersistentVolumeClaim \"data\" is invalid: spec: Forbidden", "Invalid"},
        StatusCase{400, StatusBody(400, "BadRequest", "bad patch"), StatusCode::kInvalid,
                   "bad patch", "BadRequest"},
        StatusCase{403, StatusBody(403, "Forbidden", "no"), StatusCode::kForbidden, "no",
                   "Forbidden"},
        StatusCase{503, StatusBody(503, "ServiceUnavailable", "shutting down"),
                   StatusCode::kUnavailable, "shutting down", "ServiceUnavailable"},
        StatusCase{500, StatusBody(500, "InternalError", "boom"), StatusCode::kInternal, "boom",
                   "InternalError"},
        // Not a Status object: the response is described, the reason comes from the code.
        StatusCase{404, "404 page not found\n", StatusCode::kNotFound,
                   "claimfsd answered HTTP 404: 404 page not found", "NotFound"},
        StatusCase{502, "", StatusCode::kInternal, "claimfsd answered HTTP 502", ""}));

TEST(ClientTest, CallTurnsErrorResponsesIntoStatus) {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  FakeServer server(path, [](const FakeRequest&) {
    return FakeResponse{404, StatusBody(404, "NotFound", "persistentvolumes \"nope\" not found")};
  });
  Result<nlohmann::json> r = Client(path).Call("GET", "/api/v1/persistentvolumes/nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "persistentvolumes \"nope\" not found");
}

TEST(ClientTest, CallRefusesANonJsonSuccessBody) {
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  FakeServer server(path, [](const FakeRequest&) { return FakeResponse{200, "ok", "text/plain"}; });
  Result<nlohmann::json> r = Client(path).Call("GET", "/healthz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("not JSON"), std::string::npos);
}

}  // namespace
}  // namespace claimfs::api
