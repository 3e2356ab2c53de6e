// A test double of systemd's service manager on the system bus (org.freedesktop.systemd1), for
// machines without systemd as PID 1: a private dbus-daemon with a system-bus-like policy, and a
// thread serving with sd-bus the part of the API that claimfsd's StopIntent reads:
//
// - /org/freedesktop/systemd1, org.freedesktop.systemd1.Manager.GetUnitByPID(u pid) -> o: the
//   unit's path for its pid (0: the caller's pid), else the error
//   org.freedesktop.systemd1.NoUnitForPID "PID %u does not belong to any loaded unit.";
// - /org/freedesktop/systemd1/unit/<escaped name>, org.freedesktop.systemd1.Unit: Id (s),
//   Job (uo) = (id, /org/freedesktop/systemd1/job/<id>) during a job, (0, "/") otherwise;
// - /org/freedesktop/systemd1/job/<id>, org.freedesktop.systemd1.Job: Id (u), Unit (so),
//   JobType (s), State (s).
// Object paths escape a unit name as systemd's bus_label_escape() does: every byte that is not
// an ASCII letter or digit becomes _xx (lower-case hex), so claimfsd.service is
// claimfsd_2eservice. Unknown objects and properties get sd-bus's standard errors.
//
// `Reply` makes the manager hang or answer with the wrong types, as a hostile or broken bus
// could. Clients reach the bus through DBUS_SYSTEM_BUS_ADDRESS=address().
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace claimfs::it {

class FakeSystemdBus {
 public:
  enum class Reply {
    kFaithful,           // as systemd 252 answers
    kNever,              // GetUnitByPID is received and never answered (a hung manager)
    kUnitPathNotObject,  // GetUnitByPID answers a string (s), not an object path (o)
    kJobNotStruct,       // Unit.Job is a string (s), not (uo)
    kJobTypeNotString,   // Job.JobType is a uint32 (u), not a string
    kJobObjectMissing,   // Unit.Job names a job whose object does not exist
    kJobTypeNever,       // the manager hangs after answering GetUnitByPID and Unit.Job
  };

  // `dir` holds the bus's config, socket and log; it must exist.
  explicit FakeSystemdBus(std::string dir);
  ~FakeSystemdBus();
  FakeSystemdBus(const FakeSystemdBus&) = delete;
  FakeSystemdBus& operator=(const FakeSystemdBus&) = delete;

  // Starts dbus-daemon, connects, takes the name org.freedesktop.systemd1 and starts serving;
  // false with `error` set on failure.
  bool Start(std::string* error);
  // "unix:path=..." for DBUS_SYSTEM_BUS_ADDRESS.
  const std::string& address() const { return address_; }

  // The unit (e.g. "claimfsd.service") whose main process is `pid`; other pids have no unit.
  void SetUnit(const std::string& name, pid_t pid);
  // The job running on the unit: `type` as systemd names it (restart, stop, try-restart, ...);
  // id 0 clears it.
  void SetJob(uint32_t id, const std::string& type);
  void SetReply(Reply reply);

  // What was asked, in order: "GetUnitByPID <pid>", "Get <path> <interface>.<property>".
  std::vector<std::string> Calls() const;
  // What dbus-daemon wrote (for failure messages).
  std::string BusLog() const;

  static std::string EscapeLabel(const std::string& label);
  static std::string UnitPath(const std::string& name);
  static std::string JobPath(uint32_t id);

  struct State;  // what the handlers read; defined in the .cc

 private:
  // The serving thread: sets `started` to "" once serving, else to what failed.
  void Serve(std::promise<std::string>* started);

  std::string dir_;
  std::string address_;
  pid_t bus_pid_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<State> state_;  // shared with the serving thread; State::mu guards it
};

}  // namespace claimfs::it
