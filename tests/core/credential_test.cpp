// TokenCredential in virtual time: every timing of the refresh policy, through the Asio layer.
#include <doctest/doctest.h>

#include "support/credential_fixture.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <set>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono;
using namespace std::chrono_literals;
using Credential = SeededCredentialFixture<7>;  // the seed these schedules were checked with

namespace {

errc code_of(const std::exception_ptr& e) { return static_cast<errc>(error_code_of(e).value()); }

}  // namespace

TEST_CASE_FIXTURE(Credential, "a static token is returned as is, even expired, and token_expired still fires once") {
  auto o = options_without_fetcher();
  const AccessToken initial{make_jwt(env.now() + 5min), env.now() + 5min};
  o.initial_token = initial;
  auto cred = create(o);
  int expired = 0;
  auto sub = cred->on_token_expired([&](TokenCredential&, const TokenEvent& e) {
    ++expired;
    CHECK(e.token.token() == initial.token);
  });
  CHECK(cred->get_token().token() == initial.token);
  env.run_for(20min);
  CHECK(expired == 1);
  CHECK(cred->get_token().token() == initial.token);  // expired, still handed out
  CHECK(get_now(*cred, env).token() == initial.token);
  env.run_for(2h);
  CHECK(expired == 1);
}

TEST_CASE_FIXTURE(Credential, "no token and no way to get one is a clear no_token error") {
  auto cred = create(options_without_fetcher());
  try {
    (void)cred->get_token();
    FAIL("expected no_token");
  } catch (const Error& e) {
    CHECK(e.code() == make_error_code(errc::no_token));
  }
}

TEST_CASE_FIXTURE(Credential, "on demand: the first fetch is lazy, and no timer is ever armed while idle") {
  auto cred = create(RefreshMode::on_demand);
  env.run_for(10min);
  CHECK(fetcher.calls() == 0);
  CHECK(env.clock->pending_timers() == 0);
  auto t = get_now(*cred, env);
  CHECK(fetcher.calls() == 1);
  CHECK(fetcher.history()[0].reason == FetchReason::initial);
  CHECK(env.clock->pending_timers() == 0);
  env.run_for(57min);
  CHECK(get_now(*cred, env) == t);  // 3 min left: still above the 2 min minimum validity
  CHECK(fetcher.calls() == 1);
  env.run_for(2min);
  auto t2 = get_now(*cred, env);  // 1 min left: fetch
  CHECK(fetcher.calls() == 2);
  CHECK(fetcher.history()[1].reason == FetchReason::on_demand);
  CHECK_FALSE(t2 == t);
  CHECK(env.clock->pending_timers() == 0);
}

TEST_CASE_FIXTURE(Credential, "proactive: a 60-minute token is refreshed at 50 minutes and again at 100") {
  auto cred = create();
  int will_expire = 0, refreshed = 0;
  auto s1 = cred->on_token_will_expire([&](TokenCredential&, const TokenEvent&) { ++will_expire; });
  auto s2 = cred->on_token_refreshed([&](TokenCredential&, const TokenEvent&) { ++refreshed; });
  env.run_for(1s);
  REQUIRE(fetcher.calls() == 1);  // initial fetch at once
  env.run_for(110min);
  auto h = fetcher.history();
  REQUIRE(h.size() == 3);
  CHECK(h[0].elapsed == 0s);
  CHECK(h[1].elapsed == 50min);
  CHECK(h[1].reason == FetchReason::proactive);
  CHECK(h[2].elapsed == 100min);
  CHECK(will_expire == 2);
  CHECK(refreshed >= 2);  // the first refresh may precede the subscription
}

TEST_CASE_FIXTURE(Credential, "proactive: a 20-minute token is refreshed at 10 minutes") {
  fetcher.set_lifetime(20min);
  auto cred = create();
  env.run_for(25min);
  auto h = fetcher.history();
  REQUIRE(h.size() >= 3);
  CHECK(h[1].elapsed == 10min);
  CHECK(h[2].elapsed == 20min);
}

