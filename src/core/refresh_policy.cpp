#include <credkit/core/error.hpp>
#include <credkit/core/refresh_policy.hpp>

#include "core/saturating_time.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace credkit {

using ns = std::chrono::nanoseconds;
using detail::add_sat;
using detail::saturate_cast;
using detail::scale_sat;
using detail::sub_sat;

void RefreshPolicy::validate() const {
  auto require = [](bool ok, const char* field, const char* range) {
    if (!ok) throw_error(errc::invalid_argument, std::string("RefreshPolicy::") + field + " must be " + range);
  };
  require(refresh_before_expiry.count() >= 0, "refresh_before_expiry", "zero or more");
  require(lifetime_fraction > 0.0 && lifetime_fraction < 1.0, "lifetime_fraction", "in (0, 1)");
  require(min_refresh_interval.count() > 0 && min_refresh_interval <= std::chrono::hours(1), "min_refresh_interval",
          "in (0, 1 h]");
  require(jitter >= 0.0 && jitter <= 1.0, "jitter", "in [0, 1]");
  require(min_validity.count() >= 0, "min_validity", "zero or more");
  require(retry_initial.count() > 0, "retry_initial", "positive");
  require(retry_max <= std::chrono::hours(24), "retry_max", "at most 24 h");
  require(retry_max >= retry_initial, "retry_max", "at least RefreshPolicy::retry_initial");
  require(wake_check_interval.count() > 0, "wake_check_interval", "positive");
  require(fetch_timeout.count() > 0, "fetch_timeout", "positive (duration::max(): no limit)");
  require(clock_skew_tolerance.count() >= 0, "clock_skew_tolerance", "zero or more (duration::max(): no correction)");
  require(max_clock_skew.count() > 0, "max_clock_skew", "positive");
}

ns RefreshPolicy::lifetime(const TokenTimes& token) noexcept {
  const ns left = sub_sat(token.expires_on, token.received);
  ns life = left;
  if (token.issued_at && *token.issued_at < token.expires_on) {
    life = sub_sat(token.expires_on, *token.issued_at);
    // A delivered token counts at most from its arrival: a source handing out an aging
    // cached token must not make it look staler than the fresh answer it is.
    if (token.delivered) life = std::min(life, left);
  }
  return std::max(life, ns::zero());
}

ns RefreshPolicy::min_validity_for(ns lifetime) const noexcept {
  return std::min(saturate_cast<ns>(min_validity), std::max(lifetime, ns::zero()) / 2);
}

RefreshPolicy::time_point RefreshPolicy::fresh_until(const TokenTimes& token) const noexcept {
  return sub_sat(token.expires_on, min_validity_for(lifetime(token)));
}

RefreshPolicy::time_point RefreshPolicy::will_expire_point(const TokenTimes& token, time_point last_attempt,
                                                           double u01) const noexcept {
  const ns remaining = std::max(ns::zero(), sub_sat(token.expires_on, token.received));
  time_point point;
  ns window;
  if (schedule == RefreshSchedule::lifetime_fraction) {
    window = scale_sat(remaining, 1.0 - lifetime_fraction);
    point = add_sat(token.received, scale_sat(remaining, lifetime_fraction));
  } else if (remaining > saturate_cast<ns>(refresh_before_expiry)) {
    window = saturate_cast<ns>(refresh_before_expiry);
    point = sub_sat(token.expires_on, refresh_before_expiry);
  } else {
    // Short token: refresh at half of what is left, so a fetcher that keeps returning short
    // tokens is asked at ever shorter intervals, bounded below by min_refresh_interval.
    window = remaining / 2;
    point = add_sat(token.received, remaining / 2);
  }
  if (jitter > 0.0) point = sub_sat(point, scale_sat(window, jitter * std::clamp(u01, 0.0, 1.0)));
  // The refresh lead: a fetch that succeeds within it replaces the token before callers stop
  // getting it, so a proactive caller never waits.
  const time_point fresh = fresh_until(token);
  const ns fresh_period = std::max(ns::zero(), sub_sat(fresh, token.received));
  const ns lead = std::min(saturate_cast<ns>(fetch_timeout), fresh_period / 2);
  point = std::min(point, sub_sat(fresh, lead));
  return std::max(point, add_sat(last_attempt, min_refresh_interval));
}

RefreshPolicy::duration RefreshPolicy::retry_delay(int failures, double u01) const noexcept {
  const int doublings = std::clamp(failures - 1, 0, 62);
  const long double ceiling = std::min(static_cast<long double>(retry_initial.count()) * std::ldexp(1.0L, doublings),
                                       static_cast<long double>(retry_max.count()));
  const auto jittered =
      saturate_cast<duration>(std::chrono::duration<long double, std::milli>(ceiling * std::clamp(u01, 0.0, 1.0)));
  return std::max(jittered, min_refresh_interval);
}

}  // namespace credkit
