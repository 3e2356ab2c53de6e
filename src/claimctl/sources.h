// Reading manifests the way kubectl's -f does: files, directories of manifests, and stdin.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace claimfs::claimctl {

struct Source {
  std::string name;  // as diagnostics show it
  std::string text;
};

// Expands -f arguments: "-" is `in`, a directory is its *.yaml, *.yml and *.json files in name
// order (not recursive), anything else a file. When root runs claimctl for a sudo user (see
// sudo_user.h), files and directories are opened with that user's access. Reports what cannot
// be read on `err` in kubectl's words and returns false then (the readable sources are still
// collected).
bool CollectSources(const std::vector<std::string>& args, std::istream& in, std::ostream& err,
                    std::vector<Source>* out);

}  // namespace claimfs::claimctl
