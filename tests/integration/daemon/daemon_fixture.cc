#include "daemon/daemon_fixture.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#ifndef CLAIMFSD_BINARY
#define CLAIMFSD_BINARY "claimfsd"
#endif
#ifndef CLAIMCTL_BINARY
#define CLAIMCTL_BINARY "claimctl"
#endif
#ifndef CLAIMFS_SOURCE_DIR
#define CLAIMFS_SOURCE_DIR "."
#endif

extern char** environ;

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kArticleHostPath[] = "/tmp/k8s-pv";

// argv and envp built before fork(): the child of a threaded process only execs.
struct ExecArgs {
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, envp;

  ExecArgs(const std::vector<std::string>& args, const std::vector<std::string>& env_overrides)
      : argv_storage(args) {
    std::set<std::string> overridden;
    for (const std::string& e : env_overrides) overridden.insert(e.substr(0, e.find('=')));
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      // A suite run through sudo must not make every claimctl act for the user who ran sudo.
      if (entry.rfind("SUDO_", 0) == 0) continue;
      if (!overridden.count(entry.substr(0, entry.find('=')))) env_storage.push_back(entry);
    }
    for (const std::string& e : env_overrides) env_storage.push_back(e);
    for (std::string& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string Unescape(const std::string& s) {  // mountinfo's \040 and friends
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && isdigit(s[i + 1]) && isdigit(s[i + 2]) &&
        isdigit(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

size_t CurlWrite(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

void CurlInitOnce() {
  static bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return path == dir || path.rfind(dir + "/", 0) == 0;
}

// Detaches every mount at or below `dir`, deepest first; returns how many.
int DetachMountsUnder(const std::string& dir) {
  int count = 0;
  for (int round = 0; round < 10; ++round) {
    std::vector<std::string> mounts = MountsUnder(dir);
    if (mounts.empty()) break;
    std::sort(mounts.begin(), mounts.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const std::string& m : mounts) {
      if (umount2(m.c_str(), MNT_DETACH) == 0) ++count;
    }
  }
  return count;
}

thread_local uint64_t tree_bytes;
thread_local std::set<std::pair<dev_t, ino_t>>* tree_links;

int CountEntry(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_NS) return 1;
  if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 &&
      !tree_links->insert({st->st_dev, st->st_ino}).second) {
    return 0;
  }
  tree_bytes += static_cast<uint64_t>(st->st_blocks) * 512;
  return 0;
}

}  // namespace

std::string ClaimfsdBinary() {
  const char* v = getenv("CLAIMFSD_BINARY");
  return v != nullptr && *v != '\0' ? v : CLAIMFSD_BINARY;
}

std::string ClaimctlBinary() {
  const char* v = getenv("CLAIMCTL_BINARY");
  return v != nullptr && *v != '\0' ? v : CLAIMCTL_BINARY;
}

std::string JsonString(const nlohmann::json& j, const std::string& pointer,
                       const std::string& fallback) {
  try {
    nlohmann::json::json_pointer p(pointer);
    if (!j.is_object() || !j.contains(p) || !j.at(p).is_string()) return fallback;
    return j.at(p).get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

nlohmann::json StaticVolumeJson(const std::string& name, const std::string& path,
                                const std::string& reclaim_policy, const std::string& source) {
  return {{"apiVersion", "v1"},
          {"kind", "PersistentVolume"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"capacity", {{"storage", "16Mi"}}},
            {"accessModes", {"ReadWriteOnce"}},
            {"persistentVolumeReclaimPolicy", reclaim_policy},
            {"storageClassName", ""},
            {source, {{"path", path}}}}}};
}

std::string StaticPairYaml(const std::string& name, const std::string& path,
                           const std::string& access_mode, const std::string& reclaim_policy,
                           const std::string& mount_options) {
  std::string options = mount_options.empty() ? "" : "  mountOptions: [" + mount_options + "]\n";
  return "apiVersion: v1\n"
         "kind: PersistentVolume\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "spec:\n"
         "  capacity:\n"
         "    storage: 16Mi\n"
         "  accessModes: [" + access_mode + "]\n"
         "  persistentVolumeReclaimPolicy: " + reclaim_policy + "\n"
         "  storageClassName: \"\"\n" +
         options +
         "  hostPath:\n"
         "    path: " + path + "\n"
         "---\n"
         "apiVersion: v1\n"
         "kind: PersistentVolumeClaim\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "spec:\n"
         "  accessModes: [" + access_mode + "]\n"
         "  storageClassName: \"\"\n"
         "  volumeName: " + name + "\n"
         "  resources:\n"
         "    requests:\n"
         "      storage: 16Mi\n";
}

std::string ExamplesDir() { return std::string(CLAIMFS_SOURCE_DIR) + "/config/examples"; }

// --- commands ----------------------------------------------------------------------------------

std::string CommandResult::Describe() const {
  std::ostringstream s;
  if (timed_out) {
    s << "timed out";
  } else {
    s << "exit " << exit_code;
  }
  s << "\nstdout: " << out << "\nstderr: " << err;
  return s.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options) {
  CommandResult result;
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + strerror(errno);
    return result;
  }
  ExecArgs exec(argv, options.env);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execvpe(exec.argv[0], exec.argv.data(), exec.envp.data());
    dprintf(2, "exec %s: %s\n", exec.argv[0], strerror(errno));
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (pid < 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    result.err = std::string("fork: ") + strerror(errno);
    return result;
  }
  setpgid(pid, pid);
  int in_fd = in_pipe[1];
  size_t in_written = 0;
  if (options.stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    SetNonBlocking(in_fd);
  }
  int fds[2] = {out_pipe[0], err_pipe[0]};
  std::string* sinks[2] = {&result.out, &result.err};
  auto deadline = Clock::now() + options.timeout;
  while (fds[0] >= 0 || fds[1] >= 0 || in_fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) {
      result.timed_out = true;
      break;
    }
    std::vector<pollfd> pfds;
    for (int fd : fds) {
      if (fd >= 0) pfds.push_back({fd, POLLIN, 0});
    }
    if (in_fd >= 0) pfds.push_back({in_fd, POLLOUT, 0});
    int n = poll(pfds.data(), pfds.size(), static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (n < 0 && errno != EINTR) break;
    for (const pollfd& p : pfds) {
      if (p.revents == 0) continue;
      if (p.fd == in_fd) {
        ssize_t w = write(in_fd, options.stdin_data.data() + in_written,
                          options.stdin_data.size() - in_written);
        if (w > 0) in_written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) in_written = options.stdin_data.size();
        if (in_written >= options.stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      for (int i = 0; i < 2; ++i) {
        if (p.fd != fds[i]) continue;
        char buf[8192];
        ssize_t r = read(fds[i], buf, sizeof buf);
        if (r > 0) {
          sinks[i]->append(buf, static_cast<size_t>(r));
        } else if (r == 0 || errno != EINTR) {
          close(fds[i]);
          fds[i] = -1;
        }
      }
    }
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  if (in_fd >= 0) close(in_fd);
  int status = 0;
  if (result.timed_out) {
    killpg(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return result;
  }
  // Output closed; the command may still be finishing (or its children hold the pipes).
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (Clock::now() > deadline) {
      result.timed_out = true;
      killpg(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return result;
    }
    usleep(10000);
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

// --- HTTP --------------------------------------------------------------------------------------

nlohmann::json HttpResult::Json() const {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

std::string HttpResult::Describe() const {
  if (status == 0) return "no response: " + error;
  return "HTTP " + std::to_string(status) + ": " + body.substr(0, 2000);
}

HttpResult HttpRequest(const std::string& socket_path, const std::string& method,
                       const std::string& target, const std::string& body,
                       const std::string& content_type, std::chrono::seconds timeout) {
  CurlInitOnce();
  HttpResult result;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    result.error = "curl_easy_init failed";
    return result;
  }
  std::string url = "http://localhost" + target;
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CurlWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  struct curl_slist* headers = nullptr;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  if (rc != CURLE_OK) result.error = std::string(curl_easy_strerror(rc)) + ": " + error;
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return result;
}

// --- sd_notify ---------------------------------------------------------------------------------

NotifyListener::~NotifyListener() { Stop(); }

std::string NotifyListener::Start(const std::string& path) {
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::string("socket: ") + strerror(errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return "notify socket path too long: " + path;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  unlink(path.c_str());
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return "bind " + path + ": " + strerror(errno);
  }
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
  return "";
}

void NotifyListener::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void NotifyListener::Run() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) continue;
    std::lock_guard lock(mu_);
    messages_.emplace_back(buf, static_cast<size_t>(n));
    cv_.notify_all();
  }
}

size_t NotifyListener::Count() {
  std::lock_guard lock(mu_);
  return messages_.size();
}

std::vector<std::string> NotifyListener::Messages() {
  std::lock_guard lock(mu_);
  return messages_;
}

bool NotifyListener::WaitFor(const std::string& line, size_t since,
                             std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    for (size_t i = since; i < messages_.size(); ++i) {
      std::istringstream lines(messages_[i]);
      std::string l;
      while (std::getline(lines, l)) {
        if (l == line) return true;
      }
    }
    return false;
  });
}

// --- mounts and trees --------------------------------------------------------------------------

std::vector<MountInfo> ReadMounts() {
  std::vector<MountInfo> entries;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    MountInfo e;
    fields >> id >> parent >> devno >> root >> mount_point >> e.mount_options;
    std::string f;
    while (fields >> f && f != "-") {
    }
    std::string source;
    fields >> e.fs_type >> source >> e.super_options;
    e.mount_point = Unescape(mount_point);
    sscanf(devno.c_str(), "%u:%u", &e.major, &e.minor);
    entries.push_back(std::move(e));
  }
  return entries;
}

