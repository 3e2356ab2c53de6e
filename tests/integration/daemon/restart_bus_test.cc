// SIGTERM as systemd sends it, with the StopIntent's real D-Bus query answered by a double of
// org.freedesktop.systemd1 on a private system bus (DBUS_SYSTEM_BUS_ADDRESS): a restart job
// keeps every volume mounted and served for the next main; a stop job, no job, no unit, a hung
// manager and hostile replies all stop cleanly. CLAIMFS_STOP_INTENT is never set here.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "daemon/open_files_workload.h"
#include "daemon/systemd_main.h"
#include "handoff/fake_systemd.h"
#include "handoff/fake_systemd_bus.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;
using Reply = FakeSystemdBus::Reply;

constexpr char kUnitName[] = "claimfsd.service";

class RestartBus : public OpenFilesWorkloadTest {
 protected:
  void SetUp() override {
    OpenFilesWorkloadTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    unsetenv("CLAIMFS_STOP_INTENT");
    std::string dir = base() + "/bus";
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    bus_ = std::make_unique<FakeSystemdBus>(dir);
    std::string error;
    ASSERT_TRUE(bus_->Start(&error)) << error;
    setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_->address().c_str(), 1);
  }
  void TearDown() override {
    // The teardown's SIGTERM is a stop.
    if (bus_) bus_->SetJob(0, "");
    OpenFilesWorkloadTest::TearDown();
    unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    bus_.reset();
  }

  // Starts main and makes it the unit's main process, as systemd's start job does.
  ::testing::AssertionResult StartUnit() {
    auto started = StartDaemon();
    if (started) bus_->SetUnit(kUnitName, daemon_pid());
    return started;
  }

  // True when the double was asked `call` (see FakeSystemdBus::Calls).
  ::testing::AssertionResult Asked(const std::string& call) {
    auto calls = bus_->Calls();
    if (std::find(calls.begin(), calls.end(), call) != calls.end()) {
      return ::testing::AssertionSuccess();
    }
    auto failure = ::testing::AssertionFailure()
                   << "the daemon never asked \"" << call << "\"; it asked:";
    for (const auto& c : calls) failure << "\n  " << c;
    return failure << "\n" << DaemonLog();
  }
  std::string UnitJobCall() const {
    return "Get " + FakeSystemdBus::UnitPath(kUnitName) + " org.freedesktop.systemd1.Unit.Job";
  }
  static std::string JobTypeCall(uint32_t id) {
    return "Get " + FakeSystemdBus::JobPath(id) + " org.freedesktop.systemd1.Job.JobType";
  }

  // After a stop: no serving process, no holder, no volume mount.
  void ExpectEverythingStopped() {
    EXPECT_TRUE(
        WaitFor([&] { return ServerProcesses().empty() && HolderProcesses().empty(); }, 10s))
        << DaemonLog();
    EXPECT_TRUE(VolumeMountsUnder(data_dir()).empty()) << DaemonLog();
  }

  std::unique_ptr<FakeSystemdBus> bus_;
};

