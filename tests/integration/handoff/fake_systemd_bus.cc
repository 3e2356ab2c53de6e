#include "handoff/fake_systemd_bus.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

namespace claimfs::it {

struct FakeSystemdBus::State {
  std::mutex mu;  // guards everything below
  std::string unit;
  pid_t pid = 0;
  uint32_t job_id = 0;
  std::string job_type;
  Reply reply = Reply::kFaithful;
  std::vector<std::string> calls;
};

namespace {

using State = FakeSystemdBus::State;
using Reply = FakeSystemdBus::Reply;

constexpr char kName[] = "org.freedesktop.systemd1";
constexpr char kManagerPath[] = "/org/freedesktop/systemd1";
constexpr char kUnitPrefix[] = "/org/freedesktop/systemd1/unit";
constexpr char kJobPrefix[] = "/org/freedesktop/systemd1/job";
constexpr char kManager[] = "org.freedesktop.systemd1.Manager";
constexpr char kUnit[] = "org.freedesktop.systemd1.Unit";
constexpr char kJob[] = "org.freedesktop.systemd1.Job";

// The system bus's policy (dbus's system.conf) with systemd's own rules
// (org.freedesktop.systemd1.conf): root owns and calls the manager; everything else is denied
// except talking to the bus itself and replies that were asked for.
constexpr char kConfig[] =
    R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@SOCKET@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow own="org.freedesktop.systemd1"/>
    <allow send_destination="org.freedesktop.systemd1"/>
  </policy>
</busconfig>
)";

int GetUnitByPid(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  auto* s = static_cast<State*>(userdata);
  uint32_t pid = 0;
  int r = sd_bus_message_read(m, "u", &pid);
  if (r < 0) return r;
  if (pid == 0) {  // systemd answers for the caller
    sd_bus_creds* creds = nullptr;
    r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_PID, &creds);
    if (r < 0) return r;
    pid_t sender = 0;
    r = sd_bus_creds_get_pid(creds, &sender);
    sd_bus_creds_unref(creds);
    if (r < 0) return r;
    pid = static_cast<uint32_t>(sender);
  }
  std::string path;
  Reply reply;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->calls.push_back("GetUnitByPID " + std::to_string(pid));
    reply = s->reply;
    if (!s->unit.empty() && static_cast<pid_t>(pid) == s->pid) {
      path = FakeSystemdBus::UnitPath(s->unit);
    }
  }
  if (reply == Reply::kNever) return 1;  // no reply at all: the caller's timeout decides
  if (path.empty()) {
    return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoUnitForPID",
                             "PID %u does not belong to any loaded unit.", pid);
  }
  return sd_bus_reply_method_return(m, "o", path.c_str());
}

int FindUnit(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->unit.empty() || path != FakeSystemdBus::UnitPath(s->unit)) return 0;
  *found = s;
  return 1;
}

int FindJob(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->job_id == 0 || s->reply == Reply::kJobObjectMissing ||
      path != FakeSystemdBus::JobPath(s->job_id)) {
    return 0;
  }
  *found = s;
  return 1;
}

int UnitId(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
           sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  return sd_bus_message_append(reply, "s", s->unit.c_str());
}

int UnitJob(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
            sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  std::string path = s->job_id == 0 ? "/" : FakeSystemdBus::JobPath(s->job_id);
  return sd_bus_message_append(reply, "(uo)", s->job_id, path.c_str());
}

int JobId(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
          sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  return sd_bus_message_append(reply, "u", s->job_id);
}

int JobUnit(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
            sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  return sd_bus_message_append(reply, "(so)", s->unit.c_str(),
                               FakeSystemdBus::UnitPath(s->unit).c_str());
}

int JobType(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
            sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  std::lock_guard<std::mutex> lock(s->mu);
  return sd_bus_message_append(reply, "s", s->job_type.c_str());
}

int JobState(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void*,
             sd_bus_error*) {
  return sd_bus_message_append(reply, "s", "running");
}

