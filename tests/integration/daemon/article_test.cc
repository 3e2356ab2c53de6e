// The article's walk-through, as a user would type it: its manifests unchanged (config/examples),
// `claimctl get pv` / `get pvc` tables as kubectl prints them, and the data on the hostPath
// /tmp/k8s-pv. These tests hold the ctest resource lock "k8s-pv".
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "daemon/daemon_fixture.h"
#include "fs/mount_fixture.h"

namespace claimfs::it {
namespace {

using namespace std::chrono_literals;

constexpr char kHostPath[] = "/tmp/k8s-pv";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// The row of a kubectl table whose first cell is `name`; "" when none.
std::string RowOf(const std::string& table, const std::string& name) {
  for (const std::string& line : Lines(table)) {
    if (line.rfind(name + " ", 0) == 0) return line;
  }
  return "";
}

// Cells of `row` cut at the columns of `header` (kubectl's tabwriter aligns cells to the header).
std::vector<std::string> Cells(const std::string& header, const std::string& row) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] != ' ' && (i == 0 || (i >= 2 && header[i - 1] == ' ' && header[i - 2] == ' '))) {
      starts.push_back(i);
    }
  }
  std::vector<std::string> cells;
  for (size_t c = 0; c < starts.size(); ++c) {
    size_t end = c + 1 < starts.size() ? starts[c + 1] : std::string::npos;
    std::string cell = starts[c] < row.size() ? row.substr(starts[c], end - starts[c]) : "";
    while (!cell.empty() && cell.back() == ' ') cell.pop_back();
    cells.push_back(cell);
  }
  return cells;
}

const std::regex kAge("^[0-9]+s$");

class ArticleTest : public DaemonTest {
 protected:
  void SetUp() override {
    uses_article_host_path_ = true;
    DaemonTest::SetUp();
  }

  std::string Example(const std::string& name) { return ExamplesDir() + "/" + name; }

  // A copy of an example manifest with one substitution.
  std::string ExampleWith(const std::string& name, const std::string& from, const std::string& to) {
    std::string text = ReadFile(Example(name));
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from << " not in " << name;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return WriteManifest(name, text);
  }
};

