// The sans-io state machine, driven directly: events in, actions out, no Asio, no clock.
#include <doctest/doctest.h>

#include "core/refresh_machine.hpp"

using namespace credkit;
using namespace credkit::detail;
using namespace std::chrono;
using namespace std::chrono_literals;
using M = RefreshMachine;

namespace {
const system_clock::time_point T0 = system_clock::time_point(seconds(1'800'000'000));

M make(RefreshMode mode, bool fetcher = true) {
  M::Config c;
  c.mode = mode;
  c.has_fetcher = fetcher;
  c.seed = 42;
  return M(c);
}

M::Demand demand(M& m, system_clock::time_point now, M::Actions& out) {
  auto [d, a] = m.on_demand(now);
  out = a;
  return d;
}
}  // namespace

TEST_CASE("proactive start without a token fetches at once; the token arms the will-expire point") {
  auto m = make(RefreshMode::proactive);
  auto a = m.start(T0, std::nullopt);
  CHECK(a.start_fetch);
  CHECK(a.reason == FetchReason::initial);
  CHECK(a.attempt == 1);
  CHECK(a.next_deadline == T0 + 30s);  // only the fetch timeout is pending
  a = m.on_fetch_succeeded(T0 + 1s, T0 + 1s + 60min);
  CHECK(a.fire_refreshed);
  CHECK(a.complete == M::Completion::success);
  CHECK(a.next_deadline == T0 + 1s + 50min);
  CHECK(m.fresh_until() == T0 + 1s + 58min);
}

TEST_CASE("the will-expire point fires the event and starts one fetch") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, T0 + 60min);
  auto a = m.on_timer(T0 + 50min);
  CHECK(a.fire_will_expire);
  CHECK(a.start_fetch);
  CHECK(a.reason == FetchReason::proactive);
  auto again = m.on_timer(T0 + 50min + 1s);
  CHECK_FALSE(again.start_fetch);
  CHECK_FALSE(again.fire_will_expire);
}

TEST_CASE("on-demand mode never asks for a timer while idle") {
  auto m = make(RefreshMode::on_demand);
  auto a = m.start(T0, T0 + 60min);
  CHECK_FALSE(a.next_deadline);
  M::Actions d;
  CHECK(demand(m, T0 + 10min, d) == M::Demand::use_cached);
  CHECK_FALSE(d.next_deadline);
  CHECK(demand(m, T0 + 58min + 1s, d) == M::Demand::wait);
  CHECK(d.start_fetch);
  CHECK(d.reason == FetchReason::on_demand);
  CHECK(d.next_deadline == T0 + 58min + 1s + 30s);  // the fetch timeout, while fetching only
  a = m.on_fetch_succeeded(T0 + 58min + 2s, T0 + 120min);
  CHECK_FALSE(a.next_deadline);
}

TEST_CASE("callers with a token above minimum validity are served while a refresh runs") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, T0 + 60min);
  m.on_timer(T0 + 50min);
  CHECK(m.refreshing());
  M::Actions d;
  CHECK(demand(m, T0 + 51min, d) == M::Demand::use_cached);
  CHECK(demand(m, T0 + 58min + 1s, d) == M::Demand::wait);
  CHECK_FALSE(d.start_fetch);  // joins the fetch in flight
}

TEST_CASE("failed proactive refreshes retry with growing, jittered delays; the old token stays in use") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, T0 + 60min);
  auto now = T0 + 50min;
  m.on_timer(now);
  std::vector<milliseconds> delays;
  for (int i = 1; i <= 8; ++i) {
    auto a = m.on_fetch_failed(now, true, std::nullopt);
    CHECK(a.fire_refresh_failed);
    CHECK(a.attempt == i);
    CHECK(a.complete == M::Completion::failure);
    REQUIRE(a.next_retry);
    delays.push_back(duration_cast<milliseconds>(*a.next_retry - now));
    M::Actions d;
    CHECK(demand(m, now + 1ms, d) == M::Demand::use_cached);  // still 9+ minutes of validity
    now = *a.next_retry;
    auto r = m.on_timer(now);
    CHECK(r.start_fetch);
    CHECK(r.attempt == i + 1);
  }
  for (std::size_t i = 0; i < delays.size(); ++i) {
    CHECK(delays[i] >= 1s);
    CHECK(delays[i] <= milliseconds(std::min<std::int64_t>(1000ll << i, 60000)));
  }
}

