// The HTTP layer on a real Unix socket: routing, limits, misbehaving clients, socket files.
#include "claimfs/api/http_server.h"

#include <grp.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "unit/api/test_http.h"

namespace claimfs::api {
namespace {

using namespace std::chrono_literals;
using testing::RawClient;
using testing::Request;
using testing::TempDir;

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(http::Handler handler, int timeout_seconds = 2, size_t max_bytes = 1024) {
    http::ServerOptions options;
    options.socket_path = socket_;
    options.request_timeout_seconds = timeout_seconds;
    options.max_request_bytes = max_bytes;
    options.threads = 2;
    options.on_response = [this](const http::Request&, const http::Response& response) {
      last_status_ = response.status;
      ++responses_;
    };
    auto server = http::Server::Start(options, std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  static http::Response Echo(const http::Request& request) {
    nlohmann::json out{{"method", request.method},
                       {"path", request.path},
                       {"query", request.query},
                       {"body", request.body},
                       {"mediaType", request.MediaType()}};
    if (request.peer) {
      out["pid"] = request.peer->pid;
      out["uid"] = request.peer->uid;
    }
    return http::Response::Json(200, out);
  }

  TempDir dir_;
  std::string socket_ = (dir_.path() / "api.sock").string();
  std::unique_ptr<http::Server> server_;
  std::atomic<int> last_status_{0};
  std::atomic<int> responses_{0};
};

TEST_F(HttpServerTest, PassesMethodPathQueryBodyAndPeerCredentials) {
  StartServer(&HttpServerTest::Echo);
  auto response = Request(socket_, "POST", "/x/y?a=1&b=two%20words&flag", "{\"k\":1}",
                          "application/json; charset=utf-8");
  ASSERT_EQ(response.code, 200) << response.error;
  auto json = response.Json();
  EXPECT_EQ(json["method"], "POST");
  EXPECT_EQ(json["path"], "/x/y");
  EXPECT_EQ(json["query"]["a"], "1");
  EXPECT_EQ(json["query"]["b"], "two words");
  EXPECT_EQ(json["query"]["flag"], "");
  EXPECT_EQ(json["body"], "{\"k\":1}");
  EXPECT_EQ(json["mediaType"], "application/json");
  EXPECT_EQ(json["pid"], ::getpid());
  EXPECT_EQ(json["uid"], ::getuid());
  EXPECT_EQ(last_status_, 200);
}

TEST_F(HttpServerTest, SocketHasTheRequestedModeAndGroup) {
  http::ServerOptions options;
  options.socket_path = socket_;
  options.socket_mode = 0660;
  options.socket_group = ::getgid();
  auto server = http::Server::Start(options, &HttpServerTest::Echo);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, ::getgid());
  // No temporary name left behind.
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(HttpServerTest, OtherModesAreApplied) {
  http::ServerOptions options;
  options.socket_path = socket_;
  options.socket_mode = 0600;
  auto server = http::Server::Start(options, &HttpServerTest::Echo);
  ASSERT_TRUE(server.ok());
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(HttpServerTest, StaleSocketFileIsReplaced) {
  {
    // A socket file nobody listens on any more, as a crashed daemon leaves it.
    auto fd = http::BindUnixSocket(socket_, 0600, std::nullopt);
    ASSERT_TRUE(fd.ok());
    ::close(*fd);
  }
  ASSERT_TRUE(std::filesystem::exists(socket_));
  StartServer(&HttpServerTest::Echo);
  EXPECT_EQ(Request(socket_, "GET", "/").code, 200);
}

TEST_F(HttpServerTest, SecondServerOnALiveSocketIsRefused) {
  StartServer(&HttpServerTest::Echo);
  http::ServerOptions options;
  options.socket_path = socket_;
  auto second = http::Server::Start(options, &HttpServerTest::Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(socket_), std::string::npos);
  // The first one still serves on its socket.
  EXPECT_EQ(Request(socket_, "GET", "/").code, 200);
}

TEST_F(HttpServerTest, RegularFileAtTheSocketPathIsNotReplaced) {
  std::ofstream(socket_) << "precious";
  http::ServerOptions options;
  options.socket_path = socket_;
  auto server = http::Server::Start(options, &HttpServerTest::Echo);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kAlreadyExists);
  std::ifstream in(socket_);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
}

TEST_F(HttpServerTest, TooLongSocketPathIsInvalid) {
  http::ServerOptions options;
  options.socket_path = "/tmp/" + std::string(200, 'x');
  auto server = http::Server::Start(options, &HttpServerTest::Echo);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kInvalid);
}

TEST_F(HttpServerTest, StopRemovesTheSocketAndIsIdempotent) {
  StartServer(&HttpServerTest::Echo);
  ASSERT_TRUE(std::filesystem::exists(socket_));
  server_->Stop();
  EXPECT_FALSE(std::filesystem::exists(socket_));
  server_->Stop();
  EXPECT_NE(Request(socket_, "GET", "/", "", "", 1000).code, 200);
  // Another server may take the path again.
  server_.reset();
  StartServer(&HttpServerTest::Echo);
  EXPECT_EQ(Request(socket_, "GET", "/").code, 200);
}

TEST_F(HttpServerTest, StopLetsARequestInFlightFinish) {
  std::atomic<bool> entered{false};
  StartServer([&](const http::Request&) {
    entered = true;
    std::this_thread::sleep_for(500ms);
    return http::Response::Text(200, "done");
  });
  testing::Response response;
  std::thread client([&] { response = Request(socket_, "GET", "/slow"); });
  while (!entered) std::this_thread::sleep_for(5ms);
  server_->Stop();
  client.join();
  EXPECT_EQ(response.code, 200) << response.error;
  EXPECT_EQ(response.body, "done");
}

TEST_F(HttpServerTest, BodyOverTheLimitIsRefusedWith413BeforeItIsRead) {
  std::atomic<int> calls{0};
  StartServer([&](const http::Request& request) {
    ++calls;
    return Echo(request);
  });
  // Announce a large body but send none of it: the answer must come without it.
  RawClient client(socket_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("POST /objects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 100000000\r\n\r\n"));
  bool closed = false;
  std::string answer = client.ReadUntilClosed(3s, &closed);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("limit is 1024"), std::string::npos) << answer;
  EXPECT_EQ(calls, 0);