std::optional<MountInfo> MountAt(const std::string& path) {
  std::optional<MountInfo> found;
  for (MountInfo& e : ReadMounts()) {
    if (e.mount_point == path) found = std::move(e);
  }
  return found;
}

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (const MountInfo& e : ReadMounts()) {
    if (IsUnder(e.mount_point, dir)) out.push_back(e.mount_point);
  }
  return out;
}

std::vector<std::string> VolumeMountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (const MountInfo& e : ReadMounts()) {
    if (IsUnder(e.mount_point, dir) && e.fs_type.rfind("fuse", 0) == 0) out.push_back(e.mount_point);
  }
  return out;
}

bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
             std::chrono::milliseconds interval) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::optional<uint64_t> AllocatedBytes(const std::string& dir) {
  std::set<std::pair<dev_t, ino_t>> links;
  tree_links = &links;
  tree_bytes = 0;
  if (nftw(dir.c_str(), CountEntry, 32, FTW_PHYS) != 0) return std::nullopt;
  return tree_bytes;
}

// --- the fixture -------------------------------------------------------------------------------

void DaemonTest::SetUp() {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/fuse is not usable here";
  for (const std::string& binary : {ClaimfsdBinary(), ClaimctlBinary()}) {
    ASSERT_EQ(access(binary.c_str(), X_OK), 0)
        << binary << " is not built (" << strerror(errno)
        << "); build the claimfsd and claimctl targets first";
  }
  std::string tmpl = "/tmp/claimfs-e2e-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << strerror(errno);
  base_ = tmpl;
  chmod(base_.c_str(), 0755);
  mkdir((base_ + "/manifests").c_str(), 0755);
  log_path_ = base_ + "/claimfsd.log";
  k8s_pv_existed_ = access(kArticleHostPath, F_OK) == 0;
  std::string problem = notify_.Start(base_ + "/notify.sock");
  ASSERT_EQ(problem, "");
}

