// Paths as the kernel sees them: the byte check every string that becomes a path passes, one
// normal form, and containment and overlap by whole components. Admission, the provisioner,
// the reclaimer and the mount all use this, so the bytes checked are the bytes used.
#pragma once

#include <boost/filesystem/path.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "claimfs/common/status.h"

namespace claimfs::model {

// Longest path the kernel accepts (PATH_MAX counts the terminating NUL) and longest component.
inline constexpr size_t kMaxPathBytes = 4095;
inline constexpr size_t kMaxComponentBytes = 255;

// Length of the well-formed UTF-8 sequence starting at text[i] (1 to 4), or 0 when the bytes
// there are not one (a stray continuation byte, an overlong form, a surrogate, a code point past
// U+10FFFF, a truncated sequence).
size_t Utf8SequenceLength(std::string_view text, size_t i);

// Why `text` cannot be handed to a system call as it is, or nullopt: it holds NUL (the kernel
// stops there, so it would see a shorter path than the one checked), a control byte (0x01-0x1f,
// 0x7f) or bytes that are not UTF-8 (Kubernetes strings are UTF-8). The reason names the byte and
// its offset: "must not contain NUL (byte 27)".
std::optional<std::string> PathBytesProblem(std::string_view text);

// PathBytesProblem, then the rules for a directory a volume may name: not empty, absolute, no
// ".." component, at most kMaxPathBytes bytes and kMaxComponentBytes per component. A reason
// such as "must be an absolute path", or nullopt.
std::optional<std::string> HostPathProblem(std::string_view text);

// An absolute path that passed HostPathProblem, in its one normal form: "//", "/./" and a
// trailing slash collapsed ("/a//b/./c/" is "/a/b/c"). string() is what containment checks
// compare and what system calls receive. Values are immutable and safe to share between threads.
class HostPath {
 public:
  // kInvalid with HostPathProblem's reason (prefixed by the path, escaped) when `text` fails it.
  static Result<HostPath> Parse(std::string_view text);

  const std::string& string() const { return path_.native(); }
  const boost::filesystem::path& path() const { return path_; }
  // The names below "/", in order; empty for "/".
  std::vector<std::string> Components() const;

  // True when this path lies below `root` by at least one component ("/tmp/a" is below "/tmp",
  // "/tmp/ab" is not below "/tmp/a").
  bool IsStrictlyBelow(const HostPath& root) const;
  // IsStrictlyBelow, or the same path.
  bool IsAtOrBelow(const HostPath& root) const;
  // The same path, or one inside the other.
  bool Overlaps(const HostPath& other) const;

  friend bool operator==(const HostPath& a, const HostPath& b) { return a.path_ == b.path_; }

 private:
  explicit HostPath(boost::filesystem::path path) : path_(std::move(path)) {}
  boost::filesystem::path path_;
};

// For paths an administrator writes (config files): an absolute `text` with "//", "." and a
// trailing slash collapsed and each ".." resolved lexically against the component before it
// ("/a/b/../c/" is "/a/c", "/.." is "/"); a relative `text` is returned as it is. No bytes are
// checked: callers run HostPathProblem on the result.
std::string LexicallyNormal(std::string_view text);

// `text` with control bytes and bytes that are not UTF-8 written as \xNN, for messages.
std::string EscapePathForMessage(std::string_view text);

}  // namespace claimfs::model
