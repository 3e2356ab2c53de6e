#include "claimfs/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>

namespace claimfs::log {

spdlog::logger& Logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto made = spdlog::stderr_color_mt("claimfs");
    spdlog::set_default_logger(made);
    return made;
  }();
  return *logger;
}

Status SetLevel(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  // from_str maps anything unknown to "off"; only accept "off" when it was asked for.
  if (parsed == spdlog::level::off && level != "off") {
    return Status::Invalid("unknown log level \"" + std::string(level) +
                           "\" (want trace, debug, info, warn, error, critical or off)");
  }
  Logger().set_level(parsed);
  spdlog::set_level(parsed);
  return Status::Ok();
}

}  // namespace claimfs::log
