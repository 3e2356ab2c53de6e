// Label selectors (matchLabels, matchExpressions) evaluated against an object's labels, with the
// semantics of Kubernetes' metav1.LabelSelectorAsSelector.
#pragma once

#include <map>
#include <string>

#include "claimfs/model/objects.h"

namespace claimfs::model {

// True when `labels` satisfy every matchLabels entry and every matchExpressions requirement.
// An empty selector matches everything. NotIn and DoesNotExist match when the key is absent.
// A requirement the API server would refuse (In/NotIn without values, Exists/DoesNotExist with
// values) matches nothing, as Kubernetes then fails to build the selector at all.
bool Matches(const LabelSelector& selector, const std::map<std::string, std::string>& labels);

}  // namespace claimfs::model
