// The systemd bus double answers as systemd does, asked the way claimfsd's StopIntent asks.
#include "handoff/fake_systemd_bus.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <chrono>
#include <string>

namespace claimfs::it {
namespace {

class FakeSystemdBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/claimfs-bus-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fake_ = std::make_unique<FakeSystemdBus>(dir_);
    std::string error;
    ASSERT_TRUE(fake_->Start(&error)) << error;
    ASSERT_GE(sd_bus_new(&bus_), 0);
    ASSERT_GE(sd_bus_set_address(bus_, fake_->address().c_str()), 0);
    ASSERT_GE(sd_bus_set_bus_client(bus_, 1), 0);
    ASSERT_GE(sd_bus_start(bus_), 0);
    ASSERT_GE(sd_bus_set_method_call_timeout(bus_, 2'000'000), 0);
  }
  void TearDown() override {
    sd_bus_flush_close_unref(bus_);
    fake_.reset();
    std::string rm = "rm -rf '" + dir_ + "'";
    (void)!system(rm.c_str());
  }

  // GetUnitByPID(pid): the unit path, or "error: <name>".
  std::string UnitByPid(uint32_t pid) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    std::string result;
    const char* path = nullptr;
    if (sd_bus_call_method(bus_, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "GetUnitByPID", &error, &reply, "u",
                           pid) < 0) {
      result = std::string("error: ") + (error.name ? error.name : "?");
    } else if (sd_bus_message_read(reply, "o", &path) >= 0) {
      result = path;
    } else {
      result = "not an object path";
    }
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    return result;
  }
  // The Unit.Job property as "<id> <path>", or "error: <name>".
  std::string Job(const std::string& unit_path) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    std::string result;
    uint32_t id = 0;
    const char* path = nullptr;
    if (sd_bus_get_property(bus_, "org.freedesktop.systemd1", unit_path.c_str(),
                            "org.freedesktop.systemd1.Unit", "Job", &error, &reply, "(uo)") < 0) {
      result = std::string("error: ") + (error.name ? error.name : "?");
    } else if (sd_bus_message_read(reply, "(uo)", &id, &path) >= 0) {
      result = std::to_string(id) + " " + path;
    } else {
      result = "not (uo)";
    }
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
    return result;
  }
  std::string JobType(const std::string& job_path) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    char* type = nullptr;
    std::string result;
    if (sd_bus_get_property_string(bus_, "org.freedesktop.systemd1", job_path.c_str(),
                                   "org.freedesktop.systemd1.Job", "JobType", &error, &type) < 0) {
      result = std::string("error: ") + (error.name ? error.name : "?");
    } else {
      result = type;
      free(type);
    }
    sd_bus_error_free(&error);
    return result;
  }

  std::string dir_;
  std::unique_ptr<FakeSystemdBus> fake_;
  sd_bus* bus_ = nullptr;
};

TEST(FakeSystemdBusLabel, EscapesAsSystemdsBusLabelEscape) {
  struct {
    const char* label;
    const char* escaped;
  } cases[] = {
      {"claimfsd.service", "claimfsd_2eservice"},
      {"a-b@c_d.service", "a_2db_40c_5fd_2eservice"},
      {"", "_"},
      {"ABC123", "ABC123"},
  };
  for (const auto& c : cases) EXPECT_EQ(FakeSystemdBus::EscapeLabel(c.label), c.escaped) << c.label;
  EXPECT_EQ(FakeSystemdBus::UnitPath("claimfsd.service"),
            "/org/freedesktop/systemd1/unit/claimfsd_2eservice");
  EXPECT_EQ(FakeSystemdBus::JobPath(42), "/org/freedesktop/systemd1/job/42");
}

TEST_F(FakeSystemdBusTest, AnswersTheUnitJobAndJobTypeAsSystemdDoes) {
  fake_->SetUnit("claimfsd.service", 4242);
  std::string unit = "/org/freedesktop/systemd1/unit/claimfsd_2eservice";
  EXPECT_EQ(UnitByPid(4242), unit);
  EXPECT_EQ(UnitByPid(4243), "error: org.freedesktop.systemd1.NoUnitForPID");
  EXPECT_EQ(Job(unit), "0 /");
  fake_->SetJob(42, "restart");
  EXPECT_EQ(Job(unit), "42 /org/freedesktop/systemd1/job/42");
  EXPECT_EQ(JobType("/org/freedesktop/systemd1/job/42"), "restart");
  EXPECT_EQ(JobType("/org/freedesktop/systemd1/job/41"),
            "error: org.freedesktop.DBus.Error.UnknownObject");
  EXPECT_EQ(Job("/org/freedesktop/systemd1/unit/other_2eservice"),
            "error: org.freedesktop.DBus.Error.UnknownObject");
  // The caller's own unit for pid 0, as systemd answers.
  fake_->SetUnit("claimfsd.service", getpid());
  EXPECT_EQ(UnitByPid(0), unit);
  EXPECT_EQ(fake_->Calls().front(), "GetUnitByPID 4242");
}

TEST_F(FakeSystemdBusTest, HostileRepliesHaveTheWrongTypes) {
  fake_->SetUnit("claimfsd.service", 4242);
  fake_->SetJob(7, "restart");
  std::string unit = FakeSystemdBus::UnitPath("claimfsd.service");
  fake_->SetReply(FakeSystemdBus::Reply::kUnitPathNotObject);
  EXPECT_EQ(UnitByPid(4242), "not an object path");
  // sd-bus cannot enter the variant as (uo).
  fake_->SetReply(FakeSystemdBus::Reply::kJobNotStruct);
  EXPECT_EQ(Job(unit), "error: System.Error.ENXIO");
  fake_->SetReply(FakeSystemdBus::Reply::kJobTypeNotString);
  EXPECT_EQ(JobType(FakeSystemdBus::JobPath(7)), "error: System.Error.ENXIO");
  fake_->SetReply(FakeSystemdBus::Reply::kJobObjectMissing);
  EXPECT_EQ(Job(unit), "7 /org/freedesktop/systemd1/job/7");
  EXPECT_EQ(JobType(FakeSystemdBus::JobPath(7)), "error: org.freedesktop.DBus.Error.UnknownObject");
  fake_->SetReply(FakeSystemdBus::Reply::kNever);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(UnitByPid(4242), "error: org.freedesktop.DBus.Error.Timeout");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));
}

}  // namespace
}  // namespace claimfs::it