TEST_CASE_FIXTURE(Credential, "short tokens back off by halves, a refresh lead before fresh_until, a 1 s floor: no refresh loop") {
  const auto fixed = env.now() + 8min;  // the service keeps returning a token that ends at the same time
  fetcher.set_fixed_expiry(fixed);
  auto cred = create();
  env.run_for(8min - 1ms);
  auto h = fetcher.history();
  REQUIRE(h.size() >= 8);
  // Half of what is left (R6): 4 min. The next token has 4 min left and stops being fresh
  // after 2 min (R2), so the point moves a 30 s lead before that: 90 s. Then 2.5 min left,
  // fresh for 75 s, point 45 s; then 1.75 min left, fresh for 52.5 s, lead 26.25 s ... down to the 1 s floor.
  std::vector<nanoseconds> gaps;
  for (std::size_t i = 1; i < h.size(); ++i) gaps.push_back(h[i].elapsed - h[i - 1].elapsed);
  CHECK(gaps[0] == 4min);
  CHECK(gaps[1] == 90s);
  CHECK(gaps[2] == 45s);
  CHECK(gaps[3] == 26250ms);
  for (auto g : gaps) CHECK(g >= 1s);
  CHECK(gaps.back() == 1s);
  // 8 minutes of a token that never gets longer: bounded by halving + the floor, not a loop.
  CHECK(h.size() < 30);
}

TEST_CASE_FIXTURE(Credential, "10 000 concurrent async callers share one fetch") {
  fetcher.script({ScriptedFetcher::Step::hold});
  auto cred = create(RefreshMode::on_demand);
  int ok = 0;
  std::set<const AccessToken*> distinct;
  for (int i = 0; i < 10000; ++i) {
    cred->async_get_token([&](std::exception_ptr e, TokenHandle t) {
      CHECK_FALSE(e);
      ++ok;
      distinct.insert(t.shared().get());
    });
  }
  env.drain();
  CHECK(fetcher.calls() == 1);
  CHECK(fetcher.held() == 1);
  CHECK(ok == 0);
  fetcher.release_all();
  env.drain();
  CHECK(ok == 10000);
  CHECK(distinct.size() == 1);  // everyone got the same token
  CHECK(fetcher.calls() == 1);
}

TEST_CASE_FIXTURE(Credential, "a token already expired on arrival is an error that names it") {
  auto o = options_without_fetcher(RefreshMode::on_demand);
  auto clock = env.clock;
  o.fetcher = Fetcher::async([clock](FetchContext, FetchCompletion done) {
    done.succeed(AccessToken{make_jwt(clock->now() - 1s), clock->now() - 1s});
  });
  auto cred = create(o);
  auto e = get_error_now(*cred, env);
  REQUIRE(e);
  CHECK(code_of(e) == errc::token_expired_on_arrival);
  CHECK(message_of(e).find("already expired") != std::string::npos);
}

TEST_CASE_FIXTURE(Credential, "an empty or malformed fetched token is an error") {
  auto o = options_without_fetcher(RefreshMode::on_demand);
  int n = 0;
  o.fetcher = Fetcher::async([&n](FetchContext, FetchCompletion done) {
    if (n++ == 0) {
      done.succeed(std::string("not.a.real.token"));
    } else {
      done.succeed(AccessToken{"", std::chrono::system_clock::time_point::max()});
    }
  });
  o.policy.min_refresh_interval = 1ms;
  auto cred = create(o);
  CHECK(code_of(get_error_now(*cred, env)) == errc::invalid_token);
  env.run_for(1s);
  CHECK(code_of(get_error_now(*cred, env)) == errc::invalid_token);
}

TEST_CASE_FIXTURE(Credential, "a fetcher error reaches callers with its cause, is reported, and is retried with back-off") {
  fetcher.script({ScriptedFetcher::Step::fail, ScriptedFetcher::Step::fail, ScriptedFetcher::Step::fail});
  auto cred = create();
  std::vector<TokenEvent> failures;
  auto sub = cred->on_refresh_failed([&](TokenCredential&, const TokenEvent& e) { failures.push_back(e); });

  // The initial fetch (started at creation) fails; a caller arriving now gets its error.
  env.drain();
  auto e = get_error_now(*cred, env);
  REQUIRE(e);
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    CHECK(err.code() == make_error_code(errc::fetch_failed));
    CHECK(std::string(err.what()).find("token service unavailable") != std::string::npos);
    REQUIRE(err.cause());
    CHECK(message_of(err.cause()) == "token service unavailable");
  }
  env.run_for(2min);
  auto h = fetcher.history();
  REQUIRE(h.size() == 4);  // three failures, then success
  CHECK(h[1].attempt == 2);
  CHECK(h[2].attempt == 3);
  CHECK(h[3].attempt == 4);
  CHECK(h[1].elapsed - h[0].elapsed >= 1s);
  CHECK(h[1].elapsed - h[0].elapsed <= 1s);  // first retry: within [1 s floor, 1 s]
  CHECK(h[2].elapsed - h[1].elapsed <= 2s);
  CHECK(h[3].elapsed - h[2].elapsed <= 4s);
  REQUIRE(failures.size() >= 2);
  CHECK(failures.back().attempt >= 2);
  CHECK(failures.back().next_retry.has_value());
  CHECK(failures.back().code == make_error_code(errc::fetch_failed));
  CHECK(get_now(*cred, env));
}

