// credkit detail — the refresh logic as a pure state machine (sans-io).
//
// It takes events (a timer fired, a caller wants a token, a fetch finished, ...) together
// with the current time, and returns the actions to perform. It does no I/O, reads no clock,
// holds no lock and never calls user code: the Asio layer (CredentialState) does all of that,
// and tests drive this class directly. Every time here is service time (the token service's
// clock: the local wall clock plus the learned offset); the rules it implements are numbered
// in docs/refresh-semantics.md.
#pragma once

#include <credkit/core/fetcher.hpp>
#include <credkit/core/refresh_policy.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <variant>

namespace credkit::detail {

class RefreshMachine {
 public:
  using time_point = std::chrono::system_clock::time_point;

  struct Config {
    RefreshMode mode = RefreshMode::proactive;
    RefreshPolicy policy{};
    bool has_fetcher = false;
    std::uint64_t seed = 1;
  };

  /// What a caller asking for a token should do.
  enum class Demand {
    use_cached,       ///< hand out the cached token
    wait,             ///< wait for the refresh in flight (or about to start)
    fail_no_token,    ///< nothing cached and no way to get a token
    fail_last_error,  ///< the last refresh failed moments ago; report its error instead of hammering
    fail_closed,      ///< the credential is closed
  };

  /// Where the refresh is (the kind of the FetchState below; a closed machine reports idle).
  enum class RefreshState {
    idle,             ///< nothing running
    deferred,         ///< a refresh is due but waits for min_refresh_interval since the last start (R7)
    fetching,         ///< the fetcher runs
    awaiting_update,  ///< no fetcher: will_expire listeners were asked for update_token
  };

  // The fetch state: one alternative per reachable situation, each holding only the data that
  // situation has (as gRPC's TokenFetcherCredentials::FetchState), so that, e.g., a retry time
  // while a fetch runs or a fetch start time while idle cannot be written down.
  struct Idle {
    std::optional<time_point> retry_at;  ///< R9: the automatic retry after a failure (proactive mode)
  };
  struct Deferred {
    time_point until;                    ///< R7: when the refresh may start
    std::optional<time_point> retry_at;  ///< the retry it displaced, back in force if it goes idle
  };
  struct InFlight {
    time_point started;  ///< fetch_timeout counts from here
    FetchReason reason;
  };
  struct Fetching : InFlight {};        ///< the fetcher runs
  struct AwaitingUpdate : InFlight {};  ///< no fetcher: will_expire listeners were asked for update_token
  struct Closed {};                     ///< final: nothing runs, nothing starts
  using FetchState = std::variant<Idle, Deferred, Fetching, AwaitingUpdate, Closed>;

  /// How waiting callers complete.
  enum class Completion { none, success, failure, closed };

  /// The metadata of the cached token (the secret itself lives in the Asio layer).
  struct Token {
    std::uint64_t generation = 0;
    RefreshPolicy::TokenTimes times{};
    time_point fresh_until{};
    time_point will_expire_at{};
    bool will_expire_fired = false;
    bool expired_fired = false;
    bool invalidated = false;
    time_point expires_on() const noexcept { return times.expires_on; }
  };

  /// The output of one event.
  struct Actions {
    bool start_fetch = false;      ///< run the fetcher (reason, attempt below)
    bool cancel_fetch = false;     ///< abandon the running fetch
    bool fetch_timed_out = false;  ///< the refresh failed because it timed out
    FetchReason reason = FetchReason::proactive;
    int attempt = 1;  ///< start_fetch: 1 + consecutive failures; refresh_failed: failures
    bool fire_will_expire = false;
    bool fire_expired = false;
    bool fire_refreshed = false;
    bool fire_refresh_failed = false;
    std::optional<time_point> next_retry;  ///< refresh_failed: automatic retry time, if any
    Completion complete = Completion::none;
    bool publish = false;   ///< the cached token or its freshness changed
    bool accepted = false;  ///< invalidate: the report concerned the current token
    /// on_fetch_succeeded / on_update: the token was refused as expired on arrival (R4).
    bool expired_on_arrival = false;
    std::optional<time_point> next_deadline;  ///< when on_timer must run next (none: no timer)
  };

  /// What on_demand answers: what the caller should do, and the actions to perform.
  struct DemandResult {
    Demand demand;
    Actions actions;
  };

  explicit RefreshMachine(Config config);
  /// With a configuration shared between machines (shared_refresh_config); `seed` replaces
  /// the configuration's own.
  RefreshMachine(std::shared_ptr<const Config> config, std::uint64_t seed);

