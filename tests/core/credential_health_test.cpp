// TokenCredential::health(), on_health_changed and the metrics observer hooks, in virtual time.
// The generated-sequence properties of the same rules are in tests/properties/health_properties_test.cpp.
#include <doctest/doctest.h>

#include "support/credential_fixture.hpp"
#include "support/log_capture.hpp"

#include <mutex>
#include <string>
#include <vector>

using namespace credkit;
using namespace credkit::test;
using namespace std::chrono;
using namespace std::chrono_literals;
using Credential = SeededCredentialFixture<11>;

namespace {

// Records every health transition a credential delivers.
struct HealthLog {
  std::vector<HealthState> states;
  std::vector<CredentialHealth> snapshots;
  Subscription subscription;

  void attach(TokenCredential& cred) {
    subscription = cred.on_health_changed([this](TokenCredential&, const CredentialHealth& h) {
      states.push_back(h.state);
      snapshots.push_back(h);
    });
  }
};

// Records what a credential reports to its metrics observer.
class RecordingObserver : public MetricsObserver {
 public:
  struct Fetch {
    std::string name;
    FetchReason reason;
    std::error_code result;
    nanoseconds latency;
  };
  void credential_created(std::string_view name, std::weak_ptr<TokenCredential> credential) override {
    std::lock_guard l(m);
    created.emplace_back(name);
    last_credential = std::move(credential);
  }
  void fetch_finished(std::string_view name, FetchReason reason, std::error_code result, nanoseconds latency) override {
    std::lock_guard l(m);
    fetches.push_back({std::string(name), reason, result, latency});
  }
  void refresh_failed(std::string_view, std::error_code code) override {
    std::lock_guard l(m);
    failures.push_back(code);
  }
  void invalidated(std::string_view) override {
    std::lock_guard l(m);
    ++invalidations;
  }
  void caller_waited(std::string_view, nanoseconds waited, std::error_code result) override {
    std::lock_guard l(m);
    waits.emplace_back(waited, result);
  }

  std::mutex m;
  std::vector<std::string> created;
  std::weak_ptr<TokenCredential> last_credential;
  std::vector<Fetch> fetches;
  std::vector<std::error_code> failures;
  int invalidations = 0;
  std::vector<std::pair<nanoseconds, std::error_code>> waits;
};

}  // namespace

TEST_CASE_FIXTURE(Credential, "health: a proactive credential's life, state by state, each transition once") {
  fetcher.set_lifetime(60min);  // default policy: will expire at 50 min, min validity 2 min
  auto cred = create();
  HealthLog log;
  log.attach(*cred);
  CHECK(cred->health().state == HealthState::expired);  // no token yet: the initial fetch runs
  env.drain();
  CHECK(cred->health().state == HealthState::fresh);
  CHECK(log.states == std::vector{HealthState::fresh});
  const auto h = cred->health();
  CHECK(h.time_left == 60min);
  CHECK(h.expires_on == env.now() + 60min);
  REQUIRE(h.next_refresh);
  CHECK(*h.next_refresh == env.now() + 50min);
  CHECK_FALSE(h.next_is_retry);
  CHECK(h.consecutive_failures == 0);
  CHECK(h.last_error.empty());
  REQUIRE(h.last_fetch_latency);
  CHECK(*h.last_fetch_latency == 0ns);

  // The refresh at 50 min is held: refreshing, then fresh again when it lands.
  fetcher.script({ScriptedFetcher::Step::hold});
  env.run_for(50min);
  CHECK(cred->health().state == HealthState::refreshing);
  CHECK_FALSE(cred->health().next_refresh);  // a refresh already runs
  env.run_for(3s);
  fetcher.release_all();
  env.drain();
  CHECK(cred->health().state == HealthState::fresh);
  REQUIRE(cred->health().last_fetch_latency);
  CHECK(*cred->health().last_fetch_latency == 3s);
  CHECK(log.states == std::vector{HealthState::fresh, HealthState::refreshing, HealthState::fresh});

  // Every later refresh fails: retrying with the old token, then below minimum validity at
  // expiry - 2 min, then expired, each noticed on time by the timer.
  fetcher.script(std::vector(100, ScriptedFetcher::Step::fail));
  env.run_for(50min);
  auto r = cred->health();
  CHECK(r.state == HealthState::retrying);
  CHECK(r.consecutive_failures >= 1);
  CHECK(r.last_error_code == make_error_code(errc::fetch_failed));
  CHECK(r.last_error.find("token service unavailable") != std::string::npos);
  REQUIRE(r.next_refresh);
  CHECK(r.next_is_retry);
  const auto expiry = *r.expires_on;
  env.run_for(expiry - 2min - 1ns - env.now());
  CHECK(cred->health().state == HealthState::retrying);
  env.run_for(1ns);
  CHECK(cred->health().state == HealthState::below_min_validity);
  env.run_for(2min);
  CHECK(cred->health().state == HealthState::expired);
  CHECK(cred->health().time_left == 0ns);
  // Once a refresh has failed, the retries that run are "retrying", not "refreshing": the log
  // holds exactly these transitions.
  const std::vector expected{HealthState::fresh,      HealthState::refreshing, HealthState::fresh,
                             HealthState::refreshing, HealthState::retrying,   HealthState::below_min_validity,
                             HealthState::expired};
  CHECK(log.states == expected);
  for (std::size_t i = 0; i < log.snapshots.size(); ++i) CHECK(log.snapshots[i].state == log.states[i]);

  cred->close();
  CHECK(cred->health().state == HealthState::closed);
  env.drain();
  CHECK(log.states.size() == expected.size());  // close releases listeners: no "closed" delivery
}

