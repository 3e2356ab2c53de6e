// The programs' own command lines, run as a user runs them: --help names the program, --version
// prints the project's version (CMake's project(VERSION)); and what a new user of claimctl
// tripped on, against the real daemon.
#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <chrono>
#include <optional>
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

constexpr char kGoodAndBadClaims[] =
    "apiVersion: v1\n"
    "kind: PersistentVolumeClaim\n"
    "metadata:\n"
    "  name: good\n"
    "spec:\n"
    "  accessModes: [ReadWriteOnce]\n"
    "  resources:\n"
    "    requests:\n"
    "      storage: 16Mi\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: PersistentVolumeClaim\n"
    "metadata:\n"
    "  name: bad\n"
    "spec:\n"
    "  accessModes: [ReadWriteOnce]\n"
    "  resources:\n"
    "    requests:\n"
    "      storage: 1GB\n";

// The client dry run said the good claim was created, the real apply created nothing. Both now
// do what kubectl does: apply every valid document, report the invalid one, exit 1.
TEST_F(ClaimctlE2eTest, MultiDocumentFileWithOneBadDocumentAppliedNothing) {
  ASSERT_TRUE(StartDaemon());
  const std::string path = WriteManifest("two.yaml", kGoodAndBadClaims);
  const std::string bad_line =
      "error: " + path + ":19:16: spec.resources.requests.storage: Invalid value: \"1GB\"";

  CommandResult dry = Claimctl({"apply", "--dry-run=client", "-f", path});
  EXPECT_EQ(dry.exit_code, 1) << dry.Describe();
  EXPECT_EQ(dry.out, "persistentvolumeclaim/good created (dry run)\n");
  EXPECT_NE(dry.err.find(bad_line), std::string::npos) << dry.err;
  EXPECT_FALSE(GetClaim("good"));

  CommandResult real = Claimctl({"apply", "-f", path});
  EXPECT_EQ(real.exit_code, 1) << real.Describe();
  EXPECT_EQ(real.out, "persistentvolumeclaim/good created\n");
  EXPECT_NE(real.err.find(bad_line), std::string::npos) << real.err;
  EXPECT_TRUE(GetClaim("good"));
  EXPECT_FALSE(GetClaim("bad"));
}

// A relative hostPath passed the client dry run and only the daemon refused it, with no file:line.
// Both modes of apply now refuse it before the daemon sees it, at the field's place in the file.
TEST_F(ClaimctlE2eTest, RelativeHostPathReachedTheDaemonWithoutFileLine) {
  ASSERT_TRUE(StartDaemon());
  const std::string path = WriteManifest("relative.yaml",
                                         "apiVersion: v1\n"
                                         "kind: PersistentVolume\n"
                                         "metadata:\n"
                                         "  name: pv-relative\n"
                                         "spec:\n"
                                         "  capacity:\n"
                                         "    storage: 1Gi\n"
                                         "  accessModes: [ReadWriteOnce]\n"
                                         "  hostPath:\n"
                                         "    path: data/pv\n");
  const std::string expected = "error: " + path +
                               ":10:11: spec.hostPath.path: Invalid value: \"data/pv\": must be "
                               "an absolute path\n";
  for (const char* mode : {"--dry-run=client", "--dry-run=none"}) {
    CommandResult r = Claimctl({"apply", mode, "-f", path});
    EXPECT_EQ(r.exit_code, 1) << mode << ": " << r.Describe();
    EXPECT_EQ(r.out, "") << mode;
    EXPECT_EQ(r.err, expected) << mode;
  }
  EXPECT_FALSE(GetVolume("pv-relative"));
}

