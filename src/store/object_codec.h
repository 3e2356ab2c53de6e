// How the store turns objects into the JSON it keeps and back: the one file that knows which
// codec is used.
#pragma once

#include <nlohmann/json.hpp>

#include "claimfs/common/status.h"
#include "claimfs/model/objects.h"
#include "claimfs/store/write_batch.h"

namespace claimfs::store {

// Kubernetes JSON for `object` (apiVersion, kind, metadata, spec, status).
nlohmann::json EncodeObject(const Object& object);

// The object of `kind` that `body` encodes; kInternal (naming what failed) when it does not.
Result<Object> DecodeObject(Kind kind, const nlohmann::json& body);
Result<model::Event> DecodeEvent(const nlohmann::json& body);

}  // namespace claimfs::store
