// The one logging facade: spdlog to stderr (journald picks it up under systemd).
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::log {

// Sets the process-wide level from "trace|debug|info|warn|error|critical|off".
Status SetLevel(std::string_view level);

// The process's logger: stderr, never stdout (stdout belongs to the programs' own output).
spdlog::logger& Logger();

template <typename... Args>
void Debug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger().debug(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger().info(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger().warn(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Error(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  Logger().error(fmt, std::forward<Args>(args)...);
}

}  // namespace claimfs::log
