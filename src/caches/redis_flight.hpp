// credkit detail — one distributed single-flight of RedisTokenCache as a sans-io state machine.
//
// It takes events (the flight starts, a token read answered, a lock attempt answered, the
// upstream fetch finished, the store finished, the poll timer fired) with the current time,
// and returns the one action to perform next. It does no I/O, reads no clock, holds no lock
// and never calls user code: RedisTokenCache's Asio layer performs the actions and feeds the
// results back; tests drive it directly in virtual time. The algorithm and its limits are in
// docs/caches.md, "Redis single-flight algorithm".
//
// Later wake-ups (a pub/sub push that the token landed, a cluster redirect retried by the
// transport) fit as events beside the ones here: a wake-up while `waiting` is `on_timer`.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace credkit::detail {

class RedisFlight {
 public:
  using time_point = std::chrono::system_clock::time_point;

  /// When an event happens, on two timelines. `wall` is the cache's `Clock::now()`, which token
  /// expiries are compared with. `steady` carries the flight's deadlines: the driver anchors it
  /// at the flight's start (`steady == wall` there) and moves it by `Clock::elapsed()`, so a
  /// wall-clock step moves no deadline and no follower waits past `wait_timeout`. A clock that
  /// never steps passes one time point for both.
  struct Now {
    Now(time_point both) noexcept : wall(both), steady(both) {}  // NOLINT: implicit on purpose
    Now(time_point wall_time, time_point steady_time) noexcept : wall(wall_time), steady(steady_time) {}
    time_point wall;
    time_point steady;
  };

  struct Config {
    std::chrono::milliseconds min_validity{0};  ///< a read token needs more than this left
    std::chrono::milliseconds poll_interval{20};  ///< follower re-reads (±25 % jitter), > 0
    std::chrono::milliseconds wait_timeout{20000};  ///< the longest a follower waits, > 0
    std::uint64_t seed = 1;  ///< jitter
  };

  /// Where the flight is; each state waits for exactly one kind of answer.
  enum class State {
    idle,        ///< not started
    reading,     ///< first GET of the token, or a follower's poll GET
    locking,     ///< SET lock NX PX lock_ttl
    confirming,  ///< leader: GET again (another leader may have just stored it)
    fetching,    ///< leader: the upstream fetch runs under the lock
    storing,     ///< leader: SET token (after a successful fetch) and release the lock
    waiting,     ///< follower: the poll timer runs
    direct,      ///< fetching without Redis (Redis failed, or the wait timed out)
    done,        ///< the caller was completed
  };

  /// Why a flight fetches without Redis.
  enum class DirectReason {
    redis_failed,  ///< a Redis command failed (the driver logs unless Redis is merely unavailable)
    wait_timeout,  ///< waited `wait_timeout` for another instance's fetch
  };

  /// What the driver does next. Exactly one per event.
  struct Action {
    enum class Kind {
      read_token,          ///< GET the token; answer with on_read / on_failed
      try_lock,            ///< SET lock NX PX lock_ttl; answer with on_lock / on_failed
      fetch_upstream,      ///< leader fetch; answer with on_fetched
      store_and_release,   ///< leader fetch succeeded: SET the token, release the lock; answer with on_stored
      release_lock,        ///< leader fetch failed: release the lock; answer with on_stored
      wait,                ///< arm the poll timer for `until`; answer with on_timer
      complete_read,       ///< complete the caller with the token last read (fresh)
      release_then_complete_read,  ///< release the lock, then as complete_read
      complete_fetched,    ///< complete the caller with the upstream fetch's result
      fetch_direct,        ///< fetch without Redis (`why`); answer with on_fetched
      release_then_fetch_direct,   ///< release the lock, then as fetch_direct
    };
    Kind kind;
    time_point until{};  ///< wait: when the timer fires, on the steady timeline (never past the wait deadline)
    DirectReason why = DirectReason::redis_failed;  ///< fetch_direct*
  };

  explicit RedisFlight(Config config);

  /// The flight begins at `now`: its wait deadline is `now.steady + wait_timeout` (saturated).
  Action start(Now now);
  /// A GET answered: `expires_on` of the decrypted token, or none (absent, or undecryptable).
  Action on_read(Now now, std::optional<time_point> expires_on);
  /// SET NX answered: `acquired` false when another instance holds the lock.
  Action on_lock(Now now, bool acquired);
  /// A Redis command (GET or SET NX) failed.
  Action on_failed(Now now);
  /// The fetch (leader's or direct) finished, successfully or not.
  Action on_fetched(Now now, bool succeeded);
  /// The leader's store and/or release finished (their own failures are the driver's to log:
  /// an unreleased lock expires after lock_ttl).
  Action on_stored(Now now);
  /// The poll timer fired.
  Action on_timer(Now now);

  State state() const noexcept { return state_; }
  bool leader() const noexcept { return leader_; }
  /// On the steady timeline.
  time_point wait_deadline() const noexcept { return give_up_; }
  /// Upstream fetches started (leader or direct): at most one per flight.
  int fetches() const noexcept { return fetches_; }

 private:
  bool fresh(time_point now, std::optional<time_point> expires_on) const noexcept;
  Action follow(Now now);
  Action go_direct(DirectReason why);
  Action fetch_under_lock();
  void expect(State s) const;
  std::chrono::milliseconds jittered_interval() noexcept;

  Config config_;
  State state_ = State::idle;
  bool leader_ = false;  // holds the lock (from a won SET NX until it is released)
  time_point give_up_{};
  int fetches_ = 0;
  std::uint64_t rng_;
};

}  // namespace credkit::detail
