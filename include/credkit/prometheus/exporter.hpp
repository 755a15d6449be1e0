// credkit — the optional credkit::prometheus component: credkit's metrics in a prometheus-cpp registry.
#pragma once

#include <credkit/core/metrics_observer.hpp>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <memory>
#include <string_view>
#include <system_error>
#include <vector>

namespace credkit::prometheus {

/// Histogram bucket upper bounds, in seconds. `Exporter::create` checks them (at least one,
/// each positive and finite, strictly increasing).
struct ExporterOptions {
  /// `credkit_fetch_duration_seconds`: from a fast local service (5 ms) to a fetch that runs
  /// into a long fetch timeout (60 s).
  std::vector<double> fetch_duration_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  /// `credkit_caller_wait_seconds`: from a hand-off between threads (100 µs) to a caller that
  /// waited for a slow refresh (30 s).
  std::vector<double> caller_wait_buckets{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};

  /// Throws `Error(errc::invalid_argument)` naming the first bad bucket list.
  void validate() const;
};

/// A `MetricsObserver` that records into a prometheus-cpp `Registry`, and a
/// `prometheus::Collectable` that reads the credentials' gauges when it is scraped. Give it to
/// `TokenCredentialOptions::metrics` and to the caches' options (one exporter serves any
/// number of them), and register both the registry and the exporter with your exposer:
///
/// @code
/// // not compiled: needs the optional credkit::prometheus component (samples/bot_fleet compiles this)
/// auto registry = std::make_shared<::prometheus::Registry>();
/// auto exporter = credkit::prometheus::Exporter::create(registry);
/// ::prometheus::Exposer exposer("127.0.0.1:9464");
/// exposer.RegisterCollectable(registry);
/// exposer.RegisterCollectable(exporter);
/// options.metrics = exporter;
/// options.metrics_name = "graph";
/// @endcode
///
/// Families (docs/operations.md describes each; label values are the credentials' and
/// caches' `metrics_name`, reasons, outcomes and `error_label` names, never free text):
/// - in the registry: `credkit_fetches_total{credential,reason,result}`,
///   `credkit_refresh_failures_total{credential,code}`, `credkit_invalidations_total{credential}`,
///   `credkit_fetch_duration_seconds{credential}`, `credkit_caller_wait_seconds{credential}`,
///   `credkit_cache_lookups_total{cache,outcome}`, `credkit_redis_redirects_total{cache}`,
///   `credkit_redis_fallbacks_total{cache}`;
/// - read at scrape time from the live credentials (`health()`, `tokens_served()`):
///   `credkit_tokens_served_total{credential}`, `credkit_token_expiry_seconds{credential}`,
///   `credkit_credential_state{credential,state}`, `credkit_consecutive_refresh_failures{credential}`,
///   `credkit_clock_offset_seconds{credential}`. Credentials sharing a `metrics_name` are one
///   series: served tokens add up, and the gauges show the worst of them (least time left,
///   worst state, most failures, largest offset). A destroyed credential's series disappear.
///
/// A name that `metrics_name`'s rule rejects (a hook called directly with any text) is
/// recorded under the label value `invalid_name`.
///
/// @par Thread safety
/// Every hook and `Collect` may run concurrently from any thread. A hook takes one short
/// internal lock (to find the series of its labels) and never calls into a credential;
/// `Collect` calls `health()` and `tokens_served()` with no exporter lock held.
class Exporter final : public MetricsObserver, public ::prometheus::Collectable {
 public:
  /// Registers the families above in `registry` (not null; one exporter per registry).
  /// Throws `Error(errc::invalid_argument)` for a null registry or bad `options`.
  static std::shared_ptr<Exporter> create(std::shared_ptr<::prometheus::Registry> registry,
                                          ExporterOptions options = {});
  ~Exporter() override;
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  void credential_created(std::string_view name, std::weak_ptr<TokenCredential> credential) override;
  void fetch_finished(std::string_view name, FetchReason reason, std::error_code result,
                      std::chrono::nanoseconds latency) override;
  void refresh_failed(std::string_view name, std::error_code code) override;
  void invalidated(std::string_view name) override;
  void caller_waited(std::string_view name, std::chrono::nanoseconds waited, std::error_code result) override;
  void cache_lookup(std::string_view cache, CacheLookup outcome) override;
  void redis_redirect(std::string_view cache) override;
  void redis_fallback(std::string_view cache) override;

  /// The families read from the live credentials at scrape time.
  std::vector<::prometheus::MetricFamily> Collect() const override;

 private:
  struct Impl;
  explicit Exporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The label value of an error code: the `errc` name for a code in `credkit::category()`
/// (e.g. "fetch_timeout"), "unknown_credkit_error" for a value outside the enumeration, and
/// "other" for a code of any other category. Empty code: "ok". A bounded set, so a label
/// never carries free text.
std::string_view error_label(std::error_code code) noexcept;

}  // namespace credkit::prometheus