  auto response = Request(socket_, "POST", "/objects", std::string(2000, 'x'));
  EXPECT_EQ(response.code, 413);
  // A body at the limit is fine.
  response = Request(socket_, "POST", "/objects", std::string(1024, 'x'));
  EXPECT_EQ(response.code, 200);
  EXPECT_EQ(calls, 1);
}

TEST_F(HttpServerTest, ChunkedBodyOverTheLimitClosesTheConnection) {
  std::atomic<int> calls{0};
  StartServer([&](const http::Request& request) {
    ++calls;
    return Echo(request);
  });
  RawClient client(socket_);
  ASSERT_TRUE(
      client.Send("POST /objects HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string chunk = "400\r\n" + std::string(0x400, 'a') + "\r\n";
  bool sent_all = true;
  for (int i = 0; i < 4 && sent_all; ++i) sent_all = client.Send(chunk);
  bool closed = false;
  std::string answer = client.ReadUntilClosed(3s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(answer.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(Request(socket_, "GET", "/").code, 200);
}

TEST_F(HttpServerTest, GarbageGetsAnErrorAndTheServerKeepsServing) {
  StartServer(&HttpServerTest::Echo);
  RawClient client(socket_);
  static const char kGarbage[] = "\x16\x03\x01\x02\x00 garbage \xff\xfe\r\n\r\n";
  ASSERT_TRUE(client.Send(std::string(kGarbage, sizeof(kGarbage) - 1)));
  bool closed = false;
  std::string answer = client.ReadUntilClosed(3s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_EQ(Request(socket_, "GET", "/after").code, 200);
}

TEST_F(HttpServerTest, OversizedHeadersAreRefused) {
  StartServer(&HttpServerTest::Echo);
  RawClient client(socket_);
  ASSERT_TRUE(
      client.Send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100000, 'a') + "\r\n\r\n") ||
      true);  // the server may hang up while we are still writing
  bool closed = false;
  std::string answer = client.ReadUntilClosed(3s, &closed);
  EXPECT_TRUE(closed);
  if (!answer.empty()) {
    EXPECT_EQ(answer.rfind("HTTP/1.1 4", 0), 0u) << answer;
  }
  EXPECT_EQ(Request(socket_, "GET", "/after").code, 200);
}

TEST_F(HttpServerTest, TruncatedRequestIsDropped) {
  std::atomic<int> calls{0};
  StartServer([&](const http::Request& request) {
    ++calls;
    return Echo(request);
  });
  {
    // Half the announced body, then the client hangs up its side.
    RawClient client(socket_);
    ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":"));
    client.ShutdownWrite();
    bool closed = false;
    client.ReadUntilClosed(3s, &closed);
    EXPECT_TRUE(closed);
  }
  {
    // Half the announced body, then silence: dropped after the request timeout (2 s).
    RawClient client(socket_);
    ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":"));
    auto start = std::chrono::steady_clock::now();
    bool closed = false;
    client.ReadUntilClosed(6s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  }
  EXPECT_EQ(calls, 0);
}

TEST_F(HttpServerTest, SilentClientIsDroppedAfterTheTimeout) {
  StartServer(&HttpServerTest::Echo);
  RawClient silent(socket_);
  ASSERT_TRUE(silent.connected());
  auto start = std::chrono::steady_clock::now();
  // Meanwhile others are served at once.
  auto fast_start = std::chrono::steady_clock::now();
  EXPECT_EQ(Request(socket_, "GET", "/fast").code, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - fast_start, 1500ms);
  bool closed = false;
  silent.ReadUntilClosed(6s, &closed);
  EXPECT_TRUE(closed);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 1500ms);
  EXPECT_LT(waited, 5s);
}

