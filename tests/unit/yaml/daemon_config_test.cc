#include "claimfs/yaml/daemon_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace claimfs::yaml {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const fs::path kSourceDir = CLAIMFS_SOURCE_DIR;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> Lines(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> out;
  for (const auto& d : diagnostics) out.push_back(d.ToString());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Every key, written correctly: the parsed config is the default with exactly one change.

struct GoodCase {
  const char* name;
  const char* yaml;
  std::function<void(DaemonConfig*)> change;
};

void PrintTo(const GoodCase& c, std::ostream* os) { *os << c.name; }

class GoodConfigTest : public ::testing::TestWithParam<GoodCase> {};

TEST_P(GoodConfigTest, ParsesToDefaultsWithTheChange) {
  const GoodCase& c = GetParam();
  ConfigResult r = ParseDaemonConfig(c.yaml, "c.yaml");
  EXPECT_THAT(Lines(r.errors), IsEmpty());
  EXPECT_THAT(Lines(r.warnings), IsEmpty());
  DaemonConfig want = DefaultDaemonConfig();
  c.change(&want);
  EXPECT_EQ(r.config, want);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.status().ok());
}

const GoodCase kGoodCases[] = {
    {"Empty", "", [](DaemonConfig*) {}},
    {"OnlyComments", "# nothing here\n\n# at all\n", [](DaemonConfig*) {}},
    {"EmptyMap", "{}\n", [](DaemonConfig*) {}},
    {"ExplicitDocumentMarkers", "---\nmaxVolumes: 3\n...\n",
     [](DaemonConfig* c) { c->max_volumes = 3; }},
    {"NullValuesKeepDefaults", "stateDir:\nmountRoot: ~\nsocket:\npools: null\napi:\nlogLevel:\n",
     [](DaemonConfig*) {}},
    {"PoolWithCapacity", "pools:\n  - name: fast\n    path: /mnt/fast\n    capacity: 500Gi\n",
     [](DaemonConfig* c) {
       c->pools = {{"fast", "/mnt/fast", int64_t{500} << 30}};
     }},
    {"PoolCapacityPlainNumber", "pools: [{name: a, path: /a, capacity: 1073741824}]\n",
     [](DaemonConfig* c) {
       c->pools = {{"a", "/a", int64_t{1} << 30}};
     }},
    {"PoolCapacityExponent", "pools: [{name: a, path: /a, capacity: 1e9}]\n",
     [](DaemonConfig* c) {
       c->pools = {{"a", "/a", 1000000000}};
     }},
    {"PoolCapacityDecimalSuffix", "pools: [{name: a, path: /a, capacity: \"2T\"}]\n",
     [](DaemonConfig* c) {
       c->pools = {{"a", "/a", 2000000000000}};
     }},
    {"PoolCapacityNull", "pools: [{name: a, path: /a, capacity: }]\n",
     [](DaemonConfig* c) {
       c->pools = {{"a", "/a", std::nullopt}};
     }},
    {"TwoPools",
     "pools:\n  - name: default\n    path: /srv/pool\n  - name: ssd-2\n    path: /srv/pool2\n",
     [](DaemonConfig* c) {
       c->pools = {{"default", "/srv/pool", std::nullopt}, {"ssd-2", "/srv/pool2", std::nullopt}};
     }},
    {"PathsNormalized", "pools: [{name: a, path: /mnt//x/./y/../z/}]\nstateDir: /var/s/\n",
     [](DaemonConfig* c) {
       c->pools = {{"a", "/mnt/x/z", std::nullopt}};
       c->state_dir = "/var/s";
     }},
    {"StateDir", "stateDir: /srv/claimfs/state\n",
     [](DaemonConfig* c) { c->state_dir = "/srv/claimfs/state"; }},
    {"MountRoot", "mountRoot: /mnt/claims\n",
     [](DaemonConfig* c) { c->mount_root = "/mnt/claims"; }},
    {"SocketPath", "socket:\n  path: /run/other.sock\n",
     [](DaemonConfig* c) { c->socket_path = "/run/other.sock"; }},
    {"SocketModeQuoted", "socket:\n  mode: \"0600\"\n",
     [](DaemonConfig* c) { c->socket_mode = 0600; }},
    {"SocketModePlainOctal", "socket:\n  mode: 0640\n",
     [](DaemonConfig* c) { c->socket_mode = 0640; }},
    {"SocketModeWithoutLeadingZero", "socket:\n  mode: 660\n",
     [](DaemonConfig* c) { c->socket_mode = 0660; }},
    {"SocketModeYaml12Octal", "socket:\n  mode: 0o600\n",
     [](DaemonConfig* c) { c->socket_mode = 0600; }},
    {"SocketGroupName", "socket:\n  group: docker\n",
     [](DaemonConfig* c) { c->socket_group = "docker"; }},
    {"SocketGroupNumber", "socket:\n  group: 1000\n",
     [](DaemonConfig* c) { c->socket_group = "1000"; }},
    {"MaxVolumes", "maxVolumes: 50\n", [](DaemonConfig* c) { c->max_volumes = 50; }},
    {"MaxVolumesZero", "maxVolumes: 0\n", [](DaemonConfig* c) { c->max_volumes = 0; }},
    {"AllowedHostPathPrefixes", "allowedHostPathPrefixes:\n  - /srv/data\n  - /mnt/\n",
     [](DaemonConfig* c) {
       c->allowed_host_path_prefixes = {"/srv/data", "/mnt"};
     }},
    {"AllowedHostPathPrefixesNone", "allowedHostPathPrefixes: []\n",
     [](DaemonConfig* c) { c->allowed_host_path_prefixes.clear(); }},
    {"QuotaErrnoEdquot", "quotaErrno: EDQUOT\n", [](DaemonConfig* c) { c->quota_errno = EDQUOT; }},
    {"QuotaErrnoEnospc", "quotaErrno: \"ENOSPC\"\n",
     [](DaemonConfig* c) { c->quota_errno = ENOSPC; }},
    {"LogLevelDebug", "logLevel: debug\n", [](DaemonConfig* c) { c->log_level = "debug"; }},
    {"LogLevelOff", "logLevel: off\n", [](DaemonConfig* c) { c->log_level = "off"; }},
    {"WorkerThreadsLow", "workerThreads: 1\n", [](DaemonConfig* c) { c->worker_threads = 1; }},
    {"WorkerThreadsHigh", "workerThreads: 256\n", [](DaemonConfig* c) { c->worker_threads = 256; }},
    {"ApiTimeout", "api:\n  requestTimeoutSeconds: 30\n",
     [](DaemonConfig* c) { c->api_request_timeout_seconds = 30; }},
    {"ApiMaxRequestBytesQuantity", "api:\n  maxRequestBytes: 1Mi\n",
     [](DaemonConfig* c) { c->api_max_request_bytes = 1 << 20; }},
    {"ApiMaxRequestBytesNumber", "api: {maxRequestBytes: 65536}\n",
     [](DaemonConfig* c) { c->api_max_request_bytes = 65536; }},
    {"VolumePluginDisabled", "volumePlugin:\n  enabled: false\n",
     [](DaemonConfig* c) { c->volume_plugin.enabled = false; }},
    {"VolumePluginEnabled", "volumePlugin: {enabled: True}\n",
     [](DaemonConfig* c) { c->volume_plugin.enabled = true; }},
    {"VolumePluginSocketAndNamespace",
     "volumePlugin:\n  socket: /etc/docker/../claimfs.sock\n  namespace: containers\n",
     [](DaemonConfig* c) {
       c->volume_plugin.socket_path = "/etc/claimfs.sock";
       c->volume_plugin.namespace_ = "containers";
     }},
    {"VolumePluginNull", "volumePlugin:\n", [](DaemonConfig*) {}},
    {"FlowStyle", "{maxVolumes: 7, logLevel: warn}\n",
     [](DaemonConfig* c) {
       c->max_volumes = 7;
       c->log_level = "warn";
     }},
};

