#include "claimfs/yaml/manifest.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "claimfs/yaml/defaults.h"
#include "claimfs/yaml/validation.h"
#include "decoder.h"

namespace claimfs::yaml {
namespace {

using nlohmann::json;

// Bounds on what one document may expand to: nesting, and nodes after aliases are resolved
// (a few lines of anchors can otherwise describe billions of nodes).
constexpr int kMaxDepth = 64;
constexpr size_t kMaxNodes = 10000;

struct Mark {
  int line = 1;
  int column = 1;
};

Mark FromYaml(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0 || m.column < 0) return Mark{};
  return Mark{m.line + 1, m.column + 1};
}

// Where each field of one document was written, by JSON pointer.
struct SourceMap {
  std::unordered_map<std::string, Mark> keys;            // the key of a map entry
  std::unordered_map<std::string, Mark> values;          // a scalar value, or a list item
  std::unordered_map<std::string, std::string> numbers;  // the source text of plain numbers
  Mark document;

  Mark Locate(const std::string& pointer, bool prefer_key) const {
    if (prefer_key) {
      if (auto it = keys.find(pointer); it != keys.end()) return it->second;
    }
    if (auto it = values.find(pointer); it != values.end()) return it->second;
    if (auto it = keys.find(pointer); it != keys.end()) return it->second;
    std::string p = pointer;
    while (!p.empty()) {
      p.erase(p.rfind('/'));
      if (auto it = keys.find(p); it != keys.end()) return it->second;
      if (auto it = values.find(p); it != values.end()) return it->second;
    }
    return document;
  }
};

struct LocatedError {
  Mark mark;
  FieldError error;
};

bool IsDigits(std::string_view s, size_t from, int base) {
  if (from >= s.size()) return false;
  for (size_t i = from; i < s.size(); ++i) {
    char c = s[i];
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c < static_cast<char>('0' + base));
    if (!ok) return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloat(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (!IsDigits(s, i, 10)) return false;
    return true;
  }
  return i == s.size();
}

// A plain (unquoted, untagged) scalar under the YAML 1.2 core schema. Sets *number when it is
// one, so its source text can be kept.
json ResolvePlain(const std::string& s, bool* number) {
  *number = false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (IsDigits(s, sign, 10)) {
    *number = true;
    int64_t v = 0;
    const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
    auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size()) return v;
    uint64_t u = 0;
    auto [uptr, uec] = std::from_chars(begin, s.data() + s.size(), u);
    if (uec == std::errc() && uptr == s.data() + s.size()) return u;
    return std::strtod(s.c_str(), nullptr);
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    int base = s[1] == 'o' ? 8 : 16;
    uint64_t u = 0;
    if (IsDigits(s, 2, base)) {
      auto [ptr, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), u, base);
      if (ec == std::errc() && ptr == s.data() + s.size()) {
        *number = true;
        return u;
      }
    }
    return s;
  }
  if (IsFloat(s)) {
    double d = std::strtod(s.c_str(), nullptr);
    if (!std::isfinite(d)) return s;
    *number = true;
    return d;
  }
  return s;
}

class Converter {
 public:
  Converter(SourceMap* map, std::vector<LocatedError>* errors) : map_(map), errors_(errors) {}

