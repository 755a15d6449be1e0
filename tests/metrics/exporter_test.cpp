// credkit::prometheus::Exporter: what it records is scraped over HTTP from prometheus-cpp's
// Exposer, passes `promtool check metrics`, and equals what happened; no free text reaches a
// label (RapidCheck, fixed seed).
#include <credkit/caches.hpp>
#include <credkit/credkit.hpp>
#include <credkit/prometheus/exporter.hpp>

#include "core/metrics_name.hpp"
#include "metrics/scrape.hpp"
#include "support/credential_fixture.hpp"

#include <doctest/doctest.h>
#include <prometheus/exposer.h>
#include <rapidcheck.h>

#include "support/rapidcheck_defaults.hpp"

#include <cmath>
#include <set>

using namespace credkit;
using namespace credkit::test;
using namespace credkit::metricstest;
using namespace std::chrono_literals;

namespace {

/// An Exposer on a free loopback port serving `registry` and `exporter` at /metrics.
struct Endpoint {
  Endpoint(const std::shared_ptr<::prometheus::Registry>& registry,
           const std::shared_ptr<credkit::prometheus::Exporter>& exporter)
      : exposer("127.0.0.1:0", 1) {
    exposer.RegisterCollectable(registry);
    exposer.RegisterCollectable(exporter);
    const auto ports = exposer.GetListeningPorts();
    REQUIRE(ports.size() == 1);
    port = static_cast<unsigned short>(ports[0]);
  }
  ::prometheus::Exposer exposer;
  unsigned short port = 0;
};

/// Scrapes, runs promtool (which must print nothing and exit 0), and returns the samples.
std::map<std::string, double> scrape_checked(const Endpoint& endpoint, std::string* body_out = nullptr) {
  const std::string body = http_get(endpoint.port);
  const auto verdict = promtool_check(body);
  INFO("exposition:\n" << body);
  CHECK_MESSAGE(verdict.status == 0, "promtool exit status " << verdict.status << ": " << verdict.output);
  CHECK_MESSAGE(verdict.output.empty(), "promtool reported: " << verdict.output);
  if (body_out) *body_out = body;
  return parse_samples(body);
}

/// The sum of the samples whose series text contains every one of `parts`.
double sum_of(const std::map<std::string, double>& samples, std::initializer_list<std::string_view> parts) {
  double total = 0;
  for (const auto& [series, value] : samples) {
    bool all = true;
    for (auto p : parts) all = all && series.find(p) != std::string::npos;
    if (all) total += value;
  }
  return total;
}

std::error_code code(errc e) { return make_error_code(e); }

// The last credkit::errc value (error.hpp appends new codes at the end).
constexpr errc last_errc = errc::keychain_corrupt;

/// The label values the exporter may write for error codes: every `errc` name and three more.
std::set<std::string> error_label_set() {
  std::set<std::string> names{"ok", "other", "unknown_credkit_error"};
  for (int v = 1; v <= static_cast<int>(last_errc); ++v)
    names.insert(std::string(credkit::prometheus::error_label(code(static_cast<errc>(v)))));
  return names;
}

}  // namespace