TEST_F(ArticleTest, HostPathPairBindsMountsAndDeletePolicyRemovesHostPathData) {
  ASSERT_TRUE(StartDaemon());

  CommandResult r = Claimctl({"apply", "-f", Example("pv-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolume/pv-hostpath created\n");

  r = Claimctl({"get", "pv"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  // The article's columns, spaced as kubectl spaces them today (cli-runtime's tabwriter: minimum
  // width 6, padding 3; the article's kubectl of 2018 used a minimum width of 10).
  EXPECT_EQ(lines[0],
            "NAME          CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS      CLAIM   "
            "STORAGECLASS   REASON   AGE");
  std::string row = RowOf(r.out, "pv-hostpath");
  ASSERT_NE(row, "") << r.out;
  std::vector<std::string> cells = Cells(lines[0], row);
  ASSERT_EQ(cells.size(), 9u) << row;
  EXPECT_EQ(std::vector<std::string>(cells.begin(), cells.begin() + 8),
            (std::vector<std::string>{"pv-hostpath", "2Gi", "RWO", "Delete", "Available", "",
                                      "manual", ""}))
      << row;
  EXPECT_TRUE(std::regex_match(cells[8], kAge)) << "AGE \"" << cells[8] << "\"";

  r = Claimctl({"apply", "-f", Example("pvc-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolumeclaim/pvc-hostpath created\n");
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath"));

  r = Claimctl({"get", "pvc"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  lines = Lines(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0],
            "NAME           STATUS   VOLUME        CAPACITY   ACCESS MODES   STORAGECLASS   AGE");
  row = RowOf(r.out, "pvc-hostpath");
  ASSERT_NE(row, "") << r.out;
  cells = Cells(lines[0], row);
  ASSERT_EQ(cells.size(), 7u) << row;
  EXPECT_EQ(std::vector<std::string>(cells.begin(), cells.begin() + 6),
            (std::vector<std::string>{"pvc-hostpath", "Bound", "pv-hostpath", "2Gi", "RWO",
                                      "manual"}))
      << row;
  EXPECT_TRUE(std::regex_match(cells[6], kAge)) << "AGE \"" << cells[6] << "\"";

  r = Claimctl({"get", "pv"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  lines = Lines(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0],
            "NAME          CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS   CLAIM                  "
            "STORAGECLASS   REASON   AGE");
  row = RowOf(r.out, "pv-hostpath");
  cells = Cells(lines[0], row);
  ASSERT_EQ(cells.size(), 9u) << row;
  EXPECT_EQ(std::vector<std::string>(cells.begin(), cells.begin() + 8),
            (std::vector<std::string>{"pv-hostpath", "2Gi", "RWO", "Delete", "Bound",
                                      "default/pvc-hostpath", "manual", ""}))
      << row;

  // The claim's mount is the hostPath: a file written there lands in /tmp/k8s-pv.
  std::string mount = MountPath("pvc-hostpath");
  ASSERT_TRUE(WriteFile(mount + "/index.html", "hello from the article\n"));
  EXPECT_EQ(ReadFile(std::string(kHostPath) + "/index.html"), "hello from the article\n");
  // df in the mount shows the PV's 2Gi.
  EXPECT_EQ(StatFs(mount).total, 2ull << 30);

  // persistentVolumeReclaimPolicy: Delete on a hostPath under /tmp: Kubernetes' hostPath
  // deleter removes the data (it supports /tmp/.+) and the PV goes away.
  r = Claimctl({"delete", "pvc", "pvc-hostpath"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolumeclaim \"pvc-hostpath\" deleted\n");
  EXPECT_FALSE(GetClaim("pvc-hostpath").has_value()) << "delete waits until the claim is gone";
  EXPECT_TRUE(WaitFor([&] { return !GetVolume("pv-hostpath").has_value(); }, 10s))
      << "PV phase " << VolumePhase("pv-hostpath") << "\n"
      << DescribeEvents("PersistentVolume", "pv-hostpath");
  EXPECT_FALSE(MountAt(mount).has_value()) << mount << " still mounted";
  EXPECT_NE(access((std::string(kHostPath) + "/index.html").c_str(), F_OK), 0)
      << "the Delete policy left the data in " << kHostPath;
}

TEST_F(ArticleTest, RetainPolicyReleasesPvAndKeepsDataInHostPath) {
  ASSERT_TRUE(StartDaemon());
  std::string pv = ExampleWith("pv-hostpath.yaml", "persistentVolumeReclaimPolicy: Delete",
                               "persistentVolumeReclaimPolicy: Retain");
  CommandResult r = Claimctl({"apply", "-f", pv});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Claimctl({"apply", "-f", Example("pvc-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath"));
  EXPECT_EQ(VolumeOf("pvc-hostpath"), "pv-hostpath");

  std::string mount = MountPath("pvc-hostpath");
  ASSERT_TRUE(WriteFile(mount + "/kept.txt", "retain me\n"));
  EXPECT_EQ(ReadFile(std::string(kHostPath) + "/kept.txt"), "retain me\n");

  r = Claimctl({"delete", "pvc", "pvc-hostpath"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return VolumePhase("pv-hostpath") == "Released"; }, 10s))
      << "PV phase " << VolumePhase("pv-hostpath");
  EXPECT_FALSE(MountAt(mount).has_value()) << mount << " still mounted";
  EXPECT_EQ(ReadFile(std::string(kHostPath) + "/kept.txt"), "retain me\n");

  r = Claimctl({"get", "pv"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  std::vector<std::string> cells = Cells(lines[0], RowOf(r.out, "pv-hostpath"));
  ASSERT_EQ(cells.size(), 9u) << r.out;
  EXPECT_EQ(cells[3], "Retain") << r.out;
  EXPECT_EQ(cells[4], "Released") << r.out;
  EXPECT_EQ(cells[5], "default/pvc-hostpath") << r.out;

  // Released is never rebound automatically: a new claim of the same shape stays Pending.
  r = Claimctl({"apply", "-f", Example("pvc-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(ClaimPhase("pvc-hostpath"), "Pending");
  EXPECT_EQ(VolumePhase("pv-hostpath"), "Released");
}

TEST_F(ArticleTest, LabelSelectorPairBindsTheLabelledVolume) {
  ASSERT_TRUE(StartDaemon());
  // Both PVs match the claim on size, class and mode; only the selector tells them apart.
  // Beside the labelled volume's directory, not inside it: one directory, one volume.
  RemoveAtTearDown("/tmp/k8s-pv-unlabelled");
  std::string unlabelled =
      ExampleWith("pv-hostpath.yaml", "path: /tmp/k8s-pv", "path: /tmp/k8s-pv-unlabelled");
  CommandResult r = Claimctl({"apply", "-f", unlabelled});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Claimctl({"apply", "-f", Example("pv-hostpath-label.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolume/pv-hostpath-label created\n");
  r = Claimctl({"apply", "-f", Example("pvc-hostpath-label.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolumeclaim/pvc-hostpath-label created\n");
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath-label"));
  EXPECT_EQ(VolumeOf("pvc-hostpath-label"), "pv-hostpath-label");
  EXPECT_EQ(VolumePhase("pv-hostpath-label"), "Bound");
  EXPECT_EQ(VolumePhase("pv-hostpath"), "Available");

  // `get pv -l` selects by label as kubectl does... through the API's labelSelector.
  HttpResult h = Http("GET", "/api/v1/persistentvolumes?labelSelector=location%3Dlocal");
  ASSERT_EQ(h.status, 200) << h.Describe();
  nlohmann::json list = h.Json();
  ASSERT_TRUE(list.contains("items")) << h.body;
  ASSERT_EQ(list["items"].size(), 1u) << h.body;
  EXPECT_EQ(JsonString(list["items"][0], "/metadata/name"), "pv-hostpath-label");

  // Re-applying an unchanged manifest is a no-op.
  r = Claimctl({"apply", "-f", Example("pvc-hostpath-label.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolumeclaim/pvc-hostpath-label unchanged\n");
}

// The article applies pv-hostpath.yaml and pv-hostpath-label.yaml, both on /tmp/k8s-pv. One
// directory serves one volume: the second is refused until the first is gone.
TEST_F(ArticleTest, SecondPvOnTheSameHostPathIsRefusedUntilTheFirstIsGone) {
  ASSERT_TRUE(StartDaemon());
  CommandResult r = Claimctl(
      {"apply", "-f", Example("pv-hostpath.yaml"), "-f", Example("pv-hostpath-label.yaml")});
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.out.find("persistentvolume/pv-hostpath created"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("The PersistentVolume \"pv-hostpath-label\" is invalid: "
                       "spec.hostPath.path: Forbidden: overlaps PersistentVolume "
                       "\"pv-hostpath\" (/tmp/k8s-pv)"),
            std::string::npos)
      << r.Describe();
  EXPECT_FALSE(GetVolume("pv-hostpath-label").has_value());

  r = Claimctl({"apply", "-f", Example("pvc-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath"));
  r = Claimctl({"apply", "-f", Example("pv-hostpath-label.yaml")});
  EXPECT_NE(r.exit_code, 0) << r.Describe();

  // The claim goes; its Delete policy removes /tmp/k8s-pv (claimfsd made it) and the PV.
  r = Claimctl({"delete", "pvc", "pvc-hostpath"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return !GetVolume("pv-hostpath").has_value(); }, 10s))
      << DescribeEvents("PersistentVolume", "pv-hostpath");

  r = Claimctl({"apply", "-f", Example("pv-hostpath-label.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.out, "persistentvolume/pv-hostpath-label created\n");
  r = Claimctl({"apply", "-f", Example("pvc-hostpath-label.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath-label"));
  EXPECT_EQ(VolumeOf("pvc-hostpath-label"), "pv-hostpath-label");
}

// Regression (issue 9, defect 2): both article PVs on /tmp/k8s-pv were accepted and bound;
// deleting pvc-hostpath (Delete) removed /tmp/k8s-pv under the Bound pvc-hostpath-label.
TEST_F(ArticleTest, DeletingOneOfTwoClaimsOnOneDirectoryKeepsTheOthersData) {
  ASSERT_TRUE(StartDaemon());
  CommandResult r = Claimctl({"apply", "-f", Example("pv-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  r = Claimctl({"apply", "-f", Example("pvc-hostpath.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ASSERT_TRUE(WaitBoundAndMounted("pvc-hostpath"));

  CommandResult second = Claimctl({"apply", "-f", Example("pv-hostpath-label.yaml")});
  r = Claimctl({"apply", "-f", Example("pvc-hostpath-label.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  bool labelled_mounted = WaitBoundAndMounted("pvc-hostpath-label", 5s);
  std::string labelled = MountPath("pvc-hostpath-label");
  if (labelled_mounted) {
    ASSERT_TRUE(WriteFile(labelled + "/mine.txt", "the other claim's\n"));
  }

  r = Claimctl({"delete", "pvc", "pvc-hostpath"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(WaitFor([&] { return !GetVolume("pv-hostpath").has_value(); }, 10s));
  if (labelled_mounted) {
    // On the disk: the mount's cached handles could still read a removed file.
    EXPECT_EQ(ReadFile(std::string(kHostPath) + "/mine.txt"), "the other claim's\n")
        << "deleting pvc-hostpath removed pvc-hostpath-label's data";
  }
  EXPECT_NE(second.exit_code, 0) << "a second PV on /tmp/k8s-pv was admitted: "
                                 << second.Describe();
}

}  // namespace
}  // namespace claimfs::it