  json Convert(const YAML::Node& node, const FieldPath& path, int depth) {
    if (depth > kMaxDepth) {
      Fail(node.Mark(),
           TypeError(path, "nested deeper than " + std::to_string(kMaxDepth) + " levels"));
      return nullptr;
    }
    if (++nodes_ > kMaxNodes) {
      if (!too_many_reported_) {
        too_many_reported_ = true;
        Fail(node.Mark(),
             TooManyError(path, "the document expands to more than " + std::to_string(kMaxNodes) +
                                    " nodes (aliases included)"));
      }
      return nullptr;
    }
    switch (node.Type()) {
      case YAML::NodeType::Scalar:
        map_->values.emplace(path.Pointer(), FromYaml(node.Mark()));
        return Scalar(node, path);
      case YAML::NodeType::Sequence: {
        json out = json::array();
        size_t i = 0;
        for (auto it = node.begin(); it != node.end(); ++it, ++i) {
          if (nodes_ > kMaxNodes) break;
          const YAML::Node item = *it;
          FieldPath item_path = path.Index(i);
          map_->values.emplace(item_path.Pointer(), FromYaml(item.Mark()));
          out.push_back(Convert(item, item_path, depth + 1));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        json out = json::object();
        std::unordered_map<std::string, Mark> seen;
        for (auto it = node.begin(); it != node.end(); ++it) {
          if (nodes_ > kMaxNodes) break;
          const YAML::Node key = it->first;
          Mark key_mark = FromYaml(key.Mark());
          std::string name;
          if (key.IsScalar()) {
            name = key.Scalar();
          } else if (key.IsNull()) {
            name = "null";
          } else {
            Fail(key.Mark(), TypeError(path, "map keys must be strings"));
            continue;
          }
          FieldPath child = path.Child(name);
          if (auto prev = seen.find(name); prev != seen.end()) {
            Fail(key.Mark(), DuplicateError(child, name,
                                            "mapping key already defined at line " +
                                                std::to_string(prev->second.line)));
            continue;
          }
          seen.emplace(name, key_mark);
          map_->keys.emplace(child.Pointer(), key_mark);
          out[name] = Convert(it->second, child, depth + 1);
        }
        return out;
      }
      default:
        if (!node.Tag().empty() && node.Tag() == "tag:yaml.org,2002:str") return "";
        return nullptr;
    }
  }

 private:
  json Scalar(const YAML::Node& node, const FieldPath& path) {
    const std::string& text = node.Scalar();
    const std::string& tag = node.Tag();
    if (tag == "!" || tag == "tag:yaml.org,2002:str" || tag == "tag:yaml.org,2002:binary") {
      return text;
    }
    bool number = false;
    json value = ResolvePlain(text, &number);
    if (number) map_->numbers.emplace(path.Pointer(), text);
    auto expect = [&](bool ok, const char* what) -> json {
      if (ok) return value;
      Fail(node.Mark(), InvalidError(path, text, std::string("cannot be read as !!") + what));
      return nullptr;
    };
    if (tag == "tag:yaml.org,2002:int") return expect(value.is_number_integer(), "int");
    if (tag == "tag:yaml.org,2002:float") return expect(value.is_number(), "float");
    if (tag == "tag:yaml.org,2002:bool") return expect(value.is_boolean(), "bool");
    if (tag == "tag:yaml.org,2002:null") return expect(value.is_null(), "null");
    return value;
  }

  void Fail(const YAML::Mark& mark, FieldError error) {
    errors_->push_back({FromYaml(mark), std::move(error)});
  }

  SourceMap* map_;
  std::vector<LocatedError>* errors_;
  size_t nodes_ = 0;
  bool too_many_reported_ = false;
};

// yaml-cpp 0.7 loops forever in LoadAll when a document starts with a token no node can start
// with (a stray ',', yaml-cpp issue #1040): the parser reports an empty document and does not
// move on. This pass walks the documents first and refuses one that consumed nothing.
class ProgressProbe : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  const YAML::Mark& start() const { return start_; }

 private:
  YAML::Mark start_;
};

// Throws YAML::ParserException where a document makes no progress.
void CheckDocumentsProgress(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  ProgressProbe probe;
  int previous = -1;
  while (parser.HandleNextDocument(probe)) {
    if (probe.start().pos == previous) {
      throw YAML::ParserException(probe.start(), "unexpected character");
    }
    previous = probe.start().pos;
  }
}

bool IsAtOrUnder(const std::string& pointer, const std::string& ancestor) {
  return pointer == ancestor ||
         (pointer.size() > ancestor.size() && pointer.compare(0, ancestor.size(), ancestor) == 0 &&
          pointer[ancestor.size()] == '/');
}

// A document of kind List (apiVersion v1), whose items are the objects.
bool IsList(const YAML::Node& doc) {
  if (!doc.IsMap()) return false;
  const YAML::Node kind = doc["kind"];
  return kind && kind.IsScalar() && kind.Scalar() == "List";
}

