// credkit — a credential's health: one snapshot of where its token and its refreshes stand.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace credkit {

/// Where a credential stands, from best to worst. A credential is in exactly one state; when
/// several descriptions fit, the worse one wins (a failing refresh of a token below its
/// minimum validity is `below_min_validity`).
enum class HealthState {
  fresh,               ///< a token above its minimum validity, no refresh running, no failure
  refreshing,          ///< a refresh runs (or waits for `min_refresh_interval`); the token is still fresh
  retrying,            ///< the last refresh failed; the token is still fresh; a retry is due or will be asked for
  below_min_validity,  ///< the token is still valid but is no longer handed out: callers wait for a refresh
  expired,             ///< no usable token: the token expired, was invalidated, or none was ever received
  closed,              ///< `close()` was called (or the credential's io_context shut down)
};

/// The state's name, e.g. "below_min_validity".
std::string_view to_string(HealthState state) noexcept;

/// A snapshot returned by `TokenCredential::health()`. Times are local wall-clock times
/// unless a field says otherwise.
struct CredentialHealth {
  using time_point = std::chrono::system_clock::time_point;

  HealthState state = HealthState::expired;
  /// Until the token expires (service time, R16), 0 when expired or absent. Saturating.
  std::chrono::nanoseconds time_left{0};
  /// The token's expiry in service time; empty when there is no token.
  std::optional<time_point> expires_on;
  /// When the credential starts its next refresh or retry by itself (proactive mode); empty
  /// when none is scheduled (on-demand mode, closed, a refresh already running).
  std::optional<time_point> next_refresh;
  /// True when `next_refresh` is a retry after a failure.
  bool next_is_retry = false;
  /// Failed refreshes since the last token was installed.
  int consecutive_failures = 0;
  /// The last refresh failure since the last token was installed (empty code: none).
  std::error_code last_error_code;
  /// Its message, scrubbed of secrets as every credkit diagnostic is.
  std::string last_error;
  /// How long the last finished fetch took (success or failure); empty before the first.
  std::optional<std::chrono::nanoseconds> last_fetch_latency;
  /// Service time minus local wall-clock time (`TokenCredential::clock_offset()`).
  std::chrono::nanoseconds clock_offset{0};
};

}  // namespace credkit