// `systemctl restart claimfsd`: SIGTERM while a restart job runs on the unit. Main exits 0,
// the writers and readers never see an error, and the next main adopts the serving processes.
TEST_F(RestartBus, RestartJobKeepsVolumesServedForTheNextMain) {
  ASSERT_TRUE(StartUnit());
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  auto servers = ServerProcesses();
  pid_t pid = daemon_pid();
  bus_->SetJob(1742, "restart");
  int status = -1;
  ASSERT_TRUE(StopDaemon(&status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(Asked("GetUnitByPID " + std::to_string(pid)));
  EXPECT_TRUE(Asked(UnitJobCall()));
  EXPECT_TRUE(Asked(JobTypeCall(1742)));
  EXPECT_EQ(VolumeMountsUnder(data_dir()).size(), static_cast<size_t>(kVolumes)) << DaemonLog();
  EXPECT_EQ(ServerProcesses(), servers);
  EXPECT_FALSE(HolderProcesses().empty());
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  // The job's start half.
  bus_->SetJob(0, "");
  std::vector<uint64_t> before = Counts();
  ASSERT_TRUE(StartUnit());
  EXPECT_EQ(ServerProcesses(), servers) << "the new main did not adopt the serving processes";
  ASSERT_TRUE(Progressed(before, 5, 20s)) << Errors();
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound");
}

// `systemctl restart claimfsd` on systemd 252, step by step: the restart job is queued, main
// gets SIGTERM (KillMode=process), exits, systemd flushes the fd store because the restart is
// a manual one, and starts main again with no stored fds. Only the holder carries the volumes
// across, and the programs writing in them never notice.
TEST_F(RestartBus, SystemctlRestartThroughFakeSystemdFlushesTheStoreAndKeepsVolumes) {
  const std::string dir = base() + "/systemd";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0) << strerror(errno);
  FakeSystemd systemd({.dir = dir});
  std::string error;
  ASSERT_TRUE(systemd.Start(&error)) << error;
  SystemdMain unit(&systemd, ClaimfsdBinary(), data_dir(), dir + "/claimfsd.log",
                   {"DBUS_SYSTEM_BUS_ADDRESS=" + bus_->address()});
  auto start = [&] { return unit.Start([&](pid_t pid) { bus_->SetUnit(kUnitName, pid); }); };
  ASSERT_TRUE(start()) << unit.Log();
  CreateClaims();
  StartWorkload();
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();
  ASSERT_TRUE(systemd.WaitForStore([](const std::vector<std::string>& names) {
    return names.size() == 2 * kVolumes;
  })) << "the fd store does not keep every volume's connection and arena";
  auto servers = ServerProcesses();
  pid_t pid = systemd.main_pid();

  bus_->SetJob(4711, "restart");
  int status = systemd.StopMain(FakeSystemd::Exit::kManualRestart, 30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status << "\n"
                                                             << unit.Log();
  EXPECT_TRUE(Asked("GetUnitByPID " + std::to_string(pid)));
  EXPECT_TRUE(Asked(JobTypeCall(4711)));
  EXPECT_TRUE(systemd.StoredNames().empty()) << "a manual restart flushes the store on 252";
  EXPECT_EQ(VolumeMountsUnder(data_dir()).size(), static_cast<size_t>(kVolumes)) << unit.Log();
  EXPECT_EQ(ServerProcesses(), servers);
  ASSERT_TRUE(Progressed(Counts(), 20, 20s)) << Errors();

  // The job's start half.
  bus_->SetJob(0, "");
  std::vector<uint64_t> before = Counts();
  ASSERT_TRUE(start()) << unit.Log();
  EXPECT_EQ(ServerProcesses(), servers) << "the new main did not adopt the serving processes";
  ASSERT_TRUE(Progressed(before, 5, 20s)) << Errors();
  ASSERT_EQ(Errors(), "");
  StopAndVerify();
  for (int i = 0; i < kVolumes; ++i) EXPECT_EQ(ClaimPhase(ClaimName(i)), "Bound") << unit.Log();

  // `systemctl stop`: a stop job, so everything is unmounted.
  bus_->SetJob(4712, "stop");
  status = systemd.StopMain(FakeSystemd::Exit::kManualStop, 30s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(Asked(JobTypeCall(4712)));
  ExpectEverythingStopped();
}

// The other job types that restart the unit (systemctl try-restart, reload-or-restart on a unit
// without ExecReload=).
class RestartBusKinds : public RestartBus, public ::testing::WithParamInterface<const char*> {};

TEST_P(RestartBusKinds, KeepVolumesMounted) {
  ASSERT_TRUE(StartUnit());
  CreateClaims();
  auto servers = ServerProcesses();
  pid_t pid = daemon_pid();
  bus_->SetJob(77, GetParam());
  int status = -1;
  ASSERT_TRUE(StopDaemon(&status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_TRUE(Asked("GetUnitByPID " + std::to_string(pid)));
  EXPECT_TRUE(Asked(JobTypeCall(77)));
  EXPECT_EQ(VolumeMountsUnder(data_dir()).size(), static_cast<size_t>(kVolumes)) << DaemonLog();
  EXPECT_EQ(ServerProcesses(), servers);
  bus_->SetJob(0, "");
  ASSERT_TRUE(StartUnit());
  EXPECT_EQ(ServerProcesses(), servers) << "the new main did not adopt the serving processes";
}

INSTANTIATE_TEST_SUITE_P(Jobs, RestartBusKinds,
                         ::testing::Values("try-restart", "reload-or-restart"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// Every answer that is not a restart job is a stop: unmount everything, leave no process, exit
// 0, never a crash. `asked` is how far the query must have got (so a query that gives up early
// fails the case); the hostile cases carry a restart job so that a query that ignores types
// would keep the volumes.
struct StopCase {
  const char* name;
  uint32_t job_id;
  const char* job_type;
  Reply reply;
  bool unit_known;  // GetUnitByPID knows the daemon's pid
  enum { kUnit, kJob, kJobType } asked;
};
void PrintTo(const StopCase& c, std::ostream* os) { *os << c.name; }

class RestartBusStops : public RestartBus, public ::testing::WithParamInterface<StopCase> {};

TEST_P(RestartBusStops, StopCleanly) {
  const StopCase& c = GetParam();
  ASSERT_TRUE(StartUnit());
  CreateClaims();
  pid_t pid = daemon_pid();
  if (!c.unit_known) bus_->SetUnit(kUnitName, 1);
  bus_->SetJob(c.job_id, c.job_type);
  bus_->SetReply(c.reply);
  int status = -1;
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(StopDaemon(&status, 30s)) << DaemonLog();
  auto took = std::chrono::steady_clock::now() - start;
  RecordProperty("stop_ms", static_cast<int>(took / 1ms));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  // The bus answers within the 5 s the query allows itself, or the stop goes on without it.
  EXPECT_LT(took, 15s);
  EXPECT_TRUE(Asked("GetUnitByPID " + std::to_string(pid)));
  if (c.asked != StopCase::kUnit) {
    EXPECT_TRUE(Asked(UnitJobCall()));
  }
  if (c.asked == StopCase::kJobType) {
    EXPECT_TRUE(Asked(JobTypeCall(c.job_id)));
  }
  if (c.asked != StopCase::kJobType) {
    for (const auto& call : bus_->Calls()) {
      EXPECT_EQ(call.find("JobType"), std::string::npos) << "asked " << call;
    }
  }
  ExpectEverythingStopped();
  EXPECT_EQ(DaemonLog().find("SIGTERM for a restart"), std::string::npos) << DaemonLog();
}

INSTANTIATE_TEST_SUITE_P(
    Answers, RestartBusStops,
    ::testing::Values(
        StopCase{"StopJob", 31, "stop", Reply::kFaithful, true, StopCase::kJobType},
        StopCase{"NoJob", 0, "", Reply::kFaithful, true, StopCase::kJob},
        StopCase{"NoUnitForPid", 31, "restart", Reply::kFaithful, false, StopCase::kUnit},
        StopCase{"ManagerNeverAnswers", 31, "restart", Reply::kNever, true, StopCase::kUnit},
        StopCase{"UnitPathNotAnObjectPath", 31, "restart", Reply::kUnitPathNotObject, true,
                 StopCase::kUnit},
        StopCase{"JobNotAStruct", 31, "restart", Reply::kJobNotStruct, true, StopCase::kJob},
        StopCase{"JobTypeNotAString", 31, "restart", Reply::kJobTypeNotString, true,
                 StopCase::kJobType},
        StopCase{"JobObjectMissing", 31, "restart", Reply::kJobObjectMissing, true,
                 StopCase::kJobType},
        StopCase{"ManagerHangsAtTheJobType", 31, "restart", Reply::kJobTypeNever, true,
                 StopCase::kJobType}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace claimfs::it
