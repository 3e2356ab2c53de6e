// kubectl's -l/--selector syntax ("app=db,tier!=cache,env in (a,b),!legacy") as a LabelSelector.
#pragma once

#include <string_view>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"

namespace claimfs::claimctl {

// Parses `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists) and `!k` (does not
// exist), comma-separated. Fails with kInvalid naming the requirement that cannot be parsed.
Result<model::LabelSelector> ParseLabelSelector(std::string_view text);

}  // namespace claimfs::claimctl
