// Who claimctl acts for when root runs it through sudo, and that file access really is theirs.
#include "claimctl/sudo_user.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace claimfs::claimctl {
namespace {

class SudoUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: claimctl acts for SUDO_* only as root";
  }
  void TearDown() override {
    for (const char* name : {"SUDO_UID", "SUDO_GID", "SUDO_USER"}) unsetenv(name);
  }
  void SetSudo(const char* uid, const char* gid, const char* user) {
    for (auto [name, value] :
         {std::pair{"SUDO_UID", uid}, {"SUDO_GID", gid}, {"SUDO_USER", user}}) {
      if (value != nullptr) {
        setenv(name, value, 1);
      } else {
        unsetenv(name);
      }
    }
  }
};

struct SudoCase {
  const char* uid;
  const char* gid;
  const char* user;
  const char* want;  // "none", "error", or "uid gid groups name home"
};

std::string Describe(const Result<std::optional<SudoUser>>& r) {
  if (!r.ok()) return "error";
  if (!r->has_value()) return "none";
  const SudoUser& u = **r;
  std::string groups;
  for (gid_t g : u.groups) groups += (groups.empty() ? "" : ",") + std::to_string(g);
  return std::to_string(u.uid) + " " + std::to_string(u.gid) + " " + groups + " " + u.name + " " +
         u.home;
}

TEST_F(SudoUserTest, FromTheEnvironment) {
  if (getpwuid(54321) != nullptr) GTEST_SKIP() << "uid 54321 has an account here";
  const SudoCase cases[] = {
      {nullptr, nullptr, nullptr, "none"},
      {"0", "0", "root", "none"},
      {"", "54321", "x", "none"},
      {"abc", "54321", "x", "none"},  // as the impersonation headers: no sudo user, root
      {"-1", "54321", "x", "none"},
      {"54321", "54321", nullptr, "54321 54321 54321 54321 /"},
      {"54321", "54322", "", "54321 54322 54322 54321 /"},
      {"54321", "54321", "root", "54321 54321 54321 54321 /"},  // root's account is not uid 54321's
      {"54321", nullptr, "x", "error"},                         // no group and no account to ask
      {"54321", "x", "x", "error"},
      {"4294967295", "1", "x", "error"},  // (uid_t)-1 means "unchanged"
      {"99999999999999999999", "1", "x", "error"},
  };
  for (const SudoCase& c : cases) {
    SetSudo(c.uid, c.gid, c.user);
    EXPECT_EQ(Describe(FindSudoUser()), c.want)
        << "SUDO_UID=" << (c.uid ? c.uid : "<unset>") << " SUDO_GID=" << (c.gid ? c.gid : "<unset>")
        << " SUDO_USER=" << (c.user ? c.user : "<unset>");
  }
}

TEST_F(SudoUserTest, FileAccessIsTheUsersAndRootsAfterwards) {
  std::string dir = ::testing::TempDir() + "/sudo_user_test";
  std::filesystem::create_directories(dir);
  std::filesystem::permissions(dir, std::filesystem::perms(0755));
  std::string secret = dir + "/secret";
  std::ofstream(secret) << "root's";
  ASSERT_EQ(chmod(secret.c_str(), 0600), 0);
  SudoUser user;
  user.uid = 1001;
  user.gid = 1001;
  user.groups = {1001};
  user.name = "1001";
  const int root_groups = getgroups(0, nullptr);
  int inside = 0;
  Status s = RunWithFileAccessOf(user, [&] {
    int fd = open(secret.c_str(), O_RDONLY);
    inside = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(inside, EACCES);
  int fd = open(secret.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << "root's access was not restored";
  if (fd >= 0) close(fd);
  EXPECT_EQ(getgroups(0, nullptr), root_groups) << "the user's groups stayed";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace claimfs::claimctl
