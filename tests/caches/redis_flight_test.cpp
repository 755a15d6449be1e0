// RedisTokenCache's single-flight machine (src/caches/redis_flight.hpp) in virtual time: each
// timing rule of docs/caches.md ("Redis single-flight algorithm") as an example, then
// RapidCheck properties over generated fleets of flights sharing one simulated Redis. Also the
// outage rule (retry_after_failure, src/caches/redis_outage.hpp). No Redis, no sleeps.
#include <credkit/testing/manual_clock.hpp>

#include "caches/redis_flight.hpp"
#include "caches/redis_outage.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include "support/rapidcheck_defaults.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace credkit;
using namespace std::chrono_literals;
using detail::RedisFlight;
using Kind = RedisFlight::Action::Kind;
using time_point = RedisFlight::time_point;

namespace {

/// Redis as the flights see it: one token value and one lock, each with its PX, in virtual time.
struct SimRedis {
  std::optional<time_point> token;  // the stored token's expiry
  time_point token_gone{};          // its PX: expiry - margin
  std::optional<int> lock_owner;
  time_point lock_gone{};

  std::optional<time_point> get(time_point now) const {
    return token && now < token_gone ? token : std::nullopt;
  }
  bool set_nx_lock(time_point now, int owner, std::chrono::milliseconds ttl) {
    if (lock_owner && now < lock_gone) return false;
    lock_owner = owner;
    lock_gone = now + ttl;
    return true;
  }
  /// The compare-and-delete release script.
  void release(time_point now, int owner) {
    if (lock_owner == owner && now < lock_gone) lock_owner.reset();
  }
  void set_token(time_point expires_on, std::chrono::milliseconds margin) {
    token = expires_on;
    token_gone = expires_on - margin;
  }
};

/// One caller's flight and what its driver is waiting for.
struct Caller {
  explicit Caller(RedisFlight::Config config) : machine(config), min_validity(config.min_validity) {}
  RedisFlight machine;
  std::chrono::milliseconds min_validity;
  time_point starts_at{};
  enum class Awaits { start, fetch, timer, nothing } awaits = Awaits::start;
  time_point due{};  // start, fetch end or timer
  bool leading_fetch = false;
  std::optional<time_point> last_read;
  bool fetch_ok = true;
  time_point fetched_expiry{};
  int completions = 0;
  bool got_token = false;  // completed with a token (read or fetched), not an error
  time_point completed_at{};
  std::vector<time_point> waits;  // every `wait` action's deadline
  std::vector<Kind> actions;
};

/// A fleet of flights on one key, driven in virtual time against SimRedis.
struct Fleet {
  std::shared_ptr<testing::ManualClock> clock = std::make_shared<testing::ManualClock>();
  SimRedis redis;
  std::chrono::milliseconds lock_ttl = 15s;
  std::chrono::milliseconds margin = 0ms;
  std::chrono::milliseconds fetch_time = 50ms;
  std::chrono::milliseconds token_lifetime = 1h;
  std::function<bool()> redis_fails = [] { return false; };
  std::function<bool()> fetch_fails = [] { return false; };
  std::deque<Caller> callers;  // stable references for the tests
  int leader_fetches = 0;
  int direct_fetches = 0;
  int max_concurrent_leaders = 0;
  std::vector<std::string> violations;  // invariant breaks seen while driving

  time_point now() const { return clock->now(); }

  Caller& add(RedisFlight::Config config, std::chrono::milliseconds starts_after = 0ms) {
    config.seed = callers.size() + 1;
    auto& c = callers.emplace_back(config);
    c.starts_at = now() + starts_after;
    c.due = c.starts_at;
    return c;
  }

  void complete(Caller& c, bool with_token) {
    ++c.completions;
    c.got_token = with_token;
    c.completed_at = now();
    c.awaits = Caller::Awaits::nothing;
  }

