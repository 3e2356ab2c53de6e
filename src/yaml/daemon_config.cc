#include "claimfs/yaml/daemon_config.h"

#include <sys/un.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "claimfs/model/host_path.h"
#include "claimfs/model/quantity.h"
#include "claimfs/yaml/field_error.h"
#include "claimfs/yaml/validation.h"

namespace claimfs::yaml {
namespace {

// sun_path holds 108 bytes, one of them the terminating NUL.
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
constexpr int64_t kMinWorkerThreads = 1;
constexpr int64_t kMaxWorkerThreads = 256;
constexpr int64_t kMaxRequestTimeoutSeconds = 3600;
constexpr int64_t kMinRequestBytes = 1 << 10;
constexpr int64_t kMaxRequestBytes = int64_t{1} << 30;
// A config file is a few hundred bytes; anything this big is not one.
constexpr std::streamsize kMaxConfigBytes = 1 << 20;

const std::vector<std::string>& LogLevels() {
  static const auto* levels =
      new std::vector<std::string>{"debug", "error", "info", "off", "trace", "warn"};
  return *levels;
}

std::string Render(int64_t v) { return std::to_string(v); }

// ---------------------------------------------------------------------------------------------
// Value rules shared by the parser and ValidateDaemonConfig. Each returns what is wrong with a
// value, or nothing.

std::optional<std::string> RangeProblem(int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", inclusive";
  }
  return std::nullopt;
}

std::optional<std::string> MaxVolumesProblem(int64_t v) {
  if (v < 0) return "must be greater than or equal to 0";
  if (v > INT_MAX) return "must be no more than " + std::to_string(INT_MAX);
  return std::nullopt;
}

std::optional<std::string> WorkerThreadsProblem(int64_t v) {
  return RangeProblem(v, kMinWorkerThreads, kMaxWorkerThreads);
}

std::optional<std::string> RequestTimeoutProblem(int64_t v) {
  return RangeProblem(v, 1, kMaxRequestTimeoutSeconds);
}

std::optional<std::string> RequestBytesProblem(int64_t v) {
  return RangeProblem(v, kMinRequestBytes, kMaxRequestBytes);
}

std::optional<std::string> CapacityProblem(int64_t v) {
  if (v <= 0) return "must be greater than 0";
  return std::nullopt;
}

std::optional<std::string> ModeProblem(int64_t v) {
  if (v < 0 || v > 0777) return "must be an octal permission mode between 0000 and 0777";
  return std::nullopt;
}

std::optional<std::string> GroupProblem(std::string_view g) {
  if (g.empty()) return std::nullopt;
  for (char c : g) {
    if (c == ':' || c == '/' || c == ',' || std::isspace(static_cast<unsigned char>(c)) != 0 ||
        std::iscntrl(static_cast<unsigned char>(c)) != 0) {
      return "must be a group name or a numeric group id";
    }
  }
  if (g.find_first_not_of("0123456789") == std::string_view::npos) {
    uint64_t gid = 0;
    auto [ptr, ec] = std::from_chars(g.data(), g.data() + g.size(), gid);
    // (gid_t)-1 means "no change" to chown(2), so it is no group.
    if (ec != std::errc() || gid >= std::numeric_limits<gid_t>::max()) {
      return "must be a group name or a numeric group id below " +
             std::to_string(std::numeric_limits<gid_t>::max());
    }
  }
  return std::nullopt;
}

std::string OctalMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode));
  return buf;
}

// "/a/b/../c/" -> "/a/c"; relative paths are returned as they are.
std::string NormalizePath(const std::string& path) { return model::LexicallyNormal(path); }

// True when `inner` is `outer` or a directory below it, by whole components; false when either
// fails the path check (CheckAbsolute reports that).
bool IsAtOrUnder(const std::string& inner, const std::string& outer) {
  auto i = model::HostPath::Parse(inner);
  auto o = model::HostPath::Parse(outer);
  return i.ok() && o.ok() && i->IsAtOrBelow(*o);
}

using Report = std::function<void(FieldError)>;
using IsExplicit = std::function<bool(const FieldPath&)>;

struct PathField {
  FieldPath field;
  std::string value;
};

void CheckAbsolute(const FieldPath& field, const std::string& value, bool required,
                   const Report& error) {
  if (value.empty()) {
    if (required) error(RequiredError(field));
    return;
  }
  // NUL, control bytes and the rest first: the daemon would use a shorter path than the one
  // the overlap checks compare.
  if (auto problem = model::HostPathProblem(value)) error(InvalidError(field, value, *problem));
}