void DaemonTest::TearDown() {
  for (pid_t pid : spawned_) {
    killpg(pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  spawned_.clear();
  if (pid_ > 0) {
    int status = 0;
    auto stopped = StopDaemon(&status);
    if (!stopped) {
      ADD_FAILURE() << "teardown: " << stopped.message();
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ADD_FAILURE() << "teardown: claimfsd did not exit 0 on SIGTERM (wait status " << status
                    << ")\nlog:\n"
                    << DaemonLog();
    }
  }
  // Serving processes outlive a kill -9 of main by design: a test that ends after one leaves
  // them serving.
  for (const auto& [pid, cmdline] : ServerProcesses()) kill(pid, SIGKILL);
  for (const auto& [pid, cmdline] : HolderProcesses()) kill(pid, SIGKILL);
  notify_.Stop();
  if (HasFailure() && !base_.empty()) {
    std::cerr << "---- claimfsd log (" << log_path_ << ") ----\n" << DaemonLog() << "----\n";
  }
  std::vector<std::string> paths = cleanup_paths_;
  if (!base_.empty()) paths.push_back(base_);
  if (uses_article_host_path_ && !k8s_pv_existed_) paths.push_back(kArticleHostPath);
  for (const std::string& path : paths) {
    DetachMountsUnder(path);
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) ADD_FAILURE() << "teardown: remove " << path << ": " << ec.message();
  }
}

::testing::AssertionResult DaemonTest::Launch(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ClaimfsdBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  // As systemd's WatchdogSec=1s would: the daemon must ping WATCHDOG=1 while it is healthy.
  ExecArgs exec(argv, {"NOTIFY_SOCKET=" + base_ + "/notify.sock", "WATCHDOG_USEC=1000000"});
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return ::testing::AssertionFailure() << "open " << log_path_ << ": " << strerror(errno);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execve(exec.argv[0], exec.argv.data(), exec.envp.data());
    dprintf(2, "exec %s: %s\n", exec.argv[0], strerror(errno));
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << strerror(errno);
  setpgid(pid, pid);
  pid_ = pid;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult DaemonTest::StartDaemon(std::vector<std::string> args) {
  if (args.empty()) args = {"--data-dir", data_dir()};
  args_ = args;
  start_notify_index_ = notify_.Count();
  auto launched = Launch(args);
  if (!launched) return launched;
  auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    if (notify_.WaitFor("READY=1", start_notify_index_, 100ms)) {
      return ::testing::AssertionSuccess();
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "claimfsd exited before READY=1 (wait status " << status << "); log:\n"
             << DaemonLog();
    }
  }
  return ::testing::AssertionFailure() << "no READY=1 from claimfsd within 30 s; log:\n"
                                       << DaemonLog();
}

::testing::AssertionResult DaemonTest::StopDaemon(int* status, std::chrono::seconds timeout) {
  if (pid_ <= 0) return ::testing::AssertionFailure() << "claimfsd is not running";
  kill(pid_, SIGTERM);
  auto deadline = Clock::now() + timeout;
  int st = 0;
  while (true) {
    if (waitpid(pid_, &st, WNOHANG) == pid_) break;
    if (Clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &st, 0);
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "claimfsd did not exit within " << timeout.count()
             << " s of SIGTERM; killed it. log:\n"
             << DaemonLog();
    }
    usleep(20000);
  }
  pid_ = -1;
  if (status) *status = st;
  return ::testing::AssertionSuccess();
}

