// claimctl wait: poll objects until a jsonpath value, a status condition, or deletion.
#include <algorithm>
#include <cctype>
#include <iostream>
#include <thread>

#include "claimctl/commands.h"
#include "claimctl/duration.h"
#include "claimctl/jsonpath.h"

namespace claimfs::claimctl {

using nlohmann::json;

namespace {

bool EqualFold(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Result<WaitCondition> ParseWaitCondition(std::string_view text) {
  WaitCondition condition;
  if (text.empty()) {
    return Status::Invalid(
        "--for must be given: --for=delete, --for=jsonpath='{.status.phase}'="
        "Bound or --for=condition=TYPE[=VALUE]");
  }
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "delete") {
    condition.type = WaitCondition::Type::kDelete;
    return condition;
  }
  if (lower.rfind("jsonpath=", 0) == 0) {
    Result<JsonPathCondition> jp = ParseJsonPathCondition(text.substr(9));
    if (!jp.ok()) return jp.status();
    condition.type = WaitCondition::Type::kJsonPath;
    condition.expression = jp->expression;
    condition.value = jp->value;
    return condition;
  }
  if (lower.rfind("condition=", 0) == 0) {
    std::string_view rest = text.substr(10);
    size_t eq = rest.find('=');
    condition.type = WaitCondition::Type::kCondition;
    condition.expression = std::string(rest.substr(0, eq));
    condition.value = eq == std::string_view::npos ? "True" : std::string(rest.substr(eq + 1));
    if (condition.expression.empty()) {
      return Status::Invalid("--for=condition needs a condition type, e.g. condition=Resizing");
    }
    return condition;
  }
  return Status::Invalid("unrecognized condition: \"" + std::string(text) +
                         "\": use --for=delete, --for=jsonpath='{.status.phase}'=Bound or "
                         "--for=condition=TYPE[=VALUE]");
}

Result<bool> ConditionMet(const WaitCondition& condition, const json& object) {
  if (condition.type == WaitCondition::Type::kJsonPath) {
    Result<std::optional<json>> value = EvaluateJsonPath(condition.expression, object);
    if (!value.ok()) return value.status();
    if (!value->has_value()) return false;
    if (!condition.value) return true;
    return JsonPathText(**value) == *condition.value;
  }
  if (condition.type == WaitCondition::Type::kCondition) {
    if (!object.contains("status") || !object["status"].is_object() ||
        !object["status"].contains("conditions") || !object["status"]["conditions"].is_array()) {
      return false;
    }
    for (const json& c : object["status"]["conditions"]) {
      if (!c.is_object() || !c.contains("type") || !c["type"].is_string()) continue;
      if (!EqualFold(c["type"].get<std::string>(), condition.expression)) continue;
      std::string status =
          c.contains("status") && c["status"].is_string() ? c["status"].get<std::string>() : "";
      return EqualFold(status, condition.value.value_or("True"));
    }
    return false;
  }
  return false;
}

int RunWait(const GlobalOptions& global, const WaitOptions& options, Io& io) {
  Result<WaitCondition> condition = ParseWaitCondition(options.for_condition);
  if (!condition.ok()) {
    io.err << ErrorLine(condition.status()) << "\n";
    return kExitError;
  }
  Result<std::chrono::nanoseconds> timeout = ParseGoDuration(options.timeout);
  if (!timeout.ok()) {
    io.err << ErrorLine(timeout.status()) << "\n";
    return kExitError;
  }
  if (options.args.empty()) {
    io.err << "error: resource(s) must be specified: claimctl wait --for=... pvc/NAME\n";
    return kExitError;
  }
  Result<ResourceArgs> resources = ParseResourceArgs(options.args);
  if (!resources.ok()) {
    io.err << ErrorLine(resources.status()) << "\n";
    return kExitError;
  }
  if (resources->objects.empty()) {
    io.err << "error: resource name(s) must be specified: claimctl wait --for=... pvc/NAME\n";
    return kExitError;
  }
  // Zero waits once (checks the condition now); negative means a week, as kubectl.
  auto wait_for = *timeout;
  if (wait_for.count() < 0) wait_for = std::chrono::hours(24 * 7);
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(wait_for);

  Api api(global);
  std::vector<Target> targets;
  for (const ObjectRef& ref : resources->objects) {
    targets.push_back(
        {ref.kind, InfoOf(ref.kind).namespaced ? global.namespace_ : "", ref.name, ""});
  }
  if (condition->type == WaitCondition::Type::kDelete) {
    Status s = WaitUntilGone(api, targets, deadline, [&io](const Target& t) {
      io.out << ResourceName(t.kind, t.name) << " condition met\n" << std::flush;
    });
    if (!s.ok()) {
      io.err << ErrorLine(s) << "\n";
      return kExitError;
    }
    return kExitOk;
  }
  for (const Target& target : targets) {
    while (true) {
      Result<json> object = api.Get(ObjectPath(target.kind, target.ns, target.name));
      if (!object.ok()) {
        io.err << ErrorLine(object.status()) << "\n";
        return kExitError;
      }
      Result<bool> met = ConditionMet(*condition, *object);
      if (!met.ok()) {
        io.err << ErrorLine(met.status()) << "\n";
        return kExitError;
      }
      if (*met) {
        io.out << ResourceName(target.kind, target.name) << " condition met\n" << std::flush;
        break;
      }
      if (Clock::now() >= deadline) {
        io.err << "error: " << TimeoutMessage(target) << "\n";
        return kExitError;
      }
      std::this_thread::sleep_for(kPollInterval);
    }
  }
  return kExitOk;
}

}  // namespace claimfs::claimctl