// One of two overlapping directories is reported: the one written in the file (a default is not
// the mistake), else the later one.
void CheckOverlaps(const std::vector<PathField>& dirs, const IsExplicit& is_explicit,
                   const Report& error) {
  for (size_t j = 0; j < dirs.size(); ++j) {
    for (size_t i = 0; i < j; ++i) {
      const PathField* a = &dirs[i];
      const PathField* b = &dirs[j];
      if (a->value.empty() || b->value.empty() || a->value[0] != '/' || b->value[0] != '/') {
        continue;
      }
      if (!IsAtOrUnder(a->value, b->value) && !IsAtOrUnder(b->value, a->value)) continue;
      if (!is_explicit(b->field) && is_explicit(a->field)) std::swap(a, b);
      std::string relation;
      if (a->value == b->value) {
        relation = "must not be the same directory as ";
      } else if (IsAtOrUnder(b->value, a->value)) {
        relation = "must not be inside ";
      } else {
        relation = "must not contain ";
      }
      error(
          InvalidError(b->field, b->value, relation + a->field.ToString() + " " + Quote(a->value)));
    }
  }
}

// Everything about a DaemonConfig's values that can be wrong, whoever built it.
void CheckValues(const DaemonConfig& c, const IsExplicit& is_explicit, const Report& error,
                 const Report& warning) {
  const FieldPath root;
  const FieldPath pools = root.Child("pools");
  if (c.pools.empty()) error(RequiredError(pools, "at least one pool is required"));
  std::unordered_map<std::string, size_t> names;
  std::vector<PathField> dirs;
  for (size_t i = 0; i < c.pools.size(); ++i) {
    const PoolConfig& p = c.pools[i];
    FieldPath name = pools.Index(i).Child("name");
    if (p.name.empty()) {
      error(RequiredError(name));
    } else {
      for (const auto& msg : IsDNS1123Label(p.name)) error(InvalidError(name, p.name, msg));
      if (!names.emplace(p.name, i).second) error(DuplicateError(name, p.name));
    }
    FieldPath path = pools.Index(i).Child("path");
    CheckAbsolute(path, p.path, /*required=*/true, error);
    dirs.push_back({path, p.path});
    if (p.capacity_bytes) {
      if (auto problem = CapacityProblem(*p.capacity_bytes)) {
        error(
            InvalidRawError(pools.Index(i).Child("capacity"), Render(*p.capacity_bytes), *problem));
      }
    }
  }
  FieldPath state_dir = root.Child("stateDir");
  FieldPath mount_root = root.Child("mountRoot");
  CheckAbsolute(state_dir, c.state_dir, /*required=*/true, error);
  CheckAbsolute(mount_root, c.mount_root, /*required=*/true, error);
  dirs.push_back({state_dir, c.state_dir});
  dirs.push_back({mount_root, c.mount_root});
  CheckOverlaps(dirs, is_explicit, error);

  FieldPath socket = root.Child("socket");
  FieldPath socket_path = socket.Child("path");
  CheckAbsolute(socket_path, c.socket_path, /*required=*/true, error);
  if (c.socket_path.size() > kMaxSocketPath) {
    error(TooLongError(socket_path, "must have at most " + std::to_string(kMaxSocketPath) +
                                        " bytes (the size of sun_path), has " +
                                        std::to_string(c.socket_path.size())));
  }
  if (!c.socket_path.empty() && c.socket_path[0] == '/') {
    // A socket inside a pool or under the mount root would be hidden by, or exposed to, volumes.
    for (const PathField& dir : dirs) {
      if (dir.field == state_dir || dir.value.empty() || dir.value[0] != '/') continue;
      if (IsAtOrUnder(c.socket_path, dir.value)) {
        FieldError e =
            InvalidError(socket_path, c.socket_path,
                         "must not be inside " + dir.field.ToString() + " " + Quote(dir.value));
        // Point at what was written: a default socket path is not the mistake.
        if (!is_explicit(socket_path) && is_explicit(dir.field)) e.location = dir.field;
        error(std::move(e));
      }
    }
  }
  FieldPath plugin = root.Child("volumePlugin");
  FieldPath plugin_socket = plugin.Child("socket");
  const std::string& ps = c.volume_plugin.socket_path;
  CheckAbsolute(plugin_socket, ps, /*required=*/true, error);
  if (ps.size() > kMaxSocketPath) {
    error(TooLongError(plugin_socket, "must have at most " + std::to_string(kMaxSocketPath) +
                                          " bytes (the size of sun_path), has " +
                                          std::to_string(ps.size())));
  }
  if (!ps.empty() && ps[0] == '/') {
    if (ps == c.socket_path) {
      error(InvalidError(plugin_socket, ps, "must not be the API socket " + socket_path.ToString()));
    }
    for (const PathField& dir : dirs) {
      if (dir.field == state_dir || dir.value.empty() || dir.value[0] != '/') continue;
      if (IsAtOrUnder(ps, dir.value)) {
        FieldError e = InvalidError(plugin_socket, ps,
                                    "must not be inside " + dir.field.ToString() + " " +
                                        Quote(dir.value));
        if (!is_explicit(plugin_socket) && is_explicit(dir.field)) e.location = dir.field;
        error(std::move(e));
      }
    }
  }
  for (const auto& msg : IsDNS1123Label(c.volume_plugin.namespace_)) {
    error(InvalidError(plugin.Child("namespace"), c.volume_plugin.namespace_, msg));
  }

  FieldPath mode = socket.Child("mode");
  if (auto problem = ModeProblem(c.socket_mode)) {
    error(InvalidRawError(mode, Quote(OctalMode(c.socket_mode)), *problem));
  } else {
    if ((c.socket_mode & 0006) != 0) {
      warning(InvalidRawError(mode, Quote(OctalMode(c.socket_mode)),
                              "every local user can reach the API and manage volumes"));
    }
    if (!c.socket_group.empty() && (c.socket_mode & 0060) != 0060) {
      warning(InvalidRawError(
          mode, Quote(OctalMode(c.socket_mode)),
          "gives group " + Quote(c.socket_group) + " no read and write access to the socket"));
    }
  }
  if (auto problem = GroupProblem(c.socket_group)) {
    error(InvalidError(socket.Child("group"), c.socket_group, *problem));
  }

  if (auto problem = MaxVolumesProblem(c.max_volumes)) {
    error(InvalidRawError(root.Child("maxVolumes"), Render(c.max_volumes), *problem));
  }
  FieldPath prefixes = root.Child("allowedHostPathPrefixes");
  for (size_t i = 0; i < c.allowed_host_path_prefixes.size(); ++i) {
    const std::string& prefix = c.allowed_host_path_prefixes[i];
    CheckAbsolute(prefixes.Index(i), prefix, /*required=*/true, error);
    if (prefix == "/") {
      warning(InvalidError(prefixes.Index(i), prefix,
                           "hostPath volumes may then name any directory of the machine"));
    }
  }
  if (c.quota_errno != ENOSPC && c.quota_errno != EDQUOT) {
    error(NotSupportedError(root.Child("quotaErrno"), std::to_string(c.quota_errno),
                            {"EDQUOT", "ENOSPC"}));
  }
  if (std::find(LogLevels().begin(), LogLevels().end(), c.log_level) == LogLevels().end()) {
    error(NotSupportedError(root.Child("logLevel"), c.log_level, LogLevels()));
  }
  if (auto problem = WorkerThreadsProblem(c.worker_threads)) {
    error(InvalidRawError(root.Child("workerThreads"), Render(c.worker_threads), *problem));
  }
  FieldPath api = root.Child("api");
  if (auto problem = RequestTimeoutProblem(c.api_request_timeout_seconds)) {
    error(InvalidRawError(api.Child("requestTimeoutSeconds"), Render(c.api_request_timeout_seconds),
                          *problem));
  }
  if (auto problem = RequestBytesProblem(c.api_max_request_bytes)) {
    error(InvalidRawError(api.Child("maxRequestBytes"), Render(c.api_max_request_bytes), *problem));
  }
}