TEST_CASE_FIXTURE(Credential, "a failed proactive refresh keeps the old token in use while retrying") {
  auto cred = create();
  env.run_for(1s);
  auto first = cred->get_token();
  fetcher.script({ScriptedFetcher::Step::fail, ScriptedFetcher::Step::fail, ScriptedFetcher::Step::fail,
                  ScriptedFetcher::Step::fail});
  env.run_for(50min);
  CHECK(cred->get_token() == first);  // refresh failing, 9+ minutes left
  env.run_for(5min);
  CHECK_FALSE(cred->get_token() == first);  // a retry succeeded
}

TEST_CASE_FIXTURE(Credential, "no fetcher: a token_will_expire listener renews with update_token") {
  auto o = options_without_fetcher();
  o.initial_token = AccessToken{make_jwt(env.now() + 60min), env.now() + 60min};
  auto clock = env.clock;
  auto cred = create(o);
  std::vector<nanoseconds> renewals;
  auto sub = cred->on_token_will_expire([&](TokenCredential& c, const TokenEvent& e) {
    renewals.push_back(clock->elapsed());
    CHECK(e.token);
    c.update_token(make_jwt(clock->now() + 60min));  // the string form: expiry parsed from the JWT
  });
  env.run_for(101min);
  REQUIRE(renewals.size() == 2);
  CHECK(renewals[0] == 50min);
  CHECK(renewals[1] == 100min);
  CHECK(cred->get_token().expires_on() > env.now() + 40min);
}

TEST_CASE_FIXTURE(Credential, "update_token completes waiting callers and rejects expired tokens") {
  auto cred = create(options_without_fetcher(RefreshMode::on_demand));
  auto sub = cred->on_token_will_expire([](TokenCredential&, const TokenEvent&) {});
  TokenHandle got;
  cred->async_get_token([&](std::exception_ptr e, TokenHandle t) {
    CHECK_FALSE(e);
    got = t;
  });
  env.drain();
  CHECK_FALSE(got);
  CHECK_THROWS_AS(cred->update_token(AccessToken{"x0123456789abcdef", env.now() - 1s}), Error);
  cred->update_token(AccessToken{"x0123456789abcdefg", env.now() + 10min});
  env.drain();
  REQUIRE(got);
  CHECK(got.token() == "x0123456789abcdefg");
}

TEST_CASE_FIXTURE(Credential, "a listener-driven refresh that gets no update times out and retries") {
  auto cred = create(options_without_fetcher());
  int asked = 0, failed = 0;
  auto s1 = cred->on_token_will_expire([&](TokenCredential&, const TokenEvent&) { ++asked; });
  auto s2 = cred->on_refresh_failed([&](TokenCredential&, const TokenEvent& e) {
    ++failed;
    CHECK(e.code == make_error_code(errc::fetch_timeout));
  });
  env.run_for(100s);
  CHECK(asked >= 2);
  CHECK(failed >= 1);
}

TEST_CASE_FIXTURE(Credential, "close during a fetch completes waiters with credential_closed; the late result is harmless") {
  fetcher.script({ScriptedFetcher::Step::hold});
  auto cred = create(RefreshMode::on_demand);
  std::exception_ptr error;
  cred->async_get_token([&](std::exception_ptr e, TokenHandle) { error = e; });
  env.drain();
  REQUIRE(fetcher.held() == 1);
  cred->close();
  cred->close();  // idempotent
  env.drain();
  REQUIRE(error);
  CHECK(code_of(error) == errc::credential_closed);
  fetcher.release_all();  // completes after close
  env.drain();
  CHECK(code_of(get_error_now(*cred, env)) == errc::credential_closed);
  CHECK_THROWS_AS(cred->update_token(AccessToken{"x0123456789abcdefg", env.now() + 1h}), Error);
  CHECK(cred->is_closed());
  // No work left: run() returns.
  env.io.restart();
  env.io.run();
  CHECK(env.clock->pending_timers() == 0);
}