INSTANTIATE_TEST_SUITE_P(Keys, GoodConfigTest,
                         ::testing::ValuesIn(std::begin(kGoodCases), std::end(kGoodCases)),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// Every kind of error, with its exact diagnostic.

struct BadCase {
  const char* name;
  std::string yaml;
  std::vector<std::string> errors;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, ReportsEveryErrorAtItsPlace) {
  const BadCase& c = GetParam();
  ConfigResult r = ParseDaemonConfig(c.yaml, "c.yaml");
  EXPECT_THAT(Lines(r.errors), ElementsAreArray(c.errors));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(r.status().message(), HasSubstr(c.errors.front()));
}

const std::string kLabelError =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

const BadCase kBadCases[] = {
    // Bytes a path must not hold: the daemon would use a shorter path than the checks compare.
    {"NulInPoolPath",
     "pools: [{name: a, path: \"/srv/pool\\0\"}]\n",
     {"c.yaml:1:25: pools[0].path: Invalid value: \"/srv/pool\\x00\": must not contain NUL (byte "
      "9)"}},
    {"NulInStateDir",
     "stateDir: \"/var/lib/claimfs/state\\0x\"\n",
     {"c.yaml:1:11: stateDir: Invalid value: \"/var/lib/claimfs/state\\x00x\": must not contain "
      "NUL "
      "(byte 22)"}},
    {"ControlByteInMountRoot",
     "mountRoot: \"/run/claimfs/\\tclaims\"\n",
     {"c.yaml:1:12: mountRoot: Invalid value: \"/run/claimfs/\\tclaims\": must not contain the "
      "control "
      "character 0x09 (byte 13)"}},
    {"NewlineInSocketPath",
     "socket:\n  path: \"/run/claimfs.sock\\n\"\n",
     {"c.yaml:2:9: socket.path: Invalid value: \"/run/claimfs.sock\\n\": must not contain the "
      "control "
      "character 0x0a (byte 17)"}},
    {"NulInAllowedPrefix",
     "allowedHostPathPrefixes: [\"/tmp\\0\"]\n",
     {"c.yaml:1:27: allowedHostPathPrefixes[0]: Invalid value: \"/tmp\\x00\": must not contain NUL "
      "(byte 4)"}},
    {"NonUtf8InPluginSocket",
     "volumePlugin:\n  socket: /run/docker/plugins/\xff"
     "claimfs.sock\n",
     {"c.yaml:2:11: volumePlugin.socket: Invalid value: \"/run/docker/plugins/\\xffclaimfs.sock\": "
      "must be valid UTF-8: 0xff does not start a character (byte 20)"}},
    // Types.
    {"IntegerIsWord",
     "maxVolumes: ten\n",
     {"c.yaml:1:13: maxVolumes: Invalid type: expected integer, got string \"ten\""}},
    {"IntegerIsQuoted",
     "workerThreads: \"8\"\n",
     {"c.yaml:1:16: workerThreads: Invalid type: expected integer, got string \"8\""}},
    {"IntegerIsFloat",
     "maxVolumes: 1.5\n",
     {"c.yaml:1:13: maxVolumes: Invalid type: expected integer, got number 1.5"}},
    {"IntegerTooBig",
     "maxVolumes: 99999999999999999999\n",
     {"c.yaml:1:13: maxVolumes: Invalid value: \"99999999999999999999\": does not fit in 64 "
      "bits"}},
    {"StringIsList",
     "stateDir: [/a]\n",
     {"c.yaml:1:11: stateDir: Invalid type: expected string, got list"}},
    {"StringIsNumber",
     "mountRoot: 12\n",
     {"c.yaml:1:12: mountRoot: Invalid type: expected string, got number 12"}},
    {"StringIsBool",
     "logLevel: true\n",
     {"c.yaml:1:11: logLevel: Invalid type: expected string, got boolean true"}},
    {"PoolsIsMap",
     "pools:\n  name: a\n",
     {"c.yaml:2:3: pools: Invalid type: expected list, got map"}},
    {"PoolIsString",
     "pools:\n  - /srv/pool\n",
     {"c.yaml:2:5: pools[0]: Invalid type: expected map, got string \"/srv/pool\""}},
    {"SocketIsString",
     "socket: /run/x.sock\n",
     {"c.yaml:1:9: socket: Invalid type: expected map, got string \"/run/x.sock\""}},
    {"ApiIsList", "api: [1]\n", {"c.yaml:1:6: api: Invalid type: expected map, got list"}},
    {"PrefixesIsString",
     "allowedHostPathPrefixes: /tmp\n",
     {"c.yaml:1:26: allowedHostPathPrefixes: Invalid type: expected list, got string \"/tmp\""}},
    {"PrefixIsNull",
     "allowedHostPathPrefixes: [/tmp, ~]\n",
     {"c.yaml:1:33: allowedHostPathPrefixes[1]: Invalid type: expected string, got null"}},
    {"CapacityIsBool",
     "pools: [{name: a, path: /a, capacity: false}]\n",
     {"c.yaml:1:39: pools[0].capacity: Invalid type: expected quantity (string or number), got "
      "boolean false"}},
    {"DocumentIsList", "- a\n- b\n", {"c.yaml:1:1: Invalid type: expected map, got list"}},
    {"DocumentIsScalar",
     "hello\n",
     {"c.yaml:1:1: Invalid type: expected map, got string \"hello\""}},

    {"VolumePluginEnabledIsWord",
     "volumePlugin:\n  enabled: yes\n",
     {"c.yaml:2:12: volumePlugin.enabled: Invalid type: expected boolean, got string \"yes\""}},
    {"VolumePluginIsBool",
     "volumePlugin: true\n",
     {"c.yaml:1:15: volumePlugin: Invalid type: expected map, got boolean true"}},
    {"VolumePluginSocketRelative",
     "volumePlugin:\n  socket: plugins/claimfs.sock\n",
     {"c.yaml:2:11: volumePlugin.socket: Invalid value: \"plugins/claimfs.sock\": must be an "
      "absolute path"}},
    {"VolumePluginSocketIsTheApiSocket",
     "volumePlugin:\n  socket: /run/claimfs/claimfsd.sock\n",
     {"c.yaml:2:11: volumePlugin.socket: Invalid value: \"/run/claimfs/claimfsd.sock\": must not "
      "be the API socket socket.path"}},
    {"VolumePluginSocketUnderMountRoot",
     "volumePlugin:\n  socket: /run/claimfs/claims/p.sock\n",
     {"c.yaml:2:11: volumePlugin.socket: Invalid value: \"/run/claimfs/claims/p.sock\": must not "
      "be inside mountRoot \"/run/claimfs/claims\""}},
    {"VolumePluginNamespaceInvalid",
     "volumePlugin:\n  namespace: Docker_Volumes\n",
     {"c.yaml:2:14: volumePlugin.namespace: Invalid value: \"Docker_Volumes\": " + kLabelError}},
    {"VolumePluginUnknownKey",
     "volumePlugin:\n  sockett: /x.sock\n",
     {"c.yaml:2:3: volumePlugin.sockett: unknown field \"sockett\"; did you mean \"socket\"?"}},

    // Keys.
    {"UnknownKeySuggested",
     "stateDri: /x\n",
     {"c.yaml:1:1: stateDri: unknown field \"stateDri\"; did you mean \"stateDir\"?"}},
    {"UnknownKeyCaseSuggested",
     "maxvolumes: 3\n",
     {"c.yaml:1:1: maxvolumes: unknown field \"maxvolumes\"; did you mean \"maxVolumes\"?"}},
    {"UnknownNestedKeySuggested",
     "socket:\n  pth: /run/x.sock\n",
     {"c.yaml:2:3: socket.pth: unknown field \"pth\"; did you mean \"path\"?"}},
    {"UnknownPoolKeySuggested",
     "pools:\n  - name: a\n    path: /a\n    capacty: 1Gi\n",
     {"c.yaml:4:5: pools[0].capacty: unknown field \"capacty\"; did you mean \"capacity\"?"}},
    {"UnknownKeyNoSuggestion",
     "api:\n  address: 8080\n",
     {"c.yaml:2:3: api.address: unknown field \"address\"; known fields: "
      "\"requestTimeoutSeconds\", \"maxRequestBytes\", \"listen\""}},
    {"DuplicateKey",
     "maxVolumes: 1\nlogLevel: info\nmaxVolumes: 2\n",
     {"c.yaml:3:1: maxVolumes: Duplicate value: \"maxVolumes\": mapping key already defined at "
      "line 1"}},

    // Paths.
    {"RelativeStateDir",
     "stateDir: var/lib/claimfs\n",
     {"c.yaml:1:11: stateDir: Invalid value: \"var/lib/claimfs\": must be an absolute path"}},
    {"RelativeMountRoot",
     "mountRoot: ./claims\n",
     {"c.yaml:1:12: mountRoot: Invalid value: \"./claims\": must be an absolute path"}},
    {"RelativePoolPath",
     "pools: [{name: a, path: pool}]\n",
     {"c.yaml:1:25: pools[0].path: Invalid value: \"pool\": must be an absolute path"}},
    {"RelativeSocketPath",
     "socket: {path: claimfsd.sock}\n",
     {"c.yaml:1:16: socket.path: Invalid value: \"claimfsd.sock\": must be an absolute path"}},
    {"RelativePrefix",
     "allowedHostPathPrefixes: [/tmp, data]\n",
     {"c.yaml:1:33: allowedHostPathPrefixes[1]: Invalid value: \"data\": must be an absolute "
      "path"}},
    {"EmptyPoolPath",
     "pools: [{name: a, path: \"\"}]\n",
     {"c.yaml:1:25: pools[0].path: Required value"}},
    {"PoolInsidePool",
     "pools:\n  - name: a\n    path: /srv\n  - name: b\n    path: /srv/b\n",
     {"c.yaml:5:11: pools[1].path: Invalid value: \"/srv/b\": must not be inside pools[0].path "
      "\"/srv\""}},
    {"PoolContainsPool",
     "pools:\n  - name: a\n    path: /srv/a\n  - name: b\n    path: /srv\n",
     {"c.yaml:5:11: pools[1].path: Invalid value: \"/srv\": must not contain pools[0].path "
      "\"/srv/a\""}},
    {"PoolsSamePath",
     "pools:\n  - name: a\n    path: /srv\n  - name: b\n    path: /srv/\n",
     {"c.yaml:5:11: pools[1].path: Invalid value: \"/srv\": must not be the same directory as "
      "pools[0].path \"/srv\""}},
    {"PoolPrefixIsNotOverlap",
     "pools:\n  - name: a\n    path: /srv/a\n  - name: b\n    path: /srv/ab\n"
     "stateDir: /srv/a/state\n",
     {"c.yaml:6:11: stateDir: Invalid value: \"/srv/a/state\": must not be inside pools[0].path "
      "\"/srv/a\""}},
    {"PoolInsideDefaultStateDir",
     "pools: [{name: a, path: /var/lib/claimfs/state/pool}]\n",
     {"c.yaml:1:25: pools[0].path: Invalid value: \"/var/lib/claimfs/state/pool\": must not be "
      "inside stateDir \"/var/lib/claimfs/state\""}},
    {"MountRootInsidePool",
     "pools: [{name: a, path: /data}]\nmountRoot: /data/claims\n",
     {"c.yaml:2:12: mountRoot: Invalid value: \"/data/claims\": must not be inside pools[0].path "
      "\"/data\""}},
    {"StateDirIsMountRoot",
     "stateDir: /srv/x\nmountRoot: /srv/x\n",
     {"c.yaml:2:12: mountRoot: Invalid value: \"/srv/x\": must not be the same directory as "
      "stateDir \"/srv/x\""}},
    {"RootPoolContainsEverything",
     "pools: [{name: a, path: /}]\n",
     {"c.yaml:1:25: pools[0].path: Invalid value: \"/\": must not contain stateDir "
      "\"/var/lib/claimfs/state\"",
      "c.yaml:1:25: pools[0].path: Invalid value: \"/\": must not contain mountRoot "
      "\"/run/claimfs/claims\"",
      "c.yaml:1:25: socket.path: Invalid value: \"/run/claimfs/claimfsd.sock\": must not be "
      "inside pools[0].path \"/\"",
      "c.yaml:1:25: volumePlugin.socket: Invalid value: \"/run/docker/plugins/claimfs.sock\": "
      "must not be inside pools[0].path \"/\""}},
    {"SocketInsideMountRoot",
     "socket: {path: /run/claimfs/claims/api.sock}\n",
     {"c.yaml:1:16: socket.path: Invalid value: \"/run/claimfs/claims/api.sock\": must not be "
      "inside mountRoot \"/run/claimfs/claims\""}},
    {"SocketPathTooLong",
     "socket:\n  path: /" + std::string(107, 's') + "\n",
     {"c.yaml:2:9: socket.path: Too long: must have at most 107 bytes (the size of sun_path), has "
      "108"}},

    // Pools.
    {"NoPools",
     "pools: []\n",
     {"c.yaml:1:8: pools: Required value: at least one pool is required"}},
    {"PoolNameMissing", "pools: [{path: /a}]\n", {"c.yaml:1:9: pools[0].name: Required value"}},
    {"PoolPathMissing", "pools:\n  - name: a\n", {"c.yaml:2:5: pools[0].path: Required value"}},
    {"PoolNameUppercase",
     "pools: [{name: Fast, path: /a}]\n",
     {"c.yaml:1:16: pools[0].name: Invalid value: \"Fast\": " + kLabelError}},
    {"PoolNameTooLong",
     "pools: [{name: " + std::string(64, 'a') + ", path: /a}]\n",
     {"c.yaml:1:16: pools[0].name: Invalid value: \"" + std::string(64, 'a') +
      "\": must be no more than 63 characters"}},
    {"PoolNameDuplicate",
     "pools:\n  - name: a\n    path: /a\n  - name: b\n    path: /b\n  - name: a\n    path: /c\n",
     {"c.yaml:6:11: pools[2].name: Duplicate value: \"a\""}},
    {"PoolCapacityNotQuantity",
     "pools: [{name: a, path: /a, capacity: lots}]\n",
     {"c.yaml:1:39: pools[0].capacity: Invalid value: \"lots\": quantities must match the "
      "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"}},
    {"PoolCapacityZero",
     "pools: [{name: a, path: /a, capacity: 0}]\n",
     {"c.yaml:1:39: pools[0].capacity: Invalid value: \"0\": must be greater than 0"}},
    {"PoolCapacityNegative",
     "pools: [{name: a, path: /a, capacity: -1Gi}]\n",
     {"c.yaml:1:39: pools[0].capacity: Invalid value: \"-1Gi\": must be greater than 0"}},

    // Socket.
    {"SocketModeNotOctal",
     "socket: {mode: \"0999\"}\n",
     {"c.yaml:1:16: socket.mode: Invalid value: \"0999\": must be an octal permission mode "
      "between 0000 and 0777"}},
    {"SocketModeWord",
     "socket: {mode: rw}\n",
     {"c.yaml:1:16: socket.mode: Invalid value: \"rw\": must be an octal permission mode between "
      "0000 and 0777"}},
    {"SocketModeSpecialBits",
     "socket: {mode: 04660}\n",
     {"c.yaml:1:16: socket.mode: Invalid value: \"04660\": must be an octal permission mode "
      "between 0000 and 0777"}},
    {"SocketModeList",
     "socket: {mode: [6, 6, 0]}\n",
     {"c.yaml:1:16: socket.mode: Invalid type: expected octal mode (string or number), got "
      "list"}},
    {"SocketGroupWithSpace",
     "socket: {group: \"my group\"}\n",
     {"c.yaml:1:17: socket.group: Invalid value: \"my group\": must be a group name or a numeric "
      "group id"}},
    {"SocketGroupGidTooBig",
     "socket: {group: 4294967295}\n",
     {"c.yaml:1:17: socket.group: Invalid value: \"4294967295\": must be a group name or a "
      "numeric group id below 4294967295"}},

    // Numbers and enumerations.
    {"MaxVolumesNegative",
     "maxVolumes: -1\n",
     {"c.yaml:1:13: maxVolumes: Invalid value: -1: must be greater than or equal to 0"}},
    {"MaxVolumesPastInt",
     "maxVolumes: 2147483648\n",
     {"c.yaml:1:13: maxVolumes: Invalid value: 2147483648: must be no more than 2147483647"}},
    {"WorkerThreadsZero",
     "workerThreads: 0\n",
     {"c.yaml:1:16: workerThreads: Invalid value: 0: must be between 1 and 256, inclusive"}},
    {"WorkerThreadsTooMany",
     "workerThreads: 257\n",
     {"c.yaml:1:16: workerThreads: Invalid value: 257: must be between 1 and 256, inclusive"}},
    {"WorkerThreadsNegative",
     "workerThreads: -4\n",
     {"c.yaml:1:16: workerThreads: Invalid value: -4: must be between 1 and 256, inclusive"}},
    {"QuotaErrnoUnknown",
     "quotaErrno: EIO\n",
     {"c.yaml:1:13: quotaErrno: Unsupported value: \"EIO\": supported values: \"EDQUOT\", "
      "\"ENOSPC\""}},
    {"QuotaErrnoNumber",
     "quotaErrno: 28\n",
     {"c.yaml:1:13: quotaErrno: Invalid type: expected string, got number 28"}},
    {"LogLevelUnknown",
     "logLevel: verbose\n",
     {"c.yaml:1:11: logLevel: Unsupported value: \"verbose\": supported values: \"debug\", "
      "\"error\", \"info\", \"off\", \"trace\", \"warn\""}},
    {"ApiTimeoutZero",
     "api: {requestTimeoutSeconds: 0}\n",
     {"c.yaml:1:30: api.requestTimeoutSeconds: Invalid value: 0: must be between 1 and 3600, "
      "inclusive"}},
    {"ApiMaxRequestBytesTiny",
     "api:\n  maxRequestBytes: 100\n",
     {"c.yaml:2:20: api.maxRequestBytes: Invalid value: \"100\": must be between 1024 and "
      "1073741824, inclusive"}},
    {"ApiMaxRequestBytesHuge",
     "api:\n  maxRequestBytes: 2Gi\n",
     {"c.yaml:2:20: api.maxRequestBytes: Invalid value: \"2Gi\": must be between 1024 and "
      "1073741824, inclusive"}},

    // Files that are not one YAML map.
    {"SyntaxError", "pools: [\n", {"c.yaml:2:1: invalid YAML: end of sequence flow not found"}},
    {"StrayComma", ",\n", {"c.yaml:1:1: invalid YAML: unexpected character"}},
    {"TwoDocuments",
     "maxVolumes: 1\n---\nmaxVolumes: 2\n",
     {"c.yaml:3:1: the configuration must be a single YAML document"}},

    // Everything together, in file order.
    {"ManyErrorsReportedTogether",
     "logLevel: loud\n"
     "pools:\n"
     "  - name: Bad_Name\n"
     "    path: relative\n"
     "    capacity: 0\n"
     "  - name: ok\n"
     "    path: /srv/ok\n"
     "    size: 1Gi\n"
     "socket:\n"
     "  mode: \"8\"\n"
     "workerThreads: 0\n"
     "maxVolumes: x\n"
     "quotaErrno: EDQUOTA\n",
     {"c.yaml:1:11: logLevel: Unsupported value: \"loud\": supported values: \"debug\", "
      "\"error\", \"info\", \"off\", \"trace\", \"warn\"",
      "c.yaml:3:11: pools[0].name: Invalid value: \"Bad_Name\": " + kLabelError,
      "c.yaml:4:11: pools[0].path: Invalid value: \"relative\": must be an absolute path",
      "c.yaml:5:15: pools[0].capacity: Invalid value: \"0\": must be greater than 0",
      "c.yaml:8:5: pools[1].size: unknown field \"size\"; known fields: \"name\", \"path\", "
      "\"capacity\"",
      "c.yaml:10:9: socket.mode: Invalid value: \"8\": must be an octal permission mode between "
      "0000 and 0777",
      "c.yaml:11:16: workerThreads: Invalid value: 0: must be between 1 and 256, inclusive",
      "c.yaml:12:13: maxVolumes: Invalid type: expected integer, got string \"x\"",
      "c.yaml:13:13: quotaErrno: Unsupported value: \"EDQUOTA\": supported values: \"EDQUOT\", "
      "\"ENOSPC\""}},
};

INSTANTIATE_TEST_SUITE_P(Errors, BadConfigTest,
                         ::testing::ValuesIn(std::begin(kBadCases), std::end(kBadCases)),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------

TEST(DaemonConfigTest, DefaultsAreTheDocumentedOnes) {
  DaemonConfig c = DefaultDaemonConfig();
  ASSERT_EQ(c.pools.size(), 1u);
  EXPECT_EQ(c.pools[0].name, "default");
  EXPECT_EQ(c.pools[0].path, "/var/lib/claimfs/pools/default");
  EXPECT_FALSE(c.pools[0].capacity_bytes.has_value());
  EXPECT_EQ(c.state_dir, "/var/lib/claimfs/state");
  EXPECT_EQ(c.mount_root, "/run/claimfs/claims");
  EXPECT_EQ(c.socket_path, "/run/claimfs/claimfsd.sock");
  EXPECT_EQ(c.socket_mode, 0660u);
  EXPECT_EQ(c.socket_group, "");
  EXPECT_EQ(c.max_volumes, 0);
  EXPECT_THAT(c.allowed_host_path_prefixes, ElementsAre("/tmp"));
  EXPECT_EQ(c.quota_errno, ENOSPC);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.worker_threads, 16u);
  EXPECT_EQ(c.api_request_timeout_seconds, 10);
  EXPECT_EQ(c.api_max_request_bytes, 4 << 20);
  EXPECT_FALSE(c.volume_plugin.enabled.has_value());
  EXPECT_EQ(c.volume_plugin.socket_path, "/run/docker/plugins/claimfs.sock");
  EXPECT_EQ(c.volume_plugin.namespace_, "docker");
  EXPECT_TRUE(ValidateDaemonConfig(c).ok());
}

TEST(DaemonConfigTest, ShippedConfigIsExactlyTheDefaults) {
  fs::path file = kSourceDir / "config/claimfsd.yaml";
  std::string text = ReadFile(file);
  ASSERT_FALSE(text.empty()) << file;
  ConfigResult r = ParseDaemonConfig(text, file.string());
  EXPECT_THAT(Lines(r.errors), IsEmpty());
  EXPECT_THAT(Lines(r.warnings), IsEmpty());
  EXPECT_EQ(r.config, DefaultDaemonConfig());
}

// The shipped file names every key, so a key added to the parser must be documented there.
TEST(DaemonConfigTest, ShippedConfigMentionsEveryKey) {
  std::string text = ReadFile(kSourceDir / "config/claimfsd.yaml");
  for (const char* key : {"pools:", "name:", "path:", "capacity:", "stateDir:", "mountRoot:",
                          "socket:", "mode:", "group:", "maxVolumes:", "allowedHostPathPrefixes:",
                          "quotaErrno:", "logLevel:", "workerThreads:", "api:",
                          "requestTimeoutSeconds:", "maxRequestBytes:", "CLAIMFS_MAX_VOLUMES",
                          "volumePlugin:", "enabled:", "namespace:"}) {
    EXPECT_THAT(text, HasSubstr(key));
  }
}

TEST(DaemonConfigTest, GoodAndBadFilesInTestdata) {
  fs::path dir = kSourceDir / "tests/testdata/config";
  int good = 0;
  for (const auto& entry : fs::directory_iterator(dir / "good")) {
    ConfigResult r = ParseDaemonConfig(ReadFile(entry.path()), entry.path().filename().string());
    EXPECT_THAT(Lines(r.errors), IsEmpty()) << entry.path();
    ++good;
  }
  int bad = 0;
  for (const auto& entry : fs::directory_iterator(dir / "bad")) {
    if (entry.path().extension() != ".yaml") continue;
    // Each bad file starts with "# expect: <diagnostic>" lines, one per error, in order.
    std::vector<std::string> want;
    std::istringstream in(ReadFile(entry.path()));
    const std::string prefix = "# expect: ";
    for (std::string line; std::getline(in, line) && line.rfind(prefix, 0) == 0;) {
      want.push_back(line.substr(prefix.size()));
    }
    ASSERT_FALSE(want.empty()) << entry.path() << " has no # expect: line";
    ConfigResult r = ParseDaemonConfig(ReadFile(entry.path()), entry.path().filename().string());
    EXPECT_THAT(Lines(r.errors), ElementsAreArray(want)) << entry.path();
    ++bad;
  }
  EXPECT_GE(good, 2);
  EXPECT_GE(bad, 2);
}

TEST(DaemonConfigTest, FullExampleParsesEveryKey) {
  ConfigResult r =
      ParseDaemonConfig(ReadFile(kSourceDir / "tests/testdata/config/good/full.yaml"), "full.yaml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const DaemonConfig& c = r.config;
  ASSERT_EQ(c.pools.size(), 2u);
  EXPECT_EQ(c.pools[0], (PoolConfig{"default", "/srv/claimfs/pools/default", std::nullopt}));
  EXPECT_EQ(c.pools[1], (PoolConfig{"fast", "/mnt/nvme/claimfs", int64_t{500} << 30}));
  EXPECT_EQ(c.state_dir, "/srv/claimfs/state");
  EXPECT_EQ(c.mount_root, "/mnt/claims");
  EXPECT_EQ(c.socket_path, "/run/claimfs/api.sock");
  EXPECT_EQ(c.socket_mode, 0660u);
  EXPECT_EQ(c.socket_group, "claimfs");
  EXPECT_EQ(c.max_volumes, 100);
  EXPECT_THAT(c.allowed_host_path_prefixes, ElementsAre("/tmp", "/srv/data"));
  EXPECT_EQ(c.quota_errno, EDQUOT);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.worker_threads, 32u);
  EXPECT_EQ(c.api_request_timeout_seconds, 30);
  EXPECT_EQ(c.api_max_request_bytes, 8 << 20);
}

TEST(DaemonConfigTest, WarnsAboutSocketOpenToEveryone) {
  ConfigResult r = ParseDaemonConfig("socket:\n  mode: \"0666\"\n", "c.yaml");
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(Lines(r.warnings),
              ElementsAre("c.yaml:2:9: socket.mode: Invalid value: \"0666\": every local user can "
                          "reach the API and manage volumes"));
  EXPECT_EQ(r.config.socket_mode, 0666u);
}

TEST(DaemonConfigTest, WarnsAboutGroupWithoutAccess) {
  ConfigResult r = ParseDaemonConfig("socket:\n  mode: \"0600\"\n  group: docker\n", "c.yaml");
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(Lines(r.warnings),
              ElementsAre("c.yaml:2:9: socket.mode: Invalid value: \"0600\": gives group "
                          "\"docker\" no read and write access to the socket"));
}

TEST(DaemonConfigTest, WarnsAboutRootPrefix) {
  ConfigResult r = ParseDaemonConfig("allowedHostPathPrefixes: [/]\n", "c.yaml");
  EXPECT_TRUE(r.ok());
  EXPECT_THAT(Lines(r.warnings),
              ElementsAre("c.yaml:1:27: allowedHostPathPrefixes[0]: Invalid value: \"/\": "
                          "hostPath volumes may then name any directory of the machine"));
}

// Aliases are not expanded where the config has no such structure: a few lines that describe
// billions of nodes are reported, not walked.
TEST(DaemonConfigTest, AliasBombIsRefusedQuickly) {
  std::string text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c, ++prev) {
    text += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) text += std::string(i ? ", *" : "*") + prev;
    text += "]\n";
  }
  text += "stateDir: *j\npools: [*j]\n";
  ConfigResult r = ParseDaemonConfig(text, "c.yaml");
  ASSERT_EQ(r.errors.size(), 12u);
  EXPECT_EQ(r.errors[10].ToString(),
            "c.yaml:11:1: stateDir: Invalid type: expected string, got list");
  EXPECT_EQ(r.errors[11].ToString(), "c.yaml:12:1: pools[0]: Invalid type: expected map, got list");
}

