// credkit::prometheus::Exporter end to end: real credentials (virtual time) and a memory cache
// report to it; the scrape over HTTP passes promtool and its values are what happened.
#include <credkit/caches.hpp>
#include <credkit/credkit.hpp>
#include <credkit/prometheus/exporter.hpp>

#include "metrics/scrape.hpp"
#include "support/credential_fixture.hpp"

#include <doctest/doctest.h>
#include <prometheus/exposer.h>

using namespace credkit;
using namespace credkit::test;
using namespace credkit::metricstest;
using namespace std::chrono_literals;

namespace {

/// Asks `credential` for a token, moving virtual time by steps of `step` until it answers
/// (at most 10 virtual minutes).
std::pair<std::exception_ptr, TokenHandle> get_in_virtual_time(TokenCredential& credential, VirtualEnv& env,
                                                               std::chrono::seconds step = 1s) {
  TokenHandle token;
  auto error = get_error_now(credential, env, &token, step, 600);
  return {error, std::move(token)};
}

}  // namespace

TEST_CASE("credentials and a memory cache in virtual time: the scrape is what happened") {
  CredentialFixture fx(20261205);
  auto registry = std::make_shared<::prometheus::Registry>();
  auto exporter = credkit::prometheus::Exporter::create(registry);
  ::prometheus::Exposer exposer("127.0.0.1:0", 1);
  exposer.RegisterCollectable(registry);
  exposer.RegisterCollectable(exporter);
  const auto port = static_cast<unsigned short>(exposer.GetListeningPorts().at(0));

  // "graph": proactive; its first two fetches fail, the third delivers a 60-minute token.
  fx.fetcher.script({ScriptedFetcher::Step::fail, ScriptedFetcher::Step::fail});
  auto graph_options = fx.options(RefreshMode::proactive);
  graph_options.metrics = exporter;
  graph_options.metrics_name = "graph";
  auto graph = fx.create(graph_options);
  int graph_gets = 0, graph_waits = 0;  // waits: gets not answered from a cached token
  TokenHandle graph_token;
  while (!graph_token) {
    const auto before = graph->health();
    graph_waits += before.state == HealthState::expired || before.state == HealthState::below_min_validity;
    auto [error, token] = get_in_virtual_time(*graph, fx.env);
    graph_token = std::move(token);
    if (error) fx.env.run_for(5s);
    REQUIRE(++graph_gets < 20);
  }
  CHECK(graph_waits >= 1);
  REQUIRE(fx.fetcher.calls() == 3);
  // Two more reads, answered from the cached token: served, not waited for.
  CHECK(get_now(*graph, fx.env));
  CHECK(get_now(*graph, fx.env));

  // "chat": two on-demand credentials over one memory cache ("mem") and key: the first
  // misses and fetches, the second hits; the first's token is then rejected, and it fetches
  // again (reason invalidated: the cached copy is erased, a miss); the second is closed.
  MemoryTokenCacheOptions cache_options;
  cache_options.clock = fx.env.clock;
  cache_options.metrics = exporter;
  cache_options.metrics_name = "mem";
  auto cache = MemoryTokenCache::create(fx.env.io.get_executor(), cache_options);
  auto chat_options = fx.options_without_fetcher(RefreshMode::on_demand);
  chat_options.fetcher = make_cached_fetcher(cache, TokenCacheKey("user-1", {"chat"}), fx.fetcher.fetcher());
  chat_options.metrics = exporter;
  chat_options.metrics_name = "chat";
  auto chat_1 = fx.create(chat_options);
  auto chat_2 = fx.create(chat_options);
  const auto chat_token = get_now(*chat_1, fx.env);
  CHECK(get_now(*chat_2, fx.env));
  CHECK(fx.fetcher.calls() == 4);
  CHECK(chat_1->invalidate(chat_token));
  fx.env.drain();
  chat_2->close();  // the "chat" series shows the worst of the two: closed

  fx.env.run_for(10min);  // time passes: the expiry gauge follows the virtual clock
  CHECK(fx.fetcher.calls() == 5);  // chat_1's fetch after the invalidation ran (after the refresh spacing)
  const double graph_left =
      std::chrono::duration<double>(graph_token.expires_on() - fx.env.now()).count();

  const std::string body = http_get(port);
  INFO("exposition:\n" << body);
  const auto verdict = promtool_check(body);
  CHECK_MESSAGE(verdict.status == 0, "promtool exit status " << verdict.status << ": " << verdict.output);
  CHECK_MESSAGE(verdict.output.empty(), "promtool reported: " << verdict.output);
  const auto s = parse_samples(body);

  double graph_ok = 0, graph_failed = 0;
  for (const auto& [series, value] : s) {
    if (series.rfind(R"(credkit_fetches_total{credential="graph",)", 0) != 0) continue;
    if (series.find(R"(result="ok")") != std::string::npos) graph_ok += value;
    if (series.find(R"(result="fetch_failed")") != std::string::npos) graph_failed += value;
  }
  CHECK(graph_ok == 1);
  CHECK(graph_failed == 2);
  CHECK(value_of(s, R"(credkit_refresh_failures_total{code="fetch_failed",credential="graph"})") == 2);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_count{credential="graph"})") == 3);
  CHECK(value_of(s, R"(credkit_caller_wait_seconds_count{credential="graph"})") == graph_waits);
  CHECK(value_of(s, R"(credkit_tokens_served_total{credential="graph"})") == 3);
  CHECK(value_of(s, R"(credkit_token_expiry_seconds{credential="graph"})") == doctest::Approx(graph_left).epsilon(1e-6));
  CHECK(graph_left == doctest::Approx(50 * 60).epsilon(0.01));
  CHECK(value_of(s, R"(credkit_credential_state{credential="graph",state="fresh"})") == 1);
  CHECK(value_of(s, R"(credkit_credential_state{credential="graph",state="retrying"})") == 0);
  CHECK(value_of(s, R"(credkit_consecutive_refresh_failures{credential="graph"})") == 0);
  CHECK(value_of(s, R"(credkit_clock_offset_seconds{credential="graph"})") == 0);

  CHECK(value_of(s, R"(credkit_fetches_total{credential="chat",reason="initial",result="ok"})") == 2);
  CHECK(value_of(s, R"(credkit_fetches_total{credential="chat",reason="invalidated",result="ok"})") == 1);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_count{credential="chat"})") == 3);
  CHECK(value_of(s, R"(credkit_caller_wait_seconds_count{credential="chat"})") == 2);
  CHECK(value_of(s, R"(credkit_tokens_served_total{credential="chat"})") == 2);
  CHECK(value_of(s, R"(credkit_invalidations_total{credential="chat"})") == 1);
  CHECK(value_of(s, R"(credkit_credential_state{credential="chat",state="closed"})") == 1);
  CHECK(value_of(s, R"(credkit_credential_state{credential="chat",state="fresh"})") == 0);
  CHECK(value_of(s, R"(credkit_cache_lookups_total{cache="mem",outcome="miss"})") == 2);
  CHECK(value_of(s, R"(credkit_cache_lookups_total{cache="mem",outcome="hit"})") == 1);

  // Released credentials leave the scrape.
  chat_1.reset();
  chat_2.reset();
  const auto after = parse_samples(http_get(port));
  CHECK(after.count(R"(credkit_token_expiry_seconds{credential="chat"})") == 0);
  CHECK(after.count(R"(credkit_token_expiry_seconds{credential="graph"})") == 1);
  graph->close();
}
