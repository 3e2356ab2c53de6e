// Go durations ("30s", "1m30s") for --timeout, and the ages and timestamps kubectl shows.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"
#include "claimfs/model/kube_time.h"

namespace claimfs::claimctl {

using Clock = std::chrono::system_clock;

// Ages and timestamps live in claimfs/model/kube_time.h, shared with the API server.
using model::Age;
using model::HumanDuration;
using model::ParseTimestamp;

// A Go duration ("300ms", "30s", "1.5h", "1h2m3s", "0"); a bare number means seconds, as kubectl's
// --timeout accepts it. Fails with kInvalid naming the text.
Result<std::chrono::nanoseconds> ParseGoDuration(std::string_view text);

}  // namespace claimfs::claimctl
