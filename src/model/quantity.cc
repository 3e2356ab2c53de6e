#include "claimfs/model/quantity.h"

#include <algorithm>
#include <cctype>
#include <limits>

namespace claimfs::model {
namespace {

using int128 = __int128;

constexpr std::string_view kQuantityPattern =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

constexpr int128 kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int kMaxExponent = 9999;
constexpr int kMaxSignificant = 30;

Status Malformed(std::string_view text) {
  return Status::Invalid("invalid quantity \"" + std::string(text) + "\": " +
                         std::string(kQuantityPattern));
}

// Suffix → (base, exponent): value = number × base^exponent.
struct Suffix {
  int base;
  int exponent;
  QuantityFormat format;
};

bool ParseSuffix(std::string_view s, Suffix* out) {
  struct Entry {
    std::string_view text;
    Suffix suffix;
  };
  static constexpr Entry kSuffixes[] = {
      {"", {10, 0, QuantityFormat::kDecimalSI}},
      {"Ki", {2, 10, QuantityFormat::kBinarySI}},
      {"Mi", {2, 20, QuantityFormat::kBinarySI}},
      {"Gi", {2, 30, QuantityFormat::kBinarySI}},
      {"Ti", {2, 40, QuantityFormat::kBinarySI}},
      {"Pi", {2, 50, QuantityFormat::kBinarySI}},
      {"Ei", {2, 60, QuantityFormat::kBinarySI}},
      {"n", {10, -9, QuantityFormat::kDecimalSI}},
      {"u", {10, -6, QuantityFormat::kDecimalSI}},
      {"m", {10, -3, QuantityFormat::kDecimalSI}},
      {"k", {10, 3, QuantityFormat::kDecimalSI}},
      {"M", {10, 6, QuantityFormat::kDecimalSI}},
      {"G", {10, 9, QuantityFormat::kDecimalSI}},
      {"T", {10, 12, QuantityFormat::kDecimalSI}},
      {"P", {10, 15, QuantityFormat::kDecimalSI}},
      {"E", {10, 18, QuantityFormat::kDecimalSI}},
  };
  for (const auto& e : kSuffixes) {
    if (s == e.text) {
      *out = e.suffix;
      return true;
    }
  }
  // Decimal exponent: e3, E-2, e+9.
  if (s.size() >= 2 && (s[0] == 'e' || s[0] == 'E')) {
    std::string_view digits = s.substr(1);
    bool negative = false;
    if (digits[0] == '+' || digits[0] == '-') {
      negative = digits[0] == '-';
      digits.remove_prefix(1);
    }
    if (digits.empty()) return false;
    // Past kMaxExponent every mantissa is too large, or rounds to one byte or zero, alike.
    int exponent = 0;
    for (char c : digits) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      exponent = std::min(exponent * 10 + (c - '0'), kMaxExponent);
    }
    *out = {10, negative ? -exponent : exponent, QuantityFormat::kDecimalExponent};
    return true;
  }
  return false;
}

}  // namespace

Result<Quantity> Quantity::Parse(std::string_view text) {
  std::string_view s = text;
  if (s.empty()) return Status::Invalid("invalid quantity \"\": quantities must not be empty");
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  // Mantissa: digits with at most one '.', at least one digit.
  int128 mantissa = 0;
  int fraction_digits = 0;
  int significant = 0;
  bool seen_dot = false;
  bool seen_digit = false;
  int dropped_whole_digits = 0;
  bool dropped_nonzero = false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (seen_dot) return Malformed(text);
      seen_dot = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    seen_digit = true;
    if (mantissa == 0 && c == '0') {
      if (seen_dot) ++fraction_digits;
      continue;
    }
    // Digits past kMaxSignificant are below a byte in any value that fits in 64 bits: they
    // scale the mantissa (whole digits) and round up (any that is not 0).
    if (++significant > kMaxSignificant) {
      if (!seen_dot) ++dropped_whole_digits;
      if (c != '0') dropped_nonzero = true;
      continue;
    }
    mantissa = mantissa * 10 + (c - '0');
    if (seen_dot) ++fraction_digits;
  }
  if (!seen_digit) return Malformed(text);
  Suffix suffix;
  if (!ParseSuffix(s.substr(i), &suffix)) return Malformed(text);

  // value = mantissa × base^exponent / 10^fraction_digits, rounded up to a whole byte.
  int128 numerator = mantissa;
  int128 denominator = 1;
  auto too_large = [&] {
    return Status::Invalid("invalid quantity \"" + std::string(text) +
                           "\": too large (the most is 8Ei - 1 bytes)");
  };
  int decimal_shift = dropped_whole_digits - fraction_digits;
  if (suffix.base == 2) {
    for (int k = 0; k < suffix.exponent; ++k) {
      numerator *= 2;
      if (numerator / 1024 > kInt64Max && mantissa != 0) return too_large();
    }
  } else {
    decimal_shift += suffix.exponent;
  }
  for (; decimal_shift > 0; --decimal_shift) {
    numerator *= 10;
    if (numerator > kInt64Max * 10 && mantissa != 0) return too_large();
  }
  for (; decimal_shift < 0; ++decimal_shift) {
    denominator *= 10;
    if (denominator > numerator) {  // below one byte, and stays there: rounds up to 1 (or 0)
      return Quantity(mantissa == 0 ? 0 : (negative ? -1 : 1), suffix.format);
    }
  }
  int128 value = (numerator + denominator - 1) / denominator;
  if (dropped_nonzero && numerator % denominator == 0) ++value;
  if (value > kInt64Max) return too_large();
  return Quantity(static_cast<int64_t>(negative ? -value : value), suffix.format);
}

std::string Quantity::ToString() const {
  int64_t v = value_;
  if (v == 0) return "0";
  bool negative = v < 0;
  uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string sign = negative ? "-" : "";

  bool binary = format_ == QuantityFormat::kBinarySI && magnitude >= 1024;
  if (binary) {
    static constexpr const char* kBinary[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    int k = 0;
    while (k < 6 && magnitude % 1024 == 0) {
      magnitude /= 1024;
      ++k;
    }
    return sign + std::to_string(magnitude) + kBinary[k];
  }
  // Decimal: the mantissa keeps its trailing zeros down to an exponent that is a multiple of 3.
  int exponent = 0;
  while (magnitude % 1000 == 0) {
    magnitude /= 1000;
    exponent += 3;
  }
  if (format_ == QuantityFormat::kDecimalExponent) {
    return sign + std::to_string(magnitude) + (exponent ? "e" + std::to_string(exponent) : "");
  }
  static constexpr const char* kDecimal[] = {"", "k", "M", "G", "T", "P", "E"};
  return sign + std::to_string(magnitude) + kDecimal[exponent / 3];
}

}  // namespace claimfs::model