  /// Performs `a` and what follows, like RedisTokenCache's driver; Redis commands take no time.
  void perform(Caller& c, int id, RedisFlight::Action a) {
    auto& m = c.machine;
    while (true) {
      c.actions.push_back(a.kind);
      if (c.completions) violations.push_back("an action after the caller completed");
      switch (a.kind) {
        case Kind::read_token:
          if (redis_fails()) {
            a = m.on_failed(now());
          } else {
            c.last_read = redis.get(now());
            a = m.on_read(now(), c.last_read);
          }
          break;
        case Kind::try_lock:
          a = redis_fails() ? m.on_failed(now()) : m.on_lock(now(), redis.set_nx_lock(now(), id, lock_ttl));
          break;
        case Kind::fetch_upstream: {
          ++leader_fetches;
          c.leading_fetch = true;
          int leading = 0;
          for (auto& other : callers) leading += other.machine.state() == RedisFlight::State::fetching;
          max_concurrent_leaders = std::max(max_concurrent_leaders, leading);
          c.awaits = Caller::Awaits::fetch;
          c.due = now() + fetch_time;
          return;
        }
        case Kind::release_then_fetch_direct:
          redis.release(now(), id);
          [[fallthrough]];
        case Kind::fetch_direct:
          ++direct_fetches;
          c.awaits = Caller::Awaits::fetch;
          c.due = now() + fetch_time;
          return;
        case Kind::store_and_release:
          if (!redis_fails()) redis.set_token(c.fetched_expiry, margin);
          if (!redis_fails()) redis.release(now(), id);
          a = m.on_stored(now());
          break;
        case Kind::release_lock:
          if (!redis_fails()) redis.release(now(), id);
          a = m.on_stored(now());
          break;
        case Kind::wait:
          c.waits.push_back(a.until);
          if (a.until > m.wait_deadline()) violations.push_back("a wait past the wait deadline");
          if (a.until < now()) violations.push_back("a wait in the past");
          c.awaits = Caller::Awaits::timer;
          c.due = a.until;
          return;
        case Kind::release_then_complete_read:
          redis.release(now(), id);
          [[fallthrough]];
        case Kind::complete_read:
          if (!c.last_read || *c.last_read - now() <= c.min_validity)
            violations.push_back("a token without min_validity left was handed out");
          return complete(c, true);
        case Kind::complete_fetched:
          return complete(c, c.fetch_ok);
      }
    }
  }

  /// Runs every flight to completion, or for `limit` of virtual time while one is pending.
  void run(std::chrono::nanoseconds limit = 24h) {
    const auto end = now() + limit;
    while (true) {
      Caller* next = nullptr;
      int id = 0;
      for (std::size_t i = 0; i < callers.size(); ++i) {
        auto& c = callers[i];
        if (c.awaits != Caller::Awaits::nothing && (!next || c.due < next->due)) next = &c, id = static_cast<int>(i) + 1;
      }
      if (!next) return;
      if (next->due > end) {
        clock->advance(end - now());  // like ManualClock::run_for: time ends at the limit
        return;
      }
      if (next->due > now()) clock->advance(next->due - now());
      auto& c = *next;
      switch (c.awaits) {
        case Caller::Awaits::start:
          perform(c, id, c.machine.start(now()));
          break;
        case Caller::Awaits::timer:
          perform(c, id, c.machine.on_timer(now()));
          break;
        case Caller::Awaits::fetch:
          c.fetch_ok = !fetch_fails();
          c.fetched_expiry = now() + token_lifetime;
          perform(c, id, c.machine.on_fetched(now(), c.fetch_ok));
          break;
        case Caller::Awaits::nothing:
          break;
      }
    }
  }
};

}  // namespace

namespace {

RedisFlight::Config flight_config(std::chrono::milliseconds min_validity = 2min,
                                  std::chrono::milliseconds poll_interval = 20ms,
                                  std::chrono::milliseconds wait_timeout = 20s) {
  RedisFlight::Config c;
  c.min_validity = min_validity;
  c.poll_interval = poll_interval;
  c.wait_timeout = wait_timeout;
  return c;
}

constexpr int dead_owner = 99;

}  // namespace

