// credkit — how a TokenCredential is configured.
#pragma once

#include <credkit/core/access_token.hpp>
#include <credkit/core/clock.hpp>
#include <credkit/core/fetcher.hpp>
#include <credkit/core/metrics_observer.hpp>
#include <credkit/core/parse_token.hpp>
#include <credkit/core/refresh_policy.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace credkit {

/// Options of a `TokenCredential`. Every field has a usable default.
struct TokenCredentialOptions {
  /// The token to start with (e.g. from `parse_token`). May be expired: a static credential
  /// (no fetcher, no listener) hands it out as is.
  std::optional<AccessToken> initial_token;
  /// How to obtain new tokens; none means the app pushes them with `update_token`.
  Fetcher fetcher;
  /// Proactive (timers) or on demand (no timers).
  RefreshMode mode = RefreshMode::proactive;
  /// Thresholds: refresh point, minimum validity, back-off, timeouts.
  RefreshPolicy policy;
  /// How token strings from fetchers and `update_token` are parsed.
  ParseOptions parse;
  /// Time source; null: `Clock::system()`. Tests pass a `testing::ManualClock`.
  std::shared_ptr<Clock> clock;
  /// Seed of the jitter and back-off randomness; 0: seeded from `std::random_device`.
  std::uint64_t random_seed = 0;
  /// Receives fetches, failures, waits and invalidations for metrics; null: none. With an
  /// observer the credential also counts the tokens it serves (`tokens_served`), one relaxed
  /// atomic add per read.
  std::shared_ptr<MetricsObserver> metrics;
  /// The credential's label in metrics and health logs: 1 to 64 characters from
  /// `A-Z a-z 0-9 _ . : / -`.
  std::string metrics_name = "credential";

  /// Throws `Error(errc::invalid_argument)` naming the first out-of-range field:
  /// `policy` (see `RefreshPolicy::validate`), `parse.fallback_lifetime` in (0, 1 year],
  /// `metrics_name`.
  /// `TokenCredential::create` calls it.
  void validate() const;
};

}  // namespace credkit