// ---------------------------------------------------------------------------------------------
// The YAML walk.

struct Mark {
  int line = 1;
  int column = 1;
};

Mark FromYaml(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0 || m.column < 0) return Mark{};
  return Mark{m.line + 1, m.column + 1};
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// A plain scalar as the YAML 1.2 core schema types it.
enum class ScalarKind { kNull, kBool, kInt, kFloat, kString };

bool AllDigits(std::string_view s, size_t from, int base) {
  if (from >= s.size()) return false;
  for (size_t i = from; i < s.size(); ++i) {
    char c = s[i];
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c < static_cast<char>('0' + base));
    if (!ok) return false;
  }
  return true;
}

bool LooksFloat(std::string_view s) {
  if (s == ".inf" || s == "-.inf" || s == "+.inf" || s == ".nan" || s == ".Inf" || s == ".NaN") {
    return true;
  }
  char* end = nullptr;
  std::string copy(s);
  std::strtod(copy.c_str(), &end);
  return !copy.empty() && end == copy.c_str() + copy.size() &&
         copy.find_first_of("0123456789") != std::string::npos;
}

ScalarKind Classify(const YAML::Node& node) {
  if (node.IsNull()) return ScalarKind::kNull;
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return ScalarKind::kString;
  const std::string& s = node.Scalar();
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return ScalarKind::kNull;
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    return ScalarKind::kBool;
  }
  size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (AllDigits(s, sign, 10)) return ScalarKind::kInt;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o' && AllDigits(s, 2, 8)) return ScalarKind::kInt;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && AllDigits(s, 2, 16)) return ScalarKind::kInt;
  if (LooksFloat(s)) return ScalarKind::kFloat;
  return ScalarKind::kString;
}