TEST_CASE("RedisFlight: a fresh token in Redis is handed out: no lock, no fetch") {
  Fleet f;
  f.redis.set_token(f.now() + 10min, 0ms);
  auto& c = f.add(flight_config(2min));
  f.run();
  CHECK(c.actions == std::vector{Kind::read_token, Kind::complete_read});
  CHECK(c.completions == 1);
  CHECK(c.got_token);
  CHECK(f.leader_fetches + f.direct_fetches == 0);
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: a token with min_validity left or less is not used; the lock winner fetches, stores, releases") {
  Fleet f;
  f.redis.set_token(f.now() + 2min, 0ms);  // exactly min_validity left: stale
  auto& c = f.add(flight_config(2min));
  f.run();
  CHECK(c.actions == std::vector{Kind::read_token, Kind::try_lock, Kind::read_token, Kind::fetch_upstream,
                                 Kind::store_and_release, Kind::complete_fetched});
  CHECK(c.got_token);
  CHECK(f.leader_fetches == 1);
  CHECK(!f.redis.lock_owner);  // released
  REQUIRE(f.redis.token);
  CHECK(*f.redis.token == c.fetched_expiry);  // stored
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: a token that landed between the GET and the lock is used, and the lock released") {
  RedisFlight m(flight_config(2min));
  const auto t0 = testing::ManualClock::default_start();
  CHECK(m.start(t0).kind == Kind::read_token);
  CHECK(m.on_read(t0, std::nullopt).kind == Kind::try_lock);
  CHECK(m.on_lock(t0, true).kind == Kind::read_token);
  CHECK(m.leader());
  CHECK(m.on_read(t0, t0 + 10min).kind == Kind::release_then_complete_read);
  CHECK(!m.leader());
  CHECK(m.state() == RedisFlight::State::done);
  CHECK(m.fetches() == 0);
}

TEST_CASE("RedisFlight: poll interval: a follower re-reads every poll_interval +/-25 %, never past wait_timeout") {
  Fleet f;
  f.redis.lock_owner = dead_owner;  // a lock that outlives the wait
  f.redis.lock_gone = f.now() + 1h;
  const auto start = f.now();
  auto& c = f.add(flight_config(2min, 100ms, 2s));
  f.run();
  REQUIRE(c.waits.size() >= 16);
  CHECK(c.waits.size() <= 27);
  auto previous = start;
  for (std::size_t i = 0; i + 1 < c.waits.size(); ++i) {
    CHECK(c.waits[i] - previous >= 75ms);
    CHECK(c.waits[i] - previous <= 125ms);
    previous = c.waits[i];
  }
  CHECK(c.waits.back() == start + 2s);  // the last wait is clipped to wait_timeout
  CHECK(c.actions.back() == Kind::complete_fetched);
  CHECK(f.direct_fetches == 1);
  CHECK(f.leader_fetches == 0);
  CHECK(c.completed_at == start + 2s + f.fetch_time);
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: wait timeout: a follower fetches directly once wait_timeout has passed, saying why") {
  RedisFlight m(flight_config(2min, 20ms, 1s));
  const auto t0 = testing::ManualClock::default_start();
  m.start(t0);
  m.on_read(t0, std::nullopt);
  auto a = m.on_lock(t0, false);
  REQUIRE(a.kind == Kind::wait);
  CHECK(m.wait_deadline() == t0 + 1s);
  // A timer that fires late (a busy I/O thread) still re-reads and tries the lock once more.
  CHECK(m.on_timer(t0 + 1500ms).kind == Kind::read_token);
  CHECK(m.on_read(t0 + 1500ms, std::nullopt).kind == Kind::try_lock);
  a = m.on_lock(t0 + 1500ms, false);
  CHECK(a.kind == Kind::fetch_direct);
  CHECK(a.why == RedisFlight::DirectReason::wait_timeout);
  CHECK(m.on_fetched(t0 + 1600ms, true).kind == Kind::complete_fetched);
  CHECK(m.fetches() == 1);
}