TEST_CASE_FIXTURE(Credential, "health: last_error is scrubbed of the token a fetcher's exception quotes") {
  auto cred = create();
  env.drain();
  const std::string secret = cred->get_token().token();
  auto o = options();
  o.initial_token = AccessToken{secret, env.now() + 60min};
  o.fetcher = Fetcher::async([secret](FetchContext, FetchCompletion done) {
    done.fail(std::make_exception_ptr(std::runtime_error("service said no to " + secret)));
  });
  auto failing = create(o);
  env.run_for(51min);
  const auto h = failing->health();
  CHECK(h.state == HealthState::retrying);
  CHECK(h.last_error.find("service said no") != std::string::npos);
  CHECK(h.last_error.find(secret) == std::string::npos);
}

TEST_CASE_FIXTURE(Credential, "health: an invalidated token is expired until the refresh lands") {
  fetcher.set_lifetime(60min);
  auto cred = create();
  env.drain();
  HealthLog log;
  log.attach(*cred);
  fetcher.script({ScriptedFetcher::Step::hold});
  CHECK(cred->invalidate(cred->get_token()));
  CHECK(cred->health().state == HealthState::expired);
  env.run_for(1s);  // the refresh waits for min_refresh_interval after the initial fetch (R7)
  CHECK(fetcher.held() == 1);
  fetcher.release_all();
  env.drain();
  CHECK(cred->health().state == HealthState::fresh);
  CHECK(log.states == std::vector{HealthState::expired, HealthState::fresh});
}

TEST_CASE_FIXTURE(Credential, "health: on demand arms no timer without a health listener, and one per time boundary with it") {
  fetcher.set_lifetime(10min);  // min validity 2 min: below it at 8 min
  auto cred = create(RefreshMode::on_demand);
  (void)get_now(*cred, env);
  CHECK(env.clock->pending_timers() == 0);
  env.run_for(9min);
  CHECK(cred->health().state == HealthState::below_min_validity);  // computed on the call
  CHECK(env.clock->pending_timers() == 0);

  auto fresh_one = create(RefreshMode::on_demand);
  (void)get_now(*fresh_one, env);
  HealthLog log;
  log.attach(*fresh_one);
  CHECK(env.clock->pending_timers() == 1);
  env.run_for(8min);
  CHECK(log.states == std::vector{HealthState::below_min_validity});
  env.run_for(2min);
  CHECK(log.states == std::vector{HealthState::below_min_validity, HealthState::expired});
  log.subscription.reset();
  (void)get_now(*fresh_one, env);  // refetched on demand
  CHECK(log.states.size() == 2);   // unsubscribed: nothing delivered
}

TEST_CASE_FIXTURE(Credential, "health: a listener that throws is logged; the credential goes on") {
  LogCapture logs;
  auto cred = create();
  int calls = 0;
  auto sub = cred->on_health_changed([&](TokenCredential&, const CredentialHealth&) {
    ++calls;
    throw std::runtime_error("listener failure");
  });
  env.drain();
  CHECK(calls == 1);
  CHECK(logs.count("on_health_changed listener threw: listener failure", LogLevel::error) == 1);
  CHECK(cred->get_token());
  CHECK_THROWS_AS((void)cred->on_health_changed(nullptr), Error);
}

