// Label and field selectors as they come in ?labelSelector= and ?fieldSelector= query arguments,
// parsed with the grammar of k8s.io/apimachinery's labels.Parse and fields.ParseSelector.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"

namespace claimfs::api::internal {

// "app=web,tier!=db,env in (a,b),!legacy,track": equality (=, ==, !=), set-based (in, notin)
// and existence (key, !key) requirements, all of which must hold. Fails with kInvalid naming the
// requirement that does not parse. An empty text selects everything.
Result<model::LabelSelector> ParseLabelSelector(std::string_view text);

// One field requirement: `field` = or != `value`.
struct FieldRequirement {
  std::string field;
  std::string value;
  bool equals = true;
};

// "involvedObject.kind=PersistentVolume,involvedObject.name!=x" (== is the same as =; a value
// may be empty; \, \= and \\ escape). Fails with kInvalid on a term without an operator.
Result<std::vector<FieldRequirement>> ParseFieldSelector(std::string_view text);

// Whether `fields` (field name to value; a missing field counts as "") satisfy every requirement.
bool MatchesFields(const std::vector<FieldRequirement>& requirements,
                   const std::map<std::string, std::string>& fields);

}  // namespace claimfs::api::internal
