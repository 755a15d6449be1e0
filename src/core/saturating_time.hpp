// credkit detail — time arithmetic that cannot overflow.
//
// Every duration or time_point computed from a value a user or a peer chose (options, token
// expiries, Retry-After, Date headers, cache records) goes through these helpers: results
// clamp to the representable range instead of wrapping, so `duration::max()` means "no limit"
// and an expiry at `time_point::min()` stays the earliest time there is.
#pragma once

#include <chrono>
#include <cmath>
#include <type_traits>

namespace credkit::detail {

/// `d` in the duration type `To`, clamped to `To`'s range (truncated toward zero, like
/// `duration_cast`). A NaN becomes zero.
template <typename To, typename Rep, typename Period>
inline To saturate_cast(std::chrono::duration<Rep, Period> d) noexcept {
  using wide = std::chrono::duration<long double, typename To::period>;
  const long double v = std::chrono::duration_cast<wide>(std::chrono::duration<long double, Period>(d.count())).count();
  if constexpr (std::is_floating_point_v<typename To::rep>) {
    return To(static_cast<typename To::rep>(v));
  } else {
    if (std::isnan(v)) return To::zero();
    // long double carries 64 mantissa bits: every 64-bit count compares exactly.
    if (v >= static_cast<long double>(To::max().count())) return To::max();
    if (v <= static_cast<long double>(To::min().count())) return To::min();
    return To(static_cast<typename To::rep>(v));
  }
}

/// `a + b`, clamped.
template <typename Rep, typename Period>
constexpr std::chrono::duration<Rep, Period> add_sat(std::chrono::duration<Rep, Period> a,
                                                     std::chrono::duration<Rep, Period> b) noexcept {
  using D = std::chrono::duration<Rep, Period>;
  Rep r{};
  if (__builtin_add_overflow(a.count(), b.count(), &r)) return b.count() > 0 ? D::max() : D::min();
  return D(r);
}

/// `a - b`, clamped.
template <typename Rep, typename Period>
constexpr std::chrono::duration<Rep, Period> sub_sat(std::chrono::duration<Rep, Period> a,
                                                     std::chrono::duration<Rep, Period> b) noexcept {
  using D = std::chrono::duration<Rep, Period>;
  Rep r{};
  if (__builtin_sub_overflow(a.count(), b.count(), &r)) return b.count() < 0 ? D::max() : D::min();
  return D(r);
}

/// `t + d` for any duration `d`, clamped to the time_point's range.
template <typename Clock, typename Dur, typename Rep, typename Period>
inline std::chrono::time_point<Clock, Dur> add_sat(std::chrono::time_point<Clock, Dur> t,
                                                      std::chrono::duration<Rep, Period> d) noexcept {
  return std::chrono::time_point<Clock, Dur>(add_sat(t.time_since_epoch(), saturate_cast<Dur>(d)));
}

/// `t - d` for any duration `d`, clamped to the time_point's range.
template <typename Clock, typename Dur, typename Rep, typename Period>
inline std::chrono::time_point<Clock, Dur> sub_sat(std::chrono::time_point<Clock, Dur> t,
                                                      std::chrono::duration<Rep, Period> d) noexcept {
  return std::chrono::time_point<Clock, Dur>(sub_sat(t.time_since_epoch(), saturate_cast<Dur>(d)));
}

/// `a - b` between two time_points, clamped to the duration's range.
template <typename Clock, typename Dur>
constexpr Dur sub_sat(std::chrono::time_point<Clock, Dur> a, std::chrono::time_point<Clock, Dur> b) noexcept {
  return sub_sat(a.time_since_epoch(), b.time_since_epoch());
}

/// `d * factor`, clamped (rounded to nearest).
template <typename Rep, typename Period>
inline std::chrono::duration<Rep, Period> scale_sat(std::chrono::duration<Rep, Period> d, double factor) noexcept {
  using D = std::chrono::duration<Rep, Period>;
  return saturate_cast<D>(
      std::chrono::duration<long double, Period>(std::nearbyint(static_cast<long double>(d.count()) * factor)));
}

}  // namespace credkit::detail
