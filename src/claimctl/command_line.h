// claimctl's command line before CLI11 reads it: kubectl habits CLI11 does not share.
#pragma once

#include <string>
#include <vector>

namespace claimfs::claimctl {

// kubectl (pflag) reads "-o=yaml" as "-o yaml"; CLI11 would keep the "=" in the value. Splits
// "-X=VALUE" into "-X" "VALUE" for claimctl's short options that take a value (-n, -o, -f, -l,
// -p). Arguments after "--" (the command of `use`) are left as they are.
std::vector<std::string> SplitShortOptionValues(std::vector<std::string> args);

}  // namespace claimfs::claimctl