TEST(DaemonConfigTest, DeepNestingIsAnErrorNotACrash) {
  std::string text = "api: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  ConfigResult r = ParseDaemonConfig(text, "c.yaml");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.config, DefaultDaemonConfig());
}

TEST(DaemonConfigTest, ValueInErrorKeepsItsDefault) {
  ConfigResult r = ParseDaemonConfig("workerThreads: 0\nmaxVolumes: 5\nlogLevel: loud\n", "c.yaml");
  EXPECT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.config.worker_threads, 16u);
  EXPECT_EQ(r.config.log_level, "info");
  EXPECT_EQ(r.config.max_volumes, 5);
}

TEST(DaemonConfigTest, SocketPathOfExactlySunPathLengthIsAccepted) {
  std::string path = "/" + std::string(106, 's');  // 107 bytes + NUL = sizeof(sun_path)
  ConfigResult r = ParseDaemonConfig("socket: {path: " + path + "}\n", "c.yaml");
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.config.socket_path, path);
}

TEST(DaemonConfigTest, QuickStartPutsEverythingUnderOneDirectory) {
  DaemonConfig c = QuickStartConfig("/data/claimfs/");
  DaemonConfig want = DefaultDaemonConfig();
  want.pools[0].path = "/data/claimfs/pools/default";
  want.state_dir = "/data/claimfs/state";
  want.mount_root = "/data/claimfs/claims";
  want.socket_path = "/data/claimfs/claimfsd.sock";
  want.volume_plugin.socket_path = "/data/claimfs/docker-plugin.sock";
  want.api_listen = "127.0.0.1:6443";  // kubectl's listener, given up when the port is taken
  want.api_listen_optional = true;
  EXPECT_EQ(c, want);
  EXPECT_TRUE(ValidateDaemonConfig(c).ok()) << ValidateDaemonConfig(c).message();
}

