#include "claimfs/common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <memory>
#include <string>

namespace claimfs::log {
namespace {

// The message with control bytes as \n, \t, \xHH: names, paths and holders that clients chose
// reach the log, and none may start a forged line of its own.
class EscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u != 0x7f && c != '\\') {
        dest.push_back(c);
      } else if (c == '\n') {
        dest.append(std::string_view("\\n"));
      } else if (c == '\t') {
        dest.append(std::string_view("\\t"));
      } else if (c == '\\') {
        dest.append(std::string_view("\\\\"));
      } else {
        char hex[4] = {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
        dest.append(std::string_view(hex, 4));
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

}  // namespace

spdlog::logger& Logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto made = spdlog::stderr_color_mt("claimfs");
    // spdlog's default pattern ("%+") with the message escaped.
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<EscapedMessage>('*').set_pattern(
        "[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %*");
    made->set_formatter(std::move(formatter));
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
