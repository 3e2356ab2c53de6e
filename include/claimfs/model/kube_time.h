// Times as Kubernetes shows them: ages ("3h20m", kubectl's AGE cell) and RFC 3339 timestamps.
// Shared by claimctl's tables and the API server's Table responses.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace claimfs::model {

using Clock = std::chrono::system_clock;

// k8s.io/apimachinery/pkg/util/duration.HumanDuration: "0s".."119s", "2m3s" below 10 minutes,
// "15m" below 3 hours, "3h20m" below 8 hours, "30h" below 2 days, "3d4h" below 8 days, "120d"
// below 2 years, "3y45d" below 8 years, then "9y". Below -1s: "<invalid>".
std::string HumanDuration(std::chrono::nanoseconds d);

// An RFC 3339 timestamp ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123+02:00"), or nothing
// when `text` is not one.
std::optional<Clock::time_point> ParseTimestamp(std::string_view text);

// kubectl's AGE cell: HumanDuration(now - timestamp), "<unknown>" when the timestamp is empty or
// malformed.
std::string Age(std::string_view timestamp, Clock::time_point now);

}  // namespace claimfs::model