TEST_CASE("RedisFlight: wall-clock steps move no deadline; freshness is judged on wall time") {
  using Now = RedisFlight::Now;
  const auto t0 = testing::ManualClock::default_start();
  for (const std::chrono::seconds step : std::initializer_list<std::chrono::seconds>{-48h, -1h, -1s, 1s, 1h, 48h}) {
    CAPTURE(step.count());
    RedisFlight m(flight_config(2min, 20ms, 1s));
    m.start(Now{t0, t0});
    m.on_read(Now{t0, t0}, std::nullopt);
    auto a = m.on_lock(Now{t0, t0}, false);
    REQUIRE(a.kind == Kind::wait);
    CHECK(m.wait_deadline() == t0 + 1s);
    // The wall clock steps while the follower waits; elapsed time moves on normally.
    const Now early{t0 + step + 100ms, t0 + 100ms};
    CHECK(m.on_timer(early).kind == Kind::read_token);
    CHECK(m.on_read(early, std::nullopt).kind == Kind::try_lock);
    a = m.on_lock(early, false);
    CHECK(a.kind == Kind::wait);  // a forward step does not end the wait early
    CHECK(a.until <= t0 + 1s);
    CHECK(m.wait_deadline() == t0 + 1s);
    const Now late{t0 + step + 1s, t0 + 1s};
    CHECK(m.on_timer(late).kind == Kind::read_token);
    // A token read now is fresh or not by wall time: valid 1 min past the stepped wall clock.
    CHECK(m.on_read(late, t0 + step + 1s + 1min).kind == Kind::try_lock);  // 2 min min_validity: stale
    a = m.on_lock(late, false);
    CHECK(a.kind == Kind::fetch_direct);  // a backward step does not stretch the wait
    CHECK(a.why == RedisFlight::DirectReason::wait_timeout);
  }
  {
    RedisFlight m(flight_config(2min, 20ms, 1s));
    m.start(Now{t0, t0});
    const Now stepped{t0 - 1h, t0 + 10ms};
    CHECK(m.on_read(stepped, t0 - 1h + 3min).kind == Kind::complete_read);  // 3 min left by wall time
  }
}

TEST_CASE("RedisFlight: poll_interval max() is one wait until wait_timeout; wait_timeout max() never gives up") {
  {
    RedisFlight m(flight_config(2min, std::chrono::milliseconds::max(), 3s));
    const auto t0 = testing::ManualClock::default_start();
    m.start(t0);
    m.on_read(t0, std::nullopt);
    const auto a = m.on_lock(t0, false);
    REQUIRE(a.kind == Kind::wait);
    CHECK(a.until == t0 + 3s);
  }
  {
    Fleet f;
    f.redis.lock_owner = dead_owner;
    f.redis.lock_gone = f.now() + 1000h;  // effectively forever
    auto& c = f.add(flight_config(2min, 1h, std::chrono::milliseconds::max()));
    CHECK(c.machine.wait_deadline() == time_point{});  // not started yet
    f.run(500h);
    CHECK(c.completions == 0);  // still waiting: no limit
    CHECK(c.machine.wait_deadline() == time_point::max());
    CHECK(f.direct_fetches == 0);
    f.redis.lock_owner.reset();  // the lock is deleted: the next poll takes over
    f.run(2h);
    CHECK(c.completions == 1);
    CHECK(f.leader_fetches == 1);
    CHECK(f.violations.empty());
  }
}

