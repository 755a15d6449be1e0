// credkit detail — the caches' time rules, on the saturating helpers of core/saturating_time.hpp:
// freshness, staleness and option checks that clamp or reject instead of wrapping.
#pragma once

#include <credkit/core/error.hpp>

#include "core/saturating_time.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

namespace credkit::detail {

using wall_clock = std::chrono::system_clock;

/// True when a token expiring at `expires_on` has more than `min_validity` left at `now`.
/// Clamped: an expiry at `time_point::min()` is never fresh, `min_validity` of
/// `milliseconds::max()` is never met.
inline bool has_validity_left(wall_clock::time_point expires_on, wall_clock::time_point now,
                              std::chrono::milliseconds min_validity) noexcept {
  return sub_sat(expires_on, now) > saturate_cast<wall_clock::duration>(min_validity);
}

/// When a cache entry of a token expiring at `expires_on` goes stale: `expires_on - margin`,
/// or `now + ttl` when that is earlier; clamped to the clock's range.
inline wall_clock::time_point stale_point(wall_clock::time_point expires_on, std::chrono::milliseconds margin,
                                          wall_clock::time_point now,
                                          std::optional<std::chrono::milliseconds> ttl) noexcept {
  auto stale = sub_sat(expires_on, margin);
  if (ttl) stale = std::min(stale, add_sat(now, *ttl));
  return stale;
}

/// A duration option as messages show it: `250 ms`, `milliseconds::max()`, `milliseconds::min()`.
inline std::string describe(std::chrono::milliseconds d) {
  if (d == std::chrono::milliseconds::max()) return "milliseconds::max()";
  if (d == std::chrono::milliseconds::min()) return "milliseconds::min()";
  return std::to_string(d.count()) + " ms";
}

/// Throws `Error(errc::invalid_argument)`: "<owner>::<field> must be <range> (got <got>)".
[[noreturn]] inline void reject_option(const char* owner, const char* field, const std::string& range,
                                       const std::string& got) {
  throw_error(errc::invalid_argument, std::string(owner) + "::" + field + " must be " + range + " (got " + got + ")");
}

/// Duration option checks. `max_means`: what `milliseconds::max()` means for the field,
/// appended to the range in messages.
inline void require_non_negative(std::chrono::milliseconds d, const char* owner, const char* field,
                                 const char* max_means) {
  if (d.count() < 0)
    reject_option(owner, field, std::string(">= 0 ms (milliseconds::max(): ") + max_means + ")", describe(d));
}
inline void require_positive(std::chrono::milliseconds d, const char* owner, const char* field, const char* max_means) {
  if (d.count() <= 0)
    reject_option(owner, field, std::string("> 0 ms (milliseconds::max(): ") + max_means + ")", describe(d));
}

}  // namespace credkit::detail