void ParseDocument(const YAML::Node& doc, std::string_view file, const ParseOptions& options,
                   ManifestSet* out) {
  SourceMap map;
  map.document = FromYaml(doc.Mark());
  std::vector<LocatedError> conversion_errors;
  Converter converter(&map, &conversion_errors);
  json j = converter.Convert(doc, FieldPath(), 0);

  size_t errors_before = out->errors.size();
  auto report = [&](Mark mark, const std::string& message) {
    out->errors.push_back({std::string(file), mark.line, mark.column, message});
  };
  for (const auto& e : conversion_errors) report(e.mark, e.error.ToString());

  internal::Decoder decoder([&map](const std::string& pointer) -> const std::string* {
    auto it = map.numbers.find(pointer);
    return it == map.numbers.end() ? nullptr : &it->second;
  });
  std::optional<Object> object = decoder.DecodeObject(j);
  for (const auto& e : decoder.errors()) {
    report(map.Locate(e.where().Pointer(), /*prefer_key=*/false), e.ToString());
  }
  if (!object) return;
  if (options.set_defaults) SetDefaults(&*object);
  if (options.validate) {
    // A field that failed to decode is not also reported as missing or invalid.
    for (const auto& e : Validate(*object)) {
      std::string where = e.where().Pointer();
      // A required list or map whose items failed to decode is not "missing" either; the
      // spec as a whole ("must specify a volume type") is still reported.
      std::string field = e.field.Pointer();
      bool shadowed = false;
      for (const auto& d : decoder.errors()) {
        if (IsAtOrUnder(where, d.where().Pointer()) || IsAtOrUnder(where, d.field.Pointer()) ||
            (e.type == ErrorType::kRequired && field != "/spec" &&
             IsAtOrUnder(d.where().Pointer(), field))) {
          shadowed = true;
        }
      }
      if (!shadowed) report(map.Locate(where, /*prefer_key=*/false), e.ToString());
    }
  }
  size_t warnings_before = out->warnings.size();
  for (const auto& path : decoder.unknown_fields()) {
    Mark mark = map.Locate(path.Pointer(), /*prefer_key=*/true);
    out->warnings.push_back(
        {std::string(file), mark.line, mark.column, "unknown field " + Quote(path.ToString())});
  }
  auto by_position = [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  };
  std::stable_sort(out->errors.begin() + static_cast<std::ptrdiff_t>(errors_before),
                   out->errors.end(), by_position);
  std::stable_sort(out->warnings.begin() + static_cast<std::ptrdiff_t>(warnings_before),
                   out->warnings.end(), by_position);
  if (out->errors.size() == errors_before) {
    out->objects.push_back({std::move(*object), map.document.line, map.document.column});
  }
}

// YAML 1.1's timestamp: 2026-12-06, 2026-12-06T05:00:00Z, 2026-12-6 5:00:00 and so on. Readers
// that follow 1.1 (go-yaml, PyYAML) would turn such a plain string into a time, so kubectl quotes
// creationTimestamp.
bool LooksLikeYaml11Timestamp(std::string_view s) {
  size_t i = 0;
  auto digits = [&](size_t min, size_t max) {
    size_t n = 0;
    while (i < s.size() && n < max && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++n;
    return n >= min;
  };
  if (!digits(4, 4) || i >= s.size() || s[i++] != '-') return false;
  if (!digits(1, 2) || i >= s.size() || s[i++] != '-') return false;
  if (!digits(1, 2)) return false;
  return i == s.size() || s[i] == 'T' || s[i] == 't' || s[i] == ' ' || s[i] == '\t';
}

// Strings another YAML reader might take for something else are quoted too (YAML 1.1's yes/no
// and timestamps).
bool NeedsQuotes(const std::string& s) {
  bool number = false;
  if (!ResolvePlain(s, &number).is_string()) return true;
  if (LooksLikeYaml11Timestamp(s)) return true;
  static const char* const kYaml11Bools[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no",
                                             "No", "NO", "on",  "On",  "ON",  "off", "Off", "OFF"};
  for (const char* b : kYaml11Bools) {
    if (s == b) return true;
  }
  return false;
}

void Emit(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      if (j.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& [key, value] : j.items()) {
        out << YAML::Key;
        if (NeedsQuotes(key)) out << YAML::DoubleQuoted;
        out << key << YAML::Value;
        Emit(out, value);
      }
      out << YAML::EndMap;
      return;
    case json::value_t::array:
      if (j.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const auto& item : j) Emit(out, item);
      out << YAML::EndSeq;
      return;
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (NeedsQuotes(s)) out << YAML::DoubleQuoted;
      out << s;
      return;
    }
    case json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      return;
    case json::value_t::null:
      out << YAML::Null;
      return;
    default:
      out << j.dump();
      return;
  }
}

}  // namespace