TEST_CASE("RedisFlight: lock TTL: a dead holder's lock blocks others only until it expires") {
  // Was "RedisTokenCache: a dead lock holder blocks others only until the lock TTL" with a
  // real 700 ms lock; the same rule and assertions, in virtual time.
  Fleet f;
  const auto start = f.now();
  f.redis.lock_owner = dead_owner;  // a crashed instance left its lock behind
  f.redis.lock_gone = start + 700ms;
  f.fetch_time = 5ms;
  auto& c = f.add(flight_config());
  f.run();
  CHECK(c.completions == 1);  // it completed (the live test's bounded wait for the result)
  CHECK(c.got_token);
  CHECK(f.leader_fetches + f.direct_fetches == 1);  // one token service request
  CHECK(f.leader_fetches == 1);                      // as the new lock holder
  const auto waited = c.completed_at - start;
  CHECK(waited >= 700ms);                            // it respected the lock...
  CHECK(waited < 700ms + 25ms + f.fetch_time + 1ms);  // ...and took over at the next poll after it expired
  CHECK(!f.redis.lock_owner);                        // released after the fetch
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: a holder whose lock expired mid-fetch leaves the next holder's lock alone") {
  Fleet f;
  f.lock_ttl = 200ms;
  f.fetch_time = 400ms;  // longer than the lock: a misconfiguration the release must survive
  auto& a = f.add(flight_config());
  auto& b = f.add(flight_config(), 300ms);  // arrives after a's lock expired, a still fetching
  f.run(350ms);
  CHECK(f.redis.lock_owner == 2);  // b holds the lock now
  f.run(60ms);  // a's fetch ends at 400 ms: store, then compare-and-delete with a's owner
  CHECK(a.completions == 1);
  CHECK(a.got_token);
  CHECK(f.redis.lock_owner == 2);  // still b's
  f.run();
  CHECK(b.completions == 1);
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: a failed leader fetch releases the lock and fails only its caller; a follower takes over") {
  Fleet f;
  int fetch_number = 0;
  f.fetch_fails = [&] { return ++fetch_number == 1; };
  auto& a = f.add(flight_config());
  auto& b = f.add(flight_config(), 10ms);
  f.run();
  CHECK(a.actions == std::vector{Kind::read_token, Kind::try_lock, Kind::read_token, Kind::fetch_upstream,
                                 Kind::release_lock, Kind::complete_fetched});
  CHECK(a.completions == 1);
  CHECK(!a.got_token);
  CHECK(b.completions == 1);
  CHECK(b.got_token);
  CHECK(f.leader_fetches == 2);  // b, once a released
  CHECK(b.completed_at - a.completed_at <= 25ms + f.fetch_time);
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: followers get the token the holder stored: one fetch for the fleet") {
  Fleet f;
  f.fetch_time = 100ms;
  for (int i = 0; i < 50; ++i) f.add(flight_config(), std::chrono::milliseconds(i));
  f.run();
  CHECK(f.leader_fetches == 1);
  CHECK(f.direct_fetches == 0);
  for (auto& c : f.callers) {
    CHECK(c.completions == 1);
    CHECK(c.got_token);
  }
  CHECK(f.violations.empty());
}

TEST_CASE("RedisFlight: a Redis failure means a direct fetch; a leader releases its lock first") {
  const auto t0 = testing::ManualClock::default_start();
  {
    RedisFlight m(flight_config());
    m.start(t0);
    const auto a = m.on_failed(t0);  // the first GET
    CHECK(a.kind == Kind::fetch_direct);
    CHECK(a.why == RedisFlight::DirectReason::redis_failed);
    CHECK(m.on_fetched(t0, false).kind == Kind::complete_fetched);  // its error goes to the caller
  }
  {
    RedisFlight m(flight_config());
    m.start(t0);
    m.on_read(t0, std::nullopt);
    CHECK(m.on_failed(t0).kind == Kind::fetch_direct);  // SET NX
  }
  {
    RedisFlight m(flight_config());
    m.start(t0);
    m.on_read(t0, std::nullopt);
    m.on_lock(t0, true);
    const auto a = m.on_failed(t0);  // the leader's confirming GET
    CHECK(a.kind == Kind::release_then_fetch_direct);
    CHECK(!m.leader());
    CHECK(m.on_fetched(t0, true).kind == Kind::complete_fetched);
    CHECK(m.fetches() == 1);
  }
}

