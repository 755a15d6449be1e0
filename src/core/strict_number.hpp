// credkit detail — the one strict parser for numbers that come from outside.
//
// Numbers reach credkit from token services (expires_in, expiresOn as Unix seconds, often
// in a string), from headers (Retry-After), connection strings (Port=) and inbound requests.
// General-purpose conversions accept far more than these formats allow — std::stod reads
// "0x7fffffff" (a 2038 date), " 12", "1e3", "inf" and "nan"; atoi overflows silently — so
// every such number goes through these functions: one grammar, nothing around it, a range.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <system_error>
#include <string_view>

namespace credkit::detail {

/// A decimal integer: an optional '-' (only when `min < 0`) and 1 to 19 ASCII digits, and
/// nothing else (no space, '+', hex prefix, fraction or exponent). nullopt for any other
/// text and for values outside [min, max].
inline std::optional<std::int64_t> parse_integer(std::string_view s, std::int64_t min, std::int64_t max) {
  bool negative = false;
  if (!s.empty() && s.front() == '-' && min < 0) negative = true, s.remove_prefix(1);
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');  // 19 digits cannot overflow 64 bits
  }
  if (!negative && value > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  if (negative && value > static_cast<std::uint64_t>(INT64_MAX) + 1) return std::nullopt;
  const std::int64_t v = negative ? static_cast<std::int64_t>(0 - value) : static_cast<std::int64_t>(value);
  if (v < min || v > max) return std::nullopt;
  return v;
}

/// Only ASCII digits (at least one, any number of them), read saturating at `cap`: for values
/// where anything above a cap means the cap (HTTP `Retry-After: 99999999999999999999`).
inline std::optional<std::uint64_t> parse_digits_saturating(std::string_view s, std::uint64_t cap) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (value <= cap) value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value > cap ? cap : value;
}

/// A number in JSON's grammar (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`), at most
/// 64 characters, finite, and nothing else: what a token service may put in a JSON string
/// where a number is expected ("3600", "1767225600.5").
inline std::optional<double> parse_json_number(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - from;
  };
  if (s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return std::nullopt;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return std::nullopt;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  double v = 0;  // from_chars, not strtod: independent of the C locale's decimal point
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace credkit::detail
