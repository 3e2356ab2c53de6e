#include "claimctl/command_line.h"

#include <cstring>

namespace claimfs::claimctl {

std::vector<std::string> SplitShortOptionValues(std::vector<std::string> args) {
  std::vector<std::string> out;
  out.reserve(args.size());
  bool after_separator = false;
  for (std::string& arg : args) {
    if (!after_separator && arg == "--") after_separator = true;
    bool short_with_value = !after_separator && arg.size() >= 3 && arg[0] == '-' &&
                            arg[2] == '=' && std::strchr("noflp", arg[1]) != nullptr;
    if (short_with_value) {
      out.push_back(arg.substr(0, 2));
      out.push_back(arg.substr(3));
    } else {
      out.push_back(std::move(arg));
    }
  }
  return out;
}

}  // namespace claimfs::claimctl