TEST_CASE("RedisFlight: events the flight does not wait for are refused") {
  const auto t0 = testing::ManualClock::default_start();
  RedisFlight m(flight_config());
  CHECK_THROWS_AS(m.on_timer(t0), std::logic_error);
  m.start(t0);
  CHECK_THROWS_AS(m.start(t0), std::logic_error);
  CHECK_THROWS_AS(m.on_lock(t0, true), std::logic_error);
  CHECK_THROWS_AS(m.on_fetched(t0, true), std::logic_error);
  CHECK_THROWS_AS(m.on_stored(t0), std::logic_error);
}

TEST_CASE("RedisOutage: retry_after_failure: Redis is skipped that long after a failure; one warning per outage") {
  auto clock = std::make_shared<testing::ManualClock>();
  detail::RedisOutage outage(200ms);
  CHECK(!outage.skipping(clock->now()));
  CHECK(outage.on_failure(clock->now()));  // the outage starts: warn
  CHECK(outage.skipping(clock->now()));
  clock->advance(199ms);
  CHECK(outage.skipping(clock->now()));
  clock->advance(1ms);
  CHECK(!outage.skipping(clock->now()));  // tried again
  CHECK(!outage.on_failure(clock->now()));  // still the same outage: no second warning
  clock->advance(100ms);
  CHECK(outage.skipping(clock->now()));
  clock->advance(100ms);
  CHECK(outage.on_success());   // Redis answers: announce it once
  CHECK(!outage.on_success());
  CHECK(outage.on_failure(clock->now()));  // a new outage warns again
  clock->jump(-1h);  // the clock stepped back past the failure: try Redis rather than skip for an hour
  CHECK(!outage.skipping(clock->now()));
}

TEST_CASE("RedisOutage: retry_after_failure 0 never skips; max() skips for good after a failure") {
  auto clock = std::make_shared<testing::ManualClock>();
  detail::RedisOutage every_call(0ms), never_again(std::chrono::milliseconds::max());
  every_call.on_failure(clock->now());
  never_again.on_failure(clock->now());
  CHECK(!every_call.skipping(clock->now()));
  CHECK(never_again.skipping(clock->now()));
  clock->advance(24h * 365 * 100);
  CHECK(never_again.skipping(clock->now()));
}

namespace {

/// A generated fleet: options, arrivals, an initial value and lock, and failure rates.
struct Scenario {
  int callers;
  std::chrono::milliseconds poll, wait_timeout, lock_ttl, fetch_time, min_validity, margin, lifetime, spread;
  std::optional<std::chrono::milliseconds> initial_token;  // expiry offset from the start
  std::optional<std::chrono::milliseconds> dead_lock;      // PX of a lock left by a dead holder
  int redis_failure_percent, fetch_failure_percent;
  std::uint32_t seed;
};

std::chrono::milliseconds ms_in(long long low, long long high) {
  return std::chrono::milliseconds(*rc::gen::inRange<long long>(low, high + 1));
}

Scenario any_scenario() {
  Scenario s;
  s.callers = *rc::gen::inRange(1, 9);
  s.poll = ms_in(1, 500);
  s.wait_timeout = ms_in(1, 5000);
  s.lock_ttl = ms_in(1, 10000);
  s.fetch_time = ms_in(0, 3000);
  s.lifetime = ms_in(1000, 3600000);
  s.min_validity = ms_in(0, s.lifetime.count());
  s.margin = ms_in(0, s.lifetime.count());
  s.spread = ms_in(0, 2000);
  if (*rc::gen::arbitrary<bool>()) s.initial_token = ms_in(-3600000, 3600000);
  if (*rc::gen::arbitrary<bool>()) s.dead_lock = ms_in(0, 20000);
  s.redis_failure_percent = *rc::gen::element(0, 0, 5, 30);
  s.fetch_failure_percent = *rc::gen::element(0, 0, 10, 50);
  s.seed = *rc::gen::arbitrary<std::uint32_t>();
  return s;
}

/// Builds and runs the fleet of `s`.
void run_fleet(Fleet& f, const Scenario& s) {
  f.lock_ttl = s.lock_ttl;
  f.fetch_time = s.fetch_time;
  f.margin = s.margin;
  f.token_lifetime = s.lifetime;
  auto rng = std::make_shared<std::mt19937>(s.seed);
  f.redis_fails = [rng, p = s.redis_failure_percent] { return static_cast<int>((*rng)() % 100) < p; };
  f.fetch_fails = [rng, p = s.fetch_failure_percent] { return static_cast<int>((*rng)() % 100) < p; };
  if (s.initial_token) f.redis.set_token(f.now() + *s.initial_token, s.margin);
  if (s.dead_lock) {
    f.redis.lock_owner = dead_owner;
    f.redis.lock_gone = f.now() + *s.dead_lock;
  }
  for (int i = 0; i < s.callers; ++i)
    f.add(flight_config(s.min_validity, s.poll, s.wait_timeout),
          std::chrono::milliseconds((*rng)() % (s.spread.count() + 1)));
  f.run();
}

}  // namespace

