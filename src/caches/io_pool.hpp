// credkit detail — the threads that run the caches' blocking work (file I/O, Redis calls).
#pragma once

#include "core/completion.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

namespace credkit::detail {

/// The most threads one cache's lane may use at once (a Redis cache uses 3, a file cache 1).
inline constexpr std::size_t cache_io_threads = 4;
/// An executor for the caches' timers and short hand-offs (one thread, created on first use and
/// never destroyed, so a cache released on it never has to join it). Blocking work never runs
/// here: it runs in lanes.
boost::asio::any_io_executor cache_io_executor();

/// One cache's share of the threads that run blocking cache work (core/blocking_runner.hpp's
/// elastic pool, never a credential's or the user's executor): its jobs run in order, at most
/// `max_threads` of them at once, each slot on a thread of its own. A cache whose I/O wedges or
/// crawls (a hung NFS mount, a Redis dripping bytes) holds at most `max_threads` threads, and
/// however many caches wedge, a healthy one still gets a thread. `max_threads` is clamped to
/// [1, cache_io_threads - 1].
class IoLane : public std::enable_shared_from_this<IoLane> {
 public:
  struct Job {
    virtual ~Job() = default;
    virtual void run() = 0;
  };
  static std::shared_ptr<IoLane> create(std::size_t max_threads);
  /// Queues `job`; it runs once the lane has a free slot. Throws std::system_error when a
  /// thread for a new slot cannot be made (the job stays queued for a running slot, if any).
  void post(std::unique_ptr<Job> job);
  std::size_t max_threads() const noexcept { return max_threads_; }

 private:
  explicit IoLane(std::size_t max_threads);
  void run_slot();
  std::mutex mutex_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::size_t running_ = 0;
  std::size_t max_threads_;
};

namespace io_pool_detail {
template <class F>
struct FnJob final : IoLane::Job {
  explicit FnJob(F f) : fn(std::move(f)) {}
  void run() override { fn(); }
  F fn;
};
}  // namespace io_pool_detail

/// Queues the callable `f` on `lane`.
template <class F>
void post_on(IoLane& lane, F f) {
  lane.post(std::make_unique<io_pool_detail::FnJob<F>>(std::move(f)));
}

/// The one way a cache runs a blocking call: `fn()` runs on `lane` (its share of the cache I/O
/// threads), then completes there with `done(error)` (when `fn` returns void) or
/// `done(error, result)` (a default-constructed result on failure).
template <class Fn, class Done>
void run_blocking(IoLane& lane, Fn fn, Done done) {
  post_on(lane, [fn = std::move(fn), done = std::move(done)]() mutable {
    using Result = std::invoke_result_t<Fn&>;
    if constexpr (std::is_void_v<Result>) {
      done(exception_from(fn));
    } else {
      Result result{};
      auto failure = exception_from([&] { result = fn(); });
      done(std::move(failure), std::move(result));
    }
  });
}

}  // namespace credkit::detail