TEST_CASE("hooks called directly: the scrape passes promtool and counts what was reported") {
  auto registry = std::make_shared<::prometheus::Registry>();
  auto exporter = credkit::prometheus::Exporter::create(registry);
  Endpoint endpoint(registry, exporter);

  exporter->fetch_finished("graph", FetchReason::initial, {}, 20ms);
  exporter->fetch_finished("graph", FetchReason::proactive, {}, 40ms);
  exporter->fetch_finished("graph", FetchReason::proactive, {}, 3s);
  exporter->fetch_finished("graph", FetchReason::proactive, code(errc::fetch_timeout), 30s);
  exporter->fetch_finished("graph", FetchReason::on_demand, code(errc::http_status), 120ms);
  exporter->refresh_failed("graph", code(errc::fetch_timeout));
  exporter->refresh_failed("graph", code(errc::http_status));
  exporter->invalidated("graph");
  exporter->caller_waited("graph", 2ms, {});
  exporter->caller_waited("graph", 700ms, code(errc::fetch_timeout));
  for (int i = 0; i < 5; ++i) exporter->cache_lookup("memory", CacheLookup::hit);
  exporter->cache_lookup("memory", CacheLookup::miss);
  exporter->cache_lookup("memory", CacheLookup::miss);
  exporter->cache_lookup("redis", CacheLookup::error);
  exporter->redis_redirect("redis");
  exporter->redis_redirect("redis");
  exporter->redis_fallback("redis");

  const auto s = scrape_checked(endpoint);
  CHECK(value_of(s, R"(credkit_fetches_total{credential="graph",reason="initial",result="ok"})") == 1);
  CHECK(value_of(s, R"(credkit_fetches_total{credential="graph",reason="proactive",result="ok"})") == 2);
  CHECK(value_of(s, R"(credkit_fetches_total{credential="graph",reason="proactive",result="fetch_timeout"})") == 1);
  CHECK(value_of(s, R"(credkit_fetches_total{credential="graph",reason="on_demand",result="http_status"})") == 1);
  CHECK(sum_of(s, {"credkit_fetches_total{"}) == 5);
  CHECK(value_of(s, R"(credkit_refresh_failures_total{code="fetch_timeout",credential="graph"})") == 1);
  CHECK(value_of(s, R"(credkit_refresh_failures_total{code="http_status",credential="graph"})") == 1);
  CHECK(value_of(s, R"(credkit_invalidations_total{credential="graph"})") == 1);
  // The histogram: one observation per fetch, in seconds, in the documented buckets.
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_count{credential="graph"})") == 5);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_sum{credential="graph"})") == doctest::Approx(33.18));
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_bucket{credential="graph",le="0.025"})") == 1);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_bucket{credential="graph",le="0.25"})") == 3);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_bucket{credential="graph",le="5"})") == 4);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_bucket{credential="graph",le="30"})") == 5);
  CHECK(value_of(s, R"(credkit_fetch_duration_seconds_bucket{credential="graph",le="+Inf"})") == 5);
  CHECK(value_of(s, R"(credkit_caller_wait_seconds_count{credential="graph"})") == 2);
  CHECK(value_of(s, R"(credkit_caller_wait_seconds_bucket{credential="graph",le="0.005"})") == 1);
  CHECK(value_of(s, R"(credkit_cache_lookups_total{cache="memory",outcome="hit"})") == 5);
  CHECK(value_of(s, R"(credkit_cache_lookups_total{cache="memory",outcome="miss"})") == 2);
  CHECK(value_of(s, R"(credkit_cache_lookups_total{cache="redis",outcome="error"})") == 1);
  CHECK(value_of(s, R"(credkit_redis_redirects_total{cache="redis"})") == 2);
  CHECK(value_of(s, R"(credkit_redis_fallbacks_total{cache="redis"})") == 1);
  // No credential was created: no live series.
  CHECK(sum_of(s, {"credkit_token_expiry_seconds"}) == 0);
}

TEST_CASE("ExporterOptions: a null registry and bad buckets are refused") {
  CHECK_THROWS_AS(credkit::prometheus::Exporter::create(nullptr), Error);
  for (std::vector<double> bad : {std::vector<double>{}, {0.5, 0.5}, {2, 1}, {-1, 1}, {0.1, INFINITY}}) {
    credkit::prometheus::ExporterOptions options;
    options.fetch_duration_buckets = bad;
    CHECK_THROWS_AS(options.validate(), Error);
    options = {};
    options.caller_wait_buckets = bad;
    CHECK_THROWS_AS(options.validate(), Error);
  }
  CHECK_NOTHROW(credkit::prometheus::ExporterOptions{}.validate());
}

TEST_CASE("label hygiene: a name the metrics_name rule rejects never reaches a label") {
  const bool ok = rc::check("any name given to any hook", [](const std::string& name) {
    bool valid = true;
    try {
      detail::check_metrics_name(name, "name");
    } catch (const Error&) {
      valid = false;
    }
    auto registry = std::make_shared<::prometheus::Registry>();
    auto exporter = credkit::prometheus::Exporter::create(registry);
    exporter->fetch_finished(name, FetchReason::initial, {}, 1ms);
    exporter->refresh_failed(name, code(errc::timeout));
    exporter->invalidated(name);
    exporter->caller_waited(name, 1ms, {});
    exporter->cache_lookup(name, CacheLookup::miss);
    exporter->redis_redirect(name);
    exporter->redis_fallback(name);
    const std::string expected = valid ? name : "invalid_name";
    int labelled = 0;
    for (const auto& family : registry->Collect())
      for (const auto& metric : family.metric)
        for (const auto& label : metric.label)
          if (label.name == "credential" || label.name == "cache") {
            RC_ASSERT(label.value == expected);
            ++labelled;
          }
    RC_ASSERT(labelled == 8);  // one series in each family
  });
  CHECK(ok);
}

TEST_CASE("label hygiene: any error code maps into the bounded set of names") {
  const auto allowed = error_label_set();
  CHECK(allowed.size() == static_cast<std::size_t>(last_errc) + 3);  // the errc names are distinct
  const bool ok = rc::check("any value in any category", [&](int value, std::uint8_t which) {
    const std::error_category* categories[] = {&credkit::category(), &std::generic_category(),
                                               &std::system_category()};
    const std::error_code ec(value, *categories[which % 3]);
    const std::string label(credkit::prometheus::error_label(ec));
    RC_ASSERT(allowed.count(label) == 1);
    RC_ASSERT((label == "ok") == !ec);
    if (ec && &ec.category() != &credkit::category()) RC_ASSERT(label == "other");
  });
  CHECK(ok);
  CHECK(credkit::prometheus::error_label(code(errc::token_expired_on_arrival)) == "token_expired_on_arrival");
  CHECK(credkit::prometheus::error_label(std::error_code(9999, credkit::category())) == "unknown_credkit_error");
}
