// credkit detail — where a cache sends its metrics: the observer and the cache's label, held
// together so an operation in flight carries one pointer (none when there is no observer).
#pragma once

#include <credkit/core/metrics_observer.hpp>

#include <memory>
#include <string>

namespace credkit::detail {

struct CacheMetrics {
  std::shared_ptr<MetricsObserver> observer;  // never null
  std::string name;

  /// Each hook through `notify_metrics`: call with no lock held.
  void lookup(CacheLookup outcome) const noexcept;
  void redirect() const noexcept;
  void fallback() const noexcept;
};

/// Null when `observer` is null, so a cache without metrics pays one null test per lookup.
/// Throws `Error(errc::invalid_argument)` for a `name` the metrics_name rule rejects.
std::shared_ptr<const CacheMetrics> make_cache_metrics(std::shared_ptr<MetricsObserver> observer, std::string name);

}  // namespace credkit::detail