// Runs before the vtables on every message below the unit and job prefixes. A message to an
// object that does not exist gets sd-bus's UnknownObject, as systemd's find callbacks give (a
// raw callback here would otherwise make sd-bus answer UnknownProperty). Records each
// Properties.Get, and answers it with the wrong type where the Reply says so (a vtable getter
// cannot: sd-bus holds it to the declared signature).
int InterceptObjects(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  auto* s = static_cast<State*>(userdata);
  std::string path = sd_bus_message_get_path(m);
  std::string job_path;
  std::string unit_path;
  Reply reply;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    reply = s->reply;
    if (s->job_id != 0) job_path = FakeSystemdBus::JobPath(s->job_id);
    if (!s->unit.empty()) unit_path = FakeSystemdBus::UnitPath(s->unit);
  }
  bool get = sd_bus_message_is_method_call(m, "org.freedesktop.DBus.Properties", "Get");
  std::string iface;
  std::string prop;
  if (get) {
    const char* interface = nullptr;
    const char* property = nullptr;
    if (sd_bus_message_read(m, "ss", &interface, &property) >= 0) {
      iface = interface;
      prop = property;
    }
    sd_bus_message_rewind(m, 1);
    std::lock_guard<std::mutex> lock(s->mu);
    s->calls.push_back("Get " + path + " " + iface + "." + prop);
  }
  bool exists = path == unit_path ||
                (!job_path.empty() && path == job_path && reply != Reply::kJobObjectMissing);
  if (!exists) {
    return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "Unknown object '%s'.",
                             path.c_str());
  }
  if (!get) return 0;
  if (reply == Reply::kJobNotStruct && path == unit_path && iface == kUnit && prop == "Job") {
    return sd_bus_reply_method_return(m, "v", "s", job_path.empty() ? "/" : job_path.c_str());
  }
  if (path == job_path && iface == kJob && prop == "JobType") {
    if (reply == Reply::kJobTypeNotString) return sd_bus_reply_method_return(m, "v", "u", 7u);
    if (reply == Reply::kJobTypeNever) return 1;  // handled, never answered
  }
  return 0;
}

// GetUnitByPID answered with a string where the vtable would enforce "o".
int InterceptManager(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* s = static_cast<State*>(userdata);
  if (!sd_bus_message_is_method_call(m, kManager, "GetUnitByPID")) return 0;
  uint32_t pid = 0;
  int r = sd_bus_message_read(m, "u", &pid);
  sd_bus_message_rewind(m, 1);
  if (r < 0) return 0;
  std::string path;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->reply != Reply::kUnitPathNotObject || s->unit.empty() ||
        static_cast<pid_t>(pid) != s->pid) {
      return 0;
    }
    s->calls.push_back("GetUnitByPID " + std::to_string(pid));
    path = FakeSystemdBus::UnitPath(s->unit);
  }
  return sd_bus_reply_method_return(m, "s", path.c_str());
}

const sd_bus_vtable kManagerVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("GetUnitByPID", "u", "o", GetUnitByPid, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

const sd_bus_vtable kUnitVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Id", "s", UnitId, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Job", "(uo)", UnitJob, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_VTABLE_END,
};

const sd_bus_vtable kJobVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Id", "u", JobId, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Unit", "(so)", JobUnit, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("JobType", "s", JobType, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("State", "s", JobState, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_VTABLE_END,
};

std::string Errno(const std::string& what, int negative_errno) {
  return what + ": " + std::strerror(-negative_errno);
}

}  // namespace

FakeSystemdBus::FakeSystemdBus(std::string dir)
    : dir_(std::move(dir)), state_(std::make_unique<State>()) {}

FakeSystemdBus::~FakeSystemdBus() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (bus_pid_ > 0) {
    kill(bus_pid_, SIGTERM);
    int status;
    while (waitpid(bus_pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

std::string FakeSystemdBus::EscapeLabel(const std::string& label) {
  if (label.empty()) return "_";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : label) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += static_cast<char>(c);
    } else {
      out += '_';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string FakeSystemdBus::UnitPath(const std::string& name) {
  return std::string(kUnitPrefix) + "/" + EscapeLabel(name);
}

std::string FakeSystemdBus::JobPath(uint32_t id) {
  return std::string(kJobPrefix) + "/" + std::to_string(id);
}

void FakeSystemdBus::SetUnit(const std::string& name, pid_t pid) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->unit = name;
  state_->pid = pid;
}

void FakeSystemdBus::SetJob(uint32_t id, const std::string& type) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->job_id = id;
  state_->job_type = id == 0 ? "" : type;
}

void FakeSystemdBus::SetReply(Reply reply) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->reply = reply;
}

