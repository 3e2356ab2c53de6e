// Field paths and field errors, printed as Kubernetes' apimachinery prints them
// ("spec.accessModes: Required value").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace claimfs::yaml {

// Where a field sits in an object: spec.accessModes[0], metadata.labels[app].
class FieldPath {
 public:
  struct Segment {
    enum class Kind { kField, kIndex, kKey };
    Kind kind = Kind::kField;
    std::string name;  // field name or map key
    size_t index = 0;
  };

  FieldPath() = default;
  FieldPath Child(std::string_view name) const;
  FieldPath Index(size_t index) const;
  FieldPath Key(std::string_view key) const;  // a map key: printed as [key]

  bool empty() const { return segments_.empty(); }
  const std::vector<Segment>& segments() const { return segments_; }

  // Kubernetes notation: "spec.resources[storage]", "spec.accessModes[0]".
  std::string ToString() const;
  // RFC 6901 JSON pointer of the field in the object's JSON: "/spec/accessModes/0".
  std::string Pointer() const;

  friend bool operator==(const FieldPath&, const FieldPath&);

 private:
  std::vector<Segment> segments_;
};

// field.ErrorType in apimachinery; kTypeInvalid also covers values YAML/JSON typed wrongly.
enum class ErrorType {
  kRequired,
  kInvalid,
  kNotSupported,
  kForbidden,
  kDuplicate,
  kTooLong,
  kTooMany,
  kTypeInvalid,
};

struct FieldError {
  ErrorType type = ErrorType::kInvalid;
  FieldPath field;
  std::string value;  // rendered (strings quoted as Go's %q); empty when the type has none
  std::string detail;
  // Where in the manifest to point at when it differs from `field` (Kubernetes reports
  // spec.resources[storage] for what is written at spec.resources.requests.storage).
  FieldPath location;

  const FieldPath& where() const { return location.empty() ? field : location; }
  // "spec.accessModes: Unsupported value: \"Bogus\": supported values: \"ReadOnlyMany\", ...".
  std::string ToString() const;
};

using ErrorList = std::vector<FieldError>;

// Go's %q for a string: the value in double quotes with \" \\ and control characters escaped.
std::string Quote(std::string_view text);

// Appends `token` to a JSON pointer as RFC 6901 escapes it ("~" as "~0", "/" as "~1").
void AppendPointerToken(std::string_view token, std::string* pointer);

FieldError RequiredError(FieldPath field, std::string detail = "");
FieldError InvalidError(FieldPath field, std::string_view value, std::string detail);
FieldError InvalidRawError(FieldPath field, std::string rendered_value, std::string detail);
FieldError NotSupportedError(FieldPath field, std::string_view value,
                             const std::vector<std::string>& supported);
FieldError ForbiddenError(FieldPath field, std::string detail);
FieldError DuplicateError(FieldPath field, std::string_view value, std::string detail = "");
FieldError TooLongError(FieldPath field, std::string detail);
FieldError TooManyError(FieldPath field, std::string detail);
FieldError TypeError(FieldPath field, std::string detail);

// Kubernetes' aggregate of a list: "a" for one error, "[a, b]" for several.
std::string JoinErrors(const ErrorList& errors);

}  // namespace claimfs::yaml
