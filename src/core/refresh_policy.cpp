#include <credkit/core/error.hpp>
#include <credkit/core/refresh_policy.hpp>

#include <algorithm>
#include <cmath>

namespace credkit {

void RefreshPolicy::validate() const {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw_error(errc::invalid_argument, std::string("RefreshPolicy::") + what);
  };
  require(refresh_before_expiry.count() >= 0, "refresh_before_expiry must not be negative");
  require(lifetime_fraction > 0.0 && lifetime_fraction < 1.0, "lifetime_fraction must be in (0, 1)");
  require(min_refresh_interval.count() > 0, "min_refresh_interval must be positive");
  require(jitter >= 0.0 && jitter <= 1.0, "jitter must be in [0, 1]");
  require(min_validity.count() >= 0, "min_validity must not be negative");
  require(retry_initial.count() > 0, "retry_initial must be positive");
  require(retry_max >= retry_initial, "retry_max must be at least retry_initial");
  require(wake_check_interval.count() > 0, "wake_check_interval must be positive");
  require(fetch_timeout.count() > 0, "fetch_timeout must be positive");
}

RefreshPolicy::time_point RefreshPolicy::will_expire_point(time_point received, time_point expires_on,
                                                           time_point last_attempt, double u01) const noexcept {
  using std::chrono::duration_cast;
  using ns = std::chrono::nanoseconds;
  const ns remaining = std::max(ns::zero(), expires_on - received);
  time_point point;
  ns window;
  if (schedule == RefreshSchedule::lifetime_fraction) {
    window = std::chrono::round<ns>(remaining * (1.0 - lifetime_fraction));
    point = received + std::chrono::round<ns>(remaining * lifetime_fraction);
  } else if (remaining > refresh_before_expiry) {
    window = refresh_before_expiry;
    point = expires_on - refresh_before_expiry;
  } else {
    // Short token: refresh at half of what is left, so a fetcher that keeps returning short
    // tokens is asked at ever shorter intervals, bounded below by min_refresh_interval.
    window = remaining / 2;
    point = received + remaining / 2;
  }
  if (jitter > 0.0) point -= std::chrono::round<ns>(window * (jitter * std::clamp(u01, 0.0, 1.0)));
  return std::max(point, last_attempt + min_refresh_interval);
}

RefreshPolicy::duration RefreshPolicy::min_validity_for(std::chrono::nanoseconds lifetime) const noexcept {
  if (lifetime < min_validity) return std::chrono::duration_cast<duration>(lifetime / 2);
  return min_validity;
}

RefreshPolicy::duration RefreshPolicy::retry_delay(int failures, double u01) const noexcept {
  const int doublings = std::clamp(failures - 1, 0, 30);
  const double ceiling = std::min(static_cast<double>(retry_initial.count()) * std::ldexp(1.0, doublings),
                                  static_cast<double>(retry_max.count()));
  const auto jittered = duration(static_cast<duration::rep>(ceiling * std::clamp(u01, 0.0, 1.0)));
  return std::max(jittered, min_refresh_interval);
}

}  // namespace credkit