TEST(DaemonConfigTest, QuickStartMakesARelativeDirectoryAbsolute) {
  std::string cwd = fs::current_path().lexically_normal().string();
  DaemonConfig c = QuickStartConfig("./sub/../claimfs-data");
  EXPECT_EQ(c.state_dir, cwd + "/claimfs-data/state");
  EXPECT_EQ(c.pools[0].path, cwd + "/claimfs-data/pools/default");
  EXPECT_EQ(c.mount_root, cwd + "/claimfs-data/claims");
  EXPECT_EQ(c.socket_path, cwd + "/claimfs-data/claimfsd.sock");
}

TEST(DaemonConfigTest, QuickStartUnderADeepDirectoryFailsValidationOnTheSocket) {
  DaemonConfig c = QuickStartConfig("/" + std::string(100, 'd'));
  Status s = ValidateDaemonConfig(c);
  EXPECT_EQ(s.code(), StatusCode::kInvalid);
  EXPECT_EQ(s.message(),
            "socket.path: Too long: must have at most 107 bytes (the size of sun_path), has 115\n"
            "volumePlugin.socket: Too long: must have at most 107 bytes (the size of sun_path), "
            "has 120");
}

TEST(DaemonConfigTest, ValidateListsEveryProblem) {
  DaemonConfig c = DefaultDaemonConfig();
  c.worker_threads = 0;
  c.max_volumes = -3;
  c.pools.push_back({"default", "/var/lib/claimfs/pools/default/x", int64_t{0}});
  Status s = ValidateDaemonConfig(c);
  EXPECT_EQ(s.code(), StatusCode::kInvalid);
  EXPECT_EQ(s.message(),
            "pools[1].name: Duplicate value: \"default\"\n"
            "pools[1].capacity: Invalid value: 0: must be greater than 0\n"
            "pools[1].path: Invalid value: \"/var/lib/claimfs/pools/default/x\": must not be "
            "inside pools[0].path \"/var/lib/claimfs/pools/default\"\n"
            "maxVolumes: Invalid value: -3: must be greater than or equal to 0\n"
            "workerThreads: Invalid value: 0: must be between 1 and 256, inclusive");
}

