// credkit::prometheus — the Exporter: events into registry families, live credentials read at scrape time.
#include <credkit/core/error.hpp>
#include <credkit/core/log.hpp>
#include <credkit/core/token_credential.hpp>
#include <credkit/prometheus/exporter.hpp>

#include "core/metrics_name.hpp"
#include "prometheus/series_table.hpp"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace credkit::prometheus {

namespace {

using ::prometheus::Counter;
using ::prometheus::Histogram;
using ::prometheus::MetricFamily;
using ::prometheus::MetricType;

constexpr std::string_view invalid_name = "invalid_name";

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

void check_buckets(const std::vector<double>& bounds, const char* field) {
  bool ok = !bounds.empty();
  for (std::size_t i = 0; ok && i < bounds.size(); ++i)
    ok = std::isfinite(bounds[i]) && bounds[i] > 0 && (i == 0 || bounds[i] > bounds[i - 1]);
  if (!ok)
    throw_error(errc::invalid_argument, std::string("ExporterOptions::") + field +
                                            " must hold at least one bound, each positive and finite, increasing");
}

/// Every state, in `HealthState` order, for the one-hot `credkit_credential_state`.
constexpr HealthState all_states[] = {HealthState::fresh,   HealthState::refreshing, HealthState::retrying,
                                      HealthState::below_min_validity, HealthState::expired, HealthState::closed};

/// What the gauges show for one `metrics_name`: the worst of the credentials sharing it.
struct Row {
  double served = 0;
  HealthState state = HealthState::fresh;
  double expiry_seconds = 0;
  double failures = 0;
  double clock_offset_seconds = 0;
  bool first = true;

  void merge(const CredentialHealth& h, std::uint64_t tokens) {
    served += static_cast<double>(tokens);
    const double left = seconds(h.time_left);
    const double offset = seconds(h.clock_offset);
    state = first ? h.state : std::max(state, h.state);
    expiry_seconds = first ? left : std::min(expiry_seconds, left);
    failures = std::max(failures, static_cast<double>(h.consecutive_failures));
    if (first || std::abs(offset) > std::abs(clock_offset_seconds)) clock_offset_seconds = offset;
    first = false;
  }
};

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

::prometheus::ClientMetric sample(std::vector<::prometheus::ClientMetric::Label> labels, double value, MetricType type) {
  ::prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  return m;
}

}  // namespace

void ExporterOptions::validate() const {
  check_buckets(fetch_duration_buckets, "fetch_duration_buckets");
  check_buckets(caller_wait_buckets, "caller_wait_buckets");
}

struct Exporter::Impl {
  explicit Impl(std::shared_ptr<::prometheus::Registry> r, ExporterOptions o)
      : registry(std::move(r)),
        options(std::move(o)),
        fetch_buckets(options.fetch_duration_buckets.begin(), options.fetch_duration_buckets.end()),
        wait_buckets(options.caller_wait_buckets.begin(), options.caller_wait_buckets.end()),
        fetches(counter_family("credkit_fetches_total",
                               "Token fetches finished, by credential, reason and result (ok or the error code)"),
                {"credential", "reason", "result"}),
        refresh_failures(counter_family("credkit_refresh_failures_total",
                                        "Refreshes that failed (fetch failure, timeout, token refused on arrival)"),
                         {"credential", "code"}),
        invalidations(counter_family("credkit_invalidations_total", "Tokens reported as rejected and invalidated"),
                      {"credential"}),
        fetch_duration(histogram_family("credkit_fetch_duration_seconds",
                                        "Time from a fetcher's start to its completion or timeout"),
                       {"credential"}),
        caller_wait(histogram_family("credkit_caller_wait_seconds",
                                     "Time a caller not answered from the cached token waited for a token or error"),
                    {"credential"}),
        cache_lookups(counter_family("credkit_cache_lookups_total", "Token cache lookups, by cache and outcome"),
                      {"cache", "outcome"}),
        redis_redirects(counter_family("credkit_redis_redirects_total", "Redis Cluster MOVED and ASK redirects followed"),
                        {"cache"}),
        redis_fallbacks(counter_family("credkit_redis_fallbacks_total",
                                       "Fetches made without the Redis single-flight because Redis failed or a wait "
                                       "timed out"),
                        {"cache"}) {}

  ::prometheus::Family<Counter>& counter_family(const char* name, const char* help) {
    return ::prometheus::BuildCounter().Name(name).Help(help).Register(*registry);
  }
  ::prometheus::Family<Histogram>& histogram_family(const char* name, const char* help) {
    return ::prometheus::BuildHistogram().Name(name).Help(help).Register(*registry);
  }

  /// `name` as a label value: itself when the metrics_name rule accepts it, else
  /// "invalid_name" (with one warning per process), so no free text reaches a label.
  std::string_view label(std::string_view name) {
    try {
      credkit::detail::check_metrics_name(name, "metrics name");
      return name;
    } catch (const Error&) {
      static std::atomic<bool> warned{false};  // once per process: a misuse, not an event
      if (!warned.exchange(true))
        log(LogLevel::warning, "credkit::prometheus::Exporter: a metrics name breaks the label rule (1 to 64 "
                               "characters from A-Z a-z 0-9 _ . : / -); recorded as \"invalid_name\"");
      return invalid_name;
    }
  }

