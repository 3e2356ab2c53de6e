// The subset of kubectl's JSONPath that `claimctl wait --for=jsonpath=...` and `get -o jsonpath`
// need: field paths with array indexes or wildcards, e.g. {.status.phase}, {.items[*].metadata.name},
// {.spec.accessModes[0]},
// {.metadata.annotations['pv\.kubernetes\.io/bind-completed']}.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::claimctl {

// The value at `expression` in `document`, nothing when the path leads nowhere (a missing field or
// index: the condition is not met yet). The braces are optional, as kubectl's relaxed syntax
// allows. Fails with kInvalid for syntax outside the subset.
Result<std::optional<nlohmann::json>> EvaluateJsonPath(std::string_view expression,
                                                       const nlohmann::json& document);

// Every value at `expression`, where [*] (or .*) stands for each item of a list or value of a
// map: {.items[*].metadata.name}. Empty when the path leads nowhere; kInvalid as above.
Result<std::vector<nlohmann::json>> EvaluateJsonPathAll(std::string_view expression,
                                                        const nlohmann::json& document);

// A value as kubectl's jsonpath prints it: strings bare, everything else as compact JSON.
std::string JsonPathText(const nlohmann::json& value);

// --for=jsonpath='{.status.phase}'=Bound splits into the expression and the wanted value (none
// when only the expression is given: the path must exist).
struct JsonPathCondition {
  std::string expression;
  std::optional<std::string> value;
};
Result<JsonPathCondition> ParseJsonPathCondition(std::string_view text);

}  // namespace claimfs::claimctl
