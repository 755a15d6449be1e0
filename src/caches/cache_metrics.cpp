#include "caches/cache_metrics.hpp"

#include "core/metrics_name.hpp"
#include "core/metrics_notify.hpp"

namespace credkit::detail {

void CacheMetrics::lookup(CacheLookup outcome) const noexcept {
  notify_metrics(observer, [&](MetricsObserver& o) { o.cache_lookup(name, outcome); });
}

void CacheMetrics::redirect() const noexcept {
  notify_metrics(observer, [&](MetricsObserver& o) { o.redis_redirect(name); });
}

void CacheMetrics::fallback() const noexcept {
  notify_metrics(observer, [&](MetricsObserver& o) { o.redis_fallback(name); });
}

std::shared_ptr<const CacheMetrics> make_cache_metrics(std::shared_ptr<MetricsObserver> observer, std::string name) {
  check_metrics_name(name, "TokenCache metrics_name");  // a backend of the user's may pass any text
  if (!observer) return nullptr;
  return std::make_shared<const CacheMetrics>(CacheMetrics{std::move(observer), std::move(name)});
}

}  // namespace credkit::detail