std::map<pid_t, std::string> DaemonTest::ServerProcesses() const {
  return ProcessesNamed("claimfsd-serve");
}

std::map<pid_t, std::string> DaemonTest::HolderProcesses() const {
  return ProcessesNamed("claimfsd-hold");
}

std::map<pid_t, std::string> DaemonTest::ProcessesNamed(const std::string& comm_name) const {
  std::map<pid_t, std::string> out;
  if (base_.empty()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm(e.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c != comm_name) continue;
    std::error_code cwd_ec;
    std::string cwd = std::filesystem::read_symlink(e.path() / "cwd", cwd_ec).string();
    if (cwd_ec || cwd.rfind(base_ + "/", 0) != 0) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out[static_cast<pid_t>(std::stol(name))] = cmdline.substr(0, cmdline.find('\0'));
  }
  return out;
}

void DaemonTest::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

::testing::AssertionResult DaemonTest::Restart() {
  if (pid_ > 0) {
    int status = 0;
    auto stopped = StopDaemon(&status);
    if (!stopped) return stopped;
  }
  return StartDaemon(args_);
}

void DaemonTest::SignalDaemon(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

bool DaemonTest::DaemonRunning() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::string DaemonTest::DaemonLog() const {
  std::ifstream in(log_path_);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string DaemonTest::WriteConfig(const std::string& extra, const std::string& name) {
  std::string path = base_ + "/" + name;
  std::ofstream out(path, std::ios::trunc);
  out << "pools:\n"
      << "  - name: default\n"
      << "    path: " << pool_dir() << "\n"
      << "stateDir: " << data_dir() << "/state\n"
      << "mountRoot: " << data_dir() << "/claims\n"
      << "socket:\n"
      << "  path: " << socket_path() << "\n"
      << extra;
  return path;
}

CommandResult DaemonTest::Claimctl(std::vector<std::string> args, const CommandOptions& options) {
  std::vector<std::string> argv = {ClaimctlBinary(), "--socket", socket_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, options);
}

std::string DaemonTest::WriteManifest(const std::string& name, const std::string& text) {
  std::string path = base_ + "/manifests/" + name;
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return path;
}

CommandResult DaemonTest::Apply(const std::string& yaml) {
  std::string path = WriteManifest("m" + std::to_string(++manifest_counter_) + ".yaml", yaml);
  return Claimctl({"apply", "-f", path});
}

HttpResult DaemonTest::Http(const std::string& method, const std::string& target,
                            const std::string& body, const std::string& content_type) {
  return HttpRequest(socket_path(), method, target, body, content_type);
}

std::optional<nlohmann::json> DaemonTest::GetClaim(const std::string& name, const std::string& ns) {
  HttpResult r = Http("GET", "/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + name);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) {
    ADD_FAILURE() << "GET claim " << ns << "/" << name << ": " << r.Describe();
    return std::nullopt;
  }
  return r.Json();
}

std::optional<nlohmann::json> DaemonTest::GetVolume(const std::string& name) {
  HttpResult r = Http("GET", "/api/v1/persistentvolumes/" + name);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200) {
    ADD_FAILURE() << "GET volume " << name << ": " << r.Describe();
    return std::nullopt;
  }
  return r.Json();
}

std::string DaemonTest::ClaimPhase(const std::string& name, const std::string& ns) {
  auto claim = GetClaim(name, ns);
  if (!claim) return "";
  return JsonString(*claim, "/status/phase", "<none>");
}

std::string DaemonTest::VolumePhase(const std::string& name) {
  auto pv = GetVolume(name);
  if (!pv) return "";
  return JsonString(*pv, "/status/phase", "<none>");
}

std::string DaemonTest::VolumeOf(const std::string& claim, const std::string& ns) {
  auto c = GetClaim(claim, ns);
  if (!c) return "";
  return JsonString(*c, "/spec/volumeName");
}

::testing::AssertionResult DaemonTest::WaitBoundAndMounted(const std::string& claim,
                                                           std::chrono::milliseconds timeout,
                                                           const std::string& ns) {
  std::string mount = MountPath(claim, ns);
  bool ok = WaitFor([&] { return ClaimPhase(claim, ns) == "Bound" && MountAt(mount).has_value(); },
                    timeout);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "claim " << ns << "/" << claim << " not Bound and mounted at " << mount << " within "
         << timeout.count() << " ms: phase \"" << ClaimPhase(claim, ns) << "\", mounted "
         << MountAt(mount).has_value() << "\nevents:\n"
         << DescribeEvents("PersistentVolumeClaim", claim);
}

::testing::AssertionResult DaemonTest::CreateDynamicClaim(const std::string& name,
                                                          const std::string& size,
                                                          const std::string& access_mode) {
  CommandResult r = Apply("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " + name +
                          "\nspec:\n  accessModes: [" + access_mode +
                          "]\n  resources:\n    requests:\n      storage: " + size + "\n");
  if (r.exit_code != 0) {
    return ::testing::AssertionFailure() << "apply claim " << name << ": " << r.Describe();
  }
  return WaitBoundAndMounted(name);
}

std::vector<nlohmann::json> DaemonTest::EventsFor(const std::string& kind, const std::string& name) {
  std::vector<nlohmann::json> out;
  std::set<std::string> seen;
  for (const std::string& target : {std::string("/api/v1/events"),
                                    std::string("/api/v1/namespaces/default/events")}) {
    HttpResult r = Http("GET", target);
    if (r.status != 200) continue;
    nlohmann::json list = r.Json();
    if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) continue;
    for (const nlohmann::json& e : list["items"]) {
      if (JsonString(e, "/involvedObject/kind") != kind ||
          JsonString(e, "/involvedObject/name") != name) {
        continue;
      }
      std::string id = JsonString(e, "/metadata/namespace") + "/" +
                       JsonString(e, "/metadata/name");
      if (seen.insert(id).second) out.push_back(e);
    }
  }
  return out;
}