TEST_CASE("RedisFlight properties: every caller completes once, fetches at most once, within its wait timeout") {
  const bool ok = rc::check("any fleet, any Redis and fetch failures", [] {
    const auto s = any_scenario();
    Fleet f;
    run_fleet(f, s);
    RC_ASSERT(f.violations.empty());  // no wait past the deadline, no token without min_validity left
    for (auto& c : f.callers) {
      RC_ASSERT(c.completions == 1);
      RC_ASSERT(c.machine.fetches() <= 1);
      RC_ASSERT(c.machine.state() == RedisFlight::State::done);
      RC_ASSERT(!c.machine.leader());
      // Commands take no virtual time here, so a caller stops waiting by its deadline and
      // completes at most one fetch later.
      RC_ASSERT(c.completed_at <= c.machine.wait_deadline() + s.fetch_time);
    }
    RC_ASSERT(f.leader_fetches + f.direct_fetches <= s.callers);
  });
  CHECK(ok);
}

TEST_CASE("RedisFlight properties: a healthy Redis and fetches within lock_ttl -> one fetch for the fleet") {
  const bool ok = rc::check("single-flight", [] {
    auto s = any_scenario();
    s.redis_failure_percent = 0;
    s.fetch_failure_percent = 0;
    s.dead_lock.reset();
    s.initial_token.reset();
    s.lifetime = std::chrono::hours(1);
    s.margin = ms_in(0, 60000);
    s.min_validity = ms_in(0, 120000);
    s.lock_ttl = s.fetch_time + ms_in(1, 10000);                        // the lock outlives the fetch
    s.wait_timeout = s.fetch_time + 2 * s.poll + ms_in(1, 5000);         // followers outwait it
    Fleet f;
    run_fleet(f, s);
    RC_ASSERT(f.violations.empty());
    RC_ASSERT(f.leader_fetches == 1);
    RC_ASSERT(f.direct_fetches == 0);
    RC_ASSERT(f.max_concurrent_leaders == 1);
    for (auto& c : f.callers) RC_ASSERT(c.completions == 1 && c.got_token);
  });
  CHECK(ok);
}

TEST_CASE("RedisFlight properties: while locks outlive fetches, two leaders never fetch at once") {
  const bool ok = rc::check("exclusive leaders", [] {
    auto s = any_scenario();
    s.redis_failure_percent = 0;
    s.dead_lock.reset();
    s.lock_ttl = s.fetch_time + ms_in(1, 10000);
    Fleet f;
    run_fleet(f, s);
    RC_ASSERT(f.violations.empty());
    RC_ASSERT(f.max_concurrent_leaders <= 1);
  });
  CHECK(ok);
}