TEST_F(HttpServerTest, SlowlorisIsDroppedWhileFastRequestsSucceed) {
  StartServer(&HttpServerTest::Echo);
  // Several clients trickle a request one byte at a time: MHD's idle timeout alone would never
  // fire, the request deadline must.
  std::atomic<bool> stop{false};
  std::atomic<int> dropped{0};
  std::vector<std::thread> slow;
  for (int i = 0; i < 4; ++i) {
    slow.emplace_back([&] {
      RawClient client(socket_);
      std::string request =
          "GET /slow HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(200, 'p') + "\r\n\r\n";
      auto start = std::chrono::steady_clock::now();
      for (char c : request) {
        if (stop || !client.Send(std::string_view(&c, 1))) break;
        std::this_thread::sleep_for(300ms);
        if (std::chrono::steady_clock::now() - start > 8s) break;
      }
      bool closed = false;
      client.ReadUntilClosed(1s, &closed);
      if (closed && std::chrono::steady_clock::now() - start < 6s) ++dropped;
    });
  }
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 5; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto response = Request(socket_, "GET", "/fast");
    EXPECT_EQ(response.code, 200) << response.error;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  }
  for (auto& t : slow) t.join();
  stop = true;
  EXPECT_EQ(dropped, 4);
}

TEST_F(HttpServerTest, HandlerExceptionBecomes500) {
  StartServer([](const http::Request& request) -> http::Response {
    if (request.path == "/throw") throw std::runtime_error("boom");
    if (request.path == "/throw-int") throw 42;
    return http::Response::Text(200, "fine");
  });
  auto response = Request(socket_, "GET", "/throw");
  EXPECT_EQ(response.code, 500);
  EXPECT_NE(response.body.find("boom"), std::string::npos);
  EXPECT_EQ(Request(socket_, "GET", "/throw-int").code, 500);
  EXPECT_EQ(Request(socket_, "GET", "/ok").body, "fine");
}

TEST_F(HttpServerTest, KeepAliveConnectionServesSeveralRequests) {
  StartServer(&HttpServerTest::Echo);
  RawClient client(socket_);
  ASSERT_TRUE(
      client.Send("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n"
                  "Connection: close\r\n\r\n"));
  bool closed = false;
  std::string answer = client.ReadUntilClosed(3s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(answer.find("\"/one\""), std::string::npos);
  EXPECT_NE(answer.find("\"/two\""), std::string::npos);
}

// ---- http::Router

http::Response RouterError(int status, const std::string& message) {
  return http::Response::Text(status, message);
}

TEST(RouterTest, MatchesPatternsAndCapturesParameters) {
  http::Router router(&RouterError);
  router.Add("GET", "/api/v1/namespaces/{namespace}/things/{name}",
             [](const http::Request&, const http::PathParams& params) {
               return http::Response::Text(200, params.at("namespace") + "/" + params.at("name"));
             });
  router.Add("GET", "/api/v1/things", [](const http::Request&, const http::PathParams&) {
    return http::Response::Text(200, "list");
  });
  http::Request request;
  request.method = "GET";
  request.path = "/api/v1/namespaces/default/things/data";
  EXPECT_EQ(router.Dispatch(request).body, "default/data");
  request.path = "/api/v1/things/";
  EXPECT_EQ(router.Dispatch(request).body, "list");
  request.method = "HEAD";
  EXPECT_EQ(router.Dispatch(request).status, 200);
}

TEST(RouterTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  http::Router router(&RouterError);
  router.Add("GET", "/a/{x}", [](const http::Request&, const http::PathParams&) {
    return http::Response::Text(200, "");
  });
  router.Add("PUT", "/a/{x}", [](const http::Request&, const http::PathParams&) {
    return http::Response::Text(200, "");
  });
  http::Request request;
  request.method = "GET";
  request.path = "/b";
  EXPECT_EQ(router.Dispatch(request).status, 404);
  request.path = "/a/1/2";
  EXPECT_EQ(router.Dispatch(request).status, 404);
  request.method = "DELETE";
  request.path = "/a/1";
  http::Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 405);
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].first, "Allow");
  EXPECT_EQ(response.headers[0].second, "GET, PUT");
}

TEST(RouterTest, SplitPathDropsEmptySegments) {
  EXPECT_EQ(http::SplitPath("/a//b/c/"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(http::SplitPath("/").empty());
}

}  // namespace
}  // namespace claimfs::api
