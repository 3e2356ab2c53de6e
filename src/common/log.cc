#include "claimfs/common/log.h"

#include <string>

namespace claimfs::log {

Status SetLevel(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps anything unknown to "off"; only accept "off" when it was asked for.
  if (parsed == spdlog::level::off && level != "off") {
    return Status::Invalid("unknown log level \"" + std::string(level) +
                           "\" (want trace, debug, info, warn, error, critical or off)");
  }
  spdlog::set_level(parsed);
  return Status::Ok();
}

}  // namespace claimfs::log