TEST_CASE_FIXTURE(Credential, "metrics: fetches, failures, invalidations, waits and tokens served are reported") {
  auto observer = std::make_shared<RecordingObserver>();
  auto o = options();
  o.metrics = observer;
  o.metrics_name = "chat";
  fetcher.set_lifetime(60min);
  fetcher.script({ScriptedFetcher::Step::hold});
  auto cred = create(o);
  CHECK(observer->created == std::vector<std::string>{"chat"});
  CHECK(observer->last_credential.lock() == cred);

  // Two callers wait 5 s for the held initial fetch.
  int done = 0;
  cred->async_get_token([&](std::exception_ptr e, TokenHandle) { done += !e; });
  cred->async_get_token([&](std::exception_ptr e, TokenHandle) { done += !e; });
  env.run_for(5s);
  fetcher.release_all();
  env.drain();
  CHECK(done == 2);
  REQUIRE(observer->fetches.size() == 1);
  CHECK(observer->fetches[0].name == "chat");
  CHECK(observer->fetches[0].reason == FetchReason::initial);
  CHECK_FALSE(observer->fetches[0].result);
  CHECK(observer->fetches[0].latency == 5s);
  REQUIRE(observer->waits.size() == 2);
  for (const auto& [waited, result] : observer->waits) {
    CHECK(waited == 5s);
    CHECK_FALSE(result);
  }

  // Three reads from the hot path.
  for (int i = 0; i < 3; ++i) CHECK(cred->get_token());
  CHECK(cred->tokens_served() == 5);

  // A refused token: one invalidation, one refetch.
  CHECK(cred->invalidate(cred->get_token()));
  env.drain();
  CHECK(observer->invalidations == 1);
  REQUIRE(observer->fetches.size() == 2);
  CHECK(observer->fetches[1].reason == FetchReason::invalidated);

  // A failing proactive refresh: a failed fetch and a refresh failure with its code.
  fetcher.script({ScriptedFetcher::Step::fail});
  env.run_for(50min);
  REQUIRE(observer->fetches.size() >= 3);
  CHECK(observer->fetches[2].result == make_error_code(errc::fetch_failed));
  REQUIRE_FALSE(observer->failures.empty());
  CHECK(observer->failures[0] == make_error_code(errc::fetch_failed));
}

TEST_CASE_FIXTURE(Credential, "metrics: a fetch timeout is a finished fetch with fetch_timeout and its latency") {
  auto observer = std::make_shared<RecordingObserver>();
  auto o = options();
  o.metrics = observer;
  o.policy.fetch_timeout = 10s;
  fetcher.script({ScriptedFetcher::Step::hold});
  auto cred = create(o);
  env.run_for(10s);
  REQUIRE(observer->fetches.size() == 1);
  CHECK(observer->fetches[0].result == make_error_code(errc::fetch_timeout));
  CHECK(observer->fetches[0].latency == 10s);
  REQUIRE(observer->failures.size() == 1);
  CHECK(observer->failures[0] == make_error_code(errc::fetch_timeout));
  REQUIRE(cred->health().last_fetch_latency);
  CHECK(*cred->health().last_fetch_latency == 10s);
}

TEST_CASE_FIXTURE(Credential, "metrics: without an observer nothing is counted; an observer that throws changes nothing") {
  auto cred = create();
  env.drain();
  CHECK(cred->get_token());
  CHECK(cred->tokens_served() == 0);

  struct Throwing : MetricsObserver {
    void fetch_finished(std::string_view, FetchReason, std::error_code, nanoseconds) override {
      throw std::runtime_error("observer failure");
    }
  };
  LogCapture logs;
  auto o = options();
  o.metrics = std::make_shared<Throwing>();
  auto observed = create(o);
  env.drain();
  CHECK(logs.count("metrics observer hook threw (observer failure)", LogLevel::warning) == 1);
  CHECK(observed->get_token());
  CHECK(observed->tokens_served() == 1);
}

TEST_CASE_FIXTURE(Credential, "metrics_name is checked and names the field") {
  for (const std::string& bad : {std::string(), std::string(65, 'a'), std::string("a b"), std::string("a\nb"),
                                std::string("x\"y"), std::string("caf\xc3\xa9"), std::string("a{b}")}) {
    auto o = options();
    o.metrics_name = bad;
    try {
      (void)create(o);
      FAIL("accepted a bad metrics_name");
    } catch (const Error& e) {
      CHECK(e.code() == make_error_code(errc::invalid_argument));
      CHECK(std::string(e.what()).find("metrics_name") != std::string::npos);
    }
  }
  auto o = options();
  o.metrics_name = std::string(64, 'z');
  CHECK(create(o));
  o.metrics_name = "chat/calling:eu-1_a.b";
  CHECK(create(o));
}

TEST_CASE("health and lookup names are the enumerators' names") {
  CHECK(to_string(HealthState::fresh) == "fresh");
  CHECK(to_string(HealthState::below_min_validity) == "below_min_validity");
  CHECK(to_string(HealthState::closed) == "closed");
  CHECK(to_string(static_cast<HealthState>(99)) == "unknown");
  CHECK(to_string(CacheLookup::hit) == "hit");
  CHECK(to_string(CacheLookup::error) == "error");
}
