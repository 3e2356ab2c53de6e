#include "stop_intent.h"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "claimfs/common/log.h"

namespace claimfs::claimfsd {
namespace {

constexpr char kSystemd[] = "org.freedesktop.systemd1";
constexpr uint64_t kBusTimeoutUsec = 5'000'000;

bool IsRestartJob(std::string_view type) {
  return type == "restart" || type == "try-restart" || type == "reload-or-restart";
}

// The type of the job systemd runs on our unit, or "" (no bus, no unit, no job).
std::string JobTypeOfOurUnit() {
  sd_bus* bus = nullptr;
  if (sd_bus_open_system(&bus) < 0) return "";
  // A hung bus must not hold up the stop for sd-bus's default 25 s.
  (void)sd_bus_set_method_call_timeout(bus, kBusTimeoutUsec);
  std::string type;
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  const char* unit = nullptr;
  if (sd_bus_call_method(bus, kSystemd, "/org/freedesktop/systemd1",
                         "org.freedesktop.systemd1.Manager", "GetUnitByPID", &error, &reply, "u",
                         static_cast<uint32_t>(getpid())) >= 0 &&
      sd_bus_message_read(reply, "o", &unit) >= 0) {
    std::string unit_path = unit;
    reply = sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
    uint32_t job_id = 0;
    const char* job = nullptr;
    if (sd_bus_get_property(bus, kSystemd, unit_path.c_str(), "org.freedesktop.systemd1.Unit",
                            "Job", &error, &reply, "(uo)") >= 0 &&
        sd_bus_message_read(reply, "(uo)", &job_id, &job) >= 0 && job_id != 0) {
      std::string job_path = job;
      sd_bus_error_free(&error);
      char* job_type = nullptr;
      if (sd_bus_get_property_string(bus, kSystemd, job_path.c_str(),
                                     "org.freedesktop.systemd1.Job", "JobType", &error,
                                     &job_type) >= 0) {
        type = job_type;
        free(job_type);
      }
    }
  }
  if (sd_bus_error_is_set(&error)) log::Debug("systemd's job on our unit: {}", error.message);
  sd_bus_error_free(&error);
  sd_bus_message_unref(reply);
  sd_bus_flush_close_unref(bus);
  return type;
}

class SystemdIntent : public StopIntent {
 public:
  StopKind OnSigterm() override {
#ifdef CLAIMFS_TEST_HOOKS
    if (const char* injected = std::getenv("CLAIMFS_STOP_INTENT")) {
      return std::string_view(injected) == "restart" ? StopKind::kRestart : StopKind::kStop;
    }
#endif
    std::string type = JobTypeOfOurUnit();
    if (!type.empty()) log::Info("SIGTERM during systemd's {} job", type);
    return IsRestartJob(type) ? StopKind::kRestart : StopKind::kStop;
  }
};

}  // namespace

std::unique_ptr<StopIntent> SystemdStopIntent() { return std::make_unique<SystemdIntent>(); }

}  // namespace claimfs::claimfsd
