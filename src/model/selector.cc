#include "claimfs/model/selector.h"

#include <algorithm>

namespace claimfs::model {
namespace {

using Op = LabelSelectorRequirement::Operator;

bool Satisfies(const LabelSelectorRequirement& req,
               const std::map<std::string, std::string>& labels) {
  auto it = labels.find(req.key);
  bool present = it != labels.end();
  auto listed = [&] {
    return present &&
           std::find(req.values.begin(), req.values.end(), it->second) != req.values.end();
  };
  switch (req.op) {
    case Op::kIn:
      return !req.values.empty() && listed();
    case Op::kNotIn:
      return !req.values.empty() && !listed();
    case Op::kExists:
      return req.values.empty() && present;
    case Op::kDoesNotExist:
      return req.values.empty() && !present;
  }
  return false;
}

}  // namespace

bool Matches(const LabelSelector& selector, const std::map<std::string, std::string>& labels) {
  for (const auto& [key, value] : selector.match_labels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return std::all_of(selector.match_expressions.begin(), selector.match_expressions.end(),
                     [&](const LabelSelectorRequirement& req) { return Satisfies(req, labels); });
}

}  // namespace claimfs::model