std::vector<std::string> FakeSystemdBus::Calls() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->calls;
}

std::string FakeSystemdBus::BusLog() const {
  std::ifstream in(dir_ + "/bus.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool FakeSystemdBus::Start(std::string* error) {
  std::string config = kConfig;
  config.replace(config.find("@SOCKET@"), 8, dir_ + "/system_bus_socket");
  std::string config_path = dir_ + "/system-bus.conf";
  {
    std::ofstream out(config_path);
    out << config;
    if (!out.flush()) {
      *error = "cannot write " + config_path;
      return false;
    }
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    *error = Errno("pipe2", -errno);
    return false;
  }
  std::string log_path = dir_ + "/bus.log";
  std::string config_arg = "--config-file=" + config_path;
  bus_pid_ = fork();
  if (bus_pid_ < 0) {
    *error = Errno("fork", -errno);
    close(out[0]);
    close(out[1]);
    return false;
  }
  if (bus_pid_ == 0) {
    int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) dup2(log, 2);
    dup2(out[1], 1);
    execlp("dbus-daemon", "dbus-daemon", "--nofork", "--nopidfile", "--print-address",
           config_arg.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, n);
  }
  close(out[0]);
  if (line.find('\n') == std::string::npos) {
    *error =
        "dbus-daemon printed no address (scripts/install-deps --test installs it): " + BusLog();
    return false;
  }
  address_ = line.substr(0, line.find('\n'));
  std::promise<std::string> started;
  std::future<std::string> result = started.get_future();
  thread_ = std::thread(&FakeSystemdBus::Serve, this, &started);
  *error = result.get();
  return error->empty();
}

void FakeSystemdBus::Serve(std::promise<std::string>* started) {
  sd_bus* bus = nullptr;
  int r = sd_bus_new(&bus);
  if (r < 0) {
    started->set_value(Errno("sd_bus_new", r));
    return;
  }
  std::string failure;
  if ((r = sd_bus_set_address(bus, address_.c_str())) < 0) {
    failure = Errno("sd_bus_set_address " + address_, r);
  } else if ((r = sd_bus_set_bus_client(bus, 1)) < 0) {
    failure = Errno("sd_bus_set_bus_client", r);
  } else if ((r = sd_bus_start(bus)) < 0) {
    failure = Errno("sd_bus_start " + address_, r);
  } else if ((r = sd_bus_request_name(bus, kName, 0)) < 0) {
    failure = Errno(std::string("sd_bus_request_name ") + kName, r);
  } else if ((r = sd_bus_add_object_vtable(bus, nullptr, kManagerPath, kManager, kManagerVtable,
                                           state_.get())) < 0) {
    failure = Errno("sd_bus_add_object_vtable Manager", r);
  } else if ((r = sd_bus_add_object(bus, nullptr, kManagerPath, InterceptManager, state_.get())) <
                 0 ||
             (r = sd_bus_add_fallback(bus, nullptr, kUnitPrefix, InterceptObjects, state_.get())) <
                 0 ||
             (r = sd_bus_add_fallback(bus, nullptr, kJobPrefix, InterceptObjects, state_.get())) <
                 0) {
    failure = Errno("sd_bus_add_object", r);
  } else if ((r = sd_bus_add_fallback_vtable(bus, nullptr, kUnitPrefix, kUnit, kUnitVtable,
                                             FindUnit, state_.get())) < 0 ||
             (r = sd_bus_add_fallback_vtable(bus, nullptr, kJobPrefix, kJob, kJobVtable, FindJob,
                                             state_.get())) < 0) {
    failure = Errno("sd_bus_add_fallback_vtable", r);
  }
  started->set_value(failure);
  if (failure.empty()) {
    while (!stop_) {
      r = sd_bus_process(bus, nullptr);
      if (r < 0) break;
      if (r > 0) continue;
      sd_bus_wait(bus, 100'000);
    }
  }
  sd_bus_flush_close_unref(bus);
}

}  // namespace claimfs::it