TEST_CASE_FIXTURE(Credential, "a fetch that completes after the credential is destroyed is harmless") {
  fetcher.script({ScriptedFetcher::Step::hold});
  auto o = options(RefreshMode::on_demand);
  std::exception_ptr error;
  {
    auto cred = create(o);
    cred->async_get_token([&](std::exception_ptr e, TokenHandle) { error = e; });
    env.drain();
  }
  env.drain();
  CHECK(code_of(error) == errc::credential_closed);
  fetcher.release_all();
  env.drain();
}

TEST_CASE_FIXTURE(Credential, "a handler may call close(), and events after it stop") {
  auto cred = create();
  int will = 0;
  auto sub = cred->on_token_will_expire([&](TokenCredential& c, const TokenEvent&) {
    ++will;
    c.close();
    CHECK(c.is_closed());
  });
  env.run_for(3h);
  CHECK(will == 1);
  CHECK(cred->is_closed());
  CHECK(env.clock->pending_timers() == 0);
}

TEST_CASE_FIXTURE(Credential, "a handler may call any member: get_token with a fresh token, cached_token, invalidate") {
  auto cred = create();
  int seen = 0;
  auto sub = cred->on_token_refreshed([&](TokenCredential& c, const TokenEvent& e) {
    ++seen;
    CHECK(c.get_token() == e.token);
    CHECK(c.cached_token() == e.token);
  });
  env.run_for(1s);
  CHECK(seen == 1);
}

TEST_CASE_FIXTURE(Credential, "get_token that would have to wait on the credential's own executor fails with would_deadlock") {
  fetcher.script({ScriptedFetcher::Step::hold});
  auto cred = create(RefreshMode::on_demand);
  bool checked = false;
  boost::asio::post(env.io, [&] {
    try {
      (void)cred->get_token();
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::would_deadlock));
      checked = true;
    }
  });
  env.drain();
  CHECK(checked);
}

TEST_CASE_FIXTURE(Credential, "a throwing listener is caught and logged; other listeners still run") {
  LogCapture logs;
  auto cred = create();
  int second = 0;
  auto s1 = cred->on_token_will_expire([](TokenCredential&, const TokenEvent&) { throw std::runtime_error("boom"); });
  auto s2 = cred->on_token_will_expire([&](TokenCredential&, const TokenEvent&) { ++second; });
  env.run_for(51min);
  CHECK(second == 1);
  bool logged = false;
  for (auto& [level, line] : logs.lines()) logged |= level == LogLevel::error && line.find("boom") != std::string::npos;
  CHECK(logged);
  CHECK(fetcher.calls() == 2);  // the refresh went ahead
}

TEST_CASE_FIXTURE(Credential, "subscriptions are RAII: a reset listener is not called again") {
  auto o = options();
  auto cred = create(o);
  int calls = 0;
  {
    auto sub = cred->on_token_will_expire([&](TokenCredential&, const TokenEvent&) { ++calls; });
    env.run_for(51min);
    CHECK(calls == 1);
  }
  env.run_for(60min);
  CHECK(calls == 1);
  Subscription outlives;
  {
    auto c2 = create(o);
    outlives = c2->on_token_refreshed([](TokenCredential&, const TokenEvent&) {});
  }
  outlives.reset();  // after the credential is gone: harmless
}

TEST_CASE_FIXTURE(Credential, "machine sleep and wall-clock jumps are noticed within the wake-check interval") {
  auto cred = create();
  env.run_for(1s);
  REQUIRE(fetcher.calls() == 1);
  env.run_for(10min);
  // The machine sleeps for 55 minutes: wall time moves, elapsed (timer) time does not.
  env.clock->jump(55min);
  int expired = 0;
  auto sub = cred->on_token_expired([&](TokenCredential&, const TokenEvent&) { ++expired; });
  env.run_for(29s);  // after waking, the credential re-reads the wall clock within 30 s
  CHECK(fetcher.calls() == 2);
  CHECK(fetcher.history()[1].reason == FetchReason::expired);
  CHECK(expired == 1);
  // A backwards step just delays: no extra fetch, no crash.
  env.clock->jump(-2h);
  env.run_for(2min);
  CHECK(fetcher.calls() == 2);
}

TEST_CASE_FIXTURE(Credential, "get_token after a wake with an expired token fetches instead of handing it out") {
  auto cred = create();
  env.run_for(1s);
  auto old = cred->cached_token();
  env.clock->jump(2h);  // no timer has fired yet
  auto fresh = get_now(*cred, env);
  CHECK_FALSE(fresh == old);
  CHECK(fresh.expires_on() > env.now());
}

