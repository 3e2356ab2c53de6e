#include "api/authz.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace claimfs::api::internal {
namespace {

TEST(LiftedProtectionTest, Table) {
  struct Case {
    std::vector<std::string> options;
    std::string lifted;
  };
  const Case cases[] = {
      {{}, ""},
      {{"noatime", "ro"}, ""},
      {{"nosuid", "nodev", "noexec"}, ""},
      {{"suid"}, "suid"},
      {{"dev"}, "dev"},
      {{"exec"}, "exec"},
      {{"noatime", "suid"}, "suid"},
      {{"nodev,dev"}, "dev"},
      {{" exec "}, "exec"},
      {{"suid=1"}, "suid"},
      {{"fsname=suid"}, ""},
      {{"devices", "executable"}, ""},
  };
  for (const Case& c : cases) {
    std::string label;
    for (const std::string& o : c.options) label += "[" + o + "]";
    EXPECT_EQ(LiftedProtection(c.options), c.lifted) << label;
  }
}

}  // namespace
}  // namespace claimfs::api::internal