std::string Diagnostic::ToString() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

Status ManifestSet::status() const {
  if (errors.empty()) return Status::Ok();
  std::string message;
  for (const auto& e : errors) {
    if (!message.empty()) message += '\n';
    message += e.ToString();
  }
  return Status::Invalid(std::move(message));
}

ManifestSet ParseManifests(std::string_view text, std::string_view file,
                           const ParseOptions& options) {
  ManifestSet out;
  try {
    std::string input(text);
    CheckDocumentsProgress(input);
    std::vector<YAML::Node> docs = YAML::LoadAll(input);
    for (const auto& doc : docs) {
      if (doc.IsNull() && doc.Tag() != "tag:yaml.org,2002:str") continue;
      if (!IsList(doc)) {
        ParseDocument(doc, file, options, &out);
        continue;
      }
      // kubectl's List (what `get -o yaml` prints for several objects): its items, in order.
      const YAML::Node items = doc["items"];
      if (!items || items.IsNull()) continue;
      if (!items.IsSequence()) {
        Mark mark = FromYaml(items.Mark());
        out.errors.push_back(
            {std::string(file), mark.line, mark.column, "items: Invalid value: must be a list"});
        continue;
      }
      for (const auto& item : items) ParseDocument(item, file, options, &out);
    }
  } catch (const YAML::Exception& e) {
    // Documents before a syntax error may have decoded, but a file that is not YAML is refused.
    out.objects.clear();
    Mark mark = FromYaml(e.mark);
    out.errors.push_back({std::string(file), mark.line, mark.column, "invalid YAML: " + e.msg});
  } catch (const std::exception& e) {
    out.objects.clear();
    out.errors.push_back(
        {std::string(file), 1, 1, std::string("cannot read manifest: ") + e.what()});
  }
  return out;
}

Result<nlohmann::json> ParseValue(std::string_view text) {
  try {
    std::string input(text);
    CheckDocumentsProgress(input);
    std::vector<YAML::Node> docs = YAML::LoadAll(input);
    if (docs.size() != 1) {
      return Status::Invalid("expected one YAML or JSON document, found " +
                             std::to_string(docs.size()));
    }
    SourceMap map;
    std::vector<LocatedError> errors;
    Converter converter(&map, &errors);
    json value = converter.Convert(docs.front(), FieldPath(), 0);
    if (!errors.empty()) {
      const LocatedError& e = errors.front();
      return Status::Invalid("line " + std::to_string(e.mark.line) + " column " +
                             std::to_string(e.mark.column) + ": " + e.error.ToString());
    }
    return value;
  } catch (const YAML::Exception& e) {
    Mark mark = FromYaml(e.mark);
    return Status::Invalid("line " + std::to_string(mark.line) + " column " +
                           std::to_string(mark.column) + ": " + e.msg);
  } catch (const std::exception& e) {
    return Status::Invalid(e.what());
  }
}

std::string ToYaml(const nlohmann::json& json) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  Emit(out, json);
  if (out.good()) return std::string(out.c_str()) + "\n";
  // JSON is YAML too; the emitter refuses only what it cannot write (invalid UTF-8).
  return json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string ToYaml(const Object& object) { return ToYaml(ToJson(object)); }

std::string ResourceName(const Object& object) {
  const std::string& name = MetadataOf(object).name;
  switch (object.index()) {
    case 0:
      return "storageclass.storage.k8s.io/" + name;
    case 1:
      return "persistentvolume/" + name;
    default:
      return "persistentvolumeclaim/" + name;
  }
}

}  // namespace claimfs::yaml
