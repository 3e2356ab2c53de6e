// claimctl's commands, one function each: options in, text out through Io, exit code back
// (0 success, 1 any failure, as kubectl). main.cc only wires the flags to these.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimctl/api_access.h"

namespace claimfs::claimctl {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;

struct ApplyOptions {
  std::vector<std::string> files;  // -f: files, directories, "-"
  std::string dry_run = "none";    // none | client | server
  std::string output;              // "" | yaml | json | name
};
int RunApply(const GlobalOptions& global, const ApplyOptions& options, Io& io);

struct GetOptions {
  std::vector<std::string> args;  // TYPE[,TYPE] [NAME...] | TYPE/NAME...
  std::string output;             // "" | wide | yaml | json | name | jsonpath=EXPR
  bool all_namespaces = false;
  std::string selector;
  bool no_headers = false;
};
int RunGet(const GlobalOptions& global, const GetOptions& options, Io& io);

struct DescribeOptions {
  std::vector<std::string> args;
  bool all_namespaces = false;
  std::string selector;
};
int RunDescribe(const GlobalOptions& global, const DescribeOptions& options, Io& io);

struct DeleteOptions {
  std::vector<std::string> args;
  std::vector<std::string> files;
  bool all = false;
  bool wait = true;
  std::string timeout = "0s";  // 0: wait forever
  bool ignore_not_found = false;
};
int RunDelete(const GlobalOptions& global, const DeleteOptions& options, Io& io);

struct PatchOptions {
  std::vector<std::string> args;
  std::string patch;
  std::string type = "strategic";  // strategic | merge | json
  std::string dry_run = "none";    // none | server
};
int RunPatch(const GlobalOptions& global, const PatchOptions& options, Io& io);

struct WaitOptions {
  std::vector<std::string> args;
  std::string for_condition;  // delete | jsonpath=... | condition=...
  std::string timeout = "30s";
};
int RunWait(const GlobalOptions& global, const WaitOptions& options, Io& io);

struct UseOptions {
  std::string claim;
  std::vector<std::string> command;
};
int RunUse(const GlobalOptions& global, const UseOptions& options, Io& io);

struct DfOptions {
  bool all_namespaces = false;
  bool bytes = false;
};
int RunDf(const GlobalOptions& global, const DfOptions& options, Io& io);

int RunVersion(const GlobalOptions& global, Io& io);

// What `wait --for=...` waits for.
struct WaitCondition {
  enum class Type { kDelete, kJsonPath, kCondition } type = Type::kDelete;
  std::string expression;            // jsonpath expression, or the condition type
  std::optional<std::string> value;  // wanted value; for conditions "True" by default
};
Result<WaitCondition> ParseWaitCondition(std::string_view text);
// Whether `object` satisfies a jsonpath or condition wait.
Result<bool> ConditionMet(const WaitCondition& condition, const nlohmann::json& object);

}  // namespace claimfs::claimctl

namespace claimfs::claimctl {

// An object a command acts on, located.
struct Target {
  Kind kind;
  std::string ns;  // empty for cluster-scoped kinds
  std::string name;
  std::string uid;  // when known: an object of the same name but another uid counts as gone
};

// How often delete and wait poll the daemon.
inline constexpr std::chrono::milliseconds kPollInterval{150};

// Polls each target until it is gone (NotFound, or another uid), in order, until `deadline`
// (none: forever). `on_gone` is called for each target as it goes. Fails with kUnavailable
// "timed out waiting for the condition on persistentvolumeclaims/data" for the first target
// still there at the deadline, or with the API's failure.
Status WaitUntilGone(Api& api, const std::vector<Target>& targets,
                     std::optional<Clock::time_point> deadline,
                     const std::function<void(const Target&)>& on_gone);

std::string TimeoutMessage(const Target& target);

// Prints a kubeconfig (YAML) for the daemon's Kubernetes API listener, with a token for the
// caller: `claimctl kubeconfig > ~/.kube/claimfs; KUBECONFIG=~/.kube/claimfs kubectl get pv`.
int RunKubeconfig(const GlobalOptions& global, Io& io);

}  // namespace claimfs::claimctl
