// credkit detail — RedisTokenCache's outage rule (retry_after_failure), sans-io.
//
// After a failed command, Redis is skipped until `retry_after_failure` has passed; an outage
// is announced once when it starts and once when Redis answers again. Times come from the
// cache's clock; a clock that stepped back before the failure ends the skipping (Redis is
// tried again rather than skipped for the length of the step). Thread-safe (atomics only).
#pragma once

#include <credkit/core/clock.hpp>

#include "core/saturating_time.hpp"

#include <atomic>
#include <chrono>

namespace credkit::detail {

class RedisOutage {
 public:
  using time_point = Clock::time_point;

  explicit RedisOutage(std::chrono::milliseconds retry_after_failure) : retry_after_failure_(retry_after_failure) {}

  /// Whether calls at `now` skip Redis: the last failure was at most `retry_after_failure` ago.
  bool skipping(time_point now) const noexcept {
    const time_point failed_at{time_point::duration(failed_at_.load(std::memory_order_acquire))};
    return failed_at <= now && now < add_sat(failed_at, retry_after_failure_);
  }
  /// A command failed at `now`. True when this starts an outage (warn once).
  bool on_failure(time_point now) noexcept {
    failed_at_.store(now.time_since_epoch().count(), std::memory_order_release);
    return !outage_.exchange(true, std::memory_order_acq_rel);
  }
  /// A command succeeded. True when this ends an outage (announce the recovery once).
  bool on_success() noexcept { return outage_.exchange(false, std::memory_order_acq_rel); }

 private:
  std::chrono::milliseconds retry_after_failure_;
  std::atomic<time_point::rep> failed_at_{time_point::max().time_since_epoch().count()};  // max: never failed
  std::atomic<bool> outage_{false};
};

}  // namespace credkit::detail
