// Kubernetes resource quantities ("1Gi", "500M", "1.5Gi", "1e9", "1024"), as the API server
// parses and prints them, restricted to whole bytes (fractions round up, as Quantity.Value()).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "claimfs/common/status.h"

namespace claimfs::model {

// How a quantity was written; Kubernetes keeps it to print the value back in the same family.
enum class QuantityFormat { kDecimalSI, kBinarySI, kDecimalExponent };

class Quantity {
 public:
  Quantity() = default;
  static Quantity FromBytes(int64_t bytes, QuantityFormat format = QuantityFormat::kBinarySI) {
    return Quantity(bytes, format);
  }

  // Parses a quantity. Fails with kInvalid, naming the text, when it is malformed or does not
  // fit in a signed 64-bit count of bytes. Negative values parse (validation refuses them where
  // Kubernetes does).
  static Result<Quantity> Parse(std::string_view text);

  int64_t value() const { return value_; }
  QuantityFormat format() const { return format_; }

  // Canonical form, as kubectl prints it: 2Gi, 1536Mi, 1500M, 1e9, 1k.
  std::string ToString() const;

  friend bool operator==(const Quantity& a, const Quantity& b) { return a.value_ == b.value_; }
  friend std::strong_ordering operator<=>(const Quantity& a, const Quantity& b) {
    return a.value_ <=> b.value_;
  }

 private:
  Quantity(int64_t value, QuantityFormat format) : value_(value), format_(format) {}
  int64_t value_ = 0;
  QuantityFormat format_ = QuantityFormat::kBinarySI;
};

}  // namespace claimfs::model
