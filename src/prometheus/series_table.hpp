// credkit::prometheus detail — the series of one family, found by label values without the
// family's own lock and label-map hashing on every event.
#pragma once

#include <prometheus/family.h>

#include <array>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace credkit::prometheus::detail {

/// Memoizes `Family<Metric>::Add` per label set: a series, once added, lives as long as its
/// family (prometheus-cpp returns a stable reference), so one map lookup under a short lock
/// finds it again. Thread-safe.
template <class Metric, std::size_t Labels>
class SeriesTable {
 public:
  SeriesTable(::prometheus::Family<Metric>& family, std::array<std::string, Labels> names)
      : family_(family), names_(std::move(names)) {}

  /// The series of `values` (in the order of the label names); `args` build a new series
  /// (a histogram's bucket bounds).
  template <class... Args>
  Metric& at(const std::array<std::string_view, Labels>& values, const Args&... args) {
    std::string key;
    for (auto v : values) key.append(v).push_back('\x1f');  // never in a label value (metrics_name rule)
    std::lock_guard lock(mutex_);
    if (auto it = series_.find(key); it != series_.end()) return *it->second;
    ::prometheus::Labels labels;
    for (std::size_t i = 0; i < Labels; ++i) labels.emplace(names_[i], std::string(values[i]));
    Metric& added = family_.Add(labels, args...);
    series_.emplace(std::move(key), &added);
    return added;
  }

 private:
  ::prometheus::Family<Metric>& family_;
  std::array<std::string, Labels> names_;
  std::mutex mutex_;
  std::unordered_map<std::string, Metric*> series_;
};

}  // namespace credkit::prometheus::detail
