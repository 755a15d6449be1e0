// credkit — when to refresh, how long a token stays usable, how to back off: pure functions.
#pragma once

#include <chrono>
#include <optional>

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
  /// Floor between two refresh starts, whoever triggers them (R7), so short tokens cannot
  /// cause a refresh loop. In (0, 1 h].
  duration min_refresh_interval = std::chrono::seconds(1);
  /// Random spread of the will-expire point, as a fraction of the refresh window, in [0, 1].
  /// 0 (default) is exact; 0.2 moves each point earlier by up to 20 % of the window.
  double jitter = 0.0;
  /// A token with less than min(min_validity, half its lifetime) left is not handed out;
  /// callers wait for a fresh one (R2, R3).
  duration min_validity = std::chrono::minutes(2);
  /// First retry delay after a failed refresh; doubles per failure, with full jitter.
  duration retry_initial = std::chrono::seconds(1);
  /// Cap of the retry delay.
  duration retry_max = std::chrono::seconds(60);
  /// The longest the credential trusts a timer without re-reading the wall clock; bounds
  /// how late it notices a machine sleep or a wall-clock jump.
  duration wake_check_interval = std::chrono::seconds(30);
  /// How long a fetch (or a listener's `update_token`) may take before it counts as failed.
  /// `duration::max()`: no limit.
  duration fetch_timeout = std::chrono::seconds(30);
  /// Offsets between the local wall clock and the token service's below this are ignored
  /// (an HTTP `Date` has whole seconds, and the request takes time). `duration::max()`
  /// turns clock-skew correction off.
  duration clock_skew_tolerance = std::chrono::seconds(5);
  /// Reported service times further than this from the local clock are ignored (with a
  /// log line) as implausible.
  duration max_clock_skew = std::chrono::hours(24 * 400);

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field. The ranges:
  /// `refresh_before_expiry`, `min_validity`, `clock_skew_tolerance` >= 0; `lifetime_fraction`
  /// in (0, 1); `jitter` in [0, 1]; `min_refresh_interval` in (0, 1 h]; `retry_initial` > 0 and
  /// <= `retry_max` <= 24 h; `wake_check_interval`, `fetch_timeout`, `max_clock_skew` > 0.
  /// Every duration may be `duration::max()` where no upper bound is named (no limit).
  void validate() const;

  /// The times of one token as the policy sees them, all in service time (the token
  /// service's clock; see `TokenCredential::clock_offset`).
  struct TokenTimes {
    /// When the credential received the token.
    time_point received{};
    /// When it expires.
    time_point expires_on{};
    /// When it was issued, if the token says (JWT `iat`, Agora's issue timestamp).
    std::optional<time_point> issued_at{};
    /// True for a token delivered by a refresh (a fetch or `update_token`), false for the
    /// initial token of the options.
    bool delivered = true;
  };

  /// Rule R1 of docs/refresh-semantics.md: `expires_on - issued_at` when the token carries an
  /// issue time before its expiry, else what it had left when received; for a delivered token,
  /// never more than what it had left when received. Never negative.
  static std::chrono::nanoseconds lifetime(const TokenTimes& token) noexcept;

  /// R2: the minimum validity applied to a token with the given lifetime:
  /// `min(min_validity, lifetime / 2)`, continuous in the lifetime.
  std::chrono::nanoseconds min_validity_for(std::chrono::nanoseconds lifetime) const noexcept;

  /// R3: until when the token may be handed out: `expires_on - min_validity_for(lifetime(token))`.
  time_point fresh_until(const TokenTimes& token) const noexcept;

  /// R6: the proactive will-expire point: the schedule's point (`before_expiry` or
  /// `lifetime_fraction`), moved earlier by jitter (a uniform random `u01` in [0, 1), used
  /// only when `jitter > 0`), at least one refresh lead (`min(fetch_timeout, half the time
  /// between receipt and fresh_until)`) before `fresh_until`, and never earlier than
  /// `last_attempt + min_refresh_interval`.
  time_point will_expire_point(const TokenTimes& token, time_point last_attempt, double u01 = 0.0) const noexcept;

  /// R9: the delay before retry number `failures` (1 = after the first failure), given a
  /// uniform random `u01` in [0, 1): full jitter over `retry_initial * 2^(failures-1)`
  /// capped at `retry_max`, never below `min_refresh_interval`.
  duration retry_delay(int failures, double u01) const noexcept;
};

}  // namespace credkit