TEST_CASE("Retry-After is a lower bound on the next attempt") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, std::nullopt);
  auto a = m.on_fetch_failed(T0, true, 45s);
  REQUIRE(a.next_retry);
  CHECK(*a.next_retry >= T0 + 45s);
  M::Actions d;
  CHECK(demand(m, T0 + 10s, d) == M::Demand::fail_last_error);  // no hammering before Retry-After
  CHECK(demand(m, T0 + 46s, d) == M::Demand::wait);
}

TEST_CASE("non-retryable failures stop automatic retries; callers can still trigger one") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, std::nullopt);
  auto a = m.on_fetch_failed(T0, false, std::nullopt);
  CHECK_FALSE(a.next_retry);
  CHECK_FALSE(a.next_deadline);
  M::Actions d;
  CHECK(demand(m, T0 + 500ms, d) == M::Demand::fail_last_error);
  CHECK(demand(m, T0 + 2s, d) == M::Demand::wait);
  CHECK(d.start_fetch);
}

TEST_CASE("an expired token fires token_expired once") {
  auto m = make(RefreshMode::proactive, /*fetcher=*/false);
  m.start(T0, T0 + 5min);
  int expired = 0;
  for (auto t = T0; t < T0 + 20min; t += 10s) expired += m.on_timer(t).fire_expired;
  CHECK(expired == 1);
  M::Actions d;
  CHECK(demand(m, T0 + 20min, d) == M::Demand::use_cached);  // static: handed out even expired
}

TEST_CASE("no fetcher: will_expire listeners are asked, and update_token answers") {
  auto m = make(RefreshMode::proactive, /*fetcher=*/false);
  m.start(T0, T0 + 60min);
  m.on_listeners_changed(T0, true);
  auto a = m.on_timer(T0 + 50min);
  CHECK(a.fire_will_expire);
  CHECK_FALSE(a.start_fetch);
  CHECK(m.refreshing());
  a = m.on_update(T0 + 50min + 2s, T0 + 110min);
  CHECK(a.fire_refreshed);
  CHECK(a.complete == M::Completion::success);
  CHECK_FALSE(m.refreshing());
  CHECK(a.next_deadline == T0 + 100min);
}

TEST_CASE("a refresh that never completes times out and is retried") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, std::nullopt);
  auto a = m.on_timer(T0 + 30s);
  CHECK(a.fetch_timed_out);
  CHECK(a.cancel_fetch);
  CHECK(a.fire_refresh_failed);
  CHECK(a.complete == M::Completion::failure);
  CHECK(a.next_retry);
  // The late result of the abandoned fetch is ignored.
  auto late = m.on_fetch_succeeded(T0 + 31s, T0 + 60min);
  CHECK_FALSE(late.fire_refreshed);
}

TEST_CASE("invalidate refreshes once for the current token and ignores stale or repeated reports") {
  auto m = make(RefreshMode::on_demand);
  m.start(T0, T0 + 60min);
  const auto gen = m.token()->generation;
  auto a = m.on_invalidate(T0 + 1min, gen);
  CHECK(a.accepted);
  CHECK(a.start_fetch);
  CHECK(a.reason == FetchReason::invalidated);
  CHECK(m.fresh_until() == system_clock::time_point::min());
  for (int i = 0; i < 9; ++i) CHECK_FALSE(m.on_invalidate(T0 + 1min, gen).start_fetch);
  m.on_fetch_succeeded(T0 + 1min + 1s, T0 + 120min);
  auto stale = m.on_invalidate(T0 + 2min, gen);
  CHECK_FALSE(stale.accepted);
  CHECK_FALSE(stale.start_fetch);
}

TEST_CASE("close completes waiters with closed and stops everything") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, std::nullopt);
  auto a = m.on_close();
  CHECK(a.cancel_fetch);
  CHECK(a.complete == M::Completion::closed);
  CHECK_FALSE(a.next_deadline);
  M::Actions d;
  CHECK(demand(m, T0, d) == M::Demand::fail_closed);
  CHECK_FALSE(m.on_timer(T0 + 1h).start_fetch);
  CHECK(m.on_close().complete == M::Completion::none);  // idempotent
}

TEST_CASE("a token expired on arrival is a failure, not an install") {
  auto m = make(RefreshMode::proactive);
  m.start(T0, std::nullopt);
  auto a = m.on_fetch_succeeded(T0 + 1s, T0);
  CHECK(a.fire_refresh_failed);
  CHECK_FALSE(m.token());
}