std::string DaemonTest::DescribeEvents(const std::string& kind, const std::string& name) {
  std::string out;
  for (const nlohmann::json& e : EventsFor(kind, name)) {
    out += "  " + JsonString(e, "/type") + " " + JsonString(e, "/reason") + ": " +
           JsonString(e, "/message") + "\n";
  }
  return out.empty() ? "  (none)\n" : out;
}

std::vector<nlohmann::json> DaemonTest::Leases(const std::string& claim, const std::string& ns) {
  HttpResult r = Http("GET", "/apis/claimfs.io/v1/namespaces/" + ns + "/persistentvolumeclaims/" +
                                 claim + "/leases");
  if (r.status != 200) return {};
  nlohmann::json j = r.Json();
  if (j.is_array()) return j.get<std::vector<nlohmann::json>>();
  if (j.is_object() && j.contains("items") && j["items"].is_array()) {
    return j["items"].get<std::vector<nlohmann::json>>();
  }
  return {};
}

pid_t DaemonTest::Spawn(const std::vector<std::string>& argv) {
  ExecArgs exec(argv, {});
  std::string log = base_ + "/spawned.log";
  int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    execvpe(exec.argv[0], exec.argv.data(), exec.envp.data());
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
  if (pid > 0) {
    setpgid(pid, pid);
    spawned_.push_back(pid);
  } else {
    ADD_FAILURE() << "fork: " << strerror(errno);
  }
  return pid;
}

pid_t DaemonTest::SpawnFunction(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    _exit(fn());
  }
  if (pid > 0) {
    setpgid(pid, pid);
    spawned_.push_back(pid);
  } else {
    ADD_FAILURE() << "fork: " << strerror(errno);
  }
  return pid;
}

void DaemonTest::KillSpawned(pid_t pid) {
  auto it = std::find(spawned_.begin(), spawned_.end(), pid);
  if (it == spawned_.end()) return;
  killpg(pid, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  spawned_.erase(it);
}

std::optional<int> DaemonTest::WaitSpawned(pid_t pid, std::chrono::milliseconds timeout) {
  auto it = std::find(spawned_.begin(), spawned_.end(), pid);
  if (it == spawned_.end()) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  int status = 0;
  while (true) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      spawned_.erase(std::find(spawned_.begin(), spawned_.end(), pid));
      killpg(pid, SIGKILL);  // whatever it left behind in its group
      return status;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    usleep(20000);
  }
}

}  // namespace claimfs::it
