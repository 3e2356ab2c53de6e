#include "claimctl/jsonpath.h"

#include <cctype>
#include <string>
#include <vector>

namespace claimfs::claimctl {
namespace {

struct Step {
  bool is_index = false;
  std::string key;
  long index = 0;
  bool is_wildcard = false;  // [*] or .*: every item of a list, every value of a map
};

Status Syntax(std::string_view expression, std::string_view why) {
  return Status::Invalid("unsupported jsonpath expression \"" + std::string(expression) +
                         "\": " + std::string(why) +
                         " (claimctl understands {.field.field}, {.list[N]}, {.list[*].field} and "
                         "{.map['key']})");
}

Result<std::vector<Step>> ParseSteps(std::string_view expression) {
  std::string_view text = expression;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (!text.empty() && text.front() == '{') {
    if (text.back() != '}') return Syntax(expression, "unclosed {");
    text = text.substr(1, text.size() - 2);
  }
  std::vector<Step> steps;
  size_t i = 0;
  if (text.empty()) return Syntax(expression, "empty path");
  if (text[0] != '.' && text[0] != '[') return Syntax(expression, "a path starts with '.'");
  if (text == ".") return steps;  // the whole object
  while (i < text.size()) {
    if (text[i] == '.') {
      ++i;
      std::string key;
      while (i < text.size() && text[i] != '.' && text[i] != '[') {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;  // "\." is a dot inside a key
        key.push_back(text[i++]);
      }
      if (key.empty()) return Syntax(expression, "empty field name");
      if (key == "*") {
        steps.push_back({false, "", 0, true});
        continue;
      }
      if (key.find_first_of("*?@()") != std::string::npos) {
        return Syntax(expression, "filters and wildcards are not supported");
      }
      steps.push_back({false, key, 0});
    } else if (text[i] == '[') {
      size_t close = text.find(']', i);
      if (close == std::string_view::npos) return Syntax(expression, "unclosed [");
      std::string_view inner = text.substr(i + 1, close - i - 1);
      i = close + 1;
      if (inner == "*") {
        steps.push_back({false, "", 0, true});
        continue;
      }
      if (inner.size() >= 2 && (inner.front() == '\'' || inner.front() == '"') &&
          inner.back() == inner.front()) {
        std::string key;
        for (size_t k = 1; k + 1 < inner.size(); ++k) {
          if (inner[k] == '\\' && k + 2 < inner.size()) ++k;
          key.push_back(inner[k]);
        }
        steps.push_back({false, key, 0});
        continue;
      }
      if (inner.empty() || inner.find_first_not_of("-0123456789") != std::string_view::npos ||
          inner.find('-', 1) != std::string_view::npos || inner == "-") {
        return Syntax(expression, "only numeric indexes are supported in [...]");
      }
      steps.push_back({true, "", std::stol(std::string(inner))});
    } else {
      return Syntax(expression, "unexpected character");
    }
  }
  return steps;
}

}  // namespace

Result<std::vector<nlohmann::json>> EvaluateJsonPathAll(std::string_view expression,
                                                        const nlohmann::json& document) {
  Result<std::vector<Step>> steps = ParseSteps(expression);
  if (!steps.ok()) return steps.status();
  std::vector<const nlohmann::json*> nodes = {&document};
  for (const Step& step : *steps) {
    std::vector<const nlohmann::json*> next;
    for (const nlohmann::json* node : nodes) {
      if (step.is_wildcard) {
        if (node->is_array() || node->is_object()) {
          for (const nlohmann::json& item : *node) next.push_back(&item);
        }
      } else if (step.is_index) {
        if (!node->is_array()) continue;
        long size = static_cast<long>(node->size());
        long index = step.index < 0 ? size + step.index : step.index;
        if (index < 0 || index >= size) continue;
        next.push_back(&(*node)[static_cast<size_t>(index)]);
      } else {
        if (!node->is_object()) continue;
        auto it = node->find(step.key);
        if (it != node->end()) next.push_back(&*it);
      }
    }
    nodes = std::move(next);
  }
  std::vector<nlohmann::json> values;
  for (const nlohmann::json* node : nodes) values.push_back(*node);
  return values;
}

Result<std::optional<nlohmann::json>> EvaluateJsonPath(std::string_view expression,
                                                       const nlohmann::json& document) {
  Result<std::vector<nlohmann::json>> values = EvaluateJsonPathAll(expression, document);
  if (!values.ok()) return values.status();
  if (values->empty()) return std::optional<nlohmann::json>();
  return std::optional<nlohmann::json>(std::move(values->front()));
}

std::string JsonPathText(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

Result<JsonPathCondition> ParseJsonPathCondition(std::string_view text) {
  JsonPathCondition condition;
  if (!text.empty() && text.front() == '{') {
    size_t close = text.rfind('}');
    if (close == std::string_view::npos) {
      return Status::Invalid("jsonpath wait format must be --for=jsonpath='{.status.phase}'=Bound");
    }
    condition.expression = std::string(text.substr(0, close + 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != '=') {
        return Status::Invalid(
            "jsonpath wait format must be --for=jsonpath='{.status.phase}'=Bound");
      }
      condition.value = std::string(rest.substr(1));
    }
  } else {
    size_t eq = text.find('=');
    condition.expression = std::string(text.substr(0, eq));
    if (eq != std::string_view::npos) condition.value = std::string(text.substr(eq + 1));
  }
  if (condition.expression.empty()) {
    return Status::Invalid("jsonpath wait format must be --for=jsonpath='{.status.phase}'=Bound");
  }
  Result<std::vector<Step>> steps = ParseSteps(condition.expression);
  if (!steps.ok()) return steps.status();
  for (const Step& step : *steps) {
    // As kubectl: a condition compares one value, and a wildcard may match several.
    if (step.is_wildcard) {
      return Status::Invalid("jsonpath wait does not take wildcards: \"" + condition.expression +
                             "\" may match more than one value");
    }
  }
  return condition;
}

}  // namespace claimfs::claimctl
