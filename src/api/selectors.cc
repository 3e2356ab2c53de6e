#include "selectors.h"

#include <cctype>

namespace claimfs::api::internal {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// Splits on commas outside parentheses.
std::vector<std::string_view> SplitTerms(std::string_view text) {
  std::vector<std::string_view> terms;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '(') ++depth;
    if (text[i] == ')' && depth > 0) --depth;
    if (text[i] == ',' && depth == 0) {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  return terms;
}

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == '/';
}

Status TermError(std::string_view term, std::string_view why) {
  return Status::Invalid("unable to parse requirement \"" + std::string(term) +
                         "\": " + std::string(why));
}

// Consumes a word operator ("in", "notin") when it stands alone.
bool ConsumeWord(std::string_view* rest, std::string_view word) {
  if (rest->substr(0, word.size()) != word) return false;
  if (rest->size() > word.size()) {
    char next = (*rest)[word.size()];
    if (!std::isspace(static_cast<unsigned char>(next)) && next != '(') return false;
  }
  rest->remove_prefix(word.size());
  return true;
}

}  // namespace

Result<model::LabelSelector> ParseLabelSelector(std::string_view text) {
  model::LabelSelector selector;
  if (Trim(text).empty()) return selector;
  using Op = model::LabelSelectorRequirement::Operator;
  for (std::string_view raw : SplitTerms(text)) {
    std::string_view term = Trim(raw);
    if (term.empty()) return TermError(raw, "found '', expected: identifier");
    model::LabelSelectorRequirement requirement;
    bool negated = false;
    if (term.front() == '!') {
      negated = true;
      term = Trim(term.substr(1));
    }
    size_t key_end = 0;
    while (key_end < term.size() && IsKeyChar(term[key_end])) ++key_end;
    if (key_end == 0) return TermError(raw, "expected a label key");
    requirement.key = std::string(term.substr(0, key_end));
    std::string_view rest = Trim(term.substr(key_end));
    if (negated) {
      if (!rest.empty()) return TermError(raw, "nothing may follow !key");
      requirement.op = Op::kDoesNotExist;
      selector.match_expressions.push_back(std::move(requirement));
      continue;
    }
    if (rest.empty()) {
      requirement.op = Op::kExists;
    } else if (rest.substr(0, 2) == "!=" || rest.substr(0, 2) == "==" || rest.front() == '=') {
      requirement.op = rest.front() == '!' ? Op::kNotIn : Op::kIn;
      rest.remove_prefix(rest.substr(0, 2) == "!=" || rest.substr(0, 2) == "==" ? 2 : 1);
      std::string_view value = Trim(rest);
      for (char c : value) {
        if (!IsKeyChar(c)) return TermError(raw, "invalid character in the value");
      }
      requirement.values.emplace_back(value);
    } else if (bool notin = ConsumeWord(&rest, "notin"); notin || ConsumeWord(&rest, "in")) {
      requirement.op = notin ? Op::kNotIn : Op::kIn;
      rest = Trim(rest);
      if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') {
        return TermError(raw, "expected a parenthesised list of values");
      }
      for (std::string_view value : SplitTerms(rest.substr(1, rest.size() - 2))) {
        value = Trim(value);
        for (char c : value) {
          if (!IsKeyChar(c)) return TermError(raw, "invalid character in a value");
        }
        requirement.values.emplace_back(value);
      }
    } else {
      return TermError(raw, "expected one of =, ==, !=, in, notin");
    }
    selector.match_expressions.push_back(std::move(requirement));
  }
  return selector;
}

Result<std::vector<FieldRequirement>> ParseFieldSelector(std::string_view text) {
  std::vector<FieldRequirement> out;
  if (Trim(text).empty()) return out;
  // Split on unescaped commas, then on the first unescaped operator; unescape values.
  std::vector<std::string> terms(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      terms.back() += text.substr(i, 2);
      ++i;
    } else if (text[i] == ',') {
      terms.emplace_back();
    } else {
      terms.back() += text[i];
    }
  }
  for (const std::string& term : terms) {
    FieldRequirement requirement;
    size_t i = 0;
    bool found = false;
    for (; i < term.size(); ++i) {
      if (term[i] == '\\') {
        ++i;
        continue;
      }
      if (term[i] == '=' || (term[i] == '!' && i + 1 < term.size() && term[i + 1] == '=')) {
        found = true;
        break;
      }
    }
    if (!found) {
      return Status::Invalid("invalid selector: '" + std::string(text) + "'; can't understand '" +
                             term + "'");
    }
    requirement.field = std::string(Trim(std::string_view(term).substr(0, i)));
    size_t value_start;
    if (term[i] == '!') {
      requirement.equals = false;
      value_start = i + 2;
    } else {
      value_start = (i + 1 < term.size() && term[i + 1] == '=') ? i + 2 : i + 1;
    }
    std::string value;
    for (size_t j = value_start; j < term.size(); ++j) {
      if (term[j] == '\\' && j + 1 < term.size()) ++j;
      value += term[j];
    }
    requirement.value = std::move(value);
    if (requirement.field.empty()) {
      return Status::Invalid("invalid selector: '" + std::string(text) + "'; empty field name");
    }
    out.push_back(std::move(requirement));
  }
  return out;
}

bool MatchesFields(const std::vector<FieldRequirement>& requirements,
                   const std::map<std::string, std::string>& fields) {
  for (const FieldRequirement& requirement : requirements) {
    auto it = fields.find(requirement.field);
    const std::string value = it == fields.end() ? "" : it->second;
    if ((value == requirement.value) != requirement.equals) return false;
  }
  return true;
}

}  // namespace claimfs::api::internal
