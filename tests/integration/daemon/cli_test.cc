// The programs' own command lines, run as a user runs them: --help names the program, --version
// prints the project's version (CMake's project(VERSION)); and what a new user of claimctl
// tripped on, against the real daemon.
#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <chrono>
#include <string>
#include <vector>

#include "daemon/daemon_fixture.h"

namespace claimfs::it {
namespace {

// claimctl --help said "Usage: [OPTIONS] SUBCOMMAND", with no program name.
TEST(Cli, ClaimctlHelpNamesTheProgram) {
  CommandResult help = RunCommand({CLAIMCTL_BINARY, "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.Describe();
  EXPECT_NE(help.out.find("\nUsage: claimctl [OPTIONS] SUBCOMMAND\n"), std::string::npos)
      << help.out;

  CommandResult get_help = RunCommand({CLAIMCTL_BINARY, "get", "--help"});
  ASSERT_EQ(get_help.exit_code, 0) << get_help.Describe();
  EXPECT_NE(get_help.out.find("Usage: claimctl get [OPTIONS]"), std::string::npos) << get_help.out;
}

// claimfsd --version and claimctl --version failed ("A subcommand is required", "The following
// argument was not expected"); claimfs printed a version written into its source.
TEST(Cli, VersionFlagsPrintTheProjectVersion) {
  struct Case {
    std::string binary;
    std::string flag;
    std::string want;
  } cases[] = {
      {CLAIMCTL_BINARY, "--version", "claimctl version " CLAIMFS_VERSION "\n"},
      {CLAIMFSD_BINARY, "--version", "claimfsd version " CLAIMFS_VERSION "\n"},
      {CLAIMFS_BINARY, "--version", "claimfs version " CLAIMFS_VERSION "\n"},
      {CLAIMFS_BINARY, "-V", "claimfs version " CLAIMFS_VERSION "\n"},
  };
  for (const Case& c : cases) {
    CommandResult r = RunCommand({c.binary, c.flag});
    EXPECT_EQ(r.exit_code, 0) << c.binary << " " << c.flag << ": " << r.Describe();
    EXPECT_EQ(r.out, c.want) << c.binary << " " << c.flag;
    EXPECT_EQ(r.err, "") << c.binary << " " << c.flag;
  }
}

// kubectl's `version` subcommand; with no daemon it prints the client's version only.
TEST(Cli, ClaimctlVersionSubcommandWithoutADaemon) {
  CommandResult r =
      RunCommand({CLAIMCTL_BINARY, "--socket", "/nonexistent/claimfsd.sock", "version"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "Client Version: " CLAIMFS_VERSION "\n");
}

using ClaimctlE2eTest = DaemonTest;
using namespace std::chrono_literals;

// kubectl patch takes -p in YAML; claimctl said "not valid JSON". The default type is strategic
// (the README said merge), and the daemon applies it: the mount grows.
TEST_F(ClaimctlE2eTest, PatchWithAYamlBodyGrowsTheClaim) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("data", "64Mi"));
  CommandResult r = Claimctl(
      {"patch", "pvc", "data", "-p", "spec:\n  resources:\n    requests:\n      storage: 96Mi\n"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolumeclaim/data patched\n");
  const std::string mount = MountPath("data");
  auto total = [&] {
    struct statvfs st {};
    if (statvfs(mount.c_str(), &st) != 0) return uint64_t{0};
    return uint64_t{st.f_blocks} * st.f_frsize;
  };
  EXPECT_TRUE(WaitFor([&] { return total() == 96ull << 20; }, 5s)) << "statvfs total " << total();

  r = Claimctl({"patch", "pvc", "data", "--type", "merge", "-p",
                "{spec: {resources: {requests: {storage: 128Mi}}}}"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return total() == 128ull << 20; }, 5s)) << "statvfs total " << total();
}

// kubectl says "No resources found" when delete --all finds nothing; claimctl said nothing.
TEST_F(ClaimctlE2eTest, DeleteAllWithNothingToDeleteSaysNoResourcesFound) {
  ASSERT_TRUE(StartDaemon());
  CommandResult r = Claimctl({"delete", "pvc", "--all"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "No resources found\n");
  EXPECT_EQ(r.err, "");
  r = Claimctl({"get", "pvc"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.err, "No resources found in default namespace.\n");
}

// kubectl -o yaml quotes creationTimestamp; claimctl left it plain.
TEST_F(ClaimctlE2eTest, GetYamlQuotesCreationTimestamp) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("data", "16Mi"));
  CommandResult r = Claimctl({"get", "pvc", "data", "-o", "yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.out.find("  creationTimestamp: \"20"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("  creationTimestamp: 20"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace claimfs::it