// ---------------------------------------------------------------------------------------------
// Files and the environment.

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "daemon_config_test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(DaemonConfigTest, LoadReadsTheFile) {
  TempDir dir;
  fs::path file = dir.path() / "claimfsd.yaml";
  std::ofstream(file) << "maxVolumes: 4\nlogLevel: bogus\n";
  Result<ConfigResult> r = LoadDaemonConfig(file.string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->config.max_volumes, 4);
  EXPECT_THAT(Lines(r->errors),
              ElementsAre(file.string() +
                          ":2:11: logLevel: Unsupported value: \"bogus\": supported values: "
                          "\"debug\", \"error\", \"info\", \"off\", \"trace\", \"warn\""));
}

TEST(DaemonConfigTest, LoadMissingFileIsNotFound) {
  TempDir dir;
  std::string file = (dir.path() / "absent.yaml").string();
  Result<ConfigResult> r = LoadDaemonConfig(file);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "cannot read config file " + file + ": No such file or directory");
}

TEST(DaemonConfigTest, LoadDirectoryIsIOError) {
  TempDir dir;
  Result<ConfigResult> r = LoadDaemonConfig(dir.path().string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIOError);
  EXPECT_THAT(r.status().message(), HasSubstr("cannot read config file " + dir.path().string()));
}

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(DaemonConfigTest, EnvironmentOverridesMaxVolumes) {
  ScopedEnv env("CLAIMFS_MAX_VOLUMES", "25");
  DaemonConfig c = ParseDaemonConfig("maxVolumes: 3\n", "c.yaml").config;
  ASSERT_TRUE(ApplyEnvironment(&c).ok());
  EXPECT_EQ(c.max_volumes, 25);
}

