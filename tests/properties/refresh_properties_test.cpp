// Properties of the refresh logic over generated inputs (RapidCheck): docs/refresh-semantics.md,
// P1-P8. Seeded and reproducible: ctest sets RC_PARAMS (seed, 10 000 cases); a failure prints
// a `reproduce` string to paste into RC_PARAMS. Every counterexample found becomes a named test
// in tests/core/refresh_semantics_test.cpp.
//
// Two levels: the sans-io RefreshMachine in a discrete-event simulation (fast: many events per
// case), and TokenCredential itself in virtual time (ManualClock), with a skewed service clock.
#include <doctest/doctest.h>

#include <rapidcheck.h>

#include "support/rapidcheck_defaults.hpp"

#include "core/refresh_machine.hpp"
#include "core/saturating_time.hpp"
#include "support/test_tokens.hpp"

#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono;
using namespace std::chrono_literals;
using M = detail::RefreshMachine;
using TP = system_clock::time_point;

namespace {

const TP T0 = TP(seconds(1'800'000'000));

// ---------------------------------------------------------------------------------------
// Generators

// Durations with their edges: 1 s to 25 h, with exact min_validity, twice it, +-1 ns around them.
nanoseconds gen_lifetime(const RefreshPolicy& p) {
  const auto mv = detail::saturate_cast<nanoseconds>(p.min_validity);
  return *rc::gen::oneOf(
      rc::gen::map(rc::gen::inRange<std::int64_t>(1, 25 * 3600), [](std::int64_t s) { return nanoseconds(seconds(s)); }),
      rc::gen::map(rc::gen::inRange<std::int64_t>(1'000'000'000, 25LL * 3600 * 1'000'000'000),
                   [](std::int64_t n) { return nanoseconds(n); }),
      rc::gen::elementOf(std::vector<nanoseconds>{mv, detail::sub_sat(mv, nanoseconds(1)), detail::add_sat(mv, nanoseconds(1)),
                                                  detail::add_sat(mv, mv), detail::sub_sat(detail::add_sat(mv, mv), nanoseconds(1)),
                                                  detail::add_sat(detail::add_sat(mv, mv), nanoseconds(1)),
                                                  nanoseconds(4min), nanoseconds(10min), nanoseconds(10min) + 1ns,
                                                  nanoseconds(1s), nanoseconds(24h), nanoseconds(25h)}));
}

// A policy: the defaults, or each field drawn from a range that includes its edges.
RefreshPolicy gen_policy(bool extreme, std::int64_t floor_ms = 1) {
  RefreshPolicy p;
  p.schedule = *rc::gen::element(RefreshSchedule::before_expiry, RefreshSchedule::lifetime_fraction);
  p.jitter = *rc::gen::element(0.0, 0.0, 0.1, 0.5, 1.0);
  if (!*rc::gen::inRange(0, 4)) return p;  // a quarter of the cases: the defaults
  auto ms_in = [](std::int64_t lo, std::int64_t hi) { return milliseconds(*rc::gen::inRange<std::int64_t>(lo, hi)); };
  p.refresh_before_expiry = ms_in(0, 20 * 60'000);
  p.lifetime_fraction = *rc::gen::element(0.5, 0.8, 0.9, 0.001, 0.999);
  p.min_refresh_interval = ms_in(floor_ms, 5'000);
  p.min_validity = ms_in(0, 5 * 60'000);
  p.retry_initial = ms_in(floor_ms, 5'000);
  p.retry_max = p.retry_initial + ms_in(0, 120'000);
  p.fetch_timeout = ms_in(floor_ms, 60'000);
  p.wake_check_interval = ms_in(1'000, 60'000);  // shorter ones only cost simulation time
  if (extreme) {
    // Each field at its documented limit, one at a time or several together.
    if (*rc::gen::arbitrary<bool>()) p.refresh_before_expiry = milliseconds::max();
    if (*rc::gen::arbitrary<bool>()) p.min_validity = milliseconds::max();
    if (*rc::gen::arbitrary<bool>()) p.fetch_timeout = milliseconds::max();
    if (*rc::gen::arbitrary<bool>()) p.wake_check_interval = milliseconds::max();
    if (*rc::gen::arbitrary<bool>()) p.min_refresh_interval = hours(1);
    if (*rc::gen::arbitrary<bool>()) p.min_refresh_interval = 1ms;
    if (*rc::gen::arbitrary<bool>()) p.retry_max = hours(24);
    if (*rc::gen::arbitrary<bool>()) p.clock_skew_tolerance = milliseconds::max();
    if (*rc::gen::arbitrary<bool>()) p.max_clock_skew = milliseconds::max();
  }
  p.validate();
  return p;
}

// What one fetch does.
struct Outcome {
  enum Kind { success, same_token, shorter, expired, fail_retryable, fail_fatal, hang } kind = success;
  nanoseconds latency{};
  nanoseconds lifetime = 1h;
  std::optional<nanoseconds> issued_ago;  // the token carries iat = now - issued_ago
  std::optional<milliseconds> retry_after;
};

Outcome gen_outcome(const RefreshPolicy& p, bool only_success) {
  Outcome o;
  o.kind = only_success ? Outcome::success
                        : *rc::gen::weightedElement<Outcome::Kind>({{6, Outcome::success},
                                                                    {1, Outcome::same_token},
                                                                    {1, Outcome::shorter},
                                                                    {1, Outcome::expired},
                                                                    {2, Outcome::fail_retryable},
                                                                    {1, Outcome::fail_fatal},
                                                                    {1, Outcome::hang}});
  o.latency = *rc::gen::element(0ns, nanoseconds(1ms), nanoseconds(100ms), nanoseconds(2s), nanoseconds(45s));
  o.lifetime = gen_lifetime(p);
  if (*rc::gen::inRange(0, 3) == 0) o.issued_ago = nanoseconds(*rc::gen::inRange<std::int64_t>(0, 3600)) * 1'000'000'000;
  if (o.kind == Outcome::fail_retryable && *rc::gen::arbitrary<bool>())
    o.retry_after = milliseconds(*rc::gen::element<std::int64_t>(0, 500, 5'000, 120'000, 24 * 3'600'000));
  return o;
}

// What happens between events.
struct Step {
  enum Kind { advance, jump, demand, invalidate, update } kind = advance;
  nanoseconds by{};
  nanoseconds lifetime{};
};

Step gen_step(const RefreshPolicy& p, bool jumps, bool disturb) {
  Step s;
  s.kind = *rc::gen::weightedElement(std::initializer_list<std::pair<std::size_t, Step::Kind>>{
      {4, Step::advance}, {5, Step::demand}, {jumps ? 1ul : 0ul, Step::jump}, {disturb ? 1ul : 0ul, Step::invalidate},
      {disturb ? 1ul : 0ul, Step::update}});
  s.by = *rc::gen::element(nanoseconds(1ms), nanoseconds(999ms), nanoseconds(1s), nanoseconds(30s), nanoseconds(2min),
                           nanoseconds(11min), nanoseconds(50min), nanoseconds(3h));
  if (s.kind == Step::jump && *rc::gen::arbitrary<bool>()) s.by = -s.by;
  if (s.kind == Step::jump && *rc::gen::inRange(0, 4) == 0) s.by *= 24 * 3;  // days
  s.lifetime = gen_lifetime(p);
  return s;
}

// ---------------------------------------------------------------------------------------
// The oracle: R1-R3 written again, independently of RefreshPolicy's code.

struct Issued {
  TP received;
  TP expires_on;
  std::optional<TP> issued_at;
  bool delivered;
};

nanoseconds oracle_min_validity(const RefreshPolicy& p, const Issued& t) {
  auto left = detail::sub_sat(t.expires_on, t.received);
  nanoseconds life = left;
  if (t.issued_at && *t.issued_at < t.expires_on) {
    life = detail::sub_sat(t.expires_on, *t.issued_at);
    if (t.delivered && left < life) life = left;
  }
  if (life < 0ns) life = 0ns;
  const auto cap = detail::saturate_cast<nanoseconds>(p.min_validity);
  return std::min(cap, life / 2);
}

// ---------------------------------------------------------------------------------------
// The machine in a discrete-event simulation

struct MachineSim {
  RefreshPolicy policy;
  RefreshMode mode;
  M m;
  TP now = T0;
  std::optional<TP> deadline;
  struct Pending {
    TP done_at;
    Outcome outcome;
  };
  std::optional<Pending> fetch;
  std::vector<Outcome> outcomes;  // played in order, then plain successes
  std::size_t next_outcome = 0;
  std::optional<Issued> token;     // what the sim believes is installed
  // Time that really passed: advances and forward jumps (a sleep), not backward steps. R7's
  // spacing holds in it (a backward step must not stretch the wait, R17).
  nanoseconds real{0};
  std::vector<nanoseconds> starts;
  int waiting = 0;
  int handed_out = 0;
  int waited_after_first = 0;  // Demand::wait after the first token was installed
  bool closed = false;
  bool installed_once = false;

  MachineSim(RefreshPolicy p, RefreshMode md, std::uint64_t seed)
      : policy(p), mode(md), m(M::Config{md, p, /*has_fetcher=*/true, seed}) {}

  Outcome take_outcome() {
    if (next_outcome < outcomes.size()) return outcomes[next_outcome++];
    return Outcome{};
  }

  void apply(const M::Actions& a) {
    if (closed) {
      RC_ASSERT(!a.start_fetch);  // P6
      RC_ASSERT(!a.fire_will_expire && !a.fire_expired && !a.fire_refreshed && !a.fire_refresh_failed);
      RC_ASSERT(!a.next_deadline);
    }
    if (a.cancel_fetch) fetch.reset();
    if (a.start_fetch) {
      RC_ASSERT(!fetch);  // P3: at most one in flight
      if (!starts.empty()) RC_ASSERT(real - starts.back() >= detail::saturate_cast<nanoseconds>(policy.min_refresh_interval));  // P1
      starts.push_back(real);
      Outcome o = take_outcome();
      fetch = Pending{o.kind == Outcome::hang ? TP::max() : detail::add_sat(now, o.latency), o};
    }
    if (a.complete == M::Completion::success) {
      // Waiting callers get the installed token: P2 for them.
      RC_ASSERT(token.has_value());
      RC_ASSERT(detail::sub_sat(token->expires_on, now) >= oracle_min_validity(policy, *token));
      handed_out += waiting;
      waiting = 0;
    } else if (a.complete != M::Completion::none) {
      waiting = 0;
    }
    deadline = a.next_deadline;
  }

  void complete_fetch() {
    auto p = *fetch;
    fetch.reset();
    const auto& o = p.outcome;
    switch (o.kind) {
      case Outcome::success:
      case Outcome::shorter:
      case Outcome::same_token:
      case Outcome::expired: {
        TP exp = detail::add_sat(now, o.lifetime);
        std::optional<TP> iat;
        if (o.issued_ago) iat = now - *o.issued_ago;
        if (o.kind == Outcome::same_token && token) {
          exp = token->expires_on;
          iat = token->issued_at;
        }
        if (o.kind == Outcome::shorter && token) exp = std::min(exp, detail::add_sat(now, detail::sub_sat(token->expires_on, now) / 2));
        if (o.kind == Outcome::expired) exp = now - 1s;
        if (M::expired_on_arrival(now, exp)) {
          apply(m.on_fetch_failed(now, true, std::nullopt));  // what the Asio layer does (R4)
        } else {
          token = Issued{now, exp, iat, true};
          installed_once = true;
          apply(m.on_fetch_succeeded(now, exp, iat));
        }
        break;
      }
      case Outcome::fail_retryable: apply(m.on_fetch_failed(now, true, o.retry_after)); break;
      case Outcome::fail_fatal: apply(m.on_fetch_failed(now, false, std::nullopt)); break;
      case Outcome::hang: break;
    }
  }

  // Runs timers and fetch completions due up to `until`, in time order.
  // Events simulated so far; a case that would simulate more (1 ms retries over hours) ends
  // early: its invariants held up to there, and the next case gets the time instead.
  long events = 0;
  static constexpr long kEventBudget = 200'000;
  bool exhausted() const { return events >= kEventBudget; }

  void run_until(TP until) {
    int same_instant = 0;
    TP previous = now;
    while (!exhausted()) {
      ++events;
      TP next = until;
      enum { none, timer, fetch_done } what = none;
      if (deadline && *deadline <= next) {
        next = std::max(*deadline, now);
        what = timer;
      }
      if (fetch && fetch->done_at <= next && (what == none || fetch->done_at < next)) {
        next = std::max(fetch->done_at, now);
        what = fetch_done;
      }
      if (what == none) {
        real += std::max(now, until) - now;
        now = std::max(now, until);
        return;
      }
      real += next - now;
      now = next;
      same_instant = now == previous ? same_instant + 1 : 0;
      previous = now;
      if (same_instant > 1'000) RC_FAIL("the machine keeps asking for events without time passing");
      if (what == timer) {
        deadline.reset();
        apply(m.on_timer(now));
      } else {
        complete_fetch();
      }
    }
  }

  void demand() {
    auto [d, a] = m.on_demand(now);
    if (d == M::Demand::use_cached) {
      RC_ASSERT(token.has_value());
      RC_ASSERT(detail::sub_sat(token->expires_on, now) >= oracle_min_validity(policy, *token));  // P2
      ++handed_out;
    } else if (d == M::Demand::wait) {
      ++waiting;
      if (installed_once) ++waited_after_first;
    }
    apply(a);
  }

  void step(const Step& s) {
    switch (s.kind) {
      case Step::advance: run_until(now + s.by); break;
      case Step::jump:
        // A wall-clock step: time moves without timers running in between (they catch up
        // within wake_check_interval; here, at once).
        now = now + s.by;
        if (s.by > 0ns) real += s.by;
        if (fetch && fetch->done_at != TP::max()) fetch->done_at = std::max(fetch->done_at, now);
        run_until(now);
        break;
      case Step::demand: demand(); break;
      case Step::invalidate:
        if (m.token()) apply(m.on_invalidate(now, m.token()->generation));
        break;
      case Step::update: {
        const TP exp = detail::add_sat(now, s.lifetime);
        if (M::expired_on_arrival(now, exp)) break;  // the Asio layer refuses it (R4)
        token = Issued{now, exp, std::nullopt, true};
        installed_once = true;
        apply(m.on_update(now, exp));
        break;
      }
    }
  }
};

struct MachineCase {
  RefreshPolicy policy;
  RefreshMode mode;
  std::optional<Issued> initial;
  std::vector<Outcome> outcomes;
  std::vector<Step> steps;
};

MachineCase gen_machine_case(bool extreme, bool jumps, bool disturb, bool only_success, RefreshMode mode) {
  MachineCase c;
  c.policy = gen_policy(extreme);
  c.mode = mode;
  if (*rc::gen::arbitrary<bool>()) {
    const auto left = *rc::gen::oneOf(rc::gen::just(nanoseconds(0)), rc::gen::just(nanoseconds(-5min)),
                                      rc::gen::just(nanoseconds(121s)), rc::gen::just(nanoseconds(119s)),
                                      rc::gen::just(nanoseconds(120s)), rc::gen::just(gen_lifetime(c.policy)));
    std::optional<TP> iat;
    const TP exp = detail::add_sat(T0, left);
    if (*rc::gen::arbitrary<bool>()) iat = detail::sub_sat(exp, gen_lifetime(c.policy));
    c.initial = Issued{T0, exp, iat, false};
  }
  const int n = *rc::gen::inRange(1, 12);
  for (int i = 0; i < n; ++i) c.outcomes.push_back(gen_outcome(c.policy, only_success));
  const int k = *rc::gen::inRange(1, 40);
  for (int i = 0; i < k; ++i) c.steps.push_back(gen_step(c.policy, jumps, disturb));
  return c;
}

MachineSim run_machine_case(const MachineCase& c) {
  MachineSim sim(c.policy, c.mode, 42);
  sim.outcomes = c.outcomes;
  if (c.initial) sim.token = *c.initial;
  sim.apply(sim.m.start(T0, c.initial ? std::optional<TP>(c.initial->expires_on) : std::nullopt,
                        c.initial ? c.initial->issued_at : std::nullopt));
  if (c.initial) sim.installed_once = false;  // the initial token may be stale: P4 counts from a fetch
  for (const auto& s : c.steps) {
    if (sim.exhausted()) break;
    sim.step(s);
  }
  sim.closed = true;
  sim.apply(sim.m.on_close());
  // P6: after close, every event is a no-op.
  sim.apply(sim.m.on_timer(sim.now + 1h));
  sim.apply(sim.m.on_fetch_succeeded(sim.now, sim.now + 1h));
  auto [d, a] = sim.m.on_demand(sim.now);
  RC_ASSERT(d == M::Demand::fail_closed);
  sim.apply(a);
  return sim;
}

RefreshMode gen_mode() { return *rc::gen::element(RefreshMode::proactive, RefreshMode::on_demand); }

}  // namespace

TEST_SUITE("properties") {

TEST_CASE("P1 P3 P6: fetch starts min_refresh_interval apart, one in flight, nothing after close (machine)") {
  const bool ok = rc::check("P1/P3/P6 machine", [] {
    auto c = gen_machine_case(false, true, true, false, gen_mode());
    run_machine_case(c);
  });
  CHECK(ok);
}

TEST_CASE("P2: every handed-out token has its minimum validity left (machine, with jumps)") {
  const bool ok = rc::check("P2 machine", [] {
    auto c = gen_machine_case(false, true, true, false, gen_mode());
    auto sim = run_machine_case(c);
    RC_TAG(sim.handed_out > 0 ? "handed out" : "none handed out");
  });
  CHECK(ok);
}

TEST_CASE("P4: with a fetcher that succeeds within the refresh lead, a proactive caller never waits") {
  const bool ok = rc::check("P4 machine", [] {
    auto c = gen_machine_case(false, false, false, true, RefreshMode::proactive);
    // Latencies within the lead: the lead of a token of lifetime L is min(fetch_timeout, L/4)
    // once L <= 4 min_validity; tokens of 8+ s keep min_refresh_interval out of the way.
    for (auto& o : c.outcomes) {
      o.lifetime = std::max(o.lifetime, nanoseconds(8 * c.policy.min_refresh_interval));
      o.lifetime = std::max(o.lifetime, nanoseconds(8s));
      o.issued_ago.reset();
      o.latency = std::min({o.latency, nanoseconds(c.policy.fetch_timeout) / 2, o.lifetime / 16});
    }
    c.policy.jitter = 0;  // jitter only moves the point earlier; kept out for exact leads
    MachineSim sim(c.policy, c.mode, 42);
    sim.outcomes = c.outcomes;
    sim.apply(sim.m.start(T0, std::nullopt));
    for (const auto& s : c.steps) sim.step(s);
    RC_ASSERT(sim.waited_after_first == 0);
  });
  CHECK(ok);
}

TEST_CASE("P7: extreme option values and token times never overflow and keep P1-P3 (machine)") {
  const bool ok = rc::check("P7 machine", [] {
    auto c = gen_machine_case(true, true, true, false, gen_mode());
    if (*rc::gen::arbitrary<bool>()) {
      const auto e = *rc::gen::element(TP::min(), TP::min() + 1ns, TP::max(), TP::max() - 1ns, TP{});
      c.initial = Issued{T0, e, std::nullopt, false};
    }
    run_machine_case(c);
  });
  CHECK(ok);
}

TEST_CASE("P8: minimum validity is continuous, monotone and at most half the lifetime") {
  const bool ok = rc::check("P8 policy", [] {
    const auto p = gen_policy(*rc::gen::arbitrary<bool>());
    const auto a = nanoseconds(*rc::gen::inRange<std::int64_t>(0, 100LL * 3600 * 1'000'000'000));
    const auto d = nanoseconds(*rc::gen::inRange<std::int64_t>(0, 10LL * 1'000'000'000));
    const auto mv_a = p.min_validity_for(a);
    const auto mv_b = p.min_validity_for(a + d);
    RC_ASSERT(mv_a <= a / 2);
    RC_ASSERT(mv_a <= mv_b);                  // monotone
    RC_ASSERT(mv_b - mv_a <= d / 2 + 1ns);    // continuous (Lipschitz 1/2)
    RC_ASSERT(p.min_validity_for(nanoseconds::max()) >= 0ns);
    RC_ASSERT(p.min_validity_for(nanoseconds::min()) == 0ns);
  });
  CHECK(ok);
}

TEST_CASE("P7: validate() accepts every in-range policy and names the field of every out-of-range one") {
  struct Field {
    const char* name;
    std::function<void(RefreshPolicy&, std::int64_t)> set;
    std::int64_t lo, hi;  // accepted range, in ms
  };
  const std::vector<Field> fields = {
      {"refresh_before_expiry", [](RefreshPolicy& p, std::int64_t v) { p.refresh_before_expiry = milliseconds(v); }, 0,
       std::numeric_limits<std::int64_t>::max()},
      {"min_refresh_interval", [](RefreshPolicy& p, std::int64_t v) { p.min_refresh_interval = milliseconds(v); }, 1,
       3'600'000},
      {"min_validity", [](RefreshPolicy& p, std::int64_t v) { p.min_validity = milliseconds(v); }, 0,
       std::numeric_limits<std::int64_t>::max()},
      {"retry_initial", [](RefreshPolicy& p, std::int64_t v) { p.retry_initial = milliseconds(v); }, 1, 60'000},
      {"retry_max", [](RefreshPolicy& p, std::int64_t v) { p.retry_max = milliseconds(v); }, 1'000, 86'400'000},
      {"wake_check_interval", [](RefreshPolicy& p, std::int64_t v) { p.wake_check_interval = milliseconds(v); }, 1,
       std::numeric_limits<std::int64_t>::max()},
      {"fetch_timeout", [](RefreshPolicy& p, std::int64_t v) { p.fetch_timeout = milliseconds(v); }, 1,
       std::numeric_limits<std::int64_t>::max()},
      {"clock_skew_tolerance", [](RefreshPolicy& p, std::int64_t v) { p.clock_skew_tolerance = milliseconds(v); }, 0,
       std::numeric_limits<std::int64_t>::max()},
      {"max_clock_skew", [](RefreshPolicy& p, std::int64_t v) { p.max_clock_skew = milliseconds(v); }, 1,
       std::numeric_limits<std::int64_t>::max()},
  };
  const bool ok = rc::check("P7 validate", [&] {
    const auto& f = *rc::gen::elementOf(fields);
    const auto v = *rc::gen::oneOf(
        rc::gen::elementOf(std::vector<std::int64_t>{
            f.lo, f.hi, f.lo - 1, f.hi == std::numeric_limits<std::int64_t>::max() ? 0 : f.hi + 1,
            std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(), -1, 0, 1}),
        rc::gen::arbitrary<std::int64_t>());
    RefreshPolicy p;
    f.set(p, v);
    const bool in_range = v >= f.lo && v <= f.hi;
    try {
      p.validate();
      RC_ASSERT(in_range);
    } catch (const Error& e) {
      RC_ASSERT(!in_range);
      RC_ASSERT(e.code() == make_error_code(errc::invalid_argument));
      RC_ASSERT(std::string(e.what()).find(std::string("RefreshPolicy::") + f.name) != std::string::npos);
    }
  });
  CHECK(ok);
}

// ---------------------------------------------------------------------------------------
// TokenCredential in virtual time, against a token service whose clock is skewed

namespace {

struct CredentialCase {
  RefreshPolicy policy;
  RefreshMode mode;
  nanoseconds skew;  // service clock - local clock
  std::vector<Outcome> outcomes;
  std::vector<Step> steps;
};

struct ServiceLog {
  std::map<std::string, Issued> issued;  // token string -> its times (service time)
  std::vector<nanoseconds> starts;       // elapsed virtual time of each fetch start
  std::vector<std::pair<FetchContext, std::shared_ptr<bool>>> live;
  bool reported = false;
  int calls_after_close = 0;
  bool closed = false;
  std::vector<std::shared_ptr<FetchCompletion>> hung;
};

}  // namespace

TEST_CASE("P2 P3 P5 P6: the credential under skew, jumps, failures, invalidations and cancellations") {
  const bool ok = rc::check("credential", [] {
    CredentialCase c;
    // Intervals of 100 ms and up: the 1 ms edges are the machine properties' (a 1 ms retry
    // loop over simulated hours costs the Asio layer real seconds, and proves nothing more).
    c.policy = gen_policy(false, 100);
    c.mode = gen_mode();
    c.skew = *rc::gen::element(nanoseconds(0), nanoseconds(3s), nanoseconds(2h), -nanoseconds(2h),
                               nanoseconds(24h * 30), -nanoseconds(90min), nanoseconds(6s));
    const int n = *rc::gen::inRange(1, 8);
    for (int i = 0; i < n; ++i) c.outcomes.push_back(gen_outcome(c.policy, false));
    const int k = *rc::gen::inRange(1, 25);
    for (int i = 0; i < k; ++i) c.steps.push_back(gen_step(c.policy, true, true));

    VirtualEnv env;
    auto log = std::make_shared<ServiceLog>();
    auto outcomes = std::make_shared<std::vector<Outcome>>(c.outcomes);
    auto next = std::make_shared<std::size_t>(0);
    auto clock = env.clock;
    const auto skew = c.skew;
    auto service_now = [clock, skew] { return clock->now() + skew; };
    auto forward_jumps = std::make_shared<nanoseconds>(0);  // real time = elapsed + forward jumps

    TokenCredentialOptions o;
    o.mode = c.mode;
    o.policy = c.policy;
    o.clock = env.clock;
    o.random_seed = 5;
    o.fetcher = Fetcher::async([=](FetchContext ctx, FetchCompletion done) {
      if (log->closed) ++log->calls_after_close;
      log->starts.push_back(clock->elapsed() + *forward_jumps);
      // P3: no other fetch is live (answered or given up on by the credential: cancelled).
      for (const auto& [other, answered] : log->live) RC_ASSERT(*answered || other.cancelled());
      log->live.clear();  // each was answered or given up on: it cannot become live again
      auto answered = std::make_shared<bool>(false);
      log->live.emplace_back(ctx, answered);
      const Outcome out = *next < outcomes->size() ? (*outcomes)[(*next)++] : Outcome{};
      auto d = std::make_shared<FetchCompletion>(std::move(done));
      // The answer arrives after the latency (virtual time), on the io_context.
      auto finish = [=] {
        *answered = true;
        const auto now = service_now();
        ctx.report_service_time(now);
        log->reported = true;
        switch (out.kind) {
          case Outcome::fail_retryable: d->fail(errc::network_error, "token service unreachable"); return;
          case Outcome::fail_fatal: d->fail(errc::invalid_token, "token service said no"); return;
          default: break;
        }
        TP exp = now + out.lifetime;
        if (out.kind == Outcome::expired) exp = now - 1s;
        std::optional<TP> iat;
        if (out.issued_ago) iat = now - *out.issued_ago;
        const std::string s = make_jwt(exp, "p-" + std::to_string(log->issued.size()));
        log->issued[s] = Issued{clock->now(), exp, iat, true};  // received: local, see offset_ok
        d->succeed(AccessToken{s, exp, iat});
      };
      if (out.kind == Outcome::hang) {
        log->hung.push_back(d);  // never answered: fetch_timeout must end it
        return;
      }
      if (out.latency == 0ns) {
        finish();
      } else {
        std::shared_ptr<Timer> latency_timer = clock->make_timer(ctx.executor());
        latency_timer->async_wait_for(out.latency, [finish, latency_timer](bool aborted) mutable {
          latency_timer.reset();  // the handler held the timer; the cycle ends here
          if (!aborted) finish();
        });
      }
    });
    auto cred = TokenCredential::create(env.io.get_executor(), o);
    env.drain();  // the initial fetch starts now, not after the first step's wall-clock jump
    auto offset_ok = [&](const TokenHandle& t) {
      // P2 in service time: the credential knows the offset to within clock_skew_tolerance.
      auto it = log->issued.find(t.token());
      RC_ASSERT(it != log->issued.end());
      // Once the service has reported its clock the credential knows the offset; before that it
      // can only judge by its own clock.
      const auto frame = log->reported ? skew : nanoseconds(0);
      const auto judge_now = clock->now() + frame;
      Issued judged = it->second;
      judged.received += frame;
      const auto left = it->second.expires_on - judge_now;
      RC_LOG() << "handed out " << it->first.substr(it->first.size() - 8) << " left " << left.count() << " ns\n";
      const auto slack = nanoseconds(std::min<milliseconds>(c.policy.clock_skew_tolerance, 5s));
      RC_ASSERT(left + slack >= oracle_min_validity(c.policy, judged));
    };

    struct Caller {
      int completions = 0;
      bool cancelled = false;
      boost::asio::cancellation_signal signal;
    };
    std::vector<std::unique_ptr<Caller>> callers;
    RC_LOG() << "mode " << (c.mode == RefreshMode::proactive ? "proactive" : "on_demand") << " skew "
             << duration_cast<seconds>(c.skew).count() << " s\n";
    for (const auto& o : c.outcomes)
      RC_LOG() << "outcome kind " << o.kind << " latency " << o.latency.count() << " lifetime " << o.lifetime.count()
               << (o.issued_ago ? " iat" : "") << "\n";
    for (const auto& s : c.steps) {
      RC_LOG() << "t=" << duration_cast<milliseconds>(env.elapsed()).count() << " ms step " << s.kind << " by "
               << duration_cast<milliseconds>(s.by).count() << " ms; fetches so far " << log->starts.size()
               << " offset " << duration_cast<seconds>(cred->clock_offset()).count() << " s\n";
      switch (s.kind) {
        case Step::advance: env.run_for(s.by); break;
        case Step::jump:
          env.clock->jump(s.by);
          if (s.by > 0ns) *forward_jumps += s.by;
          env.run_for(c.policy.wake_check_interval + 1ms);
          break;
        case Step::demand: {
          callers.push_back(std::make_unique<Caller>());
          auto* caller = callers.back().get();
          cred->async_get_token(boost::asio::bind_cancellation_slot(
              caller->signal.slot(), [&, caller](std::exception_ptr e, TokenHandle t) {
                ++caller->completions;
                if (!e) offset_ok(t);
              }));
          env.drain();
          if (*rc::gen::inRange(0, 8) == 0) {  // some callers give up
            caller->signal.emit(boost::asio::cancellation_type::terminal);
            env.drain();
          }
          break;
        }
        case Step::invalidate:
          if (auto t = cred->cached_token()) cred->invalidate(t);
          env.drain();
          break;
        case Step::update: {
          const auto now = service_now();
          const TP exp = now + s.lifetime;
          const std::string tok = make_jwt(exp, "u-" + std::to_string(log->issued.size()));
          log->issued[tok] = Issued{clock->now(), exp, std::nullopt, true};
          try {
            cred->update_token(AccessToken{tok, exp});
          } catch (const Error&) {
          }
          env.drain();
          break;
        }
      }
    }
    cred->close();
    log->closed = true;
    env.drain();
    for (const auto& caller : callers) RC_ASSERT(caller->completions == 1);  // P5
    env.run_for(24h);
    RC_ASSERT(log->calls_after_close == 0);  // P6
    RC_ASSERT(env.clock->pending_timers() == 0);
    // P1 in real time (elapsed plus sleeps), whatever the wall clock and the offset did.
    for (std::size_t i = 1; i < log->starts.size(); ++i)
      RC_ASSERT(log->starts[i] - log->starts[i - 1] >= nanoseconds(c.policy.min_refresh_interval));
  });
  CHECK(ok);
}

}  // TEST_SUITE
