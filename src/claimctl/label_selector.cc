#include "claimctl/label_selector.h"

#include <cctype>
#include <string>
#include <vector>

namespace claimfs::claimctl {
namespace {

std::string Trim(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  return std::string(text.substr(b, e - b));
}

// Splits on commas outside parentheses.
std::vector<std::string> SplitRequirements(std::string_view text) {
  std::vector<std::string> parts;
  int depth = 0;
  std::string current;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(Trim(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  parts.push_back(Trim(current));
  return parts;
}

bool ValidKey(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '/') {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<model::LabelSelector> ParseLabelSelector(std::string_view text) {
  using Op = model::LabelSelectorRequirement::Operator;
  model::LabelSelector selector;
  if (Trim(text).empty()) return selector;
  for (const std::string& req : SplitRequirements(text)) {
    auto bad = [&req](std::string_view why) {
      return Status::Invalid("unable to parse requirement \"" + req + "\": " + std::string(why));
    };
    if (req.empty()) return bad("empty requirement");
    if (req[0] == '!') {
      std::string key = Trim(req.substr(1));
      if (!ValidKey(key)) return bad("invalid label key");
      selector.match_expressions.push_back({key, Op::kDoesNotExist, {}});
      continue;
    }
    size_t op_pos = req.find_first_of("=!");
    if (op_pos != std::string::npos) {
      std::string key = Trim(req.substr(0, op_pos));
      bool not_equal = req[op_pos] == '!';
      size_t value_pos = op_pos + 1;
      if (not_equal) {
        if (value_pos >= req.size() || req[value_pos] != '=') return bad("expected !=");
        ++value_pos;
      } else if (value_pos < req.size() && req[value_pos] == '=') {
        ++value_pos;
      }
      std::string value = Trim(req.substr(value_pos));
      if (!ValidKey(key)) return bad("invalid label key");
      if (value.find_first_of("=!(), ") != std::string::npos) return bad("invalid label value");
      if (not_equal) {
        selector.match_expressions.push_back({key, Op::kNotIn, {value}});
      } else {
        selector.match_labels[key] = value;
      }
      continue;
    }
    size_t paren = req.find('(');
    if (paren != std::string::npos) {
      if (req.back() != ')') return bad("expected ')'");
      std::string head = Trim(req.substr(0, paren));
      size_t space = head.find_last_of(" \t");
      if (space == std::string::npos) return bad("expected 'in' or 'notin'");
      std::string key = Trim(head.substr(0, space));
      std::string op = Trim(head.substr(space + 1));
      if (!ValidKey(key)) return bad("invalid label key");
      if (op != "in" && op != "notin") return bad("expected 'in' or 'notin'");
      model::LabelSelectorRequirement r{key, op == "in" ? Op::kIn : Op::kNotIn, {}};
      std::string inner = req.substr(paren + 1, req.size() - paren - 2);
      for (const std::string& v : SplitRequirements(inner)) {
        if (v.empty()) continue;
        r.values.push_back(v);
      }
      if (r.values.empty()) return bad("for 'in', 'notin' operators, values set can't be empty");
      selector.match_expressions.push_back(std::move(r));
      continue;
    }
    if (!ValidKey(req)) return bad("invalid label key");
    selector.match_expressions.push_back({req, Op::kExists, {}});
  }
  return selector;
}

}  // namespace claimfs::claimctl
