// credkit — the time source and timers the credential runs on, injectable for tests.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace credkit {

/// A one-shot timer made by a `Clock`. Waits measure elapsed (monotonic) time.
class Timer {
 public:
  virtual ~Timer() = default;
  /// Calls `handler(false)` through the timer's executor once `duration` has elapsed, or
  /// `handler(true)` if the wait is cancelled or replaced. A new wait replaces a pending one.
  virtual void async_wait_for(std::chrono::nanoseconds duration, std::function<void(bool aborted)> handler) = 0;
  /// Cancels a pending wait (its handler runs with `aborted == true`).
  virtual void cancel() noexcept = 0;
};

/// Wall-clock time and timers. Token expiry is wall-clock time, so the credential compares
/// expiries with `now()`; it sleeps with timers, which measure elapsed time and do not
/// advance while a machine sleeps. That is why the credential re-reads `now()` at bounded
/// intervals (`RefreshPolicy::wake_check_interval`).
///
/// `Clock::system()` is the real clock; `credkit::testing::ManualClock` is virtual time.
/// Implementations must be thread-safe.
class Clock {
 public:
  /// Wall-clock time.
  using time_point = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  /// Wall-clock now.
  virtual time_point now() const noexcept = 0;
  /// Wall-clock now, possibly a few milliseconds stale; used on the hot path of
  /// `get_token` where a precise reading costs more than the rest of the call.
  virtual time_point coarse_now() const noexcept { return now(); }
  /// Elapsed (monotonic) time since an arbitrary origin: what timers measure. It never steps
  /// with the wall clock, so timeouts are measured with it. The default reads
  /// `std::chrono::steady_clock`; a clock with its own timers should override it to match them.
  virtual std::chrono::nanoseconds elapsed() const;
  /// A timer whose handlers run on `executor`.
  virtual std::unique_ptr<Timer> make_timer(const boost::asio::any_io_executor& executor) = 0;

  /// The process-wide real clock (system_clock for wall time, steady_timer for waits).
  static std::shared_ptr<Clock> system();
};

}  // namespace credkit
