#include "claimfs/api/status_object.h"

#include <string>

namespace claimfs::api {
namespace {

using nlohmann::json;

const char* CauseReason(yaml::ErrorType type) {
  switch (type) {
    case yaml::ErrorType::kRequired:
      return "FieldValueRequired";
    case yaml::ErrorType::kInvalid:
      return "FieldValueInvalid";
    case yaml::ErrorType::kNotSupported:
      return "FieldValueNotSupported";
    case yaml::ErrorType::kForbidden:
      return "FieldValueForbidden";
    case yaml::ErrorType::kDuplicate:
      return "FieldValueDuplicate";
    case yaml::ErrorType::kTooLong:
      return "FieldValueTooLong";
    case yaml::ErrorType::kTooMany:
      return "FieldValueTooMany";
    case yaml::ErrorType::kTypeInvalid:
      return "FieldValueTypeInvalid";
  }
  return "FieldValueInvalid";
}

json DetailsJson(const StatusDetails& details) {
  json out = json::object();
  if (!details.name.empty()) out["name"] = details.name;
  if (!details.group.empty()) out["group"] = details.group;
  if (!details.kind.empty()) out["kind"] = details.kind;
  if (!details.causes.empty()) {
    json causes = json::array();
    for (const yaml::FieldError& error : details.causes) {
      std::string field = error.field.ToString();
      std::string message = error.ToString();
      // ToString() is "field: body"; a cause carries the body and the field apart.
      if (!field.empty() && message.rfind(field + ": ", 0) == 0) {
        message.erase(0, field.size() + 2);
      }
      causes.push_back(
          {{"reason", CauseReason(error.type)}, {"message", message}, {"field", field}});
    }
    out["causes"] = std::move(causes);
  }
  return out;
}

}  // namespace

int HttpCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalid:
      return 422;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kForbidden:
      return 403;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kIOError:
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

const char* Reason(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "";
    case StatusCode::kInvalid:
      return kReasonInvalid;
    case StatusCode::kNotFound:
      return kReasonNotFound;
    case StatusCode::kAlreadyExists:
      return kReasonAlreadyExists;
    case StatusCode::kConflict:
      return kReasonConflict;
    case StatusCode::kForbidden:
      return kReasonForbidden;
    case StatusCode::kUnavailable:
      return kReasonServiceUnavailable;
    case StatusCode::kIOError:
    case StatusCode::kInternal:
      return kReasonInternalError;
  }
  return kReasonInternalError;
}

const char* ReasonForHttpCode(int http_code) {
  switch (http_code) {
    case 400:
      return kReasonBadRequest;
    case 401:
      return kReasonUnauthorized;
    case 403:
      return kReasonForbidden;
    case 404:
      return kReasonNotFound;
    case 405:
      return kReasonMethodNotAllowed;
    case 408:
    case 504:
      return kReasonTimeout;
    case 409:
      return kReasonConflict;
    case 413:
      return kReasonRequestEntityTooLarge;
    case 415:
      return kReasonUnsupportedMediaType;
    case 422:
      return kReasonInvalid;
    case 503:
      return kReasonServiceUnavailable;
    default:
      return kReasonInternalError;
  }
}

json FailureObject(int http_code, std::string_view reason, std::string_view message,
                   const StatusDetails& details) {
  return json{{"kind", "Status"},
              {"apiVersion", "v1"},
              {"metadata", json::object()},
              {"status", "Failure"},
              {"message", message},
              {"reason", reason},
              {"details", DetailsJson(details)},
              {"code", http_code}};
}

json FailureObject(const Status& status, const StatusDetails& details) {
  return FailureObject(HttpCode(status.code()), Reason(status.code()), status.message(), details);
}

json SuccessObject(const StatusDetails& details) {
  return json{{"kind", "Status"},
              {"apiVersion", "v1"},
              {"metadata", json::object()},
              {"status", "Success"},
              {"details", DetailsJson(details)},
              {"code", 200}};
}

}  // namespace claimfs::api