// `apply` of a bound PV at a larger capacity printed `configured` while df kept the old size, and
// a restart later raised the quota behind the claim's back. The mount and the claim now follow at
// once; lowering a bound PV is refused.
TEST_F(ClaimctlE2eTest, BoundVolumeCapacityEditedLeftMountAndClaimBehind) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_TRUE(CreateDynamicClaim("data", "64Mi"));
  const std::string volume = VolumeOf("data");
  ASSERT_FALSE(volume.empty());
  const std::string mount = MountPath("data");
  auto total = [&] {
    struct statvfs st {};
    if (statvfs(mount.c_str(), &st) != 0) return uint64_t{0};
    return uint64_t{st.f_blocks} * st.f_frsize;
  };
  auto claim_capacity = [&] {
    std::optional<nlohmann::json> claim = GetClaim("data");
    if (!claim) return std::string();
    return claim->value("/status/capacity/storage"_json_pointer, std::string());
  };

  CommandResult r =
      Claimctl({"patch", "pv", volume, "-p", "{\"spec\":{\"capacity\":{\"storage\":\"96Mi\"}}}"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return total() == 96ull << 20 && claim_capacity() == "96Mi"; }, 5s))
      << "statvfs total " << total() << ", claim capacity " << claim_capacity();
  CommandResult get = Claimctl({"get", "pvc", "data", "-o", "jsonpath={.status.capacity.storage}"});
  EXPECT_EQ(get.out, "96Mi") << get.Describe();
  CommandResult described = Claimctl({"describe", "pvc", "data"});
  EXPECT_NE(described.out.find("FileSystemResizeSuccessful"), std::string::npos) << described.out;

  r = Claimctl({"patch", "pv", volume, "-p", "{\"spec\":{\"capacity\":{\"storage\":\"32Mi\"}}}"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("spec.capacity.storage: Forbidden: field can not be less than previous "
                       "value while the volume is bound"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(total(), 96ull << 20);
}

// describe of a claim created again under a deleted claim's name showed the old claim's events.
TEST_F(ClaimctlE2eTest, DescribeOfARecreatedClaimShowedTheDeletedClaimsEvents) {
  ASSERT_TRUE(StartDaemon());
  auto claim = [](const char* storage_class) {
    return std::string(
               "apiVersion: v1\n"
               "kind: PersistentVolumeClaim\n"
               "metadata:\n"
               "  name: again\n"
               "spec:\n"
               "  storageClassName: ") +
           storage_class +
           "\n"
           "  accessModes: [ReadWriteOnce]\n"
           "  resources:\n"
           "    requests:\n"
           "      storage: 16Mi\n";
  };
  ASSERT_EQ(Apply(claim("missing")).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return DescribeEvents("PersistentVolumeClaim", "again").find("ProvisioningFailed") !=
               std::string::npos;
      },
      5s));
  CommandResult r = Claimctl({"delete", "pvc", "again"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitFor([&] { return !GetClaim("again"); }, 5s));
  ASSERT_EQ(Apply(claim("\"\"")).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return DescribeEvents("PersistentVolumeClaim", "again").find("FailedBinding") !=
               std::string::npos;
      },
      5s));
  CommandResult described = Claimctl({"describe", "pvc", "again"});
  ASSERT_EQ(described.exit_code, 0) << described.Describe();
  EXPECT_NE(described.out.find("FailedBinding"), std::string::npos) << described.out;
  EXPECT_EQ(described.out.find("ProvisioningFailed"), std::string::npos) << described.out;
}

// kubectl describe shows "(x2 over 16s)" for a claim left Pending: the PV controller's resync
// repeats FailedBinding every 15 s. claimfsd recorded it once.
TEST_F(ClaimctlE2eTest, FailedBindingWasNotRepeatedAtEachResync) {
  ASSERT_TRUE(StartDaemon());
  ASSERT_EQ(Apply("apiVersion: v1\n"
                  "kind: PersistentVolumeClaim\n"
                  "metadata:\n"
                  "  name: waiting\n"
                  "spec:\n"
                  "  storageClassName: \"\"\n"
                  "  accessModes: [ReadWriteOnce]\n"
                  "  resources:\n"
                  "    requests:\n"
                  "      storage: 16Mi\n")
                .exit_code,
            0);
  CommandResult described;
  EXPECT_TRUE(WaitFor(
      [&] {
        described = Claimctl({"describe", "pvc", "waiting"});
        return described.out.find("(x2 over ") != std::string::npos;
      },
      25s, 1s))
      << described.out;
  EXPECT_NE(described.out.find("FailedBinding"), std::string::npos) << described.out;
  EXPECT_EQ(ClaimPhase("waiting"), "Pending");
}

}  // namespace
}  // namespace claimfs::it
