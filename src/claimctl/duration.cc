#include "claimctl/duration.h"

#include <cctype>
#include <cmath>
#include <ctime>
#include <string>

namespace claimfs::claimctl {

Result<std::chrono::nanoseconds> ParseGoDuration(std::string_view text) {
  auto invalid = [&] {
    return Status::Invalid("invalid duration \"" + std::string(text) +
                           "\": use a number and a unit, e.g. 30s, 5m or 1h30m");
  };
  std::string_view rest = text;
  bool negative = false;
  if (!rest.empty() && (rest[0] == '-' || rest[0] == '+')) {
    negative = rest[0] == '-';
    rest.remove_prefix(1);
  }
  if (rest.empty()) return invalid();
  if (rest == "0") return std::chrono::nanoseconds(0);
  bool bare_number = rest.find_first_not_of("0123456789") == std::string_view::npos;
  if (bare_number) {
    int64_t seconds = std::stoll(std::string(rest));
    return std::chrono::nanoseconds((negative ? -seconds : seconds) * int64_t{1000000000});
  }
  long double total = 0;
  while (!rest.empty()) {
    size_t number_end = 0;
    bool digits = false;
    int dots = 0;
    while (
        number_end < rest.size() &&
        (std::isdigit(static_cast<unsigned char>(rest[number_end])) || rest[number_end] == '.')) {
      digits = digits || rest[number_end] != '.';
      dots += rest[number_end] == '.';
      ++number_end;
    }
    if (!digits || dots > 1) return invalid();
    long double value = std::stold(std::string(rest.substr(0, number_end)));
    rest.remove_prefix(number_end);
    size_t unit_end = 0;
    while (unit_end < rest.size() && !std::isdigit(static_cast<unsigned char>(rest[unit_end])) &&
           rest[unit_end] != '.') {
      ++unit_end;
    }
    std::string_view unit = rest.substr(0, unit_end);
    rest.remove_prefix(unit_end);
    long double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      return invalid();
    total += value * scale;
  }
  if (total > 9.2e18L) return invalid();
  auto ns = static_cast<int64_t>(total);
  return std::chrono::nanoseconds(negative ? -ns : ns);
}

}  // namespace claimfs::claimctl