// The value of an integer scalar (Classify said kInt); nullopt when it does not fit int64.
std::optional<int64_t> IntValue(const std::string& s) {
  int base = 10;
  size_t from = 0;
  bool negative = false;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    base = s[1] == 'o' ? 8 : 16;
    from = 2;
  } else if (s[0] == '-' || s[0] == '+') {
    negative = s[0] == '-';
    from = 1;
  }
  uint64_t u = 0;
  auto [ptr, ec] = std::from_chars(s.data() + from, s.data() + s.size(), u, base);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  if (negative) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) return std::nullopt;
    return static_cast<int64_t>(0 - u);
  }
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return static_cast<int64_t>(u);
}

class Parser {
 public:
  Parser(std::string_view file, DaemonConfig defaults)
      : file_(file), defaults_(std::move(defaults)) {}

  ConfigResult Parse(std::string_view text) {
    result_.config = defaults_;
    try {
      std::string input(text);
      std::vector<YAML::Node> docs = LoadDocuments(input);
      const YAML::Node* doc = nullptr;
      for (const YAML::Node& d : docs) {
        if (d.IsNull()) continue;
        if (doc != nullptr) {
          AddError(FromYaml(d.Mark()), "the configuration must be a single YAML document");
          break;
        }
        doc = &d;
      }
      if (doc != nullptr) Root(*doc);
    } catch (const YAML::Exception& e) {
      result_.errors.clear();
      result_.warnings.clear();
      result_.config = defaults_;
      AddError(FromYaml(e.mark), "invalid YAML: " + e.msg);
      return std::move(result_);
    }
    CheckValues(
        result_.config, [this](const FieldPath& p) { return marks_.count(p.Pointer()) > 0; },
        [this](FieldError e) { Located(std::move(e), &result_.errors); },
        [this](FieldError e) { Located(std::move(e), &result_.warnings); });
    auto by_place = [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.line, a.column) < std::tie(b.line, b.column);
    };
    std::stable_sort(result_.errors.begin(), result_.errors.end(), by_place);
    std::stable_sort(result_.warnings.begin(), result_.warnings.end(), by_place);
    return std::move(result_);
  }

 private:
  using FieldFn = std::function<void(const YAML::Node& value, const FieldPath& path)>;
  struct Field {
    const char* name;
    FieldFn decode;
  };

  // yaml-cpp 0.7 can loop forever in LoadAll on a document that starts with a token no node
  // starts with (issue #1040); walk the documents first and refuse one that consumed nothing.
  class ProgressProbe : public YAML::EventHandler {
   public:
    void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
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
    YAML::Mark start;
  };

  static std::vector<YAML::Node> LoadDocuments(const std::string& input) {
    {
      std::istringstream in(input);
      YAML::Parser parser(in);
      ProgressProbe probe;
      int previous = -1;
      while (parser.HandleNextDocument(probe)) {
        if (probe.start.pos == previous) {
          throw YAML::ParserException(probe.start, "unexpected character");
        }
        previous = probe.start.pos;
      }
    }
    return YAML::LoadAll(input);
  }

  void AddError(Mark mark, std::string message) {
    result_.errors.push_back({file_, mark.line, mark.column, std::move(message)});
  }

  void Fail(const YAML::Node& node, const FieldPath& path, FieldError error) {
    bad_.insert(path.Pointer());
    AddError(Where(node), error.ToString());
  }

  // Where `node` is written. An alias shares its node with the anchor, whose mark is earlier in
  // the file than the key being decoded: point at that key instead.
  Mark Where(const YAML::Node& node) const {
    Mark m = FromYaml(node.Mark());
    if (std::tie(m.line, m.column) < std::tie(floor_.line, floor_.column)) return floor_;
    return m;
  }

  // A value error found after the walk: placed where its field (or the nearest enclosing one) is
  // written; dropped when the walk already reported that field.
  void Located(FieldError error, std::vector<Diagnostic>* out) {
    std::string pointer = error.where().Pointer();
    for (std::string p = pointer;; p.erase(p.rfind('/'))) {
      if (bad_.count(p) > 0) return;
      if (p.empty()) break;
    }
    Mark mark;
    for (std::string p = pointer;; p.erase(p.rfind('/'))) {
      if (auto it = marks_.find(p); it != marks_.end()) {
        mark = it->second;
        break;
      }
      if (p.empty()) break;
    }
    out->push_back({file_, mark.line, mark.column, error.ToString()});
  }

  static const char* KindName(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Map:
        return "map";
      case YAML::NodeType::Sequence:
        return "list";
      case YAML::NodeType::Null:
        return "null";
      default:
        break;
    }
    switch (Classify(node)) {
      case ScalarKind::kNull:
        return "null";
      case ScalarKind::kBool:
        return "boolean";
      case ScalarKind::kInt:
      case ScalarKind::kFloat:
        return "number";
      case ScalarKind::kString:
        return "string";
    }
    return "value";
  }

  void WrongType(const YAML::Node& node, const FieldPath& path, const char* expected) {
    std::string detail = std::string("expected ") + expected + ", got " + KindName(node);
    if (node.IsScalar()) {
      std::string shown =
          Classify(node) == ScalarKind::kString ? Quote(node.Scalar()) : node.Scalar();
      if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
      detail += " " + shown;
    }
    Fail(node, path, TypeError(path, std::move(detail)));
  }

  // Decodes the keys of a map with `fields`; unknown and repeated keys are errors. False when
  // `node` is null (absent) or not a map.
  bool Fields(const YAML::Node& node, const FieldPath& path, const std::vector<Field>& fields) {
    if (node.IsNull()) return false;
    if (!node.IsMap()) {
      WrongType(node, path, "map");
      return false;
    }
    std::unordered_map<std::string, int> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) {
        Fail(key, path, TypeError(path, "map keys must be strings"));
        continue;
      }
      const std::string& name = key.Scalar();
      FieldPath child = path.Child(name);
      Mark key_mark = FromYaml(key.Mark());
      if (auto prev = seen.find(name); prev != seen.end()) {
        Fail(key, child,
             DuplicateError(child, name,
                            "mapping key already defined at line " + std::to_string(prev->second)));
        continue;
      }
      seen.emplace(name, key_mark.line);
      auto field = std::find_if(fields.begin(), fields.end(),
                                [&](const Field& f) { return name == f.name; });
      if (field == fields.end()) {
        Unknown(key, child, name, fields);
        continue;
      }
      Mark saved_floor = floor_;
      floor_ = key_mark;
      marks_.emplace(child.Pointer(), key_mark);
      if (!it->second.IsNull()) marks_[child.Pointer()] = Where(it->second);
      field->decode(it->second, child);
      floor_ = saved_floor;
    }
    return true;
  }

  void Unknown(const YAML::Node& key, const FieldPath& path, const std::string& name,
               const std::vector<Field>& fields) {
    std::string message = path.ToString() + ": unknown field " + Quote(name);
    const char* best = nullptr;
    size_t best_distance = 3;
    for (const Field& f : fields) {
      size_t d = EditDistance(name, f.name);
      if (d < best_distance) {
        best_distance = d;
        best = f.name;
      }
    }
    if (best != nullptr) {
      message += "; did you mean " + Quote(best) + "?";
    } else {
      message += "; known fields: ";
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i > 0) message += ", ";
        message += Quote(fields[i].name);
      }
    }
    bad_.insert(path.Pointer());
    AddError(FromYaml(key.Mark()), std::move(message));
  }

  // Scalars. Each leaves *out alone and returns false when the value is null or in error.
  bool String(const YAML::Node& node, const FieldPath& path, std::string* out) {
    if (node.IsNull()) return false;
    if (!node.IsScalar() || Classify(node) != ScalarKind::kString) {
      if (node.IsScalar() && Classify(node) == ScalarKind::kNull) return false;
      WrongType(node, path, "string");
      return false;
    }
    *out = node.Scalar();
    return true;
  }

  bool Path(const YAML::Node& node, const FieldPath& path, std::string* out) {
    if (!String(node, path, out)) return false;
    *out = NormalizePath(*out);
    return true;
  }

  std::optional<int64_t> Int(const YAML::Node& node, const FieldPath& path) {
    if (node.IsNull()) return std::nullopt;
    ScalarKind kind = node.IsScalar() ? Classify(node) : ScalarKind::kString;
    if (kind == ScalarKind::kNull) return std::nullopt;
    if (kind != ScalarKind::kInt) {
      WrongType(node, path, "integer");
      return std::nullopt;
    }
    auto v = IntValue(node.Scalar());
    if (!v) Fail(node, path, InvalidError(path, node.Scalar(), "does not fit in 64 bits"));
    return v;
  }

  // An integer field with its range rule; stores it only when the rule holds.
  template <typename T>
  void BoundedInt(const YAML::Node& node, const FieldPath& path,
                  std::optional<std::string> (*problem)(int64_t), T* out) {
    auto v = Int(node, path);
    if (!v) return;
    if (auto why = problem(*v)) {
      Fail(node, path, InvalidRawError(path, Render(*v), *why));
      return;
    }
    *out = static_cast<T>(*v);
  }

  // A Kubernetes quantity, written as a string ("10Gi") or a plain number.
  std::optional<int64_t> Bytes(const YAML::Node& node, const FieldPath& path) {
    if (node.IsNull()) return std::nullopt;
    ScalarKind kind = node.IsScalar() ? Classify(node) : ScalarKind::kBool;
    if (kind == ScalarKind::kNull) return std::nullopt;
    if (kind != ScalarKind::kString && kind != ScalarKind::kInt && kind != ScalarKind::kFloat) {
      WrongType(node, path, "quantity (string or number)");
      return std::nullopt;
    }
    const std::string& text = node.Scalar();
    auto q = model::Quantity::Parse(text);
    if (!q.ok()) {
      std::string detail = q.status().message();
      std::string prefix = "invalid quantity \"" + text + "\": ";
      if (detail.compare(0, prefix.size(), prefix) == 0) detail = detail.substr(prefix.size());
      Fail(node, path, InvalidError(path, text, detail));
      return std::nullopt;
    }
    return q->value();
  }

  void Root(const YAML::Node& doc) {
    DaemonConfig& c = result_.config;
    const FieldPath root;
    Fields(
        doc, root,
        {
            {"pools", [&](const YAML::Node& n, const FieldPath& p) { Pools(n, p); }},
            {"stateDir",
             [&](const YAML::Node& n, const FieldPath& p) { Path(n, p, &c.state_dir); }},
            {"mountRoot",
             [&](const YAML::Node& n, const FieldPath& p) { Path(n, p, &c.mount_root); }},
            {"socket", [&](const YAML::Node& n, const FieldPath& p) { Socket(n, p); }},
            {"maxVolumes",
             [&](const YAML::Node& n, const FieldPath& p) {
               BoundedInt(n, p, MaxVolumesProblem, &c.max_volumes);
             }},
            {"allowedHostPathPrefixes",
             [&](const YAML::Node& n, const FieldPath& p) { Prefixes(n, p); }},
            {"quotaErrno", [&](const YAML::Node& n, const FieldPath& p) { QuotaErrno(n, p); }},
            {"logLevel",
             [&](const YAML::Node& n, const FieldPath& p) {
               std::string level;
               if (!String(n, p, &level)) return;
               if (std::find(LogLevels().begin(), LogLevels().end(), level) == LogLevels().end()) {
                 Fail(n, p, NotSupportedError(p, level, LogLevels()));
                 return;
               }
               c.log_level = level;
             }},
            {"workerThreads",
             [&](const YAML::Node& n, const FieldPath& p) {
               BoundedInt(n, p, WorkerThreadsProblem, &c.worker_threads);
             }},
            {"api", [&](const YAML::Node& n, const FieldPath& p) { Api(n, p); }},
            {"volumePlugin",
             [&](const YAML::Node& n, const FieldPath& p) { VolumePlugin(n, p); }},
        });
  }

  void VolumePlugin(const YAML::Node& node, const FieldPath& path) {
    VolumePluginConfig& c = result_.config.volume_plugin;
    Fields(node, path,
           {
               {"enabled",
                [&](const YAML::Node& n, const FieldPath& p) {
                  if (n.IsNull()) return;
                  ScalarKind kind = n.IsScalar() ? Classify(n) : ScalarKind::kString;
                  if (kind == ScalarKind::kNull) return;
                  if (kind != ScalarKind::kBool) {
                    WrongType(n, p, "boolean");
                    return;
                  }
                  char first = n.Scalar()[0];
                  c.enabled = first == 't' || first == 'T';
                }},
               {"socket",
                [&](const YAML::Node& n, const FieldPath& p) { Path(n, p, &c.socket_path); }},
               {"namespace",
                [&](const YAML::Node& n, const FieldPath& p) { String(n, p, &c.namespace_); }},
           });
  }

  void Pools(const YAML::Node& node, const FieldPath& path) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      WrongType(node, path, "list");
      return;
    }
    std::vector<PoolConfig>& pools = result_.config.pools;
    pools.clear();
    size_t i = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++i) {
      const YAML::Node item = *it;
      FieldPath item_path = path.Index(i);
      marks_.emplace(item_path.Pointer(), Where(item));
      pools.emplace_back();
      PoolConfig& pool = pools.back();
      if (item.IsNull() || !item.IsMap()) {
        WrongType(item, item_path, "map");
        continue;
      }
      Fields(
          item, item_path,
          {
              {"name", [&](const YAML::Node& n, const FieldPath& p) { String(n, p, &pool.name); }},
              {"path", [&](const YAML::Node& n, const FieldPath& p) { Path(n, p, &pool.path); }},
              {"capacity",
               [&](const YAML::Node& n, const FieldPath& p) {
                 auto bytes = Bytes(n, p);
                 if (!bytes) return;
                 if (auto why = CapacityProblem(*bytes)) {
                   Fail(n, p, InvalidError(p, n.Scalar(), *why));
                   return;
                 }
                 pool.capacity_bytes = *bytes;
               }},
          });
    }
  }

  void Socket(const YAML::Node& node, const FieldPath& path) {
    DaemonConfig& c = result_.config;
    Fields(
        node, path,
        {
            {"path", [&](const YAML::Node& n, const FieldPath& p) { Path(n, p, &c.socket_path); }},
            {"mode", [&](const YAML::Node& n, const FieldPath& p) { Mode(n, p); }},
            {"group",
             [&](const YAML::Node& n, const FieldPath& p) {
               if (n.IsScalar() && Classify(n) == ScalarKind::kInt) {
                 c.socket_group = n.Scalar();  // a numeric gid
                 return;
               }
               String(n, p, &c.socket_group);
             }},
        });
  }

  // "0660", 0660 or 660: read as octal whichever way it is written, as chmod does. (YAML 1.2
  // would read a plain 0660 as decimal 660, which no one writing a mode means.)
  void Mode(const YAML::Node& node, const FieldPath& path) {
    if (node.IsNull()) return;
    ScalarKind kind = node.IsScalar() ? Classify(node) : ScalarKind::kBool;
    if (kind == ScalarKind::kNull) return;
    if (kind != ScalarKind::kString && kind != ScalarKind::kInt) {
      WrongType(node, path, "octal mode (string or number)");
      return;
    }
    std::string text = node.Scalar();
    size_t from = text.size() > 2 && text[0] == '0' && text[1] == 'o' ? 2 : 0;
    uint64_t mode = 0;
    auto [ptr, ec] = std::from_chars(text.data() + from, text.data() + text.size(), mode, 8);
    if (from == text.size() || ec != std::errc() || ptr != text.data() + text.size() ||
        mode > 0777) {
      Fail(node, path, InvalidError(path, text, *ModeProblem(-1)));
      return;
    }
    result_.config.socket_mode = static_cast<mode_t>(mode);
  }

  void Prefixes(const YAML::Node& node, const FieldPath& path) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      WrongType(node, path, "list");
      return;
    }
    std::vector<std::string>& prefixes = result_.config.allowed_host_path_prefixes;
    prefixes.clear();
    size_t i = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++i) {
      FieldPath item_path = path.Index(i);
      marks_.emplace(item_path.Pointer(), Where(*it));
      std::string prefix;
      if (!Path(*it, item_path, &prefix) && !bad_.count(item_path.Pointer())) {
        WrongType(*it, item_path, "string");  // a null item
      }
      prefixes.push_back(std::move(prefix));
    }
  }

  void QuotaErrno(const YAML::Node& node, const FieldPath& path) {
    std::string name;
    if (!String(node, path, &name)) return;
    if (name == "ENOSPC") {
      result_.config.quota_errno = ENOSPC;
    } else if (name == "EDQUOT") {
      result_.config.quota_errno = EDQUOT;
    } else {
      Fail(node, path, NotSupportedError(path, name, {"EDQUOT", "ENOSPC"}));
    }
  }

  void Api(const YAML::Node& node, const FieldPath& path) {
    DaemonConfig& c = result_.config;
    Fields(node, path,
           {
               {"requestTimeoutSeconds",
                [&](const YAML::Node& n, const FieldPath& p) {
                  BoundedInt(n, p, RequestTimeoutProblem, &c.api_request_timeout_seconds);
                }},
               {"maxRequestBytes",
                [&](const YAML::Node& n, const FieldPath& p) {
                  auto bytes = Bytes(n, p);
                  if (!bytes) return;
                  if (auto why = RequestBytesProblem(*bytes)) {
                    Fail(n, p, InvalidError(p, n.Scalar(), *why));
                    return;
                  }
                  c.api_max_request_bytes = *bytes;
                }},
               {"listen",
                [&](const YAML::Node& n, const FieldPath& p) {
                  if (!n.IsScalar()) {
                    Fail(n, p, TypeError(p, "must be a string"));
                    return;
                  }
                  if (n.Scalar().empty()) {  // off, as by default
                    c.api_listen.clear();
                    return;
                  }
                  std::string host;
                  uint16_t port = 0;
                  Status s = SplitListenAddress(n.Scalar(), &host, &port);
                  if (!s.ok()) {
                    Fail(n, p, InvalidError(p, n.Scalar(), s.message()));
                    return;
                  }
                  c.api_listen = n.Scalar();
                }},
           });
  }

  std::string file_;
  DaemonConfig defaults_;  // what an absent key keeps
  ConfigResult result_;
  std::unordered_map<std::string, Mark> marks_;  // where each field's value is, by JSON pointer
  std::set<std::string> bad_;                    // fields already reported, by JSON pointer
  Mark floor_{0, 0};  // the key being decoded: no value of it is written before this
};

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}

}  // namespace

