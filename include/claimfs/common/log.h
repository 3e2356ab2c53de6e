// The one logging facade: spdlog to stderr (journald picks it up under systemd).
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::log {

// Sets the process-wide level from "trace|debug|info|warn|error|critical|off".
Status SetLevel(std::string_view level);

template <typename... Args>
void Debug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::debug(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::info(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::warn(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Error(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::error(fmt, std::forward<Args>(args)...);
}

}  // namespace claimfs::log
