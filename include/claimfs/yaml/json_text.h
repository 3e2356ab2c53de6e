// Reading JSON text so that numbers keep the digits their writer chose: a quantity sent as the
// JSON number 1e999999 or 99999999999999999999 is judged by its text, as Kubernetes does, not by
// the double a JSON parser would round it to.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::yaml {

// The text of JSON numbers, by JSON pointer ("/spec/resources/requests/storage").
using NumberTexts = std::map<std::string, std::string>;

// Parses `text` as nlohmann::json::parse does. Records in `numbers` the text of every number
// that parsed as a double (a fraction, an exponent, or an integer beyond 64 bits). A number
// beyond a double's range (1e999999) does not fail the parse: it becomes the string of its text,
// so that decoding refuses it with the path of the field that holds it. Fails with kInvalid and
// the parser's message when `text` is not JSON.
Result<nlohmann::json> ParseJsonKeepingNumbers(std::string_view text, NumberTexts* numbers);

}  // namespace claimfs::yaml
