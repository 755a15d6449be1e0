// credkit — virtual time for deterministic tests of code that uses credentials.
#pragma once

#include <credkit/core/clock.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace credkit::testing {

/// A `Clock` whose time moves only when told. Timers made by it fire when virtual time
/// reaches their deadline, by posting their handlers to their executors.
///
/// Two notions of time, as on a real machine: wall time (`now()`, what token expiries are
/// compared with) and elapsed time (what timers measure). `advance` moves both; `jump`
/// moves only wall time, which is what a machine sleep or a wall-clock change looks like
/// to a process.
///
/// Typical test:
/// @code
///   auto clock = std::make_shared<credkit::testing::ManualClock>();
///   boost::asio::io_context io;
///   auto cred = credkit::TokenCredential::create(io.get_executor(), {.fetcher = my_fetcher, .clock = clock});
///   clock->run_for(io, std::chrono::minutes(50));  // fires every timer due in those 50 minutes
/// @endcode
///
/// Thread-safe.
class ManualClock final : public Clock, public std::enable_shared_from_this<ManualClock> {
 public:
  /// Starts at `start` (default: 2026-01-01T00:00:00Z).
  explicit ManualClock(time_point start = default_start());

  time_point now() const noexcept override;
  std::unique_ptr<Timer> make_timer(const boost::asio::any_io_executor& executor) override;

  /// Moves wall and elapsed time forward by `d`, firing (posting) every timer that falls due.
  void advance(std::chrono::nanoseconds d);
  /// Moves wall time only (a machine sleep, an NTP step); `d` may be negative.
  void jump(std::chrono::nanoseconds d);
  /// Runs `io` and virtual time together for `d`: repeatedly polls `io`, moves time to the
  /// next timer deadline within the window and fires it, so chains of timers and the work
  /// they trigger happen in order. Ends with time advanced by exactly `d` and `io` idle.
  void run_for(boost::asio::io_context& io, std::chrono::nanoseconds d);
  /// Polls `io` until no handler is ready (without moving time).
  static void drain(boost::asio::io_context& io);

  /// Deadline (elapsed time) of the earliest pending timer, if any.
  std::optional<std::chrono::nanoseconds> next_deadline() const;
  /// Number of pending timer waits (for tests asserting that nothing is scheduled).
  std::size_t pending_timers() const;
  /// Elapsed virtual time since construction (what its timers measure; `jump` does not move it).
  std::chrono::nanoseconds elapsed() const override;

  /// 2026-01-01T00:00:00Z.
  static time_point default_start() noexcept;

 private:
  class ManualTimer;
  struct Pending;
  void fire_due_locked(std::unique_lock<std::mutex>& lock);

  mutable std::mutex mutex_;
  std::atomic<time_point::rep> wall_;  // read lock-free by now()
  std::chrono::nanoseconds elapsed_{0};
  std::multimap<std::chrono::nanoseconds, std::shared_ptr<Pending>> pending_;
};

}  // namespace credkit::testing
