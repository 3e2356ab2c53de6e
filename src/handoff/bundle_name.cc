#include "claimfs/handoff/bundle_name.h"

#include <charconv>
#include <string>

namespace claimfs::handoff {
namespace {

constexpr std::string_view kConnSuffix = ".conn";
constexpr std::string_view kArenaSuffix = ".arena";
constexpr std::string_view kOrphanTag = ".orphan.";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A decimal uint32 with no sign, no leading zero (so each number has one spelling).
bool ParseU32(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 10 || (text.size() > 1 && text[0] == '0')) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::string Quoted(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += kHex[static_cast<unsigned char>(c) & 0xf];
    }
  }
  return out + "\"";
}

}  // namespace

bool IsDnsSubdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  if (!IsLowerAlnum(name.front()) || !IsLowerAlnum(name.back())) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

Status ValidateFdName(std::string_view name) {
  if (name.empty()) return Status::Invalid("fd name is empty");
  if (name.size() > kMaxFdNameLength) {
    return Status::Invalid("fd name is " + std::to_string(name.size()) +
                           " characters long; at most " + std::to_string(kMaxFdNameLength));
  }
  for (char c : name) {
    if (c < 0x20 || c >= 0x7f || c == ':') {
      return Status::Invalid("fd name " + Quoted(name) +
                             " has a character systemd does not allow (control, non-ASCII or ':')");
    }
  }
  return Status::Ok();
}

Result<std::string> BundleName::Format() const {
  if (!IsDnsSubdomain(pv)) {
    return Status::Invalid("PV name " + Quoted(pv) + " is not a DNS subdomain");
  }
  std::string name(kBundleNamePrefix);
  name += pv;
  switch (part) {
    case BundlePart::kConnection:
      name += kConnSuffix;
      break;
    case BundlePart::kArena:
      name += kArenaSuffix;
      break;
    case BundlePart::kOrphan:
      name += kOrphanTag;
      name += std::to_string(orphan_slot);
      name += '.';
      name += std::to_string(orphan_generation);
      break;
  }
  if (name.size() > kMaxFdNameLength) {
    return Status::Invalid("fd name for PV " + pv + " would be " + std::to_string(name.size()) +
                           " characters long; systemd's fd store takes at most " +
                           std::to_string(kMaxFdNameLength));
  }
  return name;
}

Result<std::string> ConnectionName(std::string_view pv) {
  return BundleName{std::string(pv), BundlePart::kConnection}.Format();
}
Result<std::string> ArenaName(std::string_view pv) {
  return BundleName{std::string(pv), BundlePart::kArena}.Format();
}
Result<std::string> OrphanName(std::string_view pv, uint32_t slot, uint32_t generation) {
  return BundleName{std::string(pv), BundlePart::kOrphan, slot, generation}.Format();
}
Result<std::string> VolumePrefix(std::string_view pv) {
  // The longest part decides whether a PV's bundle fits at all: check with .arena.
  auto arena = ArenaName(pv);
  if (!arena.ok()) return arena.status();
  return std::string(kBundleNamePrefix) + std::string(pv) + ".";
}

Result<BundleName> ParseBundleName(std::string_view name) {
  Status valid = ValidateFdName(name);
  if (!valid.ok()) return valid;
  if (!name.starts_with(kBundleNamePrefix)) {
    return Status::Invalid("fd name " + Quoted(name) + " does not start with " +
                           std::string(kBundleNamePrefix));
  }
  std::string_view rest = name.substr(kBundleNamePrefix.size());
  BundleName parsed;
  if (rest.ends_with(kConnSuffix)) {
    parsed.part = BundlePart::kConnection;
    rest.remove_suffix(kConnSuffix.size());
  } else if (rest.ends_with(kArenaSuffix)) {
    parsed.part = BundlePart::kArena;
    rest.remove_suffix(kArenaSuffix.size());
  } else {
    // <pv>.orphan.<slot>.<gen>, from the right.
    size_t dot = rest.rfind('.');
    size_t dot2 = dot == std::string_view::npos || dot == 0 ? std::string_view::npos
                                                            : rest.rfind('.', dot - 1);
    if (dot2 == std::string_view::npos ||
        !ParseU32(rest.substr(dot + 1), &parsed.orphan_generation) ||
        !ParseU32(rest.substr(dot2 + 1, dot - dot2 - 1), &parsed.orphan_slot) ||
        !rest.substr(0, dot2 + 1).ends_with(kOrphanTag)) {
      return Status::Invalid("fd name " + Quoted(name) +
                             " does not end with .conn, .arena or .orphan.<slot>.<generation>");
    }
    parsed.part = BundlePart::kOrphan;
    rest = rest.substr(0, dot2 + 1 - kOrphanTag.size());
  }
  if (!IsDnsSubdomain(rest)) {
    return Status::Invalid("fd name " + Quoted(name) + ": PV name " + Quoted(rest) +
                           " is not a DNS subdomain");
  }
  parsed.pv = std::string(rest);
  return parsed;
}

}  // namespace claimfs::handoff
