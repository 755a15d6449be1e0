// credkit — when to refresh, how long a token stays usable, how to back off: pure functions.
#pragma once

#include <chrono>

namespace credkit {

/// How the credential renews its token.
enum class RefreshMode {
  /// Timer-driven: refresh ahead of expiry, fire `token_will_expire` / `token_expired` on
  /// time. For long-running apps (desktop chat, calling).
  proactive,
  /// Lazy: no timers at all; `get_token` fetches when the cached token is below minimum
  /// validity. For stateless services and bots.
  on_demand,
};

/// Where the proactive "token will expire" point falls.
enum class RefreshSchedule {
  /// ACS style: `refresh_before_expiry` ahead of expiry; for tokens with less than that
  /// left, half of what is left.
  before_expiry,
  /// Agora style: at `lifetime_fraction` of the token's life (Agora Chat: 80 %).
  lifetime_fraction,
};

/// The thresholds of the refresh logic, with the ACS SDKs' defaults. A value type: every
/// function here is pure (no clock reads, no randomness of its own).
struct RefreshPolicy {
  /// Durations of the policy.
  using duration = std::chrono::milliseconds;
  /// Wall-clock time.
  using time_point = std::chrono::system_clock::time_point;

  /// Which schedule places the will-expire point.
  RefreshSchedule schedule = RefreshSchedule::before_expiry;
  /// before_expiry: how long before expiry to refresh (ACS: 10 min).
  duration refresh_before_expiry = std::chrono::minutes(10);
  /// lifetime_fraction: the fraction of the lifetime at which to refresh, in (0, 1).
  double lifetime_fraction = 0.8;
  /// Floor between two refresh attempts, so short tokens cannot cause a refresh loop.
  duration min_refresh_interval = std::chrono::seconds(1);
  /// Random spread of the will-expire point, as a fraction of the refresh window, in [0, 1].
  /// 0 (default) is exact; 0.2 moves each point earlier by up to 20 % of the window.
  double jitter = 0.0;
  /// A token with less than this left is not handed out; callers wait for a fresh one.
  /// For tokens whose whole lifetime is shorter, half the lifetime is used instead.
  duration min_validity = std::chrono::minutes(2);
  /// First retry delay after a failed refresh; doubles per failure, with full jitter.
  duration retry_initial = std::chrono::seconds(1);
  /// Cap of the retry delay.
  duration retry_max = std::chrono::seconds(60);
  /// The longest the credential trusts a timer without re-reading the wall clock; bounds
  /// how late it notices a machine sleep or a wall-clock jump.
  duration wake_check_interval = std::chrono::seconds(30);
  /// How long a fetch (or a listener's `update_token`) may take before it counts as failed.
  duration fetch_timeout = std::chrono::seconds(30);

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field.
  void validate() const;

  /// The proactive will-expire point of a token received at `received` that expires at
  /// `expires_on`, given the last refresh attempt and a uniform random `u01` in [0, 1)
  /// (used only when `jitter > 0`). Never earlier than `last_attempt + min_refresh_interval`.
  time_point will_expire_point(time_point received, time_point expires_on, time_point last_attempt,
                               double u01 = 0.0) const noexcept;

  /// The minimum validity applied to a token with the given whole lifetime.
  duration min_validity_for(std::chrono::nanoseconds lifetime) const noexcept;

  /// The delay before retry number `failures` (1 = after the first failure), given a
  /// uniform random `u01` in [0, 1): full jitter over `retry_initial * 2^(failures-1)`
  /// capped at `retry_max`, never below `min_refresh_interval`.
  duration retry_delay(int failures, double u01) const noexcept;
};

}  // namespace credkit