TEST(DaemonConfigTest, EnvironmentZeroLiftsTheLimit) {
  ScopedEnv env("CLAIMFS_MAX_VOLUMES", "0");
  DaemonConfig c = DefaultDaemonConfig();
  c.max_volumes = 9;
  ASSERT_TRUE(ApplyEnvironment(&c).ok());
  EXPECT_EQ(c.max_volumes, 0);
}

TEST(DaemonConfigTest, EnvironmentUnsetOrEmptyChangesNothing) {
  for (const char* value : {static_cast<const char*>(nullptr), ""}) {
    ScopedEnv env("CLAIMFS_MAX_VOLUMES", value);
    DaemonConfig c = DefaultDaemonConfig();
    c.max_volumes = 9;
    ASSERT_TRUE(ApplyEnvironment(&c).ok());
    EXPECT_EQ(c.max_volumes, 9);
  }
}

TEST(DaemonConfigTest, EnvironmentBadValueIsAnErrorNamingTheVariable) {
  struct Case {
    const char* value;
    const char* message;
  };
  const Case cases[] = {
      {"ten",
       "environment variable CLAIMFS_MAX_VOLUMES=\"ten\": must be a whole number greater than or "
       "equal to 0"},
      {"5x",
       "environment variable CLAIMFS_MAX_VOLUMES=\"5x\": must be a whole number greater than or "
       "equal to 0"},
      {" 5",
       "environment variable CLAIMFS_MAX_VOLUMES=\" 5\": must be a whole number greater than or "
       "equal to 0"},
      {"-1", "environment variable CLAIMFS_MAX_VOLUMES=\"-1\": must be greater than or equal to 0"},
      {"2147483648",
       "environment variable CLAIMFS_MAX_VOLUMES=\"2147483648\": must be no more than "
       "2147483647"},
  };
  for (const Case& c : cases) {
    ScopedEnv env("CLAIMFS_MAX_VOLUMES", c.value);
    DaemonConfig config = DefaultDaemonConfig();
    config.max_volumes = 9;
    Status s = ApplyEnvironment(&config);
    EXPECT_EQ(s.code(), StatusCode::kInvalid) << c.value;
    EXPECT_EQ(s.message(), c.message);
    EXPECT_EQ(config.max_volumes, 9) << "a bad value must leave the config unchanged";
  }
}