  Actions start(time_point now, std::optional<time_point> initial_expiry,
                std::optional<time_point> issued_at = std::nullopt);
  /// A caller wants a token: what it should do, and the actions to perform.
  DemandResult on_demand(time_point now);
  Actions on_timer(time_point now);
  /// The fetch delivered a token. One already expired on arrival (R4) fails the fetch as a
  /// retryable failure instead (`Actions::expired_on_arrival`).
  Actions on_fetch_succeeded(time_point now, time_point expires_on, std::optional<time_point> issued_at = std::nullopt);
  Actions on_fetch_failed(time_point now, bool retryable, std::optional<std::chrono::milliseconds> retry_after);
  /// update_token. A token already expired on arrival (R4) is refused and leaves no trace:
  /// only `Actions::expired_on_arrival` is set (the caller reports the refusal).
  Actions on_update(time_point now, time_point expires_on, std::optional<time_point> issued_at = std::nullopt);
  Actions on_invalidate(time_point now, std::uint64_t generation);
  Actions on_listeners_changed(time_point now, bool has_will_expire_listener);
  Actions on_close();
  /// The clock offset changed by `delta` (R16): the times the machine derived from its own
  /// "now" (last start, failure window, retry, deferral, fetch start, receipt) move with the
  /// service-time frame, so their distance from the present stays what it was. Token expiries
  /// are the service's own times and stay.
  void on_clock_shift(std::chrono::nanoseconds delta) noexcept;

  /// R4, the one statement of the rule: a token that expires at or before `now` is refused on
  /// arrival (fetch or update_token). The machine applies it itself (on_fetch_succeeded,
  /// on_update); it is public for models of the machine.
  static bool expired_on_arrival(time_point now, time_point expires_on) noexcept { return expires_on <= now; }

  const std::optional<Token>& token() const noexcept { return token_; }
  /// Until when the cached token may be handed out without refreshing (min: never).
  time_point fresh_until() const noexcept;
  const FetchState& fetch_state() const noexcept { return state_; }
  RefreshState refresh_state() const noexcept;
  bool refreshing() const noexcept { return refresh_state() != RefreshState::idle; }
  bool fetch_in_flight() const noexcept { return std::holds_alternative<Fetching>(state_); }
  bool closed() const noexcept { return std::holds_alternative<Closed>(state_); }
  bool can_refresh() const noexcept { return config_->has_fetcher || has_will_listener_; }
  int failures() const noexcept { return failures_ ? failures_->count : 0; }
  /// When the last refresh started (none before the first).
  std::optional<time_point> last_start() const noexcept { return last_start_; }
  std::optional<time_point> next_deadline() const noexcept;
  /// The configuration (its `seed` is read only on construction: the machine's own may differ).
  const Config& config() const noexcept { return *config_; }

 private:
  /// The failures since the last token was installed (none: the last refresh did not fail).
  struct FailureStreak {
    int count = 0;
    time_point not_before{};  ///< R10: no caller-triggered start before this
  };

  const InFlight* in_flight() const noexcept;
  /// The automatic retry in force (idle) or displaced by a deferral (deferred).
  std::optional<time_point> scheduled_retry() const noexcept;
  void begin_refresh(time_point now, Actions& a);
  void launch(time_point now, Actions& a);
  void install(RefreshPolicy::TokenTimes times, Actions& a);
  /// Ends the refresh in flight (started for `reason`) as failed.
  void fail(time_point now, FetchReason reason, bool retryable, std::optional<std::chrono::milliseconds> retry_after,
            Actions& a);
  bool in_failure_window(time_point now) const noexcept;
  void observe(time_point now) noexcept;
  FetchReason reason_for(time_point now) const noexcept;
  double next_random() noexcept;
  Actions finish(Actions a) const;

  std::shared_ptr<const Config> config_;  // shared between the credentials built alike
  std::optional<Token> token_;
  std::uint64_t next_generation_ = 1;
  FetchState state_ = Idle{};
  bool has_will_listener_ = false;
  std::optional<time_point> last_start_;   // R7: the last refresh start, whoever triggered it
  std::optional<FailureStreak> failures_;
  std::optional<time_point> latest_now_;   // R17: the latest time seen, to notice backward steps
  std::uint64_t rng_;
};

/// `config` (seed aside) as a shared, immutable block: the one handed out last when it is
/// equal, so that a fleet of credentials built from the same options keeps one copy of its
/// RefreshPolicy instead of one each. Thread-safe.
std::shared_ptr<const RefreshMachine::Config> shared_refresh_config(const RefreshMachine::Config& config);

}  // namespace credkit::detail
