#include "claimfs/model/host_path.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <utility>

namespace claimfs::model {
namespace {

std::string Hex(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

std::string At(size_t offset) { return " (byte " + std::to_string(offset) + ")"; }

// The components of `text` split at '/', without empty and "." ones.
std::vector<std::string_view> Split(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find('/', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view part = text.substr(i, j - i);
    if (!part.empty() && part != ".") parts.push_back(part);
    i = j + 1;
  }
  return parts;
}

}  // namespace

size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t length;
  uint32_t code;
  if (c >= 0xc2 && c <= 0xdf) {
    length = 2;
    code = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    length = 3;
    code = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    length = 4;
    code = c & 0x07;
  } else {
    return 0;  // a continuation byte, an overlong lead (0xc0, 0xc1) or past U+10FFFF
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3f);
  }
  if ((length == 3 && code < 0x800) || (length == 4 && code < 0x10000)) return 0;  // overlong
  if (code >= 0xd800 && code <= 0xdfff) return 0;                                  // surrogate
  if (code > 0x10ffff) return 0;
  return length;
}

std::optional<std::string> PathBytesProblem(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0) return "must not contain NUL" + At(i);
    if (c < 0x20 || c == 0x7f) return "must not contain the control character " + Hex(c) + At(i);
    size_t n = Utf8SequenceLength(text, i);
    if (n == 0) return "must be valid UTF-8: " + Hex(c) + " does not start a character" + At(i);
    i += n;
  }
  return std::nullopt;
}

std::optional<std::string> HostPathProblem(std::string_view text) {
  if (auto problem = PathBytesProblem(text)) return problem;
  if (text.empty()) return "must not be empty";
  if (text.front() != '/') return "must be an absolute path";
  if (text.size() > kMaxPathBytes) {
    return "must be at most " + std::to_string(kMaxPathBytes) + " bytes (PATH_MAX), has " +
           std::to_string(text.size());
  }
  for (std::string_view part : Split(text)) {
    if (part == "..") return "must not contain '..'";
    if (part.size() > kMaxComponentBytes) {
      return "must not have a component longer than " + std::to_string(kMaxComponentBytes) +
             " bytes (NAME_MAX), has one of " + std::to_string(part.size());
    }
  }
  return std::nullopt;
}

Result<HostPath> HostPath::Parse(std::string_view text) {
  if (auto problem = HostPathProblem(text)) {
    return Status::Invalid("path \"" + EscapePathForMessage(text) + "\" " + *problem);
  }
  boost::filesystem::path path("/");
  for (std::string_view part : Split(text)) path /= boost::filesystem::path(part.begin(), part.end());
  return HostPath(std::move(path));
}

std::vector<std::string> HostPath::Components() const {
  std::vector<std::string> out;
  for (auto it = std::next(path_.begin()); it != path_.end(); ++it) out.push_back(it->native());
  return out;
}

bool HostPath::IsAtOrBelow(const HostPath& root) const {
  auto [root_end, mine] = std::mismatch(root.path_.begin(), root.path_.end(), path_.begin(),
                                        path_.end());
  return root_end == root.path_.end();
}

bool HostPath::IsStrictlyBelow(const HostPath& root) const {
  return IsAtOrBelow(root) && !(path_ == root.path_);
}

bool HostPath::Overlaps(const HostPath& other) const {
  return IsAtOrBelow(other) || other.IsAtOrBelow(*this);
}

std::string LexicallyNormal(std::string_view text) {
  if (text.empty() || text.front() != '/') return std::string(text);
  std::vector<std::string_view> kept;
  for (std::string_view part : Split(text)) {
    if (part != "..") {
      kept.push_back(part);
    } else if (!kept.empty()) {
      kept.pop_back();
    }
  }
  boost::filesystem::path path("/");
  for (std::string_view part : kept) path /= boost::filesystem::path(part.begin(), part.end());
  return path.native();
}

std::string EscapePathForMessage(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t n = c < 0x20 || c == 0x7f ? 0 : Utf8SequenceLength(text, i);
    if (n == 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace claimfs::model