TEST(SplitListenAddressTest, Table) {
  struct Case {
    std::string address;
    bool ok;
    std::string host;
    uint16_t port;
  };
  const Case cases[] = {
      {"127.0.0.1:6443", true, "127.0.0.1", 6443},
      {"[::1]:6443", true, "::1", 6443},
      {"127.0.0.1:0", true, "127.0.0.1", 0},
      {"0.0.0.0:65535", true, "0.0.0.0", 65535},
      {"127.0.0.1", false, "", 0},
      {"127.0.0.1:", false, "", 0},
      {":6443", false, "", 0},
      {"127.0.0.1:65536", false, "", 0},
      {"127.0.0.1:-1", false, "", 0},
      {"127.0.0.1:64x", false, "", 0},
      {"::1:6443", false, "", 0},
      {"[::1]6443", false, "", 0},
      {"", false, "", 0},
  };
  for (const Case& c : cases) {
    std::string host;
    uint16_t port = 0;
    Status s = SplitListenAddress(c.address, &host, &port);
    EXPECT_EQ(s.ok(), c.ok) << c.address << ": " << s.message();
    if (c.ok) {
      EXPECT_EQ(host, c.host) << c.address;
      EXPECT_EQ(port, c.port) << c.address;
    }
  }
}

TEST(SplitListenAddressTest, ConfigKeyAndQuickStart) {
  ConfigResult good = ParseDaemonConfig("api:\n  listen: 127.0.0.1:7443\n", "claimfsd.yaml");
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ(good.config.api_listen, "127.0.0.1:7443");
  EXPECT_FALSE(good.config.api_listen_optional);
  ConfigResult bad = ParseDaemonConfig("api:\n  listen: localhost\n", "claimfsd.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("claimfsd.yaml:2:11: api.listen"), std::string::npos)
      << bad.status().message();
  ConfigResult off = ParseDaemonConfig("api:\n  listen: \"\"\n", "claimfsd.yaml");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_EQ(off.config.api_listen, "");
  EXPECT_EQ(DefaultDaemonConfig().api_listen, "");
  DaemonConfig quick = QuickStartConfig("/var/tmp/claimfs");
  EXPECT_EQ(quick.api_listen, "127.0.0.1:6443");
  EXPECT_TRUE(quick.api_listen_optional);
}

}  // namespace
}  // namespace claimfs::yaml