DaemonConfig DefaultDaemonConfig() {
  DaemonConfig config;
  config.pools.push_back({"default", "/var/lib/claimfs/pools/default", std::nullopt});
  return config;
}

DaemonConfig QuickStartConfig(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(data_dir, ec);
  if (ec) dir = data_dir;
  std::string base = NormalizePath(dir.string());
  if (base == "/") base.clear();  // so that base + "/state" is "/state"
  DaemonConfig config = DefaultDaemonConfig();
  config.pools[0].path = base + "/pools/default";
  config.state_dir = base + "/state";
  config.mount_root = base + "/claims";
  config.socket_path = base + "/claimfsd.sock";
  config.volume_plugin.socket_path = base + "/docker-plugin.sock";
  config.api_listen = "127.0.0.1:6443";
  config.api_listen_optional = true;
  return config;
}

Status SplitListenAddress(std::string_view address, std::string* host, uint16_t* port) {
  std::string_view h, p;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find("]:");
    if (close == std::string_view::npos) {
      return Status::Invalid("must be HOST:PORT, an IPv6 host in brackets ([::1]:6443)");
    }
    h = address.substr(1, close - 1);
    p = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos || address.find(':') != colon) {
      return Status::Invalid("must be HOST:PORT (127.0.0.1:6443)");
    }
    h = address.substr(0, colon);
    p = address.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (h.empty() || p.empty() || ec != std::errc() || end != p.data() + p.size() || value > 65535) {
    return Status::Invalid("must be HOST:PORT with a port from 0 to 65535");
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

Status ConfigResult::status() const {
  if (errors.empty()) return Status::Ok();
  std::vector<std::string> lines;
  for (const auto& e : errors) lines.push_back(e.ToString());
  return Status::Invalid(JoinLines(lines));
}

ConfigResult ParseDaemonConfig(std::string_view text, std::string_view file,
                               const DaemonConfig& defaults) {
  return Parser(file, defaults).Parse(text);
}

Result<ConfigResult> LoadDaemonConfig(const std::string& path, const DaemonConfig& defaults) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno("cannot read config file " + path, errno);
  std::string text;
  char buf[16384];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (static_cast<std::streamsize>(text.size()) > kMaxConfigBytes) {
      return Status::Invalid("cannot read config file " + path + ": larger than " +
                             std::to_string(kMaxConfigBytes) + " bytes");
    }
  }
  if (in.bad()) return Status::FromErrno("cannot read config file " + path, errno);
  return ParseDaemonConfig(text, path, defaults);
}

Status ValidateDaemonConfig(const DaemonConfig& config) {
  std::vector<std::string> lines;
  CheckValues(
      config, [](const FieldPath&) { return true; },
      [&lines](FieldError e) { lines.push_back(e.ToString()); }, [](FieldError) {});
  if (lines.empty()) return Status::Ok();
  return Status::Invalid(JoinLines(lines));
}

Status ApplyEnvironment(DaemonConfig* config) {
  constexpr char kMaxVolumes[] = "CLAIMFS_MAX_VOLUMES";
  const char* value = std::getenv(kMaxVolumes);
  if (value != nullptr && *value != '\0') {
    std::string_view text(value);
    int64_t v = -1;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    std::optional<std::string> problem;
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      problem = "must be a whole number greater than or equal to 0";
    } else {
      problem = MaxVolumesProblem(v);
    }
    if (problem) {
      return Status::Invalid("environment variable " + std::string(kMaxVolumes) + "=" +
                             Quote(text) + ": " + *problem);
    }
    config->max_volumes = static_cast<int>(v);
  }
  return Status::Ok();
}

}  // namespace claimfs::yaml