  std::shared_ptr<::prometheus::Registry> registry;
  ExporterOptions options;
  Histogram::BucketBoundaries fetch_buckets;
  Histogram::BucketBoundaries wait_buckets;
  detail::SeriesTable<Counter, 3> fetches;
  detail::SeriesTable<Counter, 2> refresh_failures;
  detail::SeriesTable<Counter, 1> invalidations;
  detail::SeriesTable<Histogram, 1> fetch_duration;
  detail::SeriesTable<Histogram, 1> caller_wait;
  detail::SeriesTable<Counter, 2> cache_lookups;
  detail::SeriesTable<Counter, 1> redis_redirects;
  detail::SeriesTable<Counter, 1> redis_fallbacks;

  struct Watched {
    std::string name;
    std::weak_ptr<TokenCredential> credential;
  };
  mutable std::mutex watched_mutex;
  mutable std::vector<Watched> watched;  // Collect drops the expired ones
  std::size_t prune_at = 64;             // credential_created drops them too, as the list doubles

  /// Drops the credentials that are gone (watched_mutex held).
  void drop_expired_locked() const {
    watched.erase(std::remove_if(watched.begin(), watched.end(), [](const auto& w) { return w.credential.expired(); }),
                  watched.end());
  }
};

std::shared_ptr<Exporter> Exporter::create(std::shared_ptr<::prometheus::Registry> registry, ExporterOptions options) {
  if (!registry) throw_error(errc::invalid_argument, "credkit::prometheus::Exporter::create: the registry is null");
  options.validate();
  return std::shared_ptr<Exporter>(new Exporter(std::make_unique<Impl>(std::move(registry), std::move(options))));
}

Exporter::Exporter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Exporter::~Exporter() = default;

void Exporter::credential_created(std::string_view name, std::weak_ptr<TokenCredential> credential) {
  Impl::Watched w{std::string(impl_->label(name)), std::move(credential)};
  std::lock_guard lock(impl_->watched_mutex);
  // Without scrapes, short-lived credentials would pile up: prune when the list has doubled.
  if (impl_->watched.size() >= impl_->prune_at) {
    impl_->drop_expired_locked();
    impl_->prune_at = std::max<std::size_t>(64, 2 * impl_->watched.size());
  }
  impl_->watched.push_back(std::move(w));
}

void Exporter::fetch_finished(std::string_view name, FetchReason reason, std::error_code result,
                              std::chrono::nanoseconds latency) {
  const auto credential = impl_->label(name);
  impl_->fetches.at({credential, to_string(reason), error_label(result)}).Increment();
  impl_->fetch_duration.at({credential}, impl_->fetch_buckets).Observe(seconds(latency));
}

void Exporter::refresh_failed(std::string_view name, std::error_code code) {
  impl_->refresh_failures.at({impl_->label(name), error_label(code)}).Increment();
}

void Exporter::invalidated(std::string_view name) { impl_->invalidations.at({impl_->label(name)}).Increment(); }

void Exporter::caller_waited(std::string_view name, std::chrono::nanoseconds waited, std::error_code) {
  impl_->caller_wait.at({impl_->label(name)}, impl_->wait_buckets).Observe(seconds(waited));
}

void Exporter::cache_lookup(std::string_view cache, CacheLookup outcome) {
  impl_->cache_lookups.at({impl_->label(cache), to_string(outcome)}).Increment();
}

void Exporter::redis_redirect(std::string_view cache) { impl_->redis_redirects.at({impl_->label(cache)}).Increment(); }

void Exporter::redis_fallback(std::string_view cache) { impl_->redis_fallbacks.at({impl_->label(cache)}).Increment(); }

std::vector<MetricFamily> Exporter::Collect() const {
  std::vector<std::pair<std::string, std::shared_ptr<TokenCredential>>> live;
  {
    std::lock_guard lock(impl_->watched_mutex);
    impl_->drop_expired_locked();
    for (const auto& w : impl_->watched)
      if (auto c = w.credential.lock()) live.emplace_back(w.name, std::move(c));
  }
  std::map<std::string, Row> rows;  // sorted: a stable exposition
  for (const auto& [name, credential] : live) rows[name].merge(credential->health(), credential->tokens_served());
  live.clear();  // a credential released meanwhile is destroyed here, with no exporter lock held
  if (rows.empty()) return {};

  auto served = family("credkit_tokens_served_total", "Tokens handed out by get_token and async_get_token",
                       MetricType::Counter);
  auto expiry = family("credkit_token_expiry_seconds", "Seconds until the current token expires (0: none or expired)",
                       MetricType::Gauge);
  auto state = family("credkit_credential_state", "1 for the credential's current health state, 0 for the others",
                      MetricType::Gauge);
  auto failures = family("credkit_consecutive_refresh_failures", "Failed refreshes since the last token was installed",
                         MetricType::Gauge);
  auto offset = family("credkit_clock_offset_seconds", "Token service time minus local wall-clock time",
                       MetricType::Gauge);
  for (const auto& [name, row] : rows) {
    served.metric.push_back(sample({{"credential", name}}, row.served, MetricType::Counter));
    expiry.metric.push_back(sample({{"credential", name}}, row.expiry_seconds, MetricType::Gauge));
    for (auto s : all_states)
      state.metric.push_back(sample({{"credential", name}, {"state", std::string(to_string(s))}},
                                    s == row.state ? 1.0 : 0.0, MetricType::Gauge));
    failures.metric.push_back(sample({{"credential", name}}, row.failures, MetricType::Gauge));
    offset.metric.push_back(sample({{"credential", name}}, row.clock_offset_seconds, MetricType::Gauge));
  }
  return {std::move(served), std::move(expiry), std::move(state), std::move(failures), std::move(offset)};
}

}  // namespace credkit::prometheus
