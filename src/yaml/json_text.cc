#include "claimfs/yaml/json_text.h"

#include <set>
#include <vector>

#include "claimfs/yaml/field_error.h"

namespace claimfs::yaml {
namespace {

using json = nlohmann::json;

// Rewrites past this many out-of-range numbers are refused rather than reparsed again.
constexpr int kMaxOutOfRangeNumbers = 64;

// Builds the document as json::parse would, tracking the JSON pointer of each value so that a
// number's text can be kept under it.
class KeepingSax {
 public:
  // `quoted`: the ordinals, among the text's string tokens (keys included), of the numbers
  // that were quoted; their text is kept as a number's.
  KeepingSax(json* root, NumberTexts* numbers, std::set<size_t> quoted)
      : root_(root), numbers_(numbers), quoted_(std::move(quoted)) {}

  bool null() { return Value(nullptr); }
  bool boolean(bool b) { return Value(b); }
  bool number_integer(json::number_integer_t n) { return Value(n); }
  bool number_unsigned(json::number_unsigned_t n) { return Value(n); }
  bool number_float(json::number_float_t n, const std::string& text) {
    (*numbers_)[Pointer()] = text;
    return Value(n);
  }
  bool string(std::string& s) {
    if (quoted_.count(strings_seen_++) != 0) (*numbers_)[Pointer()] = s;
    return Value(std::move(s));
  }
  bool binary(json::binary_t& b) { return Value(json::binary(std::move(b))); }
  bool start_object(std::size_t) { return Open(json::object()); }
  bool key(std::string& k) {
    ++strings_seen_;
    frames_.back().key = std::move(k);
    return true;
  }
  bool end_object() { return Close(); }
  bool start_array(std::size_t) { return Open(json::array()); }
  bool end_array() { return Close(); }
  bool parse_error(std::size_t position, const std::string& token,
                   const nlohmann::detail::exception& e) {
    error_id_ = e.id;
    error_position_ = position;
    error_token_ = token;
    error_ = e.what();
    return false;
  }

  int error_id() const { return error_id_; }
  std::size_t error_position() const { return error_position_; }
  const std::string& error_token() const { return error_token_; }
  const std::string& error() const { return error_; }

 private:
  struct Frame {
    json* container;
    std::string key;  // objects: the member being read
  };

  std::string Pointer() const {
    std::string out;
    for (size_t i = 0; i < frames_.size(); ++i) {
      const Frame& f = frames_[i];
      out += '/';
      if (f.container->is_array()) {
        // An outer array already holds the element being read; the innermost is about to.
        bool innermost = i + 1 == frames_.size();
        out += std::to_string(f.container->size() - (innermost ? 0 : 1));
        continue;
      }
      AppendPointerToken(f.key, &out);
    }
    return out;
  }

  json* Place(json value) {
    if (frames_.empty()) {
      *root_ = std::move(value);
      return root_;
    }
    Frame& top = frames_.back();
    if (top.container->is_array()) {
      top.container->push_back(std::move(value));
      return &top.container->back();
    }
    json& slot = (*top.container)[top.key];
    slot = std::move(value);
    return &slot;
  }

  bool Value(json value) {
    Place(std::move(value));
    return true;
  }
  bool Open(json container) {
    frames_.push_back({Place(std::move(container)), {}});
    return true;
  }
  bool Close() {
    frames_.pop_back();
    return true;
  }

  json* root_;
  NumberTexts* numbers_;
  std::set<size_t> quoted_;
  size_t strings_seen_ = 0;
  std::vector<Frame> frames_;
  int error_id_ = 0;
  std::size_t error_position_ = 0;
  std::string error_token_;
  std::string error_;
};

// The ordinals among the string tokens of `text` (valid JSON up to where it was parsed) of those
// that open at `starts`.
std::set<size_t> StringOrdinals(std::string_view text, const std::vector<size_t>& starts) {
  std::set<size_t> out;
  size_t ordinal = 0;
  size_t next = 0;
  for (size_t i = 0; i < text.size() && next < starts.size(); ++i) {
    if (text[i] != '"') continue;
    if (i == starts[next]) {
      out.insert(ordinal);
      ++next;
    }
    ++ordinal;
    for (++i; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\') ++i;
    }
  }
  return out;
}

// "[json.exception.parse_error.101] parse error at ..." -> "parse error at ...".
std::string WithoutExceptionId(const std::string& what) {
  if (!what.empty() && what.front() == '[') {
    size_t end = what.find("] ");
    if (end != std::string::npos) return what.substr(end + 2);
  }
  return what;
}

}  // namespace

Result<json> ParseJsonKeepingNumbers(std::string_view text, NumberTexts* numbers) {
  std::string rewritten;
  std::string_view input = text;
  std::vector<size_t> quoted_starts;  // where the quoted numbers open, in `input`
  for (int rewrites = 0;; ++rewrites) {
    json root;
    numbers->clear();
    KeepingSax sax(&root, numbers, StringOrdinals(input, quoted_starts));
    if (json::sax_parse(input.begin(), input.end(), &sax)) return root;
    // 406 is a number beyond a double's range; the position is just past its token.
    const std::string& token = sax.error_token();
    std::size_t end = sax.error_position();
    bool out_of_range = sax.error_id() == 406 && !token.empty() && end >= token.size() &&
                        end <= input.size() &&
                        input.substr(end - token.size(), token.size()) == token;
    if (!out_of_range) return Status::Invalid(WithoutExceptionId(sax.error()));
    if (rewrites == kMaxOutOfRangeNumbers) {
      return Status::Invalid("more than " + std::to_string(kMaxOutOfRangeNumbers) +
                             " numbers beyond the range of a double");
    }
    std::string next(input.substr(0, end - token.size()));
    next += '"';
    next += token;
    next += '"';
    next += input.substr(end);
    // Parsing stopped at this number, so every earlier quote opens before it and stays put.
    quoted_starts.push_back(end - token.size());
    rewritten = std::move(next);
    input = rewritten;
  }
}

}  // namespace claimfs::yaml
