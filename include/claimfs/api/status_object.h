// claimfs::Status to and from the Kubernetes Status object (metav1.Status) and its HTTP code: the
// error shape of every API response that is not a success.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"
#include "claimfs/yaml/field_error.h"

namespace claimfs::api {

// metav1.StatusReason values the server answers with.
inline constexpr char kReasonBadRequest[] = "BadRequest";
inline constexpr char kReasonInvalid[] = "Invalid";
inline constexpr char kReasonNotFound[] = "NotFound";
inline constexpr char kReasonAlreadyExists[] = "AlreadyExists";
inline constexpr char kReasonConflict[] = "Conflict";
inline constexpr char kReasonUnauthorized[] = "Unauthorized";
inline constexpr char kReasonForbidden[] = "Forbidden";
inline constexpr char kReasonMethodNotAllowed[] = "MethodNotAllowed";
inline constexpr char kReasonRequestEntityTooLarge[] = "RequestEntityTooLarge";
inline constexpr char kReasonUnsupportedMediaType[] = "UnsupportedMediaType";
inline constexpr char kReasonServiceUnavailable[] = "ServiceUnavailable";
inline constexpr char kReasonInternalError[] = "InternalError";
inline constexpr char kReasonTimeout[] = "Timeout";

// What the error is about: metav1.StatusDetails. `kind` is the resource as Kubernetes puts it
// there ("persistentvolumeclaims"; "PersistentVolumeClaim" for Invalid), `group` the API group
// ("" for the core group). `causes` lists field errors (for Invalid).
struct StatusDetails {
  std::string name;
  std::string group;
  std::string kind;
  yaml::ErrorList causes;
};

// The HTTP code of a failure: kInvalid 422, kNotFound 404, kAlreadyExists and kConflict 409,
// kForbidden 403, kUnavailable 503, kIOError and kInternal 500 (kOk: 200).
int HttpCode(StatusCode code);
// The Status reason of a code: "Invalid", "NotFound", ... ("" for kOk).
const char* Reason(StatusCode code);
// The reason Kubernetes gives for an HTTP code: 400 BadRequest, 405 MethodNotAllowed, 413
// RequestEntityTooLarge, ...; "InternalError" for codes it has none for.
const char* ReasonForHttpCode(int http_code);

// {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":...,
//  "reason":...,"details":{...},"code":N}. "details" is always present (possibly {}).
nlohmann::json FailureObject(int http_code, std::string_view reason, std::string_view message,
                             const StatusDetails& details = {});
// The same for a claimfs::Status that is not ok, with HttpCode() and Reason().
nlohmann::json FailureObject(const Status& status, const StatusDetails& details = {});
// {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{...},"code":200}.
nlohmann::json SuccessObject(const StatusDetails& details = {});

// Clients turn a Status object back into a claimfs::Status with StatusFromResponse() in
// client.h.

}  // namespace claimfs::api
