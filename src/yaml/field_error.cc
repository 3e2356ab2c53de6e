#include "claimfs/yaml/field_error.h"

#include <cstdio>

#include "claimfs/model/host_path.h"

namespace claimfs::yaml {

FieldPath FieldPath::Child(std::string_view name) const {
  FieldPath p = *this;
  p.segments_.push_back({Segment::Kind::kField, std::string(name), 0});
  return p;
}

FieldPath FieldPath::Index(size_t index) const {
  FieldPath p = *this;
  p.segments_.push_back({Segment::Kind::kIndex, "", index});
  return p;
}

FieldPath FieldPath::Key(std::string_view key) const {
  FieldPath p = *this;
  p.segments_.push_back({Segment::Kind::kKey, std::string(key), 0});
  return p;
}

std::string FieldPath::ToString() const {
  std::string out;
  for (const Segment& s : segments_) {
    switch (s.kind) {
      case Segment::Kind::kField:
        if (!out.empty()) out += '.';
        out += s.name;
        break;
      case Segment::Kind::kIndex:
        out += '[' + std::to_string(s.index) + ']';
        break;
      case Segment::Kind::kKey:
        out += '[' + s.name + ']';
        break;
    }
  }
  return out;
}

std::string FieldPath::Pointer() const {
  std::string out;
  for (const Segment& s : segments_) {
    out += '/';
    if (s.kind == Segment::Kind::kIndex) {
      out += std::to_string(s.index);
      continue;
    }
    AppendPointerToken(s.name, &out);
  }
  return out;
}

void AppendPointerToken(std::string_view token, std::string* pointer) {
  for (char c : token) {
    if (c == '~') {
      *pointer += "~0";
    } else if (c == '/') {
      *pointer += "~1";
    } else {
      *pointer += c;
    }
  }
}

bool operator==(const FieldPath& a, const FieldPath& b) { return a.Pointer() == b.Pointer(); }

std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      // Go's %q: a well-formed UTF-8 character as it is, any other byte as \xNN.
      size_t n = model::Utf8SequenceLength(text, i);
      if (n == 0) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\x%02x", c);
        out += buf;
      } else {
        out.append(text.substr(i, n));
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string FieldError::ToString() const {
  std::string out = field.ToString();
  if (!out.empty()) out += ": ";
  switch (type) {
    case ErrorType::kRequired:
      out += "Required value";
      break;
    case ErrorType::kInvalid:
      out += "Invalid value";
      break;
    case ErrorType::kNotSupported:
      out += "Unsupported value";
      break;
    case ErrorType::kForbidden:
      out += "Forbidden";
      break;
    case ErrorType::kDuplicate:
      out += "Duplicate value";
      break;
    case ErrorType::kTooLong:
      out += "Too long";
      break;
    case ErrorType::kTooMany:
      out += "Too many";
      break;
    case ErrorType::kTypeInvalid:
      out += "Invalid type";
      break;
  }
  if (!value.empty()) out += ": " + value;
  if (!detail.empty()) out += ": " + detail;
  return out;
}

namespace {
FieldError Make(ErrorType type, FieldPath field, std::string value, std::string detail) {
  FieldError e;
  e.type = type;
  e.field = std::move(field);
  e.value = std::move(value);
  e.detail = std::move(detail);
  return e;
}
}  // namespace

FieldError RequiredError(FieldPath field, std::string detail) {
  return Make(ErrorType::kRequired, std::move(field), "", std::move(detail));
}

FieldError InvalidError(FieldPath field, std::string_view value, std::string detail) {
  return Make(ErrorType::kInvalid, std::move(field), Quote(value), std::move(detail));
}

FieldError InvalidRawError(FieldPath field, std::string rendered_value, std::string detail) {
  return Make(ErrorType::kInvalid, std::move(field), std::move(rendered_value), std::move(detail));
}

FieldError NotSupportedError(FieldPath field, std::string_view value,
                             const std::vector<std::string>& supported) {
  std::string detail;
  if (!supported.empty()) {
    detail = "supported values: ";
    for (size_t i = 0; i < supported.size(); ++i) {
      if (i > 0) detail += ", ";
      detail += Quote(supported[i]);
    }
  }
  return Make(ErrorType::kNotSupported, std::move(field), Quote(value), std::move(detail));
}

FieldError ForbiddenError(FieldPath field, std::string detail) {
  return Make(ErrorType::kForbidden, std::move(field), "", std::move(detail));
}

FieldError DuplicateError(FieldPath field, std::string_view value, std::string detail) {
  return Make(ErrorType::kDuplicate, std::move(field), Quote(value), std::move(detail));
}

FieldError TooLongError(FieldPath field, std::string detail) {
  return Make(ErrorType::kTooLong, std::move(field), "", std::move(detail));
}

FieldError TooManyError(FieldPath field, std::string detail) {
  return Make(ErrorType::kTooMany, std::move(field), "", std::move(detail));
}

FieldError TypeError(FieldPath field, std::string detail) {
  return Make(ErrorType::kTypeInvalid, std::move(field), "", std::move(detail));
}

std::string JoinErrors(const ErrorList& errors) {
  if (errors.size() == 1) return errors[0].ToString();
  std::string out = "[";
  for (size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) out += ", ";
    out += errors[i].ToString();
  }
  return out + "]";
}

}  // namespace claimfs::yaml