TEST_CASE_FIXTURE(Credential, "10 clients invalidating the same rejected token cause one fetch; a stale report none") {
  auto cred = create(RefreshMode::on_demand);
  auto rejected = get_now(*cred, env);
  REQUIRE(fetcher.calls() == 1);
  int accepted = 0;
  for (int i = 0; i < 10; ++i) accepted += cred->invalidate(rejected);
  CHECK(accepted == 1);
  env.drain();
  CHECK(fetcher.calls() == 1);  // R7: not within min_refresh_interval (1 s) of the first fetch
  env.run_for(1s);
  CHECK(fetcher.calls() == 2);
  CHECK(fetcher.history()[1].reason == FetchReason::invalidated);
  auto fresh = get_now(*cred, env);
  CHECK_FALSE(fresh == rejected);
  CHECK_FALSE(cred->invalidate(rejected));  // stale
  env.drain();
  CHECK(fetcher.calls() == 2);
  CHECK_FALSE(cred->invalidate(std::string_view("some-other-token-entirely")));
}

TEST_CASE_FIXTURE(Credential, "the lifetime-fraction schedule refreshes at 80 % like Agora Chat") {
  fetcher.set_lifetime(100min);
  auto o = options();
  o.policy.schedule = RefreshSchedule::lifetime_fraction;
  auto cred = create(o);
  env.run_for(170min);
  auto h = fetcher.history();
  REQUIRE(h.size() == 3);
  CHECK(h[1].elapsed == 80min);
  CHECK(h[2].elapsed == 160min);
}

TEST_CASE_FIXTURE(Credential, "a fetcher that never answers times out with fetch_timeout and is cancelled") {
  std::atomic<bool> saw_cancel{false};
  auto o = options_without_fetcher(RefreshMode::on_demand);
  std::vector<FetchCompletion> kept;
  o.fetcher = Fetcher::async([&](FetchContext ctx, FetchCompletion done) {
    ctx.cancellation_slot().assign([&](boost::asio::cancellation_type) { saw_cancel = true; });
    kept.push_back(std::move(done));
  });
  auto cred = create(o);
  std::exception_ptr error;
  cred->async_get_token([&](std::exception_ptr e, TokenHandle) { error = e; });
  env.run_for(31s);
  REQUIRE(error);
  CHECK(code_of(error) == errc::fetch_timeout);
  CHECK(saw_cancel);
  kept.clear();  // dropping the completions now is harmless
  env.drain();
}

TEST_CASE_FIXTURE(Credential, "an async fetcher that drops its completion fails the fetch instead of hanging") {
  auto o = options_without_fetcher(RefreshMode::on_demand);
  o.fetcher = Fetcher::async([](FetchContext, FetchCompletion) {});
  auto cred = create(o);
  CHECK(code_of(get_error_now(*cred, env)) == errc::fetcher_abandoned);
}

TEST_CASE_FIXTURE(Credential, "a fetcher that throws synchronously fails the fetch with its exception as cause") {
  auto o = options_without_fetcher(RefreshMode::on_demand);
  o.fetcher = Fetcher::async([](FetchContext, FetchCompletion) { throw std::logic_error("misconfigured"); });
  auto cred = create(o);
  auto e = get_error_now(*cred, env);
  CHECK(code_of(e) == errc::fetch_failed);
  CHECK(message_of(e).find("misconfigured") != std::string::npos);
}

TEST_CASE_FIXTURE(Credential, "jitter spreads the refreshes of many credentials") {
  auto o = options_without_fetcher();
  o.policy.jitter = 1.0;
  const auto expiry = env.now() + 60min;
  std::vector<std::shared_ptr<TokenCredential>> creds;
  std::vector<nanoseconds> times;
  auto clock = env.clock;
  for (int i = 0; i < 200; ++i) {
    o.random_seed = 1000 + i;
    o.initial_token = AccessToken{make_jwt(expiry), expiry};
    o.fetcher = Fetcher::async([&times, clock](FetchContext, FetchCompletion done) {
      times.push_back(clock->elapsed());
      done.succeed(AccessToken{"tok0123456789abcdef", clock->now() + 60min});
    });
    creds.push_back(create(o));
  }
  env.run_for(51min);
  REQUIRE(times.size() == 200);
  auto [mn, mx] = std::minmax_element(times.begin(), times.end());
  CHECK(*mn >= 40min);
  CHECK(*mx <= 50min);
  CHECK(*mx - *mn > 8min);  // spread over most of the 10 min window
}
