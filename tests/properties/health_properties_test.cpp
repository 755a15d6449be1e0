// Properties of TokenCredential::health() and on_health_changed over generated histories
// (RapidCheck, seeded by RC_PARAMS as the other properties): a credential in virtual time
// driven by generated steps (time passing, fetches failing or held, invalidations, pushed
// tokens, callers), checked after every step.
//
// H1  The state agrees with the snapshot's own facts: expired exactly when no usable token is
//     left; below_min_validity only with at most min_validity left; fresh, refreshing and
//     retrying only above it; retrying exactly when failures are counted; a failure count
//     comes with its error.
// H2  A fresh credential answers a caller from its cache, without a fetch.
// H3  Transitions are delivered once each (no two equal in a row), and after the credential
//     settles the last one delivered is the current state; every state seen between steps was
//     delivered, in order.
// H4  Metrics agree with what happened: each started fetch is reported finished at most once,
//     and tokens_served counts exactly the tokens handed to callers.
#include <doctest/doctest.h>

#include <rapidcheck.h>

#include "support/rapidcheck_defaults.hpp"

#include "core/saturating_time.hpp"
#include "support/test_tokens.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

enum class Op { advance, advance_small, fail_next, hold_next, release, fail_held, invalidate, update, get, listen };

class CountingObserver : public MetricsObserver {
 public:
  void fetch_finished(std::string_view, FetchReason, std::error_code, nanoseconds latency) override {
    RC_ASSERT(latency >= 0ns);
    fetches.fetch_add(1);
  }
  std::atomic<int> fetches{0};
};

}  // namespace

TEST_SUITE("properties") {

TEST_CASE("H1-H4: health states, transitions and metrics over generated histories (credential, virtual time)") {
  const bool ok = rc::check("H1-H4 credential", [] {
    VirtualEnv env;
    const auto lifetime = seconds(*rc::gen::element(90, 300, 600, 3600, 4 * 3600));
    ScriptedFetcher fetcher(env.clock, lifetime);
    TokenCredentialOptions o;
    o.mode = *rc::gen::element(RefreshMode::proactive, RefreshMode::on_demand);
    o.clock = env.clock;
    o.random_seed = *rc::gen::inRange<std::uint64_t>(1, 1'000'000);
    o.fetcher = fetcher.fetcher();
    o.policy.fetch_timeout = seconds(*rc::gen::element(5, 30, 120));
    auto observer = std::make_shared<CountingObserver>();
    o.metrics = observer;
    auto cred = TokenCredential::create(env.io.get_executor(), o);

    std::vector<HealthState> delivered;  // since the listener was attached
    std::vector<HealthState> expected;   // the state when attached, then each distinct state sampled
    bool listening = false;
    Subscription subscription;
    const auto listen = [&] {
      delivered.clear();
      subscription = cred->on_health_changed([&](TokenCredential&, const CredentialHealth& h) {
        if (!delivered.empty()) RC_ASSERT(delivered.back() != h.state);  // H3: once per transition
        delivered.push_back(h.state);
      });
      listening = true;
      env.drain();
      expected = {cred->health().state};
    };
    env.drain();
    if (*rc::gen::arbitrary<bool>()) listen();

    std::uint64_t served = 0;
    const auto min_validity = nanoseconds(o.policy.min_validity);
    const auto ops = *rc::gen::container<std::vector<Op>>(rc::gen::element(
        Op::advance, Op::advance_small, Op::fail_next, Op::hold_next, Op::release, Op::fail_held, Op::invalidate,
        Op::update, Op::get, Op::listen));
    for (Op op : ops) {
      switch (op) {
        case Op::advance: env.run_for(nanoseconds(*rc::gen::inRange<std::int64_t>(0, 2 * lifetime.count() + 1) * 1'000'000'000)); break;
        case Op::advance_small: env.run_for(milliseconds(*rc::gen::inRange(0, 5000))); break;
        case Op::fail_next: fetcher.script(std::vector(static_cast<std::size_t>(*rc::gen::inRange(1, 4)), ScriptedFetcher::Step::fail)); break;
        case Op::hold_next: fetcher.script({ScriptedFetcher::Step::hold}); break;
        case Op::release: fetcher.release_all(); break;
        case Op::fail_held: fetcher.fail_all("held fetch failed"); break;
        case Op::invalidate:
          if (auto t = cred->cached_token()) (void)cred->invalidate(t);
          break;
        case Op::update: {
          const auto left = seconds(*rc::gen::inRange<int>(1, 3 * static_cast<int>(lifetime.count())));
          const auto exp = env.now() + left;
          cred->update_token(AccessToken{make_jwt(exp, "pushed"), exp});
          break;
        }
        case Op::get: {
          const int calls_before = fetcher.calls();
          const bool was_fresh = cred->health().state == HealthState::fresh;
          cred->async_get_token([&](std::exception_ptr e, TokenHandle t) {
            if (!e && t) ++served;
          });
          env.drain();
          if (was_fresh) RC_ASSERT(fetcher.calls() == calls_before);  // H2
          break;
        }
        case Op::listen:
          if (!listening) listen();
          break;
      }
      env.drain();
      const CredentialHealth h = cred->health();
      // H1
      if (h.state != HealthState::closed) {
        if (h.time_left == 0ns) RC_ASSERT(h.state == HealthState::expired);
        if (!h.expires_on) RC_ASSERT(h.state == HealthState::expired);
      }
      if (h.state == HealthState::below_min_validity) RC_ASSERT(h.time_left > 0ns && h.time_left <= min_validity);
      if (h.state == HealthState::fresh || h.state == HealthState::refreshing || h.state == HealthState::retrying) {
        RC_ASSERT(h.time_left > 0ns);
        RC_ASSERT(h.expires_on.has_value());
      }
      if (h.state == HealthState::retrying) RC_ASSERT(h.consecutive_failures > 0);
      if (h.state == HealthState::fresh || h.state == HealthState::refreshing) RC_ASSERT(h.consecutive_failures == 0);
      if (h.consecutive_failures > 0) RC_ASSERT(static_cast<bool>(h.last_error_code));
      if (h.next_refresh) RC_ASSERT(o.mode == RefreshMode::proactive);
      if (h.next_is_retry) RC_ASSERT(h.next_refresh.has_value());
      // H3: every state sampled while listening was delivered, in order, and the last one
      // delivered is the current state.
      if (listening) {
        if (expected.back() != h.state) expected.push_back(h.state);
        std::vector<HealthState> told{expected.front()};
        told.insert(told.end(), delivered.begin(), delivered.end());
        RC_ASSERT(told.back() == h.state);
        auto it = told.begin();
        for (HealthState s : expected) {
          it = std::find(it, told.end(), s);
          RC_ASSERT(it != told.end());
        }
      }
    }
    // H4
    RC_ASSERT(observer->fetches.load() <= fetcher.calls());
    RC_ASSERT(cred->tokens_served() == served);
    cred->close();
    RC_ASSERT(cred->health().state == HealthState::closed);
  });
  CHECK(ok);
}

}  // TEST_SUITE
